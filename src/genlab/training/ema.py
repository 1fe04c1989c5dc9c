"""Exponential moving average of a model's floating-point parameters and buffers."""
from __future__ import annotations

import contextlib

import torch


class EMA:
    """``shadow <- decay * shadow + (1 - decay) * param`` after every optimizer step."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.names = [k for k, v in model.state_dict().items() if v.dtype.is_floating_point]
        sd = model.state_dict()
        self.shadow = {k: sd[k].detach().clone() for k in self.names}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        sd = model.state_dict()
        torch._foreach_lerp_([self.shadow[k] for k in self.names], [sd[k] for k in self.names], 1.0 - self.decay)

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

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {f"ema/{k}": v.detach().cpu().contiguous() for k, v in self.shadow.items()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        for k in self.names:
            self.shadow[k].copy_(tensors[f"ema/{k}"])
