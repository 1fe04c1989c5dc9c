"""Cheap diversity figures for spotting mode collapse during GAN training.

Pure functions on arrays. Two figures, depending on what is available:

* with a classifier (the genlab feature nets for digits/MNIST): the histogram of predicted classes of
  generated samples, how many classes it covers and its entropy normalised by ``log K`` (1 = uniform
  over all K classes, 0 = a single class);
* without one: the mean pairwise Euclidean distance between generated samples' features divided by the
  same figure for real samples (about 1 for a healthy generator, near 0 when samples collapse to a point).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ._common import as_feature_tensor


def class_histogram(logits: Any, num_classes: int | None = None) -> np.ndarray:
    """Counts ``(K,)`` of the arg-max class of each row of ``logits`` ``(N, K)``."""
    t = as_feature_tensor(logits, "logits", dtype=None)
    k = num_classes or t.shape[1]
    if t.shape[1] != k:
        raise DataError(f"logits have {t.shape[1]} columns but num_classes={k}; pass matching logits")
    return np.bincount(t.argmax(1).cpu().numpy(), minlength=k).astype(np.int64)


def normalized_entropy(counts: Any) -> float:
    """Entropy of the histogram ``counts`` ``(K,)`` divided by ``log K`` (natural logs; empty bins add 0).

    1.0 for a uniform histogram, 0.0 when all mass is in one bin. ``K = 1`` gives 1.0 by convention.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0 or (c < 0).any() or c.sum() <= 0:
        raise DataError(f"counts must be a non-empty 1-D histogram with a positive total, got {c.tolist()}")
    if c.size == 1:
        return 1.0
    p = c[c > 0] / c.sum()
    return max(0.0, float(-(p * np.log(p)).sum() / np.log(c.size)))  # max: no -0.0 for one bin


def classes_covered(counts: Any, min_fraction: float = 0.0) -> int:
    """Number of classes holding more than ``min_fraction`` of the samples (``> 0`` by default)."""
    c = np.asarray(counts, dtype=np.float64)
    return int((c / max(c.sum(), 1.0) > min_fraction).sum())


def mean_pairwise_distance(feats: Any, *, max_samples: int = 1000) -> float:
    """Mean Euclidean distance over all pairs ``i < j`` of the first ``max_samples`` rows (float64)."""
    t = as_feature_tensor(feats, "features", dtype=torch.float64)[:max_samples].flatten(1)
    n = t.shape[0]
    if n < 2:
        raise DataError(f"mean pairwise distance needs at least 2 samples, got {n}")
    d = torch.cdist(t, t, compute_mode="donot_use_mm_for_euclid_dist")  # (n, n) exact differences, zero diagonal
    return float(d.sum() / (n * (n - 1)))


def diversity_ratio(fake: Any, real: Any, *, max_samples: int = 1000) -> float:
    """``mean_pairwise_distance(fake) / mean_pairwise_distance(real)`` (features of the same extractor)."""
    r = mean_pairwise_distance(real, max_samples=max_samples)
    if r == 0:
        raise DataError("the real samples are all identical (mean pairwise distance 0); no reference spread")
    return mean_pairwise_distance(fake, max_samples=max_samples) / r
