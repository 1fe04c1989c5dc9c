"""Input checks shared by the metric functions (private).

Every check raises a one-line :class:`~genlab.errors.DataError` or
:class:`~genlab.errors.ConfigError` naming the problem and the fix.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError


def as_feature_tensor(x: Any, name: str, *, dtype: torch.dtype | None = torch.float64) -> torch.Tensor:
    """``x`` (numpy array or tensor, shape (N, D)) as a CPU-or-same-device tensor, checked.

    ``dtype=None`` keeps a floating dtype as given (float16/bfloat16 are widened to float32), so
    large inputs are not copied; integer input is converted to float64.
    """
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise DataError(f"{name}: object arrays are not features; pass a numeric (N, D) array")
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError) as e:
            raise DataError(f"{name}: cannot read features ({e}); pass a numeric (N, D) array") from None
    if t.ndim != 2:
        raise DataError(f"{name}: features must be 2-D (N, D), got shape {tuple(t.shape)}; "
                        f"flatten or pool each sample to one vector")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise DataError(f"{name}: empty feature array of shape {tuple(t.shape)}; pass at least one sample")
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.to(torch.float64)
    elif t.dtype in (torch.float16, torch.bfloat16):
        t = t.to(torch.float32)
    check_finite(t, name)
    return t


def check_finite(t: torch.Tensor, name: str) -> None:
    """Raise DataError on NaN/inf; scans 4096 rows at a time so no full-size mask is allocated."""
    if t.numel() == 0:
        return  # nothing to scan (an empty set is the caller's error to name)
    flat = t.reshape(t.shape[0], -1) if t.ndim > 0 else t.reshape(1, 1)
    bad = 0
    for lo in range(0, flat.shape[0], 4096):
        bad += int((~torch.isfinite(flat[lo:lo + 4096])).sum())
    if bad:
        raise DataError(f"{name}: {bad} NaN/inf values; check the model or feature extractor that produced "
                        f"them and its inputs")


def check_same_dim(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise DataError(f"feature dimensions differ: {name_a} has {a.shape[1]}, {name_b} has {b.shape[1]}; "
                        f"extract both with the same feature network and layer")


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def as_image_tensor(x: Any, name: str) -> torch.Tensor:
    """Images (N, C, H, W) (numpy or tensor) as a float64 tensor, checked finite."""
    t = torch.from_numpy(np.asarray(x)) if isinstance(x, np.ndarray) else torch.as_tensor(x)
    t = t.detach()
    if t.ndim != 4:
        raise DataError(f"{name}: images must be 4-D (N, C, H, W), got shape {tuple(t.shape)}; "
                        f"add the batch/channel axes")
    t = t.to(torch.float64)
    check_finite(t, name)
    return t
