"""Pieces shared by the autoencoder and VAE families: network config fields and likelihoods."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ..config import check
from ..errors import ConfigError

LOG_2PI = math.log(2 * math.pi)


@dataclass
class NetConfig:
    """Fields every encoder/decoder model shares.

    arch: ``auto`` (conv for images, MLP for tabular), ``conv`` or ``mlp``.
    hidden: MLP widths (``null`` = sized from the input dimension); ``[]`` = one affine layer.
    channels: conv widths per stride-2 stage (``null`` = 32, 64, 128, ... as many as the size needs).
    """

    latent_dim: int = 16
    arch: Literal["auto", "conv", "mlp"] = "auto"
    hidden: list[int] | None = None
    channels: list[int] | None = None
    lr: float = 1e-3
    weight_decay: float = 0.0

    def __post_init__(self):
        check(self.latent_dim >= 1, f"latent_dim must be >= 1, got {self.latent_dim}")
        check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        for name in ("hidden", "channels"):
            widths = getattr(self, name)
            check(widths is None or all(w >= 1 for w in widths), f"{name} widths must be >= 1, got {widths}")
        check(self.channels is None or len(self.channels) >= 1, "channels must list at least one width")


def check_unit_interval(model_name: str, what: str, kind: str) -> None:
    if kind != "image":
        raise ConfigError(f"{model_name}: {what} needs targets in [0, 1] (images); use the gaussian/mse "
                          "option for tabular data")


def split_missing(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Missing entries (NaN) of a batch: ``(x with NaN set to 0, observed mask)``, or ``(x, None)`` when
    nothing is missing (the batch is then returned as it is).

    0 is the column mean of standardised tabular data (and black for images); encoders get this filled
    copy, and reconstruction terms are summed over the observed entries only (mask-aware training).
    """
    nan = torch.isnan(x)  # (B, ...)
    if not bool(nan.any()):
        return x, None
    return x.masked_fill(nan, 0.0), ~nan


def _observed_sum(values: torch.Tensor, observed: torch.Tensor | None) -> torch.Tensor:
    """Per-sample sum over all dims -> ``(B,)``, over the ``observed`` entries only when a mask is given."""
    if observed is not None:
        values = torch.where(observed, values, torch.zeros((), dtype=values.dtype, device=values.device))
    return values.flatten(1).sum(1)


def masked_mean(values: torch.Tensor, observed: torch.Tensor | None) -> torch.Tensor:
    """Mean of elementwise ``values`` over all entries, or over the ``observed`` ones (0 when none is)."""
    if observed is None:
        return values.mean()
    return _observed_sum(values, observed).sum() / observed.sum().clamp(min=1)


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor, observed: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample ``sum log Bernoulli(x | sigmoid(logits))`` over all dims (over the ``observed`` ones when a
    mask is given) -> ``(B,)`` (x may be in [0, 1])."""
    return -_observed_sum(F.binary_cross_entropy_with_logits(logits, x, reduction="none"), observed)


def gaussian_log_prob(mean: torch.Tensor, x: torch.Tensor, log_sigma: torch.Tensor | float,
                      observed: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample ``sum log N(x | mean, sigma^2)`` over all dims (over the ``observed`` ones when a mask is
    given) -> ``(B,)``."""
    log_sigma = torch.as_tensor(log_sigma, dtype=mean.dtype, device=mean.device)
    var = torch.exp(2 * log_sigma)
    lp = -0.5 * ((x - mean) ** 2 / var + 2 * log_sigma + LOG_2PI)
    return _observed_sum(lp, observed)
