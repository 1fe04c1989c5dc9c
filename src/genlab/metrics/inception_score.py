"""Inception Score from classifier logits."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ._common import as_feature_tensor, check_positive_int


def inception_score(logits: Any, *, splits: int = 10) -> tuple[float, float]:
    """Inception Score ``exp(E_x KL(p(y|x) || p(y)))`` (Salimans et al. 2016).

    Conventions that change the number:

    * ``p(y|x)`` = softmax of the logits in float64 over every column given (pass Inception's
      1008 logits for the standard number; torch-fidelity uses the bias-free "logits_unbiased");
    * no shuffling (torch-fidelity shuffles with seed 2020 by default): split ``i`` is rows
      ``i*N//splits`` to ``(i+1)*N//splits``; ``p(y)`` is the mean of ``p(y|x)`` within the split;
    * per split: mean over rows of ``KL(p(y|x) || p(y))`` (terms with ``p(y|x) = 0`` count as 0), then
      ``exp``;
    * returns ``(mean, std)`` over splits with the population std (ddof=0).
    """
    splits = check_positive_int(splits, "splits")
    x = as_feature_tensor(logits, "logits", dtype=torch.float64)
    n = x.shape[0]
    if splits > n:
        raise ConfigError(f"inception_score: {splits} splits need at least {splits} samples, got {n}; "
                          f"lower splits or pass more samples")
    log_p = torch.log_softmax(x, dim=1)  # (N, C)
    p = log_p.exp()
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        p_c, lp_c = p[lo:hi], log_p[lo:hi]
        log_q = torch.log(p_c.mean(dim=0, keepdim=True))  # (1, C)
        kl = torch.where(p_c > 0, p_c * (lp_c - log_q), torch.zeros_like(p_c)).sum(dim=1)
        scores.append(float(torch.exp(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))
