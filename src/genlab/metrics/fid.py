"""Fréchet distance between two Gaussians fitted to features (FID when the features are Inception's)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .stats import FeatureStats


def _as_moments(x: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(x, FeatureStats):
        return x.mean, x.cov
    if isinstance(x, (tuple, list)) and len(x) == 2:
        mu = np.asarray(x[0], dtype=np.float64)
        sigma = np.asarray(x[1], dtype=np.float64)
    else:
        raise DataError(f"{name}: expected FeatureStats or a (mu, sigma) tuple, got {type(x).__name__}")
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise DataError(f"{name}: mu must be (D,) and sigma (D, D), got {mu.shape} and {sigma.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise DataError(f"{name}: mu/sigma contain NaN or inf; recompute the statistics from finite features")
    return mu, sigma


def fid(stats_a: Any, stats_b: Any) -> float:
    """Fréchet distance ``||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^1/2 S_b S_a^1/2)^1/2)``.

    Conventions that change the number:

    * covariances are the ``n - 1`` (unbiased) sample covariances of :class:`FeatureStats`
      (a ``(mu, sigma)`` tuple is used as given);
    * the trace term is computed without complex arithmetic or a matrix square root. When ``S_a`` is positive
      definite (N > D, the usual case): Cholesky ``S_a = L L^T``; ``L^T S_b L`` is similar to ``S_a S_b``, so
      ``tr sqrt(S_a S_b)`` is the sum of the square roots of its eigenvalues (``eigvalsh``: no eigenvectors, the
      cheapest symmetric eigen-solver), clipped at 0. When the Cholesky factorisation fails (``S_a`` singular:
      N <= D, or duplicated features): ``S_a^1/2 = B B^T`` with ``B = V sqrt(w)`` from ``eigh(S_a)``,
      eigenvalues clipped at 0, then ``eigvalsh(B^T S_b B)``. Both equal ``tr(sqrtm(S_a S_b))`` of
      pytorch-fid/clean-fid (the matrices are similar) but need no ``+eps*I`` regularisation, so the result is
      also correct for rank-deficient covariances;
    * all in float64; the result is not clamped at 0 (tiny negative values are rounding).

    Parameters
    ----------
    stats_a, stats_b : FeatureStats or tuple (mu (D,), sigma (D, D))

    Returns
    -------
    float
    """
    mu1, s1 = _as_moments(stats_a, "stats_a")
    mu2, s2 = _as_moments(stats_b, "stats_b")
    if mu1.shape != mu2.shape:
        raise DataError(f"feature dimensions differ: {mu1.shape[0]} vs {mu2.shape[0]}; use the same feature layer")
    t1 = torch.from_numpy((s1 + s1.T) / 2.0)  # (D, D) float64
    t2 = torch.from_numpy((s2 + s2.T) / 2.0)
    chol, info = torch.linalg.cholesky_ex(t1)
    if int(info) == 0:
        m = chol.T @ t2 @ chol  # (D, D): similar to S_a S_b
    else:  # singular S_a: its square root from eigh, eigenvalues <= 0 dropped
        w, v = torch.linalg.eigh(t1)
        keep = w > 0
        b = v[:, keep] * w[keep].sqrt()  # (D, r)
        m = b.T @ t2 @ b  # (r, r)
    ev = torch.linalg.eigvalsh((m + m.T) / 2.0)
    tr_covmean = float(ev.clamp(min=0.0).sqrt().sum())
    s1, s2 = t1.numpy(), t2.numpy()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
