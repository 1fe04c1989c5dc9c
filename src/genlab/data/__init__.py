"""Data sets: one in-memory type (:class:`TensorDataset`), built-ins, and loaders for user files.

>>> from genlab.data import load_dataset
>>> ds = load_dataset("digits")                 # built-in, offline
>>> ds = load_dataset("mnist", split="test")    # from --data-dir / GENLAB_DATA, downloaded if absent
>>> ds = load_dataset("photos/")                # folder of PNG/JPEG images, class sub-folders -> labels
>>> ds = load_dataset("table.csv")              # tabular, NaN kept for imputation
>>> train, val, test = ds.split(val=0.1, test=0.1, seed=0)
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from .builtins import BUILTINS, SPLITS, list_datasets, load_builtin
from .cifar import read_cifar_bin
from .dataset import Normalization, TensorDataset
from .download import data_root, download_file
from .files import load_path
from .idx import read_idx

__all__ = ["TensorDataset", "Normalization", "load_dataset", "list_datasets", "read_idx", "read_cifar_bin",
           "download_file", "data_root"]


def _builtin_name(spec: str) -> str | None:
    key = spec.strip().lower().replace("_", "-")
    return key if key in BUILTINS else None


def load_dataset(spec: str, *, data_dir: str | os.PathLike | None = None, download: bool | None = None,
                 split: str = "train") -> TensorDataset:
    """Load a built-in data set by name, or the data at a path.

    Parameters
    ----------
    spec : str
        A built-in name (see :func:`list_datasets`; case and ``_``/``-`` do not matter) or a path:

        - a folder of PNG/JPEG images; class sub-folders become labels (sorted names), all images
          share one size, grey images give ``C=1`` and colour ``C=3``;
        - ``.npz`` with keys ``x`` (optional ``y``), ``images``/``labels`` or ``X``/``y``; or ``.npy``.
          4-D ``(N, C, H, W)`` (or channels-last) and 3-D ``(N, H, W)`` arrays are images: uint8
          is divided by 255, floats must already lie in [0, 1]. 2-D arrays are tabular;
        - ``.csv`` of numbers: tabular, header row auto-detected, empty / ``nan`` / ``NA`` cells kept
          as NaN, a column named ``label`` or ``y`` becomes the labels.

        Built-in names take precedence over a same-named path in the working folder (use
        ``./name`` for the path). ``pairs:PATH``: image-to-image folder pairs ``PATH/A/`` (sources) and
        ``PATH/B/`` (targets) with matching file names (:func:`genlab.data.paired.load_pairs`).
    data_dir : path, optional
        Root holding ``mnist/``, ``fashion-mnist/``, ``cifar10/``; defaults to ``$GENLAB_DATA`` or
        ``~/.cache/genlab/data``.
    download : bool or None
        ``None`` or ``True``: download missing built-in files (SHA-256 verified); ``False``: never.
    split : {"train", "test"}
        Official split of ``mnist``, ``fashion-mnist`` and ``cifar10``. The other built-ins and
        files have no official test split: use ``split="train"`` and :meth:`TensorDataset.split`.

    Returns
    -------
    TensorDataset
        Images ``(N, C, H, W)`` float32 in [0, 1] (``digits``: raw = x * 16, others raw = x * 255),
        or tabular ``(N, D)`` float32 stored as-is with ``Normalization(shift=0, scale=1)``;
        per-column standardisation is the model's / application's job.

    Raises
    ------
    DataError
        Unknown name, unreadable / corrupt / ill-shaped data (the message names the file).
    MissingFilesError
        Built-in files absent and not downloadable (the message says which files go where).
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if str(spec).startswith("pairs:"):  # folder pairs A/ (sources), B/ (targets): genlab.data.paired
        if split != "train":
            raise DataError(f"{spec}: folder pairs have no official {split!r} split; use split='train'")
        from .paired import load_pairs
        return load_pairs(str(spec)[len("pairs:"):])
    name = _builtin_name(str(spec))
    if name is not None:
        return load_builtin(name, data_dir=data_dir, download=download, split=split)
    from .sequence import is_series_spec, load_series  # series:[layout:]PATH -> (N, C, T) sequences
    if is_series_spec(spec):
        if split != "train":
            raise DataError(f"{spec}: files have no official {split!r} split; load it with split='train'")
        return load_series(str(spec))
    path = Path(spec).expanduser()
    if path.exists():
        if split != "train":
            raise DataError(f"{path}: files have no official {split!r} split; load it with split='train' and "
                            "use .split(val=..., test=..., seed=...)")
        return load_path(path)
    raise DataError(f"unknown data set {str(spec)!r}: not a built-in ({', '.join(BUILTINS)}) and no such "
                    "file or folder; see `genlab datasets`")
