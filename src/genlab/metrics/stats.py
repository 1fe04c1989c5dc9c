"""Streaming feature mean and covariance (float64), mergeable across workers."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ._common import as_feature_tensor

logger = logging.getLogger(__name__)

_FORMAT = 1


class FeatureStats:
    """Running count, mean and scatter matrix of feature vectors, in float64.

    Batches are folded in with Chan et al.'s parallel update on ``(n, mean, M2)`` where
    ``M2 = sum_i (x_i - mean)(x_i - mean)^T``; each batch's own ``M2`` is computed around the
    batch mean (two-pass), so the result does not depend on how the data were batched (up to
    float64 rounding, ~1e-12 relative) and :meth:`merge` of two objects equals one pass over the
    union. This is what DDP ranks use: each keeps its own stats, then they are merged.

    Conventions: all arithmetic in float64 whatever the input dtype; :attr:`cov` divides by
    ``n - 1`` (unbiased sample covariance, as pytorch-fid's ``np.cov``).

    Parameters
    ----------
    dim : int, optional
        Feature dimension; taken from the first batch when omitted.
    """

    def __init__(self, dim: int | None = None):
        self.dim = dim
        self.n = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None

    @classmethod
    def from_features(cls, feats: Any, *, batch_size: int | None = None) -> "FeatureStats":
        """Stats of a whole (N, D) array (optionally folded in ``batch_size`` rows at a time)."""
        t = as_feature_tensor(feats, "features", dtype=None)
        s = cls(t.shape[1])
        step = batch_size or t.shape[0]
        for i in range(0, t.shape[0], step):
            s._fold(t[i:i + step].to(torch.float64).cpu())  # already validated above
        return s

    def update(self, feats: Any) -> "FeatureStats":
        """Fold in a batch of shape (B, D); returns ``self``."""
        return self._fold(as_feature_tensor(feats, "features", dtype=torch.float64).cpu())

    def _fold(self, t: torch.Tensor) -> "FeatureStats":
        """Fold a validated float64 CPU batch (B, D)."""
        if self.dim is None:
            self.dim = t.shape[1]
        elif t.shape[1] != self.dim:
            raise DataError(f"feature batch has dimension {t.shape[1]} but these stats hold dimension "
                            f"{self.dim}; use the same feature layer for every batch")
        b_n = t.shape[0]
        b_mean = t.mean(dim=0)  # (D,)
        xc = t - b_mean
        b_m2 = xc.T @ xc  # (D, D), float64 (torch's GEMM: faster here than numpy's syrk at 10,000 x 2,048)
        self._combine(b_n, b_mean.numpy(), b_m2.numpy())
        return self

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        """Fold another stats object into this one (Chan's parallel formula); returns ``self``."""
        if not isinstance(other, FeatureStats):
            raise DataError(f"can only merge FeatureStats, got {type(other).__name__}")
        if other.n == 0:
            return self
        if self.dim is not None and other.dim is not None and other.dim != self.dim:
            raise DataError(f"cannot merge stats of dimension {other.dim} into dimension {self.dim}; "
                            f"both must come from the same feature layer")
        self.dim = other.dim
        self._combine(other.n, other._mean.copy(), other._m2.copy())
        return self

    def _combine(self, nb: int, mean_b: np.ndarray, m2_b: np.ndarray) -> None:
        if self.n == 0:
            self.n, self._mean, self._m2 = nb, mean_b.astype(np.float64), m2_b.astype(np.float64)
            return
        na, n = self.n, self.n + nb
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (nb / n)
        self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (na * nb / n)
        self.n = n

    @property
    def mean(self) -> np.ndarray:
        """Mean feature vector, (D,) float64."""
        if self.n == 0:
            raise DataError("FeatureStats is empty; call update() with some features first")
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        """Sample covariance with the ``n - 1`` divisor, (D, D) float64."""
        if self.n < 2:
            raise DataError(f"covariance needs at least 2 samples, these stats hold {self.n}; add more features")
        m2 = (self._m2 + self._m2.T) / 2.0
        return m2 / (self.n - 1)

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``n``, ``mean`` and ``m2`` to an ``.npz`` file (no pickle)."""
        if self.n == 0:
            raise DataError("refusing to save empty FeatureStats; add features first")
        path = Path(path)
        with open(path, "wb") as f:
            np.savez(f, format=np.int64(_FORMAT), n=np.int64(self.n), mean=self._mean, m2=self._m2)
        logger.info("saved feature stats (n=%d, dim=%d) to %s", self.n, self.dim, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureStats":
        """Read stats written by :meth:`save` (``np.load(allow_pickle=False)``)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise DataError(f"feature stats file {path} does not exist; compute it with FeatureStats.save") from None
        except (ValueError, OSError) as e:
            raise DataError(f"cannot read feature stats {path} ({e}); re-create it with FeatureStats.save") from None
        missing = {"n", "mean", "m2"} - set(data)
        if missing:
            raise DataError(f"feature stats {path} lacks {sorted(missing)}; re-create it with FeatureStats.save")
        mean, m2, n = data["mean"].astype(np.float64), data["m2"].astype(np.float64), int(data["n"])
        if mean.ndim != 1 or m2.shape != (mean.shape[0], mean.shape[0]) or n < 1:
            raise DataError(f"feature stats {path} has inconsistent shapes mean {mean.shape}, m2 {m2.shape}, "
                            f"n={n}; re-create it with FeatureStats.save")
        s = cls(mean.shape[0])
        s.n, s._mean, s._m2 = n, mean, m2
        return s

    def __repr__(self) -> str:
        return f"FeatureStats(n={self.n}, dim={self.dim})"
