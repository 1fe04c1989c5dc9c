"""Experiment tracking: TensorBoard and MLflow, fed by the same records as ``metrics.jsonl``.

``trainer.log_to=tensorboard,mlflow`` adds one :class:`Tracking` callback to a run. It receives every record the
Trainer logs (:meth:`~genlab.training.callbacks.Callback.on_log`: the very dict written to ``metrics.jsonl``), so
a tracker can never disagree with the log. What each tracker gets:

* **scalars**: every numeric value of every record, tagged ``<split>/<key>`` (``train/loss``,
  ``train_epoch/loss``, ``val/fid``, ``train/lr/g``) at the record's ``step`` (``step`` and ``epoch`` are the axes,
  not values; a NaN logged as ``null`` is skipped);
* **sample grids**: the PNG :class:`~genlab.training.callbacks.SampleGrid` writes each epoch
  (``samples/epoch-NNNN.png``), at the step that epoch ended (TensorBoard image ``samples``; MLflow artifact
  ``samples/``);
* **histograms of the codes** (TensorBoard; models with ``has_encoder``): ``model.encode`` of the first
  :data:`HIST_SAMPLES` samples of the validation split at each validation, in eval mode under the EMA weights;
  ``codes/all`` and ``codes/z<i>`` for the first :data:`HIST_DIMS` latent dimensions;
* **the run config**: TensorBoard text ``config`` and the hparams plugin's table; MLflow params (dotted keys,
  ``trainer.epochs``), tags ``genlab.model`` and ``genlab.run_dir``;
* **at the end**: ``final_metrics.json``'s numbers as scalars ``final/<key>`` at the last step, and (MLflow)
  the files ``config.json``, ``metrics.jsonl``, ``final_metrics.json`` and ``report.html`` as artifacts.

Resuming continues the same logs with no duplicate point: TensorBoard hides what the stopped run wrote after the
checkpoint (SummaryWriter's ``purge_step``) and the kept records are the log's; MLflow continues the run tagged
with the run folder and skips each (metric, step) point it already holds (MLflow cannot delete points; an exact
resume recomputes the same values). :func:`replay` feeds an existing run folder through the same code
(``genlab log RUN --to tensorboard``), for runs trained without tracking.

``genlab.train`` adds the callback from ``trainer.log_to`` and closes it; with a :class:`~genlab.training.Trainer`
of your own, pass ``make_trackers(config, run_dir=...)`` as callbacks and call :func:`finish_tracking` after
``fit``.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import time
from pathlib import Path

from ..errors import ConfigError
from .callbacks import Callback, SampleGrid
from .config import TRACKERS, TrainerConfig

log = logging.getLogger(__name__)

#: How to install what each tracker needs (named in the error when it is missing).
INSTALL = {"tensorboard": "pip install 'genlab[track]'", "mlflow": "pip install mlflow"}
_MODULE = {"tensorboard": "tensorboard", "mlflow": "mlflow"}
#: Samples of the validation split whose codes are histogrammed, and latent dimensions with their own histogram.
HIST_SAMPLES = 256
HIST_DIMS = 8
EVENTS_GLOB = "events.out.tfevents.*"
#: Files of a run folder uploaded to MLflow at the end (those that exist).
FINAL_ARTIFACTS = ("config.json", "metrics.jsonl", "final_metrics.json", "report.html")
_AXES = ("step", "epoch", "split")


# ---------------------------------------------------------------------------------------------- checks
def require_trackers(names) -> None:
    """Refuse (one-line :class:`ConfigError` naming the install command) a tracker whose package is missing.
    Imports nothing."""
    for name in names:
        if name not in TRACKERS:
            raise ConfigError(f"unknown tracker {name!r}; use {' or '.join(TRACKERS)}")
        if importlib.util.find_spec(_MODULE[name]) is None:
            raise ConfigError(f"trainer.log_to={name} needs the {_MODULE[name]} package, which is not installed; "
                              f"run: {INSTALL[name]}")


def tensorboard_dir(config: TrainerConfig, run_dir: str | Path | None) -> Path:
    """Where TensorBoard event files go: ``trainer.log_dir``, else ``RUN/tensorboard``."""
    if config.log_dir:
        return Path(config.log_dir)
    if run_dir is None:
        raise ConfigError("trainer.log_to without a run folder needs trainer.log_dir (where the trackers write); "
                          "set trainer.log_dir=DIR or train with --out")
    return Path(run_dir) / "tensorboard"


def mlflow_uri(config: TrainerConfig | None, run_dir: str | Path | None, log_dir: str | Path | None = None) -> str:
    """The MLflow tracking URI: a local ``file:`` store in ``log_dir/mlruns`` when ``log_dir`` is given (``genlab log
    --logdir``), else ``MLFLOW_TRACKING_URI`` when set, else ``trainer.log_dir/mlruns``, else ``RUN/mlruns``."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env and log_dir is None:
        return env
    base = log_dir if log_dir is not None else (config.log_dir if config is not None else None)
    if base:
        return (Path(base) / "mlruns").resolve().as_uri()
    if run_dir is None:
        raise ConfigError("trainer.log_to=mlflow without a run folder needs trainer.log_dir or MLFLOW_TRACKING_URI; "
                          "set one or train with --out")
    return (Path(run_dir) / "mlruns").resolve().as_uri()


