"""Trainer callbacks: hooks the CLI uses for progress bars and that users can extend."""
from __future__ import annotations


class Callback:
    """No-op base; override what you need. ``logs`` are plain floats keyed like ``train/loss``."""

    def on_train_start(self, trainer, total_steps: int) -> None: ...

    def on_step_end(self, trainer, logs: dict) -> None: ...

    def on_epoch_end(self, trainer, logs: dict) -> None: ...

    def on_train_end(self, trainer) -> None: ...
