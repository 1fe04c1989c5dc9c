"""Exponential moving average of a model's floating-point parameters and buffers."""
from __future__ import annotations

import contextlib
import math

import torch

from ..errors import CheckpointError


class EMA:
    """``shadow <- beta * shadow + (1 - beta) * param`` after every optimizer step, ``beta = decay``.

    With ``rampup`` (StyleGAN2-ADA's ``ema_rampup``) the average's half-life, ``ln 0.5 / ln decay`` steps, is capped
    at ``rampup`` times the number of updates so far: ``beta_n = 0.5 ** (1 / min(h, rampup * n))`` at the ``n``-th
    update. Early in a run the average then follows the weights closely (the first update copies them up to
    ``0.5 ** (1 / rampup)``) instead of keeping the initial weights for ``1 / (1 - decay)`` steps, so a decay chosen
    for a long run does not spoil a short one."""

    def __init__(self, model: torch.nn.Module, decay: float, rampup: float | None = None):
        self.decay = decay
        self.rampup = rampup
        self.half_life = math.log(0.5) / math.log(decay)
        self.updates = 0
        self.names = [k for k, v in model.state_dict().items() if v.dtype.is_floating_point]
        sd = model.state_dict()
        self.shadow = {k: sd[k].detach().clone() for k in self.names}

    def beta(self, n: int) -> float:
        """The decay applied at the ``n``-th update (1-based)."""
        if self.rampup is None or self.rampup * n >= self.half_life:
            return self.decay
        return 0.5 ** (1.0 / (self.rampup * n))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        sd = model.state_dict()
        torch._foreach_lerp_([self.shadow[k] for k in self.names], [sd[k] for k in self.names],
                             1.0 - self.beta(self.updates))

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module):
        """Temporarily load the averaged weights into ``model``."""
        sd = model.state_dict()
        backup = {k: sd[k].detach().clone() for k in self.names}
        with torch.no_grad():
            for k in self.names:
                sd[k].copy_(self.shadow[k])
        try:
            yield model
        finally:
            with torch.no_grad():
                for k in self.names:
                    sd[k].copy_(backup[k])

    #: checkpoint key of the update count (no model state-dict key starts with two underscores)
    UPDATES_KEY = "ema/__updates__"

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {**{f"ema/{k}": v.detach().cpu().contiguous() for k, v in self.shadow.items()},
                self.UPDATES_KEY: torch.tensor(self.updates, dtype=torch.int64)}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        missing = [k for k in self.names if f"ema/{k}" not in tensors]
        if missing:
            raise CheckpointError(f"the checkpoint holds no EMA of {len(missing)} weight(s) (e.g. {missing[0]!r}): "
                                  "it was written without an EMA (trainer.ema_decay null, or 'auto' for a model that "
                                  "keeps none); resume with the trainer.ema_decay the run was trained with")
        for k in self.names:
            self.shadow[k].copy_(tensors[f"ema/{k}"])
        # checkpoints written before the count existed had no ramp-up: their count only matters with one
        self.updates = int(tensors[self.UPDATES_KEY]) if self.UPDATES_KEY in tensors else 0
