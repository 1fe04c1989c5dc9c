"""Trainer callbacks: hooks the CLI uses for progress bars and that users can extend."""
from __future__ import annotations


class Callback:
    """No-op base; override what you need. ``logs`` are plain floats keyed like ``train/loss``."""

    def on_train_start(self, trainer, total_steps: int) -> None: ...

    def on_step_end(self, trainer, logs: dict) -> None: ...

    def on_epoch_end(self, trainer, logs: dict) -> None: ...

    def on_train_end(self, trainer) -> None: ...


class SampleGrid(Callback):
    """Every ``every`` epochs (and after the last), write ``<out_dir>/samples/epoch-NNNN.png``: a grid of
    ``n`` samples from one fixed noise batch (seeded by ``seed``, so successive grids are comparable).
    Conditional models get labels ``0, 1, ..., K-1`` cycled (one class per column when ``n`` is a multiple
    of ``K``). Sampling runs in eval mode under the EMA weights when EMA is on; the RNG of training is
    not touched (the noise comes from its own generator)."""

    def __init__(self, out_dir, every: int = 1, *, n: int = 64, seed: int = 0):
        from pathlib import Path
        self.folder = Path(out_dir) / "samples"
        self.every, self.n, self.seed = every, n, seed

    def on_epoch_end(self, trainer, logs: dict) -> None:
        import contextlib

        import torch

        from ..io.images import save_grid
        if trainer.epoch % self.every and trainer.epoch < trainer.config.epochs:
            return
        model = trainer.model
        k = int(getattr(model, "num_classes", 0) or 0) if getattr(model, "conditional", False) else 0
        labels = torch.arange(self.n) % k if k else None
        was_training = model.training
        model.eval()
        ctx = trainer.ema.applied(model) if trainer.ema is not None else contextlib.nullcontext()
        try:
            with ctx, torch.no_grad():
                x = model.sample(self.n, labels=labels, generator=torch.Generator().manual_seed(self.seed))
        finally:
            model.train(was_training)
        save_grid(x.float().cpu(), self.folder / f"epoch-{trainer.epoch:04d}.png", nrow=k if k and k <= 16 else None)
