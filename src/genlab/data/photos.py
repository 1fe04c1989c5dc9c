"""Offline built-ins cut from the pictures scikit-image ships: colour photo patches and the LFW face subset.

``photos32`` / ``photos64``
    Random square patches (32x32 / 64x64, RGB) of scikit-image's colour photographs, at a fixed seed. The
    official split keeps source images apart: ``split="train"`` cuts patches from :data:`TRAIN_IMAGES`
    (astronaut, rocket, the stereo motorcycle pair, Hubble deep field, retina, immunohistochemistry) and
    ``split="test"`` from :data:`TEST_IMAGES` (coffee, chelsea the cat), so no test pixel was ever seen in
    training. Every photograph is first shrunk (antialiased) so that its shorter side is at most
    :data:`MAX_SIDE` pixels (retina 1411 -> 512); each gets an equal share of the patches, at uniformly random
    positions; a patch whose luma standard deviation is below :data:`MIN_STD` (flat black background of the
    retina and Hubble images) is redrawn (up to 20 times). Counts: :data:`COUNTS`. No labels.
``lfw``
    scikit-image's ``lfw_subset``: 200 grey 25x25 images, the first 100 faces from Labeled Faces in the Wild and
    100 non-face crops; labels ``face`` (1) / ``non-face`` (0). No official test split.
"""
from __future__ import annotations

import functools
import logging

import numpy as np
import torch

from ..errors import DataError, MissingFilesError
from .builtins import register_builtin
from .dataset import Normalization, TensorDataset

logger = logging.getLogger(__name__)

#: scikit-image colour photographs the training patches come from (``skimage.data`` function names)
TRAIN_IMAGES = ("astronaut", "rocket", "motorcycle_left", "motorcycle_right", "hubble_deep_field", "retina",
                "immunohistochemistry")
#: ... and the test patches (disjoint from the training pictures)
TEST_IMAGES = ("coffee", "chelsea")
#: patches per split and size
COUNTS = {32: {"train": 6300, "test": 1000}, 64: {"train": 2800, "test": 600}}
#: photographs are shrunk so that their shorter side is at most this
MAX_SIDE = 512
#: patches with a luma standard deviation below this (in [0, 1] units) are redrawn
MIN_STD = 0.02
#: the fixed seed of the patch positions
SEED = 20240616


def _skimage_data():
    try:
        from skimage import data
    except ImportError as e:  # pragma: no cover - scikit-image is a core dependency
        raise MissingFilesError("the photo built-ins need scikit-image; run `pip install scikit-image`") from e
    return data


@functools.lru_cache(maxsize=16)
def _photo(name: str) -> np.ndarray:
    """``(H, W, 3)`` uint8 photograph ``name`` of ``skimage.data``, shrunk to :data:`MAX_SIDE`."""
    data = _skimage_data()
    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _disp = data.stereo_motorcycle()
        im = left if name == "motorcycle_left" else right
    else:
        im = getattr(data, name)()
    im = np.asarray(im)[..., :3]
    side = min(im.shape[:2])
    if side > MAX_SIDE:
        from skimage.transform import rescale
        im = rescale(im, MAX_SIDE / side, channel_axis=-1, anti_aliasing=True, preserve_range=True)
        im = np.clip(np.rint(im), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(im)


def _patches(im: np.ndarray, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, size, size, 3)`` uint8 patches at random positions, flat ones redrawn (see the module notes)."""
    h, w = im.shape[:2]
    if h < size or w < size:
        raise DataError(f"photo of {h}x{w} is smaller than the {size}x{size} patches")
    weights = np.array([0.299, 0.587, 0.114])
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        for _ in range(20):
            top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
            p = im[top:top + size, left:left + size]
            if float((p @ weights).std()) / 255.0 >= MIN_STD:
                break
        out[i] = p
    return out


@functools.lru_cache(maxsize=4)
def _photo_patches(size: int, split: str) -> np.ndarray:
    names = TRAIN_IMAGES if split == "train" else TEST_IMAGES
    total = COUNTS[size][split]
    rng = np.random.default_rng([SEED, size, 0 if split == "train" else 1])
    shares = [total // len(names) + (1 if k < total % len(names) else 0) for k in range(len(names))]
    parts = [_patches(_photo(nm), k, size, rng) for nm, k in zip(names, shares)]
    return np.concatenate(parts).transpose(0, 3, 1, 2).copy()  # (N, 3, size, size) uint8


def _load_photos(size: int, split: str) -> TensorDataset:
    if split not in ("train", "test"):
        raise DataError(f"photos{size}: unknown split {split!r}; use train or test")
    x = torch.from_numpy(_photo_patches(size, split)).to(torch.float32).div_(255.0)  # (N, 3, size, size)
    logger.info("photos%d[%s]: %d patches from %s", size, split, len(x),
                ", ".join(TRAIN_IMAGES if split == "train" else TEST_IMAGES))
    return TensorDataset(x, norm=Normalization.pixels(), name=f"photos{size}")


@register_builtin("photos32", f"{COUNTS[32]['train']:,} train / {COUNTS[32]['test']:,} test 3x32x32 colour photo "
                  "patches (test from other photos), scikit-image", offline=True)
def load_photos32(data_dir=None, download=None, split: str = "train") -> TensorDataset:
    return _load_photos(32, split)


@register_builtin("photos64", f"{COUNTS[64]['train']:,} train / {COUNTS[64]['test']:,} test 3x64x64 colour photo "
                  "patches (test from other photos), scikit-image", offline=True)
def load_photos64(data_dir=None, download=None, split: str = "train") -> TensorDataset:
    return _load_photos(64, split)


@register_builtin("lfw", "200 grey 25x25 images: 100 LFW faces, 100 non-faces (labels), scikit-image",
                  offline=True)
def load_lfw(data_dir=None, download=None, split: str = "train") -> TensorDataset:
    if split != "train":
        raise DataError(f"lfw has no official {split!r} split; load split='train' and use "
                        ".split(val=..., test=..., seed=...) for held-out data")
    a = np.asarray(_skimage_data().lfw_subset(), dtype=np.float32)  # (200, 25, 25) in [0, 1]
    x = torch.from_numpy(a).clamp_(0.0, 1.0).unsqueeze(1)  # (200, 1, 25, 25)
    y = torch.cat([torch.ones(100, dtype=torch.int64), torch.zeros(len(x) - 100, dtype=torch.int64)])
    return TensorDataset(x, y, norm=Normalization.pixels(), name="lfw", classes=["non-face", "face"])
