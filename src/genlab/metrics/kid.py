"""Kernel Inception Distance: unbiased MMD^2 with a polynomial kernel, averaged over subsets."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ._common import as_feature_tensor, check_positive_int, check_same_dim

logger = logging.getLogger(__name__)


def _poly_kernel(x: torch.Tensor, y: torch.Tensor, degree: int, gamma: float, coef0: float) -> torch.Tensor:
    return (gamma * (x @ y.T) + coef0) ** degree  # (m, m)


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, *, degree: int = 3, gamma: float | None = None,
                  coef0: float = 1.0) -> float:
    """Unbiased MMD^2 of two equal-size samples (m, D) with ``k(x, y) = (gamma x.y + coef0)^degree``.

    ``sum_{i!=j} k(x_i,x_j) / (m(m-1)) + sum_{i!=j} k(y_i,y_j) / (m(m-1)) - 2 sum_{i,j} k(x_i,y_j) / m^2``
    (the cross term keeps its diagonal, as in the MMD-GAN / torch-fidelity "unbiased" estimator).
    ``gamma=None`` means ``1 / D``.
    """
    m = x.shape[0]
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    kxx = _poly_kernel(x, x, degree, gamma, coef0)
    kyy = _poly_kernel(y, y, degree, gamma, coef0)
    kxy = _poly_kernel(x, y, degree, gamma, coef0)
    sxx = kxx.sum() - kxx.diagonal().sum()
    syy = kyy.sum() - kyy.diagonal().sum()
    return float((sxx + syy) / (m * (m - 1)) - 2.0 * kxy.sum() / (m * m))


def kid(feats_a: Any, feats_b: Any, *, subsets: int = 100, subset_size: int = 1000, degree: int = 3,
        gamma: float | None = None, coef0: float = 1.0, seed: int = 2020,
        device: str | torch.device = "cpu") -> tuple[float, float]:
    """Kernel Inception Distance (Bińkowski et al. 2018) of two feature sets.

    Conventions that change the number:

    * kernel ``k(x, y) = (gamma * x.y + coef0) ** degree``; ``gamma=None`` means ``1 / D``;
      defaults degree 3, coef0 1 (torch-fidelity / clean-fid);
    * per subset, the unbiased MMD^2 estimator of :func:`mmd2_unbiased` (within-set sums drop the
      diagonal and divide by ``m(m-1)``; the cross sum keeps it and divides by ``m^2``);
    * subset indices: ``rng = numpy.random.RandomState(seed)``; for each subset, first
      ``rng.choice(n_a, m, replace=False)`` for set a, then ``rng.choice(n_b, m, replace=False)``
      for set b (torch-fidelity's order; clean-fid draws set b first from the global RNG, so its
      numbers differ at the same seed). Default seed 2020 is torch-fidelity's default ``rng_seed``;
    * ``subset_size`` larger than ``min(n_a, n_b)`` is capped there with a logged warning
      (clean-fid's behaviour; torch-fidelity raises instead);
    * kernels computed in float64 (torch-fidelity uses the float32 features in numpy);
    * returns ``(mean, std)`` over subsets with the population std (``np.std``, ddof=0), as
      torch-fidelity. KID is not clamped: small negative values are possible and kept.

    Returns
    -------
    (float, float)
        Mean and standard deviation of the per-subset MMD^2.
    """
    subsets = check_positive_int(subsets, "subsets")
    subset_size = check_positive_int(subset_size, "subset_size", 2)
    degree = check_positive_int(degree, "degree")
    if gamma is not None and not gamma > 0:
        raise ConfigError(f"gamma must be > 0 or None (meaning 1/D), got {gamma!r}")
    a = as_feature_tensor(feats_a, "feats_a", dtype=None)
    b = as_feature_tensor(feats_b, "feats_b", dtype=None)
    check_same_dim(a, b, "feats_a", "feats_b")
    n_a, n_b = a.shape[0], b.shape[0]
    m = subset_size
    if m > min(n_a, n_b):
        m = min(n_a, n_b)
        logger.warning("KID subset_size %d is larger than the smaller set (%d and %d samples); using subsets of %d "
                       "(convention 1000): subsets of the smaller set are the whole set, so the std understates "
                       "the spread", subset_size, n_a, n_b, m)
        if m < 2:
            raise ConfigError(f"KID needs at least 2 samples in each set, got {n_a} and {n_b}; pass more features")
    rng = np.random.RandomState(seed)
    mmds = np.empty(subsets, dtype=np.float64)
    with torch.inference_mode():
        for i in range(subsets):
            ia = torch.from_numpy(rng.choice(n_a, m, replace=False))
            ib = torch.from_numpy(rng.choice(n_b, m, replace=False))
            x = a[ia].to(device=device, dtype=torch.float64)
            y = b[ib].to(device=device, dtype=torch.float64)
            mmds[i] = mmd2_unbiased(x, y, degree=degree, gamma=gamma, coef0=coef0)
    return float(np.mean(mmds)), float(np.std(mmds))
