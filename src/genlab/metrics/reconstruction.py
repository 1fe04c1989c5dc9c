"""Reconstruction metrics on image batches (N, C, H, W): MSE, PSNR, SSIM."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from ._common import as_image_tensor


def _pair(x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = as_image_tensor(x, "x"), as_image_tensor(y, "y")
    if a.shape != b.shape:
        raise DataError(f"x and y must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return a, b


def _check_range(data_range: float) -> float:
    if not (isinstance(data_range, (int, float)) and data_range > 0):
        raise ConfigError(f"data_range must be > 0 (1.0 for [0, 1] images, 255 for uint8), got {data_range!r}")
    return float(data_range)


def mse(x: Any, y: Any) -> float:
    """Mean squared error over all elements of all images (float64)."""
    a, b = _pair(x, y)
    return float(((a - b) ** 2).mean())


def psnr(x: Any, y: Any, *, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB.

    Conventions: computed **per image** as ``10 log10(data_range^2 / MSE_i)`` with ``MSE_i`` over
    that image's C*H*W values, then averaged over images (not the PSNR of the pooled MSE). An
    image with ``MSE_i = 0`` gives ``inf`` (and so does the mean). float64.
    """
    a, b = _pair(x, y)
    rng = _check_range(data_range)
    per = ((a - b) ** 2).flatten(1).mean(dim=1)  # (N,)
    vals = torch.where(per > 0, 10.0 * torch.log10(rng ** 2 / per), torch.full_like(per, math.inf))
    return float(vals.mean())


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 1-D Gaussian ``exp(-x^2 / (2 sigma^2))``, x = -(size//2)..size//2, float64."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    w = torch.exp(-(x ** 2) / (2.0 * sigma ** 2))
    return w / w.sum()


def ssim(x: Any, y: Any, *, data_range: float = 1.0, win_size: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> float:
    """Structural similarity (Wang et al. 2004), skimage's Gaussian variant.

    Conventions (match ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=data_range, channel_axis=...)``):

    * separable Gaussian window of 11 taps, sigma 1.5, normalised to sum 1;
    * local means/variances/covariance by *valid* convolution (no padding; the map is
      (H-10) x (W-10)), population (not sample) covariance;
    * ``C1 = (K1 L)^2``, ``C2 = (K2 L)^2`` with K1=0.01, K2=0.03, ``L = data_range``;
    * mean SSIM map per image and channel, averaged over channels, then over images. float64.
    Images need H, W >= win_size.
    """
    a, b = _pair(x, y)
    rng = _check_range(data_range)
    n, c, h, w = a.shape
    if win_size % 2 == 0 or win_size < 3:
        raise ConfigError(f"win_size must be an odd integer >= 3, got {win_size}")
    if h < win_size or w < win_size:
        raise DataError(f"ssim needs images of at least {win_size}x{win_size} pixels, got {h}x{w}; "
                        f"use a smaller win_size or larger images")
    g = gaussian_window(win_size, sigma)
    gh = g.view(1, 1, win_size, 1).repeat(c, 1, 1, 1)  # (C, 1, k, 1)
    gw = g.view(1, 1, 1, win_size).repeat(c, 1, 1, 1)  # (C, 1, 1, k)

    def filt(t: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, C, H-k+1, W-k+1)
        return F.conv2d(F.conv2d(t, gh, groups=c), gw, groups=c)

    ux, uy = filt(a), filt(b)
    vx = filt(a * a) - ux * ux
    vy = filt(b * b) - uy * uy
    vxy = filt(a * b) - ux * uy
    c1, c2 = (k1 * rng) ** 2, (k2 * rng) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return float(s.mean(dim=(2, 3)).mean(dim=1).mean())