def _has_events(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob(EVENTS_GLOB))


def _remove_events(folder: Path) -> None:
    """Delete TensorBoard event files directly in ``folder`` (and nothing else)."""
    for f in folder.glob(EVENTS_GLOB):
        f.unlink()


def make_trackers(config: TrainerConfig | dict, *, run_dir: str | Path | None, run_config: dict | None = None,
                  resume: bool = False, overwrite: bool = False) -> list[Callback]:
    """The tracking callback ``config.log_to`` asks for (``[]`` when none), checked before anything is written.

    Parameters
    ----------
    config : TrainerConfig or dict
        ``log_to`` names the trackers; ``log_dir`` where they write.
    run_dir : path, optional
        The run folder (default home of the logs, and the tag MLflow finds a resumed run by).
    run_config : dict, optional
        The run config to log as parameters (``RunSpec.to_dict()``); default: the trainer section.
    resume : bool
        The run continues from a checkpoint: the logs continue too.
    overwrite : bool
        A new run may replace TensorBoard event files already in an explicit ``trainer.log_dir``.

    Raises
    ------
    ConfigError
        A tracker's package is missing (the message names the install command), no place to write (no run
        folder and no ``trainer.log_dir``), or an explicit ``trainer.log_dir`` already holds event files of
        another run (without ``overwrite``).
    """
    if not isinstance(config, TrainerConfig):
        from ..config import from_dict
        config = from_dict(TrainerConfig, config, "trainer")
    names = list(config.log_to)
    if not names:
        return []
    require_trackers(names)
    sinks: list[_Sink] = []
    for name in names:
        if name == "tensorboard":
            folder = tensorboard_dir(config, run_dir)
            if config.log_dir and not resume and _has_events(folder):
                if not overwrite:
                    raise ConfigError(f"trainer.log_dir {folder} already holds TensorBoard event files of another "
                                      "run; choose another trainer.log_dir, or pass --overwrite to replace them")
            sinks.append(TensorBoardSink(folder, replace=bool(config.log_dir and not resume and overwrite)))
        else:
            sinks.append(MlflowSink(mlflow_uri(config, run_dir), run_dir=run_dir))
    cfg = run_config if run_config is not None else {"sections": {"trainer": _plain(config)}}
    return [Tracking(sinks, run_config=cfg, run_dir=run_dir)]


def _plain(config: TrainerConfig) -> dict:
    from ..config import to_dict
    return to_dict(config)


