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


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(N, C, H, W)`` floats in [0, 1] -> ``(N, H, W, C)`` uint8 (rounded, clipped)."""
    if images.ndim != 4:
        raise DataError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
    arr = images.detach().float().cpu().clamp(0, 1).mul(255).round().to(torch.uint8)
    return arr.permute(0, 2, 3, 1).numpy()


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 1, pad_value: int = 255,
              scale: int | None = None) -> np.ndarray:
    """Tile ``(N, C, H, W)`` images in [0, 1] into one ``(H', W', C)`` uint8 array.

    ``nrow`` images per row (default ``ceil(sqrt(N))``); tiles are enlarged ``scale`` times with
    nearest-neighbour (default: enough that tiles are at least 48 pixels tall, so 8×8 digits are visible).
    """
    tiles = to_uint8(images)
    n, h, w, c = tiles.shape
    nrow = nrow or int(math.ceil(math.sqrt(n)))
    scale = scale or max(1, math.ceil(48 / h))
    if scale > 1:
        tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    rows = int(math.ceil(n / nrow))
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
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    write_bytes_atomic(path, buf.getvalue())
    return Path(path)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, **kw) -> Path:
    """Save ``(N, C, H, W)`` images in [0, 1] as a PNG grid."""
    return save_png(make_grid(images, nrow=nrow, **kw), path)
