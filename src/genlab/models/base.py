"""The model contract every registered model follows.

A model is a plain ``nn.Module`` built from ``(config, data_info)``:

* ``training_step(batch, step, optimizer="main") -> dict``: the losses for one optimisation step of
  the named optimizer. The dict holds ``"loss"`` (the scalar the Trainer back-propagates) and any
  other scalars to log. ``batch`` is ``{"x": (B, ...), "y": (B,)}`` already on the device.
* ``configure_optimizers() -> dict[str, OptimizerSpec]``: named optimizers, in schedule order, each
  with how many consecutive steps it takes per cycle. A VAE returns ``{"main": OptimizerSpec(adam)}``;
  a critic-based GAN returns ``{"d": OptimizerSpec(opt_d, steps=5), "g": OptimizerSpec(opt_g)}`` and
  the one Trainer alternates d,d,d,d,d,g,... over successive batches.
* ``validation_step(batch) -> dict`` of per-batch mean scalars (no gradients).
* inference: ``encode``, ``decode``, ``reconstruct``, ``sample(n, labels=None, generator=None)``,
  ``log_likelihood`` where it exists. Inputs/outputs are in model space (see ``data_info["norm"]``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, DataError


@dataclass
class OptimizerSpec:
    """An optimizer, an optional LR scheduler stepped once per optimizer step, and its steps per cycle."""

    optimizer: torch.optim.Optimizer
    scheduler: Any = None
    steps: int = 1

    def __post_init__(self):
        if self.steps < 1:
            raise ConfigError(f"optimizer steps per cycle must be >= 1, got {self.steps}")


class GenerativeModel(nn.Module):
    """Base class: stores config and data description, checks data shape, offers shared helpers."""

    registry_name: str = "?"
    config_cls: type = object
    #: whether ``sample`` draws new data (plain autoencoders have no prior and cannot)
    can_sample: bool = True
    #: whether ``reconstruct`` exists (GANs have no encoder and set False)
    can_reconstruct: bool = True
    #: data kinds the model accepts
    kinds: tuple[str, ...] = ("image", "tabular")
    #: whether ``training_step`` takes batches with missing entries (NaN): they enter the encoder as 0 and are
    #: left out of the loss (mask-aware training; the ``ae`` and ``vae`` families)
    supports_missing: bool = False
    #: ``(trainer monitor, mode)`` used when ``trainer.monitor`` is null; ``None``: keep no best checkpoint
    default_monitor: tuple[str, str] | None = ("val/loss", "min")

    def __init__(self, config: Any, data_info: dict):
        super().__init__()
        self.config = config
        self.data_info = dict(data_info)
        kind = data_info.get("kind")
        shape = tuple(data_info.get("shape", ()))
        if kind not in self.kinds:
            raise DataError(f"model {self.registry_name!r} does not take {kind} data; it takes "
                            f"{' or '.join(self.kinds)} data")
        if kind == "image" and (len(shape) != 3 or min(shape) < 1 or min(shape[1:]) < 4):
            raise DataError(f"model {self.registry_name!r} needs images of shape (C, H, W) with H, W >= 4, "
                            f"got {shape}; resize the images")
        if kind == "tabular" and (len(shape) != 1 or shape[0] < 1):
            raise DataError(f"model {self.registry_name!r} needs tabular rows of shape (D,), got {shape}")
        self.shape = shape
        self.kind = kind

    # -- helpers ------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dim(self) -> int:
        """Number of scalars per sample."""
        n = 1
        for s in self.shape:
            n *= s
        return n

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Validate a batch against the fitted data shape; returns it on the model's device/dtype."""
        if tuple(x.shape[1:]) != self.shape:
            raise DataError(f"input has sample shape {tuple(x.shape[1:])} but the model was built for "
                            f"{self.shape}; give data of the training shape")
        return x.to(self.device, torch.float32)

    def training_step(self, batch: dict, step: int, optimizer: str = "main") -> dict:  # pragma: no cover
        raise NotImplementedError

    def configure_optimizers(self) -> dict[str, OptimizerSpec]:  # pragma: no cover
        raise NotImplementedError

    @torch.no_grad()
    def validation_step(self, batch: dict) -> dict:
        out = self.training_step(batch, step=-1)
        return {k: v for k, v in out.items()}

    @torch.no_grad()
    def validation_epoch_metrics(self, data) -> dict:
        """Figures over the whole validation set (called once per validation, after the batches, in eval
        mode, under the EMA weights when EMA is on); logged as ``val/<key>``. Default: none."""
        return {}

    def sample(self, n: int, *, labels: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        raise DataError(f"model {self.registry_name!r} has no prior and cannot sample; train a 'vae' to sample")
