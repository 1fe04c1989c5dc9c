"""The one Trainer. Models own their step; the Trainer owns devices, threads, precision, the optimizer schedule,
checkpoints, validation, the sample-quality monitors, early stopping, EMA, logging and exact resume.

One step is one batch: on it every optimizer that is due (:class:`~genlab.models.OptimizerSpec` ``every``)
updates, in the order ``configure_optimizers()`` returns them. An epoch is one pass over the data. Precision
probing lives in :mod:`.precision`, checkpoint state in :mod:`.checkpoint`, the monitors in :mod:`.monitors`.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import from_dict
from ..data.dataset import TensorDataset
from ..errors import ConfigError, DataError, GenlabError
from ..io.atomic import json_dumps, json_safe, resolve_dir
from ..io.serialize import save_model
from . import checkpoint as ckpt
from .compile import compile_model, uncompile
from .callbacks import Callback
from .config import TrainerConfig
from .distributed import Distributed, check_run
from .ema import EMA
from .monitors import default_monitors
from .precision import autocast, check_precision, choose_precision

log = logging.getLogger(__name__)


class TrainingDiverged(GenlabError):
    """A loss or the weights became NaN or infinite; ``checkpoints/last`` keeps the last finite state."""


class _DeferredInterrupt:
    """Turn the first Ctrl-C (SIGINT) during training into a flag the loop checks between steps, so the
    interrupt checkpoint is always a consistent state (never half an optimizer step, never an epoch's
    permutation drawn but not used). A second Ctrl-C interrupts at once and writes nothing."""

    def __init__(self):
        self.requested = False
        self.old = None
        self.synced = False  # under torchrun: ``requested`` is set only when the ranks agree (Trainer._loop)
        self.local = False  # under torchrun: this rank received the interrupt, not yet agreed

    def _handler(self, signum, frame):
        if self.requested or (self.synced and self.local):
            raise KeyboardInterrupt
        if self.synced:
            self.local = True
        else:
            self.requested = True
        log.warning("interrupt received: saving checkpoints/last after the current step (Ctrl-C again to stop "
                    "at once without saving)")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
            self.old = None


def default_threads() -> int:
    """``trainer.num_threads=null``: ``OMP_NUM_THREADS`` when set to a positive int, else the cores this process
    may run on (``os.sched_getaffinity``; ``os.cpu_count`` where that does not exist), at most 16."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return int(env)
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(n, 16))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def select_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; otherwise the named device (checked to exist here)."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"trainer.device={name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"trainer.device={name!r} is not supported; use auto, cpu, cuda, cuda:N or mps")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"trainer.device={name!r} requested but CUDA is not available here; use "
                              "trainer.device=auto or cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"trainer.device={name!r}: this machine has {torch.cuda.device_count()} CUDA "
                              "device(s); use cuda:0 .. cuda:N-1 or auto")
    if dev.type == "mps" and not has_mps:
        raise ConfigError(f"trainer.device={name!r} requested but Apple MPS is not available here; use "
                          "trainer.device=auto or cpu")
    return dev


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns."""

    model: torch.nn.Module
    out_dir: Path | None
    step: int
    epoch: int
    best_value: float | None
    best_step: int | None
    stopped_early: bool
    precision: str
    channels_last: bool
    samples_per_sec: float
    seconds: float
    history: list[dict] = field(default_factory=list)

    @property
    def final(self) -> dict:
        """The last logged validation (or epoch) record."""
        for rec in reversed(self.history):
            if rec.get("split") == "val":
                return rec
        return self.history[-1] if self.history else {}


class _Schedule:
    """LR multiplier: linear warm-up, then constant/cosine/linear decay over ``total`` optimizer steps, or over the
    time budget when ``budget_share()`` (the fraction of ``trainer.max_seconds`` used) is further along: the decay
    reaches 0 where the run ends, at its last step or at its deadline, whichever comes first."""

    def __init__(self, kind: str, warmup: int, total: int, budget_share=None):
        self.kind, self.warmup, self.total = kind, warmup, max(total, 1)
        self.budget_share = budget_share  # None without a time budget

    def __call__(self, step: int) -> float:
        if self.warmup and step < self.warmup:
            return (step + 1) / self.warmup
        if self.kind == "constant":
            return 1.0
        frac = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        if self.budget_share is not None:
            frac = max(frac, min(1.0, self.budget_share()))
        return 0.5 * (1 + math.cos(math.pi * frac)) if self.kind == "cosine" else 1.0 - frac


class Trainer:
    """Train any registered model.

    Parameters
    ----------
    config : TrainerConfig or dict
    out_dir : path, optional
        Run folder: ``metrics.jsonl``, ``checkpoints/{last,best,step-N}``, ``model/``. Without it the
        Trainer keeps history (and the best state, for ``restore_best``) in memory and writes nothing.
    callbacks : list of Callback
        Run after the sample-quality monitors the config asks for (``fid_samples``, ``monitor_every``;
        :func:`genlab.training.monitors.default_monitors`), which are added unless a callback of the same class
        is given.
    clock : callable, optional
        The clock of ``trainer.max_seconds`` and of a time-budgeted ``lr_schedule``: a function returning seconds
        (only differences are used). Default: wall time (``time.perf_counter``). A benchmark passes process CPU
        time, or a clock it pauses while it scores snapshots.
    """

    def __init__(self, config: TrainerConfig | dict | None = None, *, out_dir: str | Path | None = None,
                 callbacks: list[Callback] | tuple = (), clock=None):
        self.config = config if isinstance(config, TrainerConfig) else from_dict(TrainerConfig, config, "trainer")
        self._clock = clock if clock is not None else time.perf_counter
        self._clock_start = 0.0
        self.budget_before = 0.0  # budget seconds used before this fit (restored from a checkpoint on resume)
        self.budget_fraction = 0.0  # of trainer.max_seconds used, as of the last step (agreed by all ranks)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        given = list(callbacks)
        self.callbacks = [m for m in default_monitors(self.config)
                          if not any(type(c) is type(m) for c in given)] + given
        self.history: list[dict] = []
        self.step = 0
        self.epoch = 0
        self._evaluating = False
        self.dist: Distributed | None = None  # the process group of a torchrun launch (WORLD_SIZE > 1)
        self._shard_weight = 1.0  # this rank's share of the current batch x world size (1 = an even split)

    # ------------------------------------------------------------------ public
    def check(self, model, train: TensorDataset, val: TensorDataset | None = None) -> torch.device:
        """Everything that can be refused before anything is written: device, precision, the data (NaN,
        shapes, at least one batch). Returns the device. :meth:`fit` calls it first; ``genlab.train`` calls it
        before it creates the run folder."""
        from ..models.base import capabilities

        cfg = self.config
        for ds in (train, val):
            if ds is None or not len(ds):
                continue
            if ds.has_missing and not (ds.allow_missing and capabilities(model)["supports_missing"]):
                hint = (f"model {model.registry_name!r} cannot train on missing values; use an ae or vae"
                        if ds.allow_missing else "impute them first or drop incomplete rows")
                raise DataError(f"{ds.name}: training data contains NaN (missing values); {hint}")
            if not ds.has_missing and ds.x.is_floating_point() and not bool(torch.isfinite(ds.x).all()):
                raise DataError(f"{ds.name}: data contains infinite values; fix or drop those samples")
            if tuple(ds.sample_shape) != tuple(model.shape):
                raise DataError(f"{ds.name}: samples of shape {ds.sample_shape} but the model was built for "
                                f"{model.shape}")
        if not len(train):
            raise DataError(f"{train.name}: the training split is empty; use more data or lower data.val/data.test")
        if train.num_batches(cfg.batch_size, cfg.drop_last) == 0:
            raise DataError(f"{train.name}: {len(train)} samples give no full batch of {cfg.batch_size}; lower "
                            "trainer.batch_size or set trainer.drop_last=false")
        device = select_device(cfg.device)
        check_run(cfg, device, len(train))  # torchrun: batch divisible by the world size, backend, ...
        check_precision(device, cfg.precision)
        return device

    def fit(self, model, train: TensorDataset, val: TensorDataset | None = None, *,
            resume: str | Path | None = None) -> TrainResult:
        """Train ``model`` on ``train`` (validating on ``val``), from scratch or from the checkpoint ``resume``.

        torch's intra-op thread count is ``trainer.num_threads`` (see :func:`default_threads`) while this
        runs, and restored afterwards.
        """
        threads = torch.get_num_threads()
        torch.set_num_threads(self.config.num_threads or default_threads())
        try:
            return self._fit(model, train, val, resume)
        finally:
            torch.set_num_threads(threads)
            if self.dist is not None:
                self.dist.restore_batchnorm()

    def budget_seconds(self) -> float:
        """Seconds of the time budget used so far on this trainer's clock: this ``fit`` (from its start, the
        probe and validations included) plus what the resumed checkpoint had used."""
        return self._clock() - self._clock_start + self.budget_before

    def _fit(self, model, train: TensorDataset, val: TensorDataset | None, resume) -> TrainResult:
        cfg = self.config
        self._clock_start = self._clock()
        self.budget_before, self.budget_fraction = 0.0, 0.0
        self.device = self.check(model, train, val)
        self.dist = Distributed.setup(cfg, self.device)  # None unless torchrun launched several processes
        if self.dist is not None:
            self.device = self.dist.device
            if not self.dist.is_main:
                self.out_dir = None  # only rank 0 writes
        model.to(self.device)
        self.model = model
        if self.dist is not None:
            if cfg.sync_batchnorm:
                log.info("trainer.sync_batchnorm: %d BatchNorm layer(s) -> SyncBatchNorm",
                         self.dist.sync_batchnorm(model))
            self.dist.broadcast_module(model)  # rank 0's initial weights everywhere, as DDP does
            self.dist.reseed(cfg.seed)  # each rank its own training noise
        specs = model.configure_optimizers()
        if not isinstance(specs, dict) or not specs:
            raise ConfigError(f"model {model.registry_name!r}: configure_optimizers() must return a non-empty dict "
                              "of name -> OptimizerSpec")
        self.specs = specs
        nb = train.num_batches(cfg.batch_size, cfg.drop_last)
        total_iters = cfg.epochs * nb if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * nb)
        self.total_iters = total_iters
        for name, spec in specs.items():
            n_updates = total_iters // spec.every
            if n_updates == 0:
                log.warning("optimizer %r steps on every %d-th batch but the run has %d batches: it never steps",
                            name, spec.every, total_iters)
            if spec.scheduler is None:
                spec.scheduler = torch.optim.lr_scheduler.LambdaLR(
                    spec.optimizer, _Schedule(cfg.lr_schedule, cfg.warmup_steps, n_updates,
                                              None if cfg.max_seconds is None else lambda: self.budget_fraction))
        decay, rampup = cfg.ema_for(model)
        self.ema = EMA(model, decay, rampup) if decay else None
        if self.ema is not None and cfg.ema_decay == "auto":
            log.info("trainer.ema_decay=auto: model %r keeps an EMA of its weights, decay %g%s (its default_ema; "
                     "trainer.ema_decay=null turns it off)", model.registry_name, decay,
                     "" if rampup is None else f", ramp-up {rampup:g}")
        if self.ema is not None and rampup is None and total_iters and decay ** total_iters > 0.1:
            log.warning("trainer.ema_decay=%g over a run of %d steps: the initial weights keep %.0f %% of the exported "
                        "EMA weights (its horizon is about %d steps); set trainer.ema_decay <= %.4f, trainer.ema_rampup "
                        "(e.g. 0.05) or train longer",
                        decay, total_iters, 100 * decay ** total_iters, round(1 / (1 - decay)),
                        0.1 ** (1 / total_iters))
        self.gen = torch.Generator().manual_seed(cfg.data_seed if cfg.data_seed is not None else cfg.seed)
        self.epoch_gen_state = self.gen.get_state()
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best_value: float | None = None
        self.best_step: int | None = None
        self.best_memory = None  # (weights, EMA tensors) of the best state when there is no run folder
        self._chores = {}  # optional epoch-end chore -> (seconds its last run took, when it ended), in this fit
        self.ending = False  # True at the epoch end that ends the run (the callbacks' on_epoch_end sees it)
        self.bad_epochs = 0
        self.stopped_early = False
        self.scaler = None
        self.epoch_sums: dict[str, torch.Tensor] = {}  # running sums of the current epoch's step outputs
        self.epoch_counts: dict[str, int] = {}  # how many steps logged each key this epoch
        self.step_lrs: dict[str, float] = {}
        train_dev = train.to(self.device)
        val_dev = val.to(self.device) if val is not None and len(val) else None
        self.monitor, self.mode = self._resolve_monitor(model, val_dev)

        if resume is not None:
            ckpt.load_checkpoint(self, Path(resume))
        else:
            self.precision, self.channels_last = choose_precision(model, train_dev, cfg, self.device, specs)
            if self.dist is not None:
                self.precision, self.channels_last = self.dist.broadcast_choice(self.precision, self.channels_last)
            if self.out_dir is not None:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                (self.out_dir / "metrics.jsonl").write_text("")
        was_deterministic = torch.are_deterministic_algorithms_enabled()
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
        if self.precision == "fp16":
            self.scaler = torch.amp.GradScaler("cuda")
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        compiled = compile_model(model, cfg.compile, self.device, deterministic=cfg.deterministic)
        log.info("training %s on %s: precision=%s channels_last=%s, %d steps, %d threads", model.registry_name,
                 self.device, self.precision, self.channels_last, total_iters, torch.get_num_threads())

        for cb in self.callbacks:
            cb.on_train_start(self, total_iters)
        t_start = time.perf_counter()
        if cfg.max_seconds is not None:  # the checkpoint's share: the same on every rank (their clocks differ)
            self.budget_fraction = self.budget_before / cfg.max_seconds
        interrupt = _DeferredInterrupt()
        interrupt.synced = self.dist is not None  # under torchrun the ranks stop at a step they agree on
        self._consistent = True  # False while a step is half done (an immediate second Ctrl-C saves nothing)
        try:
            with interrupt:
                self._loop(model, train_dev, val_dev, nb, total_iters, interrupt, counters := [0.0, 0])
        except KeyboardInterrupt:
            if self._consistent:
                log.warning("interrupted at step %d; saving checkpoints/last for --resume", self.step)
                self._save_checkpoint("last")
            else:
                log.warning("interrupted at once at step %d; checkpoints/last keeps the previous checkpoint",
                            self.step)
            raise
        finally:
            torch.use_deterministic_algorithms(was_deterministic)
            uncompile(compiled)
            if self.channels_last:
                model.to(memory_format=torch.contiguous_format)
        t_train, n_seen = counters
        seconds = time.perf_counter() - t_start
        self._finish(model)
        for cb in self.callbacks:
            cb.on_train_end(self)
        if self.dist is not None:
            self.dist.close()
        return TrainResult(model=model, out_dir=self.out_dir, step=self.step, epoch=self.epoch,
                           best_value=self.best_value, best_step=self.best_step, stopped_early=self.stopped_early,
                           precision=self.precision, channels_last=self.channels_last,
                           samples_per_sec=n_seen / t_train if t_train > 0 else float("nan"), seconds=seconds,
                           history=self.history)

    def _loop(self, model, train_dev, val_dev, nb: int, total_iters: int, interrupt: _DeferredInterrupt,
              counters: list) -> None:
        """The epochs. ``counters`` = [training seconds, samples seen], updated in place."""
        cfg = self.config
        time_up = False
        while self.epoch < cfg.epochs and self.step < total_iters and not self.stopped_early and not time_up:
            # The permutation of this epoch is drawn from the state saved at the end of the last epoch
            # (fresh, resumed at the epoch boundary, or mid-epoch: the same permutation every time).
            self.gen.set_state(self.epoch_gen_state)
            model.train()
            if self.batch_in_epoch == 0:
                self.epoch_sums, self.epoch_counts = {}, {}
            sums, counts = self.epoch_sums, self.epoch_counts
            t0 = time.perf_counter()
            for batch in train_dev.batches(cfg.batch_size, shuffle=True, generator=self.gen,
                                           drop_last=cfg.drop_last, start=self.batch_in_epoch):
                self._consistent = False
                if self.dist is None:
                    out = self._train_step(batch)
                else:  # this rank's chunk of the global batch; logged values and stop flags agreed by all ranks
                    local, self._shard_weight = self.dist.shard(batch)
                    out = self._train_step(local)
                    used = () if cfg.max_seconds is None else (self.budget_seconds() / cfg.max_seconds,)
                    out, (stop,), used = self.dist.average_logs(out, self._shard_weight, (interrupt.local,), used)
                    interrupt.requested = interrupt.requested or stop
                    if used:  # the ranks' mean: every rank decays its lr alike and stops at the same step
                        self.budget_fraction = used[0]
                self.step += 1
                self.batch_in_epoch += 1
                figures = {}
                for cb in self.callbacks:  # e.g. the diversity monitor (private RNG: training is unaffected)
                    figures.update(cb.step_figures(self, batch) or {})
                out.update({k: torch.as_tensor(float(v)) for k, v in figures.items()})
                for k, v in out.items():  # per-key counts: with n_critic > 1 g_loss is only logged on G batches
                    sums[k] = sums.get(k, 0.0) + v.detach().float()
                    counts[k] = counts.get(k, 0) + 1
                counters[1] += len(batch["x"])
                self._consistent = True  # the step is complete: an interrupt from here on saves this state
                if self.step % cfg.log_every == 0 or figures:
                    rec = {"step": self.step, "epoch": self.epoch, "split": "train",
                           **{k: float(v.detach()) for k, v in out.items()}, **self.step_lrs}
                    self._log(rec)
                    for cb in self.callbacks:
                        cb.on_step_end(self, rec)
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self._save_checkpoint(f"step-{self.step:07d}")
                    self._save_checkpoint("last")
                    ckpt.prune_step_checkpoints(self)
                if self.step >= total_iters:
                    break
                if cfg.max_seconds is not None:
                    if self.dist is None:
                        self.budget_fraction = self.budget_seconds() / cfg.max_seconds
                    time_up = self.budget_fraction >= 1.0
                if time_up:
                    log.info("trainer.max_seconds=%g reached at step %d (epoch %d); ending the run",
                             cfg.max_seconds, self.step, self.epoch)
                    break
                if interrupt.requested and self.batch_in_epoch < nb:
                    raise KeyboardInterrupt
            counters[0] += time.perf_counter() - t0
            last = self.step >= total_iters or time_up  # the run ends here (possibly mid-epoch)
            if self.batch_in_epoch < nb and not last:
                break
            self._consistent = False
            logs = {"step": self.step, "epoch": self.epoch, "split": "train_epoch",
                    **{k: float(v) / counts[k] for k, v in sums.items()}}
            self._log(logs)
            val_logs = None
            if val_dev is not None and ((self.epoch + 1) % cfg.val_every == 0 or last):
                val_logs = {"step": self.step, "epoch": self.epoch, "split": "val", **self.validate(val_dev)}
                self._log(val_logs)
            self.epoch += 1
            self.batch_in_epoch = 0
            self.epoch_gen_state = self.gen.get_state()
            improved = self._update_early_stopping(logs, val_logs)
            if improved:
                ckpt.keep_best(self)
            self.ending = last or self.stopped_early or interrupt.requested
            if self.dist is not None or self.chore_due("checkpoint"):  # torchrun: a collective, on every rank alike
                self._save_checkpoint("last")
            self._consistent = True
            for cb in self.callbacks:
                cb.on_epoch_end(self, {**logs, **({f"val/{k}": v for k, v in (val_logs or {}).items()
                                                   if k not in ("step", "epoch", "split")})})
            if interrupt.requested:
                raise KeyboardInterrupt

    @contextlib.contextmanager
    def evaluating(self):
        """Eval mode, the EMA weights when EMA is on, no gradients, fp32 and a forked RNG, for work that must
        leave training exactly as it was (validation, the monitors, sample grids). Re-entrant."""
        if self._evaluating:
            with torch.no_grad():
                yield self.model
            return
        model = self.model
        was_training = model.training
        model.eval()
        ctx = self.ema.applied(model) if self.ema is not None else contextlib.nullcontext()
        devices = [self.device] if self.device.type == "cuda" else []
        self._evaluating = True
        try:
            with ctx, torch.no_grad(), torch.random.fork_rng(devices=devices), \
                    torch.autocast(self.device.type, enabled=False):
                yield model
        finally:
            self._evaluating = False
            model.train(was_training)

    @torch.no_grad()
    def validate(self, data: TensorDataset) -> dict:
        """Sample-weighted mean of ``model.validation_step`` over ``data``, the model's whole-set figures
        (``validation_epoch_metrics``) and the callbacks' (``validation_figures``: FID, ...).

        Runs in :meth:`evaluating` with the RNG seeded from the trainer seed, so validation numbers are
        repeatable and do not perturb the training random stream. Uses the EMA weights when EMA is on.
        """
        model = self.model
        sums: dict[str, float] = {}
        n = 0
        with self.evaluating():
            torch.manual_seed(self.config.seed + 1)
            for batch in data.batches(max(self.config.batch_size, 256)):
                b = len(batch["x"])
                with self._autocast():
                    out = model.validation_step(self._prep(batch))
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * b
                n += b
            means = {k: v / n for k, v in sums.items()}
            with self._autocast():  # whole-set figures (e.g. active latent units) that batch means cannot give
                means.update({k: float(v) for k, v in model.validation_epoch_metrics(data).items()})
            for cb in self.callbacks:
                means.update({k: float(v) for k, v in (cb.validation_figures(self, data) or {}).items()})
        return means

    # ------------------------------------------------------------------ internals
    def _prep(self, batch: dict) -> dict:
        if self.channels_last and batch["x"].ndim == 4:
            batch = {**batch, "x": batch["x"].contiguous(memory_format=torch.channels_last)}
        return batch

    def _autocast(self):
        return autocast(self.device, self.precision)

    def _train_step(self, batch: dict) -> dict:
        """One batch: every due optimizer updates in order (zero grads, ``training_step``, NaN check, backward,
        clip, step, weight check, scheduler), then the EMA. Returns the step's figures: each player's outputs
        merged in order (``loss`` is logged as ``loss/<name>`` when the model has several optimizers)."""
        cfg = self.config
        b = self._prep(batch)
        self.step_lrs = self._lrs()  # the learning rates this step uses
        several = len(self.specs) > 1
        merged: dict[str, torch.Tensor] = {}
        updated = False
        log_now = (self.step + 1) % cfg.log_every == 0  # the step about to be logged reports its gradient norms
        for name, spec in self.specs.items():
            if not spec.due(self.step):
                continue
            for s in self.specs.values():
                s.optimizer.zero_grad(set_to_none=True)
            with self._autocast():
                out = self.model.training_step(b, self.step, name)
            loss = out["loss"]
            if not torch.isfinite(loss).item():
                bad = {k: float(v.detach()) for k, v in out.items() if not math.isfinite(float(v.detach()))}
                # before the batch's first update the state is consistent and is saved; after one it is not
                self._diverged(f"loss became non-finite at step {self.step} (epoch {self.epoch}, optimizer {name!r}: "
                               f"{bad})", save=not updated)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                if self.dist is None:
                    self.scaler.unscale_(spec.optimizer)
            else:
                loss.backward()
            if self.dist is not None:  # the global batch's gradient on every rank, before clipping and the step
                self.dist.average_grads([p for g in spec.optimizer.param_groups for p in g["params"]],
                                        self._shard_weight)
                if self.scaler is not None:
                    self.scaler.unscale_(spec.optimizer)
            out = {(f"loss/{name}" if several and k == "loss" else k): v.detach() for k, v in out.items()}
            if cfg.grad_clip is not None:
                params = [p for g in spec.optimizer.param_groups for p in g["params"] if p.grad is not None]
                out[f"grad_norm/{name}"] = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip).detach()
            elif log_now:
                grads = [p.grad for g in spec.optimizer.param_groups for p in g["params"] if p.grad is not None]
                if grads:
                    out[f"grad_norm/{name}"] = torch.nn.utils.get_total_norm(grads).detach()
            if self.scaler is not None:
                self.scaler.step(spec.optimizer)
                self.scaler.update()
            else:
                spec.optimizer.step()
            updated = True
            if not ckpt.all_finite([p for g in spec.optimizer.param_groups for p in g["params"]]):
                self._diverged(f"weights became non-finite after the {name!r} update at step {self.step} (epoch "
                               f"{self.epoch}, learning rate {spec.optimizer.param_groups[0]['lr']:g})", save=False)
            spec.scheduler.step()
            merged.update(out)
        if self.dist is not None:  # rank 0's buffers (BatchNorm statistics) everywhere, as DDP does
            self.dist.broadcast_module(self.model, buffers_only=True)
        if updated and self.ema is not None:
            self.ema.update(self.model)
        return merged

    def _diverged(self, what: str, *, save: bool) -> None:
        """Raise :class:`TrainingDiverged`. With ``save`` the current state (before the bad update, so finite)
        becomes ``checkpoints/last``; the message says which finite checkpoint there is, if any."""
        where = None
        if save and self.out_dir is not None and self.dist is None:  # under torchrun one rank alone cannot save
            self._consistent = True
            try:
                where = self._save_checkpoint("last")
            except TrainingDiverged:  # the state is non-finite too: keep the older checkpoint
                where = None
        last = resolve_dir(self.out_dir / "checkpoints" / "last") if self.out_dir is not None else None
        if where is None and last is not None and (last / "trainer_state.json").is_file():
            try:
                where = f"{last} (step {json.loads((last / 'trainer_state.json').read_text())['step']})"
            except (ValueError, KeyError):
                where = str(last)
        kept = (f"the last finite state is in {where}" if where else
                "no checkpoint was written" + ("" if self.out_dir is not None else " (no run folder)"))
        raise TrainingDiverged(f"{what}; {kept}; lower the learning rate or set trainer.grad_clip")

    def _lrs(self) -> dict:
        return {f"lr/{n}": s.optimizer.param_groups[0]["lr"] for n, s in self.specs.items()}

    def _log(self, rec: dict) -> None:
        rec = json_safe(rec)  # a NaN metric is logged as null
        self.history.append(rec)
        if self.out_dir is not None:
            with open(self.out_dir / "metrics.jsonl", "a") as f:
                f.write(json_dumps(rec) + "\n")
        for cb in self.callbacks:  # trackers get the record as written (genlab.training.tracking)
            cb.on_log(self, rec)

    def _resolve_monitor(self, model, val) -> tuple[str | None, str]:
        """``(monitor, mode)``: the config's, else the model's ``default_monitor``. Without validation data
        ``val/loss`` falls back to ``train/loss`` and other ``val/`` monitors to none (no best checkpoint); a
        model's default ``val/<key>`` other than ``val/loss`` is used only where a callback logs it (a GAN's
        ``val/fid`` needs the FID monitor and a feature space for its data)."""
        cfg = self.config
        default = model.default_monitor
        monitor = cfg.monitor if cfg.monitor is not None else (default[0] if default else None)
        mode = cfg.mode or (default[1] if default and cfg.monitor is None else "min")
        if monitor is not None and monitor.startswith("val/") and val is None:
            if monitor == "val/loss":
                monitor = "train/loss"
            else:
                (log.info if cfg.monitor is None else log.warning)(
                    "trainer.monitor=%s needs validation data; no best checkpoint is kept", monitor)
                monitor = None
        if cfg.monitor is None and monitor is not None and monitor.startswith("val/") and monitor != "val/loss":
            provided = set().union(*(cb.validation_keys(self, model, val) for cb in self.callbacks))
            if monitor.split("/", 1)[1] not in provided:
                log.info("%s: %s is not logged here (trainer.fid_samples=0, or no feature space for this data); "
                         "no best checkpoint is kept, the last weights are exported", model.registry_name, monitor)
                monitor = None
        if monitor is None and cfg.patience is not None:
            raise ConfigError(f"trainer.patience needs a monitored value, but model {model.registry_name!r} has "
                              "none here; set trainer.monitor (e.g. val/loss) or drop trainer.patience")
        return monitor, mode

    def _update_early_stopping(self, train_logs: dict, val_logs: dict | None) -> bool:
        if self.monitor is None:
            return False
        split, key = self.monitor.split("/", 1)
        src = val_logs if split == "val" else train_logs
        if src is None:
            return False
        if key not in src:
            raise GenlabError(f"trainer.monitor={self.monitor!r} is not logged; available: "
                              f"{', '.join(f'{split}/{k}' for k in src if k not in ('step', 'epoch', 'split'))}")
        value = float(src[key])
        sign = 1 if self.mode == "min" else -1
        if self.best_value is None or sign * (self.best_value - value) > self.config.min_delta:
            self.best_value, self.best_step, self.bad_epochs = value, self.step, 0
            return True
        self.bad_epochs += 1
        if self.config.patience is not None and self.bad_epochs >= self.config.patience:
            log.info("early stopping at epoch %d: %s did not improve for %d epochs (best %.6g at step %d)",
                     self.epoch, self.monitor, self.bad_epochs, self.best_value, self.best_step)
            self.stopped_early = True
        return False

    # -- checkpoints (see .checkpoint) ------------------------------------------------------
    def _save_checkpoint(self, name: str) -> Path | None:
        if name != "last":
            return ckpt.save_checkpoint(self, name)
        with self.chore("checkpoint"):
            return ckpt.save_checkpoint(self, name)

    def chore_due(self, name: str) -> bool:
        """Whether the optional epoch-end chore ``name`` (``"checkpoint"``: ``checkpoints/last``; ``"samples"``: the
        automatic sample grids) runs at this epoch end: always at the run's end (:attr:`ending`), before its first
        run in this ``fit`` and with ``trainer.chore_overhead`` null; otherwise once (its last run's seconds) /
        ``chore_overhead`` have passed since that run ended, so it takes at most that share of the time."""
        share = self.config.chore_overhead
        if self.ending or share is None or name not in self._chores:
            return True
        cost, when = self._chores[name]
        return time.perf_counter() - when >= cost / share

    @contextlib.contextmanager
    def chore(self, name: str):
        """Time one run of the chore ``name`` for :meth:`chore_due`."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            now = time.perf_counter()
            self._chores[name] = (now - t0, now)

    def _finish(self, model) -> None:
        """Put the final weights in ``model`` (best if ``restore_best``, EMA if on) and export ``model/``. The best
        state comes from ``checkpoints/best``, or from memory without a run folder: the same weights either way."""
        if self.config.restore_best and self.best_step is not None and self.best_step != self.step:
            if ckpt.restore_best(self, model):
                log.info("restored best weights from step %d (%s=%.6g)", self.best_step, self.monitor,
                         self.best_value)
        if self.ema is not None:
            with torch.no_grad():
                sd = model.state_dict()
                for k in self.ema.names:
                    sd[k].copy_(self.ema.shadow[k])
        model.eval()
        if self.out_dir is not None:
            save_model(model, self.out_dir / "model")