# ---------------------------------------------------------------------------------------------- sinks
def scalars(record: dict) -> dict[str, float]:
    """The ``<split>/<key>: value`` scalars of one ``metrics.jsonl`` record (numeric values only)."""
    split = record.get("split", "train")
    out = {}
    for k, v in record.items():
        if k in _AXES or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            continue
        out[f"{split}/{k}"] = float(v)
    return out


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def config_params(run_config: dict) -> dict[str, str | int | float | bool]:
    """A run config (``{"model": name, "sections": {...}}``) as flat ``section.key`` parameters: numbers, bools
    and strings as they are, anything else (lists, null) as its JSON text."""
    flat = {}
    if "model" in run_config and isinstance(run_config["model"], str):
        flat["model"] = run_config["model"]
    for k, v in _flat(run_config.get("sections") or {}).items():
        flat[k] = v if isinstance(v, (str, int, float, bool)) else json.dumps(v)
    return flat


class _Sink:
    """One tracker's writer. ``open`` (at the start, or at a resumed step), then ``record``/``image``/``histogram``
    as training goes, ``flush`` when training ends and ``close`` with the run's final files."""

    name = ""

    def open(self, *, start_step: int, run_config: dict, history: list[dict] = (), boundary: bool = True,
             monitored: tuple[str, ...] = ()) -> bool:
        """Start the log, or continue it at ``start_step`` > 0 (a resumed run whose kept records are ``history``;
        ``boundary``: the checkpoint was taken after its step's epoch-end records). True when the log is new."""
        raise NotImplementedError

    def record(self, rec: dict) -> None: ...

    def image(self, tag: str, png: Path, step: int) -> None: ...

    def histogram(self, tag: str, values, step: int) -> None: ...

    def flush(self) -> None: ...

    def close(self, *, run_dir: Path | None, metrics: dict | None, step: int, failed: bool = False) -> None: ...


class TensorBoardSink(_Sink):
    """TensorBoard event files in ``folder`` (``torch.utils.tensorboard.SummaryWriter``)."""

    name = "tensorboard"

    def __init__(self, folder: str | Path, *, replace: bool = False):
        self.folder = Path(folder)
        self.replace = replace
        self.writer = None

    @property
    def where(self) -> str:
        return str(self.folder)

    def open(self, *, start_step: int, run_config: dict, history: list[dict] = (), boundary: bool = True,
             monitored: tuple[str, ...] = ()) -> bool:
        from torch.utils.tensorboard import SummaryWriter

        if self.replace:
            _remove_events(self.folder)
        fresh = not _has_events(self.folder)
        # Resuming at step T: the readers drop every point at a step >= purge written before (purge_step). After a
        # checkpoint at an epoch's end everything at T is kept and the run goes on at T + 1; after one inside an
        # epoch (or at its last batch, before the epoch-end records) points at T are drawn again, so purge from
        # T and write the kept records of step T again.
        purge = None
        if start_step > 0 and not fresh:
            purge = start_step + 1 if boundary else start_step
        self.writer = SummaryWriter(str(self.folder), purge_step=purge)
        if fresh:
            self._write_config(run_config, monitored)
        elif purge is not None:
            for rec in history:
                if int(rec["step"]) >= purge:
                    self.record(rec)
        return fresh

    def _write_config(self, run_config: dict, monitored: tuple[str, ...]) -> None:
        from torch.utils.tensorboard.summary import hparams

        params = config_params(run_config)
        text = "| key | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in params.items())
        self.writer.add_text("config", text, 0)
        exp, ssi, sei = hparams(params, {m: 0.0 for m in monitored or ("train_epoch/loss", "val/loss")})
        fw = self.writer._get_file_writer()
        for s in (exp, ssi, sei):
            fw.add_summary(s)

    def record(self, rec: dict) -> None:
        step = int(rec["step"])
        for tag, v in scalars(rec).items():
            self.writer.add_scalar(tag, v, step)

    def image(self, tag: str, png: Path, step: int) -> None:
        import numpy as np
        from PIL import Image

        with Image.open(png) as im:
            arr = np.asarray(im.convert("RGB"))  # (H, W, 3) uint8
        self.writer.add_image(tag, arr, step, dataformats="HWC")

    def histogram(self, tag: str, values, step: int) -> None:
        self.writer.add_histogram(tag, values, step)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self, *, run_dir: Path | None, metrics: dict | None, step: int, failed: bool = False) -> None:
        if self.writer is None:
            return
        for k, v in _final_scalars(metrics).items():
            self.writer.add_scalar(f"final/{k}", v, step)
        self.writer.close()
        self.writer = None


