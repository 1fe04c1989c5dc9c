"""Image grids and PNG writing with torch, numpy and Pillow (no torchvision)."""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from .atomic import write_bytes_atomic

#: most uint8 values one grid image may hold (16384 x 16384 RGB); larger grids are refused, not allocated
MAX_GRID_VALUES = 3 * 2 ** 28


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(N, C, H, W)`` floats in [0, 1] -> ``(N, H, W, C)`` uint8 (rounded, clipped)."""
    if images.ndim != 4:
        raise DataError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
    arr = images.detach().float().cpu().clamp(0, 1).mul(255).round().to(torch.uint8)
    return arr.permute(0, 2, 3, 1).numpy()


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 1, pad_value: int = 255,
              scale: int | None = None) -> np.ndarray:
    """Tile ``(N, C, H, W)`` images in [0, 1] into one ``(H', W', C)`` uint8 array.

    ``nrow`` images per row (default ``ceil(sqrt(N))``, at most ``N``); tiles are enlarged ``scale`` times with
    nearest-neighbour (default: enough that tiles are at least 48 pixels tall, so 8×8 digits are visible).
    Works for any ``N >= 1``; no images, empty images or a grid over :data:`MAX_GRID_VALUES` values raise
    :class:`DataError`.
    """
    if images.ndim != 4:
        raise DataError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
    n, c, h, w = images.shape
    if n == 0:
        raise DataError("no images to put in a grid (0 samples); give at least one image "
                        "(is the data set or its test split empty?)")
    if min(c, h, w) < 1:
        raise DataError(f"images of shape {tuple(images.shape[1:])} have no pixels; give (N, C, H, W) with C, H, W >= 1")
    if nrow is not None and nrow < 0:
        raise DataError(f"nrow must be >= 1 images per row, got {nrow}")
    nrow = min(n, nrow or int(math.ceil(math.sqrt(n))))
    scale = scale or max(1, math.ceil(48 / h))
    if scale < 1:
        raise DataError(f"scale must be >= 1, got {scale}")
    rows = int(math.ceil(n / nrow))
    size = (rows * (h * scale + padding) + padding) * (nrow * (w * scale + padding) + padding) * c
    if size > MAX_GRID_VALUES:
        raise DataError(f"a grid of {n} images of {c}x{h}x{w} (scale {scale}) would hold {size:,} values, more "
                        f"than {MAX_GRID_VALUES:,}; put fewer or smaller images in one grid")
    tiles = to_uint8(images)
    if scale > 1:
        tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    grid = np.full((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), pad_value, np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y:y + h, x:x + w] = tiles[i]
    return grid


def save_png(array: np.ndarray, path: str | Path) -> Path:
    """Write an ``(H, W, C)`` or ``(H, W)`` uint8 array as PNG, atomically."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise DataError(f"a PNG needs (H, W) or (H, W, C) uint8 pixels with C in 1, 3, 4, got {array.dtype} "
                        f"{tuple(array.shape)}; images with other channel counts cannot be written as PNG")
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    write_bytes_atomic(path, buf.getvalue())
    return Path(path)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, **kw) -> Path:
    """Save ``(N, C, H, W)`` images in [0, 1] as a PNG grid."""
    return save_png(make_grid(images, nrow=nrow, **kw), path)


# ---------------------------------------------------------------------------------------------- many images
#: most images one PNG grid holds; more are split over several files (see :func:`save_grids`)
GRID_PAGE = 256


def grid_paths(path: str | Path, n: int, per_file: int = GRID_PAGE) -> list[Path]:
    """The files :func:`save_grids` writes for ``n`` images: ``path`` itself when ``n <= per_file``, else
    ``STEM-000.png``, ``STEM-001.png``, ... beside it (one per ``per_file`` images)."""
    path = Path(path)
    if n <= per_file:
        return [path]
    pages = math.ceil(n / per_file)
    width = max(3, len(str(pages - 1)))
    return [path.with_name(f"{path.stem}-{i:0{width}d}{path.suffix}") for i in range(pages)]


def save_grids(images: torch.Tensor, path: str | Path, nrow: int | None = None, *, per_file: int = GRID_PAGE,
               **kw) -> list[Path]:
    """Save ``(N, C, H, W)`` images in [0, 1] as PNG grids of at most ``per_file`` images each.

    The one rule of every command that writes N images as PNG (``genlab sample``, ``reconstruct``,
    ``decompress``): up to ``per_file`` (256) images go to ``path``; more are split in order over
    :func:`grid_paths` (``decoded-000.png`` holds images 0-255, ...). Every grid is built before the first file
    is written, and each file is written atomically. Returns the paths written.
    """
    paths = grid_paths(path, len(images), per_file)
    grids = [make_grid(images[i * per_file:(i + 1) * per_file], nrow=nrow, **kw) for i in range(len(paths))]
    for g, p in zip(grids, paths):
        save_png(g, p)
    return paths


def describe_paths(paths: list[Path]) -> str:
    """``a.png``, or ``a-000.png ... a-006.png (7 files)`` for the terminal."""
    return str(paths[0]) if len(paths) == 1 else f"{paths[0]} ... {paths[-1].name} ({len(paths)} files)"
