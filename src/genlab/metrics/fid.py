"""Fréchet distance between two Gaussians fitted to features (FID when the features are Inception's)."""
from __future__ import annotations

from typing import Any

import numpy as np

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
    * the trace term is computed without complex arithmetic: ``S_a^1/2`` from ``eigh(S_a)`` with
      eigenvalues clipped at 0, then the eigenvalues of the symmetric PSD matrix
      ``S_a^1/2 S_b S_a^1/2`` (``eigvalsh``, evaluated as ``B^T S_b B`` with ``B = V sqrt(w)``, an
      orthogonal similarity with the same nonzero eigenvalues) clipped at 0, square-rooted and summed. This equals
      ``tr(sqrtm(S_a S_b))`` of pytorch-fid/clean-fid (the two matrices are similar) but needs no
      ``+eps*I`` regularisation, so it is also correct for rank-deficient covariances (N < D);
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
    s1 = (s1 + s1.T) / 2.0
    s2 = (s2 + s2.T) / 2.0
    w, v = np.linalg.eigh(s1)
    # S_a^1/2 = B B^T with B = V sqrt(w) (eigenvalues <= 0 clipped, i.e. their columns dropped);
    # B^T S_b B is an orthogonal similarity of S_a^1/2 S_b S_a^1/2 restricted to range(S_a): same nonzero
    # eigenvalues, two (D, r) matmuls instead of three (D, D) ones.
    keep = w > 0
    b = v[:, keep] * np.sqrt(w[keep])  # (D, r)
    m = b.T @ s2 @ b  # (r, r)
    ev = np.linalg.eigvalsh((m + m.T) / 2.0)
    tr_covmean = float(np.sqrt(np.clip(ev, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
