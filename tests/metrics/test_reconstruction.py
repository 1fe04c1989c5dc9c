"""MSE / PSNR / SSIM against direct computations."""
import math

import numpy as np
import pytest
import torch

from genlab.errors import DataError
from genlab.metrics import mse, psnr, ssim


def _ssim_loop(x, y, data_range=1.0, win=11, sigma=1.5):
    """Direct per-window NumPy SSIM (Gaussian weights, population covariance, valid windows)."""
    r = np.arange(win) - win // 2
    g = np.exp(-(r ** 2) / (2 * sigma ** 2))
    w2 = np.outer(g, g)
    w2 /= w2.sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    n, c, h, wd = x.shape
    per_image = []
    for i in range(n):
        chans = []
        for ch in range(c):
            vals = []
            for top in range(h - win + 1):
                for left in range(wd - win + 1):
                    a = x[i, ch, top:top + win, left:left + win]
                    b = y[i, ch, top:top + win, left:left + win]
                    ua, ub = (w2 * a).sum(), (w2 * b).sum()
                    va = (w2 * (a - ua) ** 2).sum()
                    vb = (w2 * (b - ub) ** 2).sum()
                    cov = (w2 * (a - ua) * (b - ub)).sum()
                    vals.append(((2 * ua * ub + c1) * (2 * cov + c2)) / ((ua ** 2 + ub ** 2 + c1) * (va + vb + c2)))
            chans.append(np.mean(vals))
        per_image.append(np.mean(chans))
    return float(np.mean(per_image))


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(2, 2, 16, 14))
    y = np.clip(x + rng.normal(scale=0.1, size=x.shape), 0, 1)
    return x, y


def test_ssim_matches_loop(pair):
    x, y = pair
    assert ssim(x, torch.from_numpy(y)) == pytest.approx(_ssim_loop(x, y), rel=1e-10)
    assert ssim(x * 255, y * 255, data_range=255.0) == pytest.approx(_ssim_loop(x * 255, y * 255, 255.0), rel=1e-10)


def test_ssim_matches_skimage_if_installed(pair):
    metrics = pytest.importorskip("skimage.metrics")
    x, y = pair
    ref = np.mean([metrics.structural_similarity(x[i], y[i], channel_axis=0, data_range=1.0, gaussian_weights=True,
                                                 sigma=1.5, use_sample_covariance=False) for i in range(len(x))])
    assert ssim(x, y) == pytest.approx(ref, rel=1e-7)


def test_ssim_identity_is_one(pair):
    x, _ = pair
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)


def test_psnr_is_per_image_mean():
    x = np.zeros((2, 1, 4, 4))
    y = x.copy()
    y[0] += 0.1  # MSE 1e-2 -> 20 dB
    y[1] += 0.01  # MSE 1e-4 -> 40 dB
    assert psnr(x, y) == pytest.approx(30.0, rel=1e-10)
    assert mse(x, y) == pytest.approx((0.01 + 0.0001) / 2, rel=1e-10)
    assert psnr(x, x) == math.inf
    assert psnr(x * 255, y * 255, data_range=255.0) == pytest.approx(30.0, rel=1e-10)


def test_errors():
    with pytest.raises(DataError, match="same shape"):
        mse(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 4, 5)))
    with pytest.raises(DataError, match="at least 11x11"):
        ssim(np.zeros((1, 1, 8, 8)), np.zeros((1, 1, 8, 8)))
    with pytest.raises(DataError, match="NaN"):
        psnr(np.full((1, 1, 4, 4), np.nan), np.zeros((1, 1, 4, 4)))
