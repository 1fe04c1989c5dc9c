"""Run a chosen set of feature-based metrics and report every number with its conventions."""
from __future__ import annotations

import logging
from typing import Any, Sequence

import torch

from ..errors import ConfigError
from ._common import as_feature_tensor, check_positive_int, check_same_dim
from .fid import fid
from .inception_score import inception_score
from .kid import kid
from .neighbours import density_coverage, prdc, precision_recall
from .samples import sample_size_warnings
from .stats import FeatureStats

logger = logging.getLogger(__name__)

METRICS = ("fid", "kid", "precision_recall", "density_coverage", "inception_score")
DEFAULT_METRICS = ("fid", "kid", "precision_recall", "density_coverage")


def evaluate_features(real_feats: Any, fake_feats: Any, real_logits: Any = None, fake_logits: Any = None,
                      metrics: Sequence[str] | None = None, *, kid_subsets: int = 100, kid_subset_size: int = 1000,
                      kid_seed: int = 2020, pr_k: int = 3, dc_k: int = 5, is_splits: int = 10,
                      chunk: int = 4096, device: str = "auto") -> dict:
    """Compute ``metrics`` on (N, D) feature arrays; returns every number plus the conventions.

    Parameters
    ----------
    real_feats, fake_feats : array (N, D)
        e.g. Inception pool features (see :func:`genlab.metrics.inception.inception_features`).
    real_logits, fake_logits : array (N, C), optional
        Classifier logits; ``"inception_score"`` needs ``fake_logits`` (and reports the real set's
        score too when ``real_logits`` is given).
    metrics : sequence of str, optional
        Any of ``"fid", "kid", "precision_recall", "density_coverage", "inception_score"``;
        ``None`` means the first four, plus ``"inception_score"`` when ``fake_logits`` is given.
    kid_subsets, kid_subset_size, kid_seed : see :func:`~genlab.metrics.kid.kid`.
    pr_k, dc_k : k of :func:`precision_recall` and :func:`density_coverage`.
    is_splits : splits of :func:`inception_score`.
    chunk : row/column chunk of the distance blocks and batch of the covariance pass.
    device : where KID and the k-NN metrics run: ``auto`` (default) = CUDA when available, else the CPU; the
        numbers agree across devices (float64 distances; KID's float32 Gram matrices with TF32 off: 1e-6).

    Returns
    -------
    dict
        Flat numbers (``fid``, ``kid_mean``, ``kid_std``, ``precision``, ``recall``, ``density``,
        ``coverage``, ``inception_score_mean``, ``inception_score_std``, ``real_inception_score_mean``,
        ``real_inception_score_std`` as requested), the sample counts ``n_real``, ``n_fake``, ``feature_dim``
        (and ``kid_subsets``, ``kid_subset_size`` as used, when KID is computed), ``sample_warnings`` and
        ``conventions``: one string per metric stating what changes its value.

    Notes
    -----
    A metric computed on fewer samples than its convention needs (rules in :mod:`genlab.metrics.samples`:
    FID 2·D per set, KID 100 subsets of 1,000, precision/recall and density/coverage 100·k per set) is
    computed anyway; each shortfall is logged as a warning naming the number used and the number needed,
    and listed in ``sample_warnings``.
    """
    if metrics is None:
        metrics = list(DEFAULT_METRICS) + (["inception_score"] if fake_logits is not None else [])
    if isinstance(metrics, str):
        metrics = [metrics]
    metrics = list(dict.fromkeys(metrics))
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ConfigError(f"unknown metrics {unknown or metrics}; choose from {', '.join(METRICS)}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    real = as_feature_tensor(real_feats, "real_feats", dtype=None)
    fake = as_feature_tensor(fake_feats, "fake_feats", dtype=None)
    check_same_dim(real, fake, "real_feats", "fake_feats")
    out: dict = {"n_real": int(real.shape[0]), "n_fake": int(fake.shape[0]), "feature_dim": int(real.shape[1])}
    conv: dict[str, str] = {}
    kid_subsets = check_positive_int(kid_subsets, "kid_subsets")
    kid_subset_size = check_positive_int(kid_subset_size, "kid_subset_size", 2)
    pr_k, dc_k = check_positive_int(pr_k, "pr_k"), check_positive_int(dc_k, "dc_k")
    out["sample_warnings"] = sample_size_warnings(
        metrics, n_real=out["n_real"], n_fake=out["n_fake"], feature_dim=out["feature_dim"], kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size, pr_k=pr_k, dc_k=dc_k)
    for msg in out["sample_warnings"]:
        logger.warning("%s", msg)
    if "fid" in metrics:
        out["fid"] = fid(FeatureStats.from_features(real, batch_size=chunk),
                         FeatureStats.from_features(fake, batch_size=chunk))
        conv["fid"] = ("float64; covariance divisor N-1; tr sqrt via eigh(S_real)^1/2 then eigvalsh, "
                       "eigenvalues clipped at 0; no eps regularisation; not clamped")
    if "kid" in metrics:
        m = min(kid_subset_size, real.shape[0], fake.shape[0])  # capped here: the shortfall is warned above
        out["kid_mean"], out["kid_std"] = kid(real, fake, subsets=kid_subsets, subset_size=m if m >= 2 else
                                              kid_subset_size, seed=kid_seed, device=device)
        out["kid_subsets"], out["kid_subset_size"] = int(kid_subsets), int(m)
        conv["kid"] = (f"polynomial kernel (x.y/D + 1)^3; unbiased MMD^2; {kid_subsets} subsets of {m} "
                       f"(requested {kid_subset_size}); numpy RandomState({kid_seed}), per subset real indices "
                       f"then fake, without replacement; std ddof=0; float64")
    if "precision_recall" in metrics and "density_coverage" in metrics:  # one pass for the four numbers
        out.update(prdc(real, fake, pr_k=pr_k, dc_k=dc_k, row_chunk=chunk, col_chunk=chunk, device=device))
    elif "precision_recall" in metrics:
        out["precision"], out["recall"] = precision_recall(real, fake, k=pr_k, row_chunk=chunk, col_chunk=chunk,
                                                           device=device)
    elif "density_coverage" in metrics:
        out["density"], out["coverage"] = density_coverage(real, fake, k=dc_k, row_chunk=chunk, col_chunk=chunk,
                                                           device=device)
    if "precision_recall" in metrics:
        conv["precision_recall"] = (f"Kynkaanniemi et al. 2019; k={pr_k} nearest other sample; membership "
                                    f"dist <= radius; Euclidean distances in float64")
    if "density_coverage" in metrics:
        conv["density_coverage"] = (f"Naeem et al. 2020; k={dc_k} nearest other real sample; membership "
                                    f"dist < radius (strict); Euclidean distances in float64")
    if "inception_score" in metrics:
        if fake_logits is None:
            raise ConfigError("inception_score needs fake_logits (the classifier's logits of the generated "
                              "images); pass them or drop 'inception_score' from metrics")
        out["inception_score_mean"], out["inception_score_std"] = inception_score(fake_logits, splits=is_splits)
        if real_logits is not None:
            out["real_inception_score_mean"], out["real_inception_score_std"] = inception_score(
                real_logits, splits=is_splits)
        conv["inception_score"] = (f"float64 softmax over all logits given; {is_splits} splits at i*N//splits, "
                                   f"no shuffling; exp(mean KL) per split; std ddof=0")
    out["conventions"] = conv
    logger.info("evaluated %s on %d real / %d fake features", ", ".join(metrics), out["n_real"], out["n_fake"])
    return out
