"""Trainer callbacks: hooks the CLI uses for progress bars, the sample-quality monitors
(:mod:`genlab.training.monitors`) and whatever users add."""
from __future__ import annotations

from pathlib import Path


class Callback:
    """No-op base; override what you need. ``logs`` are plain floats keyed like ``train/loss``.

    Two hooks add figures to the log rather than read it:

    * :meth:`step_figures` runs after every training step (the batch's updates are done and ``trainer.step``
      counts it); what it returns joins that step's record (a record is written on such a step even between
      ``log_every`` steps) and the epoch means.
    * :meth:`validation_figures` runs at each validation, after the model's own validation figures, in eval
      mode, under the EMA weights when EMA is on and on a forked RNG; what it returns joins the validation
      record *before* the best-checkpoint and early-stopping decision, so ``trainer.monitor`` can name it.
      :meth:`validation_keys` says which keys it will add, so a model's default monitor (a GAN's ``val/fid``)
      is used only where a callback logs it.

    Work that samples from the model should run inside ``with trainer.evaluating():`` (eval mode, EMA weights,
    no gradients, fp32, a forked RNG) so that training is exactly what it would be without the callback.
    """

    def on_train_start(self, trainer, total_steps: int) -> None: ...

    def step_figures(self, trainer, batch: dict) -> dict:
        """Scalars to log for the step just done (``{}``: nothing)."""
        return {}

    def validation_keys(self, trainer, model, val) -> set[str]:
        """The keys :meth:`validation_figures` will add for ``model`` with validation data ``val`` (or None)."""
        return set()

    def validation_figures(self, trainer, data) -> dict:
        """Scalars to add to the validation record (``{}``: nothing)."""
        return {}

    def on_log(self, trainer, record: dict) -> None:
        """Every record the Trainer logs, right after it is written: the very dict that becomes the line of
        ``metrics.jsonl`` (``step``, ``epoch``, ``split`` and the values; NaN as None). Experiment trackers read
        this, so they can never disagree with the log."""

    def on_step_end(self, trainer, logs: dict) -> None: ...

    def on_epoch_end(self, trainer, logs: dict) -> None: ...

    def on_train_end(self, trainer) -> None: ...


class SampleGrid(Callback):
    """Every ``every`` epochs (and after the last), write ``<out_dir>/samples/epoch-NNNN.png``: a grid of
    ``n`` samples from one fixed noise batch (seeded by ``seed``, so successive grids are comparable). With
    ``auto`` (``trainer.sample_every: null``) a due grid is also skipped while it would take more than
    ``trainer.chore_overhead`` of the time (:meth:`Trainer.chore_due`); the last epoch's grid is always written.
    Conditional models get one class per row (``n // K`` samples of each class, rows in class order; labels
    cycled when ``n < K``), the layout of the run report's samples. Sampling runs in eval mode under the EMA weights when EMA is on; the RNG of training is
    not touched (the noise comes from its own generator)."""

    def __init__(self, out_dir, every: int = 1, *, n: int = 64, seed: int = 0, auto: bool = False):
        self.folder = Path(out_dir) / "samples"
        self.every, self.n, self.seed, self.auto = every, n, seed, auto

    def on_epoch_end(self, trainer, logs: dict) -> None:
        import torch

        from ..io.images import save_grid
        from ..models.base import capabilities
        if not trainer.ending and (trainer.epoch % self.every or (self.auto and not trainer.chore_due("samples"))):
            return
        model = trainer.model
        k = int(model.data_info.get("num_classes") or 0) if capabilities(model)["conditional"] else 0
        per = self.n // k if k else 0
        labels = (torch.arange(k).repeat_interleave(per) if per else torch.arange(self.n) % k) if k else None
        with trainer.chore("samples"), trainer.evaluating():
            x = model.sample(len(labels) if k else self.n, labels=labels,
                             generator=torch.Generator().manual_seed(self.seed))
            save_grid(x.float().cpu(), self.folder / f"epoch-{trainer.epoch:04d}.png", nrow=per or None)
