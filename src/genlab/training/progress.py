"""The one progress display of genlab (rich, on stderr) and the switch that decides whether it shows.

Every long operation uses it: training (:class:`TrainProgress`, a Trainer callback, added by
:func:`genlab.train` and the application estimators), evaluation feature passes, sampling many images and
tuning (:func:`progress_bar`). Whether a display shows is decided by :func:`progress_enabled`:

* ``True`` shows it (also when stderr is not a terminal: the final state is written once at the end);
* ``False`` hides it;
* ``None`` (auto, the default): on when stderr is a terminal and the ``CI`` environment variable is not set;
  ``GENLAB_PROGRESS=1`` / ``GENLAB_PROGRESS=0`` overrides the auto choice.

Library code never prints: a display writes only to its rich console (stderr unless given another stream).
Displays nest: a bar opened while another is live becomes a second line of the live one (rich allows one
live display per console), e.g. the feature pass of a validation FID monitor inside a training bar.
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

from .callbacks import Callback

#: environment variable that overrides the auto choice: 1 (on) or 0 (off)
ENV_VAR = "GENLAB_PROGRESS"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")

_live = None  # the live rich Progress shared by nested bars
_live_users = 0


def progress_enabled(progress: bool | None = None, stream=None) -> bool:
    """Whether a progress display shows.

    Parameters
    ----------
    progress : bool or None
        ``True``/``False`` force it on/off; ``None`` is auto: ``GENLAB_PROGRESS`` (``1``/``0``) when set, else
        on when ``stream`` (default ``sys.stderr``) is a terminal and ``CI`` is not set.
    stream : file, optional
        The stream the display would write to (default ``sys.stderr``).
    """
    if progress is not None:
        return bool(progress)
    env = os.environ.get(ENV_VAR, "").strip().lower()
    if env in _TRUE:
        return True
    if env in _FALSE:
        return False
    if os.environ.get("CI"):
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or file-like without isatty
        return False


def _console(stream=None):
    from rich.console import Console
    return Console(stderr=True) if stream is None else Console(file=stream)


def _new_progress(console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console, transient=False)


@contextlib.contextmanager
def live_progress(stream=None) -> Iterator:
    """The shared rich ``Progress`` (started on first use, stopped when its last user leaves).

    ``stream`` only matters for the first user (it creates the console); nested users share its display.
    """
    global _live, _live_users
    owner = _live is None
    if owner:
        _live = _new_progress(_console(stream))
        _live.start()
    _live_users += 1
    try:
        yield _live
    finally:
        _live_users -= 1
        if owner:
            prog, _live = _live, None
            _live_users = 0
            prog.stop()


class Bar:
    """One line of the display: ``advance``/``update`` it; a disabled bar does nothing."""

    def __init__(self, progress=None, task=None):
        self._progress, self._task = progress, task

    @property
    def enabled(self) -> bool:
        return self._progress is not None

    def advance(self, n: float = 1, info: str | None = None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=n, **({} if info is None else {"info": info}))

    def update(self, completed: float | None = None, *, total: float | None = None, info: str | None = None) -> None:
        if self._progress is not None:
            kw = {k: v for k, v in (("completed", completed), ("total", total), ("info", info)) if v is not None}
            self._progress.update(self._task, **kw)


@contextlib.contextmanager
def progress_bar(description: str, total: float | None, *, progress: bool | None = None, stream=None,
                 completed: float = 0) -> Iterator[Bar]:
    """A progress line for a loop of ``total`` units: ``with progress_bar("features", n) as bar: bar.advance(k)``.

    Parameters
    ----------
    description : str
        Shown at the left of the line.
    total : float or None
        Units of work (``None``: unknown).
    progress : bool or None
        The switch of :func:`progress_enabled`.
    stream : file, optional
        Where to draw (default stderr); tests pass a ``StringIO`` with ``progress=True``.
    completed : float
        Units already done (a resumed run).
    """
    if not progress_enabled(progress, stream):
        yield Bar()
        return
    with live_progress(stream) as prog:
        task = prog.add_task(description, total=total, completed=completed, info="")
        try:
            yield Bar(prog, task)
        finally:
            if prog is not _live or _live_users > 1:  # nested: drop the finished line from the shared display
                prog.remove_task(task)


class TrainProgress(Callback):
    """The training display as a Trainer callback: steps done/total, elapsed and remaining time, the latest
    losses (``loss``, or ``loss/d loss/g`` for GANs) and, at each epoch end, the epoch and ``val/loss``.

    Parameters
    ----------
    description : str
        Shown at the left (the model name).
    progress : bool or None
        The switch of :func:`progress_enabled`, checked when training starts.
    stream : file, optional
        Where to draw (default stderr).
    """

    def __init__(self, description: str = "training", *, progress: bool | None = None, stream=None):
        self.description = description
        self.progress = progress
        self.stream = stream
        self._cm = None
        self._bar = Bar()

    def on_train_start(self, trainer, total_steps):
        self._cm = progress_bar(self.description, total_steps, progress=self.progress, stream=self.stream,
                                completed=trainer.step)
        self._bar = self._cm.__enter__()

    @staticmethod
    def _losses(logs) -> str:  # "loss 0.12", or one per optimizer ("loss/d 1.3 loss/g 0.7") for GANs
        return " ".join(f"{k} {v:.4g}" for k, v in logs.items() if (k == "loss" or k.startswith("loss/"))
                        and isinstance(v, (int, float)))

    def on_step_end(self, trainer, logs):
        self._bar.update(trainer.step, info=self._losses(logs))

    def on_epoch_end(self, trainer, logs):
        val = logs.get("val/loss")
        info = f"epoch {trainer.epoch} {self._losses(logs)}" + (f" val {val:.4g}" if val is not None else "")
        self._bar.update(trainer.step, info=info)

    def on_train_end(self, trainer):
        self._bar.update(trainer.step)
        self._close()

    def _close(self) -> None:
        if self._cm is not None:
            cm, self._cm = self._cm, None
            self._bar = Bar()
            cm.__exit__(None, None, None)

    def __del__(self):  # a run that raised before on_train_end: never leave a live display behind
        try:
            self._close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def close_displays(callbacks) -> None:
    """Close the :class:`TrainProgress` displays among ``callbacks`` (after a run, also one that raised)."""
    for cb in callbacks:
        if isinstance(cb, TrainProgress):
            cb._close()