def monitored_tags(monitor: str | None) -> tuple[str, ...]:
    """The tags the hparams table shows: the epoch loss, the validation loss and the run's monitored value
    (``train/<key>``, an epoch mean, is logged as ``train_epoch/<key>``)."""
    tags = ["train_epoch/loss", "val/loss"]
    if monitor:
        split, key = monitor.split("/", 1)
        tag = f"train_epoch/{key}" if split == "train" else monitor
        if tag not in tags:
            tags.append(tag)
    return tuple(tags)


def _final_scalars(metrics: dict | None) -> dict[str, float]:
    return {k: float(v) for k, v in (metrics or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def _allow_file_store(uri: str) -> None:
    """MLflow 3 refuses its ``file:`` store unless ``MLFLOW_ALLOW_FILE_STORE`` is true; a local store in the run
    folder is what genlab uses by default, so allow it (a value the user set is left alone)."""
    if uri.startswith("file:") or "://" not in uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


class MlflowSink(_Sink):
    """An MLflow run, through ``mlflow.tracking.MlflowClient`` (``mlflow-skinny`` is enough).

    The experiment is ``MLFLOW_EXPERIMENT_NAME`` (default ``genlab``), the run is named after the run folder and
    tagged ``genlab.run_dir`` with its absolute path (how a resumed run finds its MLflow run).
    """

    name = "mlflow"
    MAX_PARAMS = 100  # per log_batch call

    def __init__(self, uri: str, *, run_dir: str | Path | None = None, run_name: str | None = None):
        self.uri = uri
        self.run_dir = Path(run_dir).resolve() if run_dir is not None else None
        self.run_name = run_name or (self.run_dir.name if self.run_dir is not None else None)
        self.client = None
        self.run_id: str | None = None
        self.present: set[tuple[str, int]] = set()  # on resume: (metric, step) points the MLflow run holds

    @property
    def where(self) -> str:
        return self.uri

    def _client(self):
        from mlflow.tracking import MlflowClient

        _allow_file_store(self.uri)
        return MlflowClient(tracking_uri=self.uri)

    def existing_runs(self) -> list:
        """The MLflow runs tagged with this run folder, newest first."""
        if self.client is None:
            self.client = self._client()
        exp = self.client.get_experiment_by_name(experiment_name())
        if exp is None or self.run_dir is None:
            return []
        return self.client.search_runs([exp.experiment_id],
                                       filter_string=f"tags.`genlab.run_dir` = '{_quote(str(self.run_dir))}'",
                                       order_by=["attributes.start_time DESC"])

    def open(self, *, start_step: int, run_config: dict, history: list[dict] = (), boundary: bool = True,
             monitored: tuple[str, ...] = ()) -> bool:
        from mlflow.entities import Param

        if self.client is None:
            self.client = self._client()
        if start_step > 0:
            runs = self.existing_runs()
            if runs:
                self.run_id = runs[0].info.run_id
                self.present = self._points(runs[0])
                self.client.update_run(self.run_id, status="RUNNING")
                return False
        name = experiment_name()
        exp = self.client.get_experiment_by_name(name)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(name)
        tags = {"genlab.model": str(run_config.get("model", ""))}
        if self.run_dir is not None:
            tags["genlab.run_dir"] = str(self.run_dir)
        run = self.client.create_run(exp_id, run_name=self.run_name, tags=tags)
        self.run_id = run.info.run_id
        params = [Param(k, str(v)[:6000]) for k, v in config_params(run_config).items()]
        for i in range(0, len(params), self.MAX_PARAMS):
            self.client.log_batch(self.run_id, params=params[i:i + self.MAX_PARAMS])
        return True

    def _points(self, run) -> set[tuple[str, int]]:
        return {(key, int(m.step)) for key in run.data.metrics
                for m in self.client.get_metric_history(self.run_id, key)}

    def record(self, rec: dict) -> None:
        from mlflow.entities import Metric

        step = int(rec["step"])
        ts = int(time.time() * 1000)
        metrics = [Metric(tag, v, ts, step) for tag, v in scalars(rec).items() if (tag, step) not in self.present]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def image(self, tag: str, png: Path, step: int) -> None:
        self.client.log_artifact(self.run_id, str(png), tag)

    def close(self, *, run_dir: Path | None, metrics: dict | None, step: int, failed: bool = False) -> None:
        from mlflow.entities import Metric

        if self.run_id is None:
            return
        if not failed:
            ts = int(time.time() * 1000)
            final = [Metric(f"final/{k}", v, ts, step) for k, v in _final_scalars(metrics).items()]
            if final:
                self.client.log_batch(self.run_id, metrics=final)
            for name in FINAL_ARTIFACTS if run_dir is not None else ():
                if (Path(run_dir) / name).is_file():
                    self.client.log_artifact(self.run_id, str(Path(run_dir) / name))
        import sys
        status = "FINISHED"
        if failed:
            status = "KILLED" if isinstance(sys.exc_info()[1], KeyboardInterrupt) else "FAILED"
        self.client.set_terminated(self.run_id, status=status)
        self.run_id = None


def experiment_name() -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME", "").strip() or "genlab"


def _quote(s: str) -> str:
    return s.replace("\\", "\\\\").replace("'", "\\'")


# ---------------------------------------------------------------------------------------------- the callback
class Tracking(Callback):
    """Feed the trackers (:class:`TensorBoardSink`, :class:`MlflowSink`) from a training run.

    Add it after :class:`~genlab.training.callbacks.SampleGrid` (``genlab.train`` does, from ``trainer.log_to``),
    so each epoch's grid is on disk when this callback logs it. :func:`finish_tracking` closes the trackers with
    the run's final files; a run that raises ends its MLflow run as ``FAILED``.
    """

    def __init__(self, sinks: list[_Sink], *, run_config: dict, run_dir: str | Path | None = None):
        self.sinks = sinks
        self.run_config = run_config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._codes_batch = None
        self._opened = False

    def on_train_start(self, trainer, total_steps: int) -> None:
        self._opened = True  # from here on finish() closes whatever did open, even if a later sink fails
        for sink in self.sinks:
            fresh = sink.open(start_step=trainer.step, run_config=self.run_config, history=trainer.history,
                              boundary=trainer.batch_in_epoch == 0, monitored=monitored_tags(trainer.monitor))
            if fresh and trainer.step > 0:  # resuming a run that was not tracked so far: log its history first
                for rec in trainer.history:
                    sink.record(rec)
                for cb in trainer.callbacks:
                    if isinstance(cb, SampleGrid):
                        for png, step in epoch_grids(cb.folder, trainer.history):
                            sink.image("samples", png, step)
            log.info("tracking to %s: %s", sink.name, sink.where)

    def on_log(self, trainer, record: dict) -> None:
        if not self._opened:  # e.g. Trainer.validate called outside fit
            return
        for sink in self.sinks:
            sink.record(record)

    def validation_figures(self, trainer, data) -> dict:
        from ..models.base import capabilities

        model = trainer.model
        if not self._opened or not capabilities(model)["has_encoder"] or data is None or not len(data):
            return {}
        import torch

        if self._codes_batch is None:
            self._codes_batch = next(iter(data.batches(HIST_SAMPLES)))  # the first samples: the same every time
        batch = self._codes_batch
        x = batch["x"]
        keep = torch.isfinite(x.flatten(1)).all(1)  # rows with missing values are left out
        if not bool(keep.any()):
            return {}
        labels = batch["y"][keep] if capabilities(model)["conditional"] and "y" in batch else None
        with trainer.evaluating():
            codes = model.encode(x[keep], labels).float().flatten(1).cpu()  # (B, latent_dim)
        step = trainer.step
        for sink in self.sinks:
            sink.histogram("codes/all", codes[torch.isfinite(codes)], step)
            for i in range(min(HIST_DIMS, codes.shape[1])):
                col = codes[:, i]
                sink.histogram(f"codes/z{i}", col[torch.isfinite(col)], step)
        return {}

    def on_epoch_end(self, trainer, logs: dict) -> None:
        for cb in trainer.callbacks:
            if isinstance(cb, SampleGrid):
                png = cb.folder / f"epoch-{trainer.epoch:04d}.png"
                if png.is_file():
                    for sink in self.sinks:
                        sink.image("samples", png, trainer.step)
        for sink in self.sinks:
            sink.flush()

    def on_train_end(self, trainer) -> None:
        self._last_step = trainer.step
        for sink in self.sinks:
            sink.flush()

    def finish(self, *, run_dir: Path | None, metrics: dict | None, step: int, failed: bool = False) -> None:
        """Close every tracker: final scalars and files (unless ``failed``), then end the logs."""
        if not self._opened:
            return
        self._opened = False
        for sink in self.sinks:
            try:
                sink.close(run_dir=run_dir, metrics=metrics, step=step, failed=failed)
            except Exception as e:  # a tracker that fails at the end must not lose the finished run
                if not failed:
                    raise
                log.warning("%s: could not close the log after the failure (%s)", sink.name, e)


def finish_tracking(callbacks, *, run_dir: Path | None, metrics: dict | None, step: int,
                    failed: bool = False) -> None:
    """Close the :class:`Tracking` callbacks among ``callbacks`` (``genlab.train`` calls it after the run's final
    files are written, or with ``failed=True`` in the ``except`` block of a run that raised: MLflow then ends the
    run as ``KILLED`` for a Ctrl-C, else ``FAILED``)."""
    for cb in callbacks:
        if isinstance(cb, Tracking):
            cb.finish(run_dir=run_dir, metrics=metrics, step=step, failed=failed)


# ---------------------------------------------------------------------------------------------- replay
def epoch_grids(folder: Path, history: list[dict]) -> list[tuple[Path, int]]:
    """The sample grids ``folder/epoch-NNNN.png`` of the epochs that ``history`` (``metrics.jsonl`` records)
    finished, each with the step where its epoch ended (its ``train_epoch`` record), in order."""
    ends = {int(r["epoch"]) + 1: int(r["step"]) for r in history if r.get("split") == "train_epoch"}
    out = []
    for png in sorted(Path(folder).glob("epoch-*.png")):
        try:
            epoch = int(png.stem.split("-", 1)[1])
        except ValueError:
            continue
        if epoch in ends:
            out.append((png, ends[epoch]))
    return out


def replay(run: str | Path, to: str, *, log_dir: str | Path | None = None, overwrite: bool = False) -> str:
    """Feed an existing run folder into a tracker, as live tracking would have: every record of
    ``metrics.jsonl``, the per-epoch sample grids, the config, and the final metrics and files. Histograms of
    the codes need the weights of each epoch and are not replayed.

    Everything is read and checked before anything is written, and a replay that fails leaves nothing behind:
    TensorBoard event files are written in a temporary folder and moved into place only when complete; an MLflow
    run that fails is deleted (with the store itself, when this call created it). An earlier log is replaced only
    once the new one is complete.

    Parameters
    ----------
    run : path
        A run folder written by ``genlab train``.
    to : {"tensorboard", "mlflow"}
    log_dir : path, optional
        TensorBoard: the folder for the event files (default ``RUN/tensorboard``). MLflow: a local store in
        ``log_dir/mlruns`` (default ``MLFLOW_TRACKING_URI``, else ``RUN/mlruns``).
    overwrite : bool
        Replace an earlier replay of this run: the event files an earlier ``replay`` of this run folder wrote
        (their names end in :func:`replay_mark`; other event files are never deleted, and their presence is
        refused), or the MLflow runs tagged with this run folder (deleted).

    Returns
    -------
    str
        Where the log went (folder or tracking URI).

    Raises
    ------
    CheckpointError
        ``run`` is not a run folder, has no metrics to log, or holds a damaged ``metrics.jsonl`` or
        ``final_metrics.json``.
    DataError
        A sample grid of the run cannot be read.
    ConfigError
        Unknown tracker, missing package, a log place that runs through a file, event files that an earlier
        replay of this run did not write, or an existing log without ``overwrite``.
    """
    from ..registry import get_model_entry
    from ..runs import open_run

    if to not in TRACKERS:
        raise ConfigError(f"unknown tracker {to!r}; use --to {' or --to '.join(TRACKERS)}")
    opened = open_run(run)
    run_dir = opened.path
    require_trackers([to])
    # Read and check every input before anything is written: a damaged run is refused with nothing to clean up.
    history = _replay_history(run_dir)
    run_config = json.loads((run_dir / "config.json").read_text())
    run_config = {"model": run_config.get("model"), "sections": run_config.get("sections") or {}}
    metrics = opened.metrics
    grids = epoch_grids(run_dir / "samples", history)
    _check_grids(grids)
    default = get_model_entry(opened.model_name).cls.default_monitor
    monitor = opened.trainer_config.monitor or (default[0] if default else None)
    feed = dict(run_dir=run_dir, history=history, run_config=run_config, metrics=metrics, grids=grids,
                monitored=monitored_tags(monitor))
    if to == "tensorboard":
        folder = Path(log_dir) if log_dir is not None else run_dir / "tensorboard"
        return _replay_tensorboard(folder, overwrite=overwrite, **feed)
    return _replay_mlflow(mlflow_uri(None, run_dir, log_dir), overwrite=overwrite, **feed)


def replay_mark(run_dir: str | Path) -> str:
    """The ending :func:`replay` gives the names of the TensorBoard event files it writes for ``run_dir``:
    ``.genlab-log-`` and 16 hex digits of the SHA-256 of the run folder's absolute path.

    ``--overwrite`` deletes only event files whose names end so. The mark is in the file name itself, rather than in
    a manifest beside the files, so that there is no second file to keep in step with the event files: no window
    where an event file exists but is not recorded yet, no stale record after the user moved or deleted files, and
    the mark travels with the files when the folder is copied. A foreign file cannot carry it by accident (it names
    this run folder's path), and TensorBoard reads any file with ``tfevents`` in its name.
    """
    import hashlib
    return ".genlab-log-" + hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]


def _replay_history(run_dir: Path) -> list[dict]:
    from ..errors import CheckpointError
    from ..io.report import read_metrics

    path = run_dir / "metrics.jsonl"
    history = read_metrics(path)
    if not history:
        what = "metrics.jsonl is empty" if path.is_file() else "it has no metrics.jsonl"
        raise CheckpointError(f"{run_dir} has no metrics to log ({what}); train it first (genlab train ... --out "
                              f"{run_dir}, or genlab train --resume {run_dir} if it has a checkpoint)")
    for i, rec in enumerate(history, 1):
        try:
            int(rec["step"])
            if rec.get("split") == "train_epoch":
                int(rec["epoch"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: record {i} has no integer step/epoch ({json.dumps(rec)[:60]}); the log "
                                  "is damaged, restore it or delete the line") from None
    return history


def _check_grids(grids: list[tuple[Path, int]]) -> None:
    """Decode every sample grid now, so that a damaged PNG is refused before anything is written."""
    from PIL import Image

    from ..errors import DataError
    for png, _ in grids:
        try:
            with Image.open(png) as im:
                im.load()
        except (OSError, SyntaxError, ValueError) as e:  # truncated, not a PNG, or damaged chunks
            why = " ".join(str(e).split()) or type(e).__name__
            raise DataError(f"{png} cannot be read ({why}); the run's sample grid is damaged: delete it (its epoch is "
                            "then logged without a grid) or re-train the run") from None


def _check_log_place(path: Path) -> None:
    """A log folder (or MLflow store) that is, or runs through, a file: one line, before anything is written."""
    from ..io.atomic import file_in_path
    blocker = file_in_path(path / "x")  # the parents of path/x include path itself
    if blocker is not None:
        raise ConfigError(f"cannot write the log to {path}: {blocker} is a file, not a folder; choose another "
                          "--logdir")


def _local_store(uri: str) -> Path | None:
    """The folder of a local MLflow store (``file:`` URI or a plain path), else ``None``."""
    if uri.startswith("file:"):
        from urllib.parse import urlparse
        from urllib.request import url2pathname
        return Path(url2pathname(urlparse(uri).path))
    if ":" not in uri and os.sep in uri:
        return Path(uri)
    return None


def _write_log(sink: _Sink, *, run_dir: Path, history: list[dict], run_config: dict, metrics: dict,
               grids: list[tuple[Path, int]], monitored: tuple[str, ...]) -> None:
    sink.open(start_step=0, run_config=run_config, monitored=monitored)
    try:
        for rec in history:
            sink.record(rec)
        for png, step in grids:
            sink.image("samples", png, step)
        last = max(int(r["step"]) for r in history)
        sink.close(run_dir=run_dir, metrics=metrics, step=last)
    except BaseException:
        try:
            sink.close(run_dir=None, metrics=None, step=0, failed=True)
        except Exception as e:
            log.warning("%s: could not close the log after the failure (%s)", sink.name, e)
        raise


def _replay_tensorboard(folder: Path, *, overwrite: bool, **feed) -> str:
    import shutil
    import tempfile

    run_dir = feed["run_dir"]
    _check_log_place(folder)
    mark = replay_mark(run_dir)
    events = sorted(folder.glob(EVENTS_GLOB)) if folder.is_dir() else []
    ours = [f for f in events if f.name.endswith(mark)]
    foreign = [f for f in events if not f.name.endswith(mark)]
    if foreign:  # never deleted; a replay beside them would mix two logs in one TensorBoard run
        raise ConfigError(f"{folder} already holds TensorBoard event files that genlab log did not write for "
                          f"{run_dir} ({foreign[0].name}{', ...' if len(foreign) > 1 else ''}); --overwrite replaces "
                          "only an earlier genlab log of this run: choose another --logdir, or move those files away")
    if ours and not overwrite:
        raise ConfigError(f"{folder} already holds a TensorBoard log of {run_dir} (written by genlab log); pass "
                          "--overwrite to replace it or --logdir to write elsewhere")
    from ..io.atomic import first_missing
    created = first_missing(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".genlab-log-", suffix=".tmp", dir=folder))
    try:
        _write_log(TensorBoardSink(tmp), **feed)
        for f in sorted(tmp.glob(EVENTS_GLOB)):
            os.replace(f, folder / (f.name + mark))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created is not None:  # the folders this call made, if nothing else is in them now
            for d in (folder, *folder.parents):
                try:
                    d.rmdir()
                except OSError:
                    break
                if d == created:
                    break
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    for f in ours:  # the earlier replay of this run goes only now that its replacement is complete
        f.unlink(missing_ok=True)
    return str(folder)


def _replay_mlflow(uri: str, *, overwrite: bool, **feed) -> str:
    import shutil

    run_dir = feed["run_dir"]
    store = _local_store(uri)
    created = None
    if store is not None:
        from ..io.atomic import first_missing
        _check_log_place(store)
        created = first_missing(store)
    sink = MlflowSink(uri, run_dir=run_dir)
    old: list | None = None  # the earlier runs of RUN, once known
    try:
        old = sink.existing_runs()
        if old and not overwrite:
            raise ConfigError(f"{uri} already holds an MLflow run of {run_dir} ({old[0].info.run_id}); pass "
                              "--overwrite to replace it or --logdir to write elsewhere")
        _write_log(sink, **feed)
    except BaseException:
        if created is not None:  # the store is this call's own: nothing of it stays
            shutil.rmtree(created, ignore_errors=True)
        elif old is not None:  # the run this call created (if any): every run of RUN but the earlier ones
            try:
                keep = {r.info.run_id for r in old}
                for r in sink.existing_runs():
                    if r.info.run_id not in keep:
                        sink.client.delete_run(r.info.run_id)
            except Exception as e:
                log.warning("mlflow: could not delete the failed run of %s (%s)", run_dir, e)
        raise
    for r in old:  # the earlier logs of this run go only now that the new one is complete
        sink.client.delete_run(r.info.run_id)
    return sink.where
