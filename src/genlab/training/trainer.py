"""The one Trainer. Models own their step; the Trainer owns devices, precision, optimizer schedule,
checkpoints, validation, early stopping, EMA, logging and exact resume."""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import random
import shutil
import signal
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import from_dict, to_dict
from ..data.dataset import TensorDataset
from ..errors import CheckpointError, ConfigError, DataError, GenlabError
from ..io.atomic import atomic_dir, json_dumps, json_safe, resolve_dir, write_bytes_atomic
from ..io.serialize import load_state_into, load_tensors, model_record, save_model, write_model_files, WEIGHTS_NAME
from .callbacks import Callback
from .config import TrainerConfig
from .ema import EMA
from .state import optimizer_from_parts, optimizer_to_parts, read_state, rng_state, set_rng_state, write_state

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

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
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


def check_precision(device: torch.device, precision: str) -> None:
    """Refuse a precision the device cannot run (one line with the fix)."""
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("trainer.precision=fp16 needs a CUDA device; use bf16 or fp32 on this machine")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("this GPU does not support bf16; use trainer.precision=fp16 or fp32")


def _all_finite(tensors) -> bool:
    """True when every floating tensor in ``tensors`` is finite (one reduction per dtype/device group)."""
    floats = [t.detach() for t in tensors if t.is_floating_point() and t.numel()]
    if not floats:
        return True
    norms = torch._foreach_norm(floats, 1)
    return bool(torch.isfinite(torch.stack([n.float().cpu() for n in norms])).all())


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
    """LR multiplier: linear warm-up, then constant/cosine/linear decay over ``total`` optimizer steps."""

    def __init__(self, kind: str, warmup: int, total: int):
        self.kind, self.warmup, self.total = kind, warmup, max(total, 1)

    def __call__(self, step: int) -> float:
        if self.warmup and step < self.warmup:
            return (step + 1) / self.warmup
        if self.kind == "constant":
            return 1.0
        frac = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return 0.5 * (1 + math.cos(math.pi * frac)) if self.kind == "cosine" else 1.0 - frac


class Trainer:
    """Train any registered model.

    Parameters
    ----------
    config : TrainerConfig or dict
    out_dir : path, optional
        Run folder: ``metrics.jsonl``, ``checkpoints/{last,best,step-N}``, ``model/``. Without it the
        Trainer keeps history in memory and writes nothing.
    callbacks : list of Callback
    """

    def __init__(self, config: TrainerConfig | dict | None = None, *, out_dir: str | Path | None = None,
                 callbacks: list[Callback] | tuple = ()):
        self.config = config if isinstance(config, TrainerConfig) else from_dict(TrainerConfig, config, "trainer")
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.callbacks = list(callbacks)
        self.history: list[dict] = []
        self.step = 0
        self.epoch = 0

    # ------------------------------------------------------------------ public
    def check(self, model, train: TensorDataset, val: TensorDataset | None = None) -> torch.device:
        """Everything that can be refused before anything is written: device, precision, the data (NaN,
        shapes, at least one batch). Returns the device. :meth:`fit` calls it first; ``genlab.train`` calls it
        before it creates the run folder."""
        cfg = self.config
        for ds in (train, val):
            if ds is None or not len(ds):
                continue
            if ds.has_missing and not (ds.allow_missing and getattr(model, "supports_missing", False)):
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
        check_precision(device, cfg.precision)
        return device

    def fit(self, model, train: TensorDataset, val: TensorDataset | None = None, *,
            resume: str | Path | None = None) -> TrainResult:
        cfg = self.config
        self.device = self.check(model, train, val)
        model.to(self.device)
        self.model = model
        specs = model.configure_optimizers()
        self.specs = specs
        self.cycle = [name for name, spec in specs.items() for _ in range(spec.steps)]
        nb = train.num_batches(cfg.batch_size, cfg.drop_last)
        total_iters = cfg.epochs * nb if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * nb)
        self.total_iters = total_iters
        for name, spec in specs.items():
            if spec.scheduler is None:
                n_opt = math.ceil(total_iters * spec.steps / len(self.cycle))
                spec.scheduler = torch.optim.lr_scheduler.LambdaLR(
                    spec.optimizer, _Schedule(cfg.lr_schedule, cfg.warmup_steps, n_opt))
        self.ema = EMA(model, cfg.ema_decay) if cfg.ema_decay else None
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.epoch_gen_state = self.gen.get_state()
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best_value: float | None = None
        self.best_step: int | None = None
        self.bad_epochs = 0
        self.stopped_early = False
        self.scaler = None
        self.epoch_sums: dict[str, torch.Tensor] = {}  # running sums of the current epoch's step outputs
        self.epoch_counts: dict[str, int] = {}  # how many steps logged each key this epoch
        train_dev = train.to(self.device)
        val_dev = val.to(self.device) if val is not None and len(val) else None
        self.monitor, self.mode = self._resolve_monitor(model, val_dev is not None)

        if resume is not None:
            self._load_checkpoint(Path(resume))
        else:
            self.precision, self.channels_last = self._choose_precision(model, train_dev)
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
        log.info("training %s on %s: precision=%s channels_last=%s, %d steps", model.registry_name,
                 self.device, self.precision, self.channels_last, total_iters)

        for cb in self.callbacks:
            cb.on_train_start(self, total_iters)
        t_start = time.perf_counter()
        interrupt = _DeferredInterrupt()
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
            if self.channels_last:
                model.to(memory_format=torch.contiguous_format)
        t_train, n_seen = counters
        seconds = time.perf_counter() - t_start
        self._finish(model)
        for cb in self.callbacks:
            cb.on_train_end(self)
        return TrainResult(model=model, out_dir=self.out_dir, step=self.step, epoch=self.epoch,
                           best_value=self.best_value, best_step=self.best_step, stopped_early=self.stopped_early,
                           precision=self.precision, channels_last=self.channels_last,
                           samples_per_sec=n_seen / t_train if t_train > 0 else float("nan"), seconds=seconds,
                           history=self.history)

    def _loop(self, model, train_dev, val_dev, nb: int, total_iters: int, interrupt: _DeferredInterrupt,
              counters: list) -> None:
        """The epochs. ``counters`` = [training seconds, samples seen], updated in place."""
        cfg = self.config
        while self.epoch < cfg.epochs and self.step < total_iters and not self.stopped_early:
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
                out = self._train_step(batch)
                for k, v in out.items():  # per-key counts: a GAN's d_loss is only logged on D steps
                    sums[k] = sums.get(k, 0.0) + v.detach().float()
                    counts[k] = counts.get(k, 0) + 1
                counters[1] += len(batch["x"])
                self.step += 1
                self.batch_in_epoch += 1
                self._consistent = True  # the step is complete: an interrupt from here on saves this state
                if self.step % cfg.log_every == 0:
                    rec = {"step": self.step, "epoch": self.epoch, "split": "train",
                           **{k: float(v.detach()) for k, v in out.items()}, **self.step_lrs}
                    self._log(rec)
                    for cb in self.callbacks:
                        cb.on_step_end(self, rec)
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self._save_checkpoint(f"step-{self.step:07d}")
                    self._save_checkpoint("last")
                    self._prune_step_checkpoints()
                if self.step >= total_iters:
                    break
                if interrupt.requested and self.batch_in_epoch < nb:
                    raise KeyboardInterrupt
            counters[0] += time.perf_counter() - t0
            epoch_done = self.batch_in_epoch >= nb or self.step >= total_iters
            if not epoch_done:
                break
            self._consistent = False
            logs = {"step": self.step, "epoch": self.epoch, "split": "train_epoch",
                    **{k: float(v) / counts[k] for k, v in sums.items()}}
            self._log(logs)
            val_logs = None
            if val_dev is not None and ((self.epoch + 1) % cfg.val_every == 0 or self.step >= total_iters):
                val_logs = {"step": self.step, "epoch": self.epoch, "split": "val", **self.validate(val_dev)}
                self._log(val_logs)
            self.epoch += 1
            self.batch_in_epoch = 0
            self.epoch_gen_state = self.gen.get_state()
            improved = self._update_early_stopping(logs, val_logs)
            if improved:
                self._save_checkpoint("best")
            self._save_checkpoint("last")
            self._consistent = True
            for cb in self.callbacks:
                cb.on_epoch_end(self, {**logs, **({f"val/{k}": v for k, v in (val_logs or {}).items()
                                                   if k not in ("step", "epoch", "split")})})
            if interrupt.requested:
                raise KeyboardInterrupt

    @torch.no_grad()
    def validate(self, data: TensorDataset) -> dict:
        """Sample-weighted mean of ``model.validation_step`` over ``data``.

        Runs under a forked RNG seeded from the trainer seed, so validation numbers are repeatable and
        do not perturb the training random stream. Uses the EMA weights when EMA is on.
        """
        model = self.model
        was_training = model.training
        model.eval()
        sums: dict[str, float] = {}
        n = 0
        ctx = self.ema.applied(model) if self.ema is not None else contextlib.nullcontext()
        devices = [self.device] if self.device.type == "cuda" else []
        with ctx, torch.random.fork_rng(devices=devices):
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
        model.train(was_training)
        return means

    # ------------------------------------------------------------------ internals
    def _prep(self, batch: dict) -> dict:
        if self.channels_last and batch["x"].ndim == 4:
            batch = {**batch, "x": batch["x"].contiguous(memory_format=torch.channels_last)}
        return batch

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _train_step(self, batch: dict) -> dict:
        cfg = self.config
        name = self.cycle[self.step % len(self.cycle)]
        spec = self.specs[name]
        with self._autocast():
            out = self.model.training_step(self._prep(batch), self.step, name)
        loss = out["loss"]
        if not torch.isfinite(loss).item():
            bad = {k: float(v.detach()) for k, v in out.items() if not math.isfinite(float(v.detach()))}
            self._diverged(f"loss became non-finite at step {self.step} (epoch {self.epoch}, optimizer {name!r}: "
                           f"{bad})", save=True)
        for s in self.specs.values():
            s.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(spec.optimizer)
        else:
            loss.backward()
        if cfg.grad_clip is not None:
            params = [p for g in spec.optimizer.param_groups for p in g["params"] if p.grad is not None]
            gn = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            out = {**out, f"grad_norm/{name}": gn.detach()}
        elif (self.step + 1) % cfg.log_every == 0:  # the step about to be logged: report its gradient norm
            grads = [p.grad for g in spec.optimizer.param_groups for p in g["params"] if p.grad is not None]
            if grads:
                out = {**out, f"grad_norm/{name}": torch.nn.utils.get_total_norm(grads).detach()}
        if self.scaler is not None:
            self.scaler.step(spec.optimizer)
            self.scaler.update()
        else:
            spec.optimizer.step()
        if not _all_finite([p for g in spec.optimizer.param_groups for p in g["params"]]):
            self._diverged(f"weights became non-finite after the {name!r} update at step {self.step} (epoch "
                           f"{self.epoch}, learning rate {spec.optimizer.param_groups[0]['lr']:g})", save=False)
        self.step_lrs = self._lrs()  # the learning rates this step used
        spec.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return out

    def _diverged(self, what: str, *, save: bool) -> None:
        """Raise :class:`TrainingDiverged`. With ``save`` the current state (before the bad update, so finite)
        becomes ``checkpoints/last``; the message says which finite checkpoint there is, if any."""
        where = None
        if save and self.out_dir is not None:
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

    def _resolve_monitor(self, model, has_val: bool) -> tuple[str | None, str]:
        """``(monitor, mode)``: the config's, else the model's ``default_monitor``; ``val/loss`` falls back to
        ``train/loss`` without validation data, other ``val/`` monitors to none (no best checkpoint)."""
        cfg = self.config
        default = getattr(model, "default_monitor", ("val/loss", "min"))
        monitor = cfg.monitor if cfg.monitor is not None else (default[0] if default else None)
        mode = cfg.mode or (default[1] if default and cfg.monitor is None else "min")
        if monitor is not None and monitor.startswith("val/") and not has_val:
            if monitor == "val/loss":
                monitor = "train/loss"
            else:
                (log.info if cfg.monitor is None else log.warning)(
                    "trainer.monitor=%s needs validation data; no best checkpoint is kept", monitor)
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

    def _choose_precision(self, model, data: TensorDataset) -> tuple[str, bool]:
        """(precision, channels_last): the configured ones, else measured by a short probe. With
        ``trainer.deterministic`` nothing is measured: ``auto`` means fp32 and contiguous tensors."""
        cfg = self.config
        dev = self.device
        check_precision(dev, cfg.precision)
        is_image = data.kind == "image"
        if cfg.deterministic:
            return ("fp32" if cfg.precision == "auto" else cfg.precision), cfg.channels_last is True and is_image
        precisions = [cfg.precision] if cfg.precision != "auto" else (
            ["bf16" if torch.cuda.is_bf16_supported() else "fp16"] if dev.type == "cuda"
            else ["fp32", "bf16"] if dev.type == "cpu" else ["fp32"])
        layouts = [cfg.channels_last is True and is_image] if cfg.channels_last != "auto" or not is_image \
            else [False, True]
        candidates = [(p, c) for p in precisions for c in layouts]
        if len(candidates) == 1:
            return candidates[0]
        timings = self._time_candidates(model, data, candidates)
        base = timings[candidates[0]]
        best = min(timings, key=timings.get)
        # Prefer the exact fp32/contiguous path unless another is clearly (>= 10 %) faster.
        choice = best if timings[best] < 0.9 * base else candidates[0]
        log.info("precision probe (s/step): %s -> %s",
                 {f"{p}{'+cl' if c else ''}": round(t, 5) for (p, c), t in timings.items()}, choice)
        return choice

    def _time_candidates(self, model, data: TensorDataset, candidates: list[tuple[str, bool]],
                         rounds: int = 5) -> dict[tuple[str, bool], float]:
        """Median seconds of one forward+backward ``training_step`` per (precision, channels_last).

        Each candidate runs on its own copy of the model (BatchNorm statistics of ``model`` stay
        untouched) under a forked RNG; candidates are timed round-robin after one warm-up each, so
        drift on a noisy machine hits all of them alike.
        """
        batch = next(data.batches(min(self.config.batch_size, len(data))))
        name = self.cycle[0]
        probes = {}
        for prec, cl in candidates:
            m = copy.deepcopy(model)
            b = batch
            if cl:
                m.to(memory_format=torch.channels_last)
                b = {**batch, "x": batch["x"].contiguous(memory_format=torch.channels_last)}
            probes[(prec, cl)] = (m, b)
        times: dict[tuple[str, bool], list[float]] = {c: [] for c in candidates}
        devices = [self.device] if self.device.type == "cuda" else []
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        with torch.random.fork_rng(devices=devices):
            for r in range(rounds + 1):
                for (prec, cl), (m, b) in probes.items():
                    ctx = contextlib.nullcontext() if prec == "fp32" else torch.autocast(
                        self.device.type, dtype=torch.bfloat16 if prec == "bf16" else torch.float16)
                    sync()
                    t0 = time.perf_counter()
                    with ctx:
                        out = m.training_step(b, -1, name)  # -1: no step-scheduled extras (monitors)
                    out["loss"].backward()
                    sync()
                    if r:
                        times[(prec, cl)].append(time.perf_counter() - t0)
                    m.zero_grad(set_to_none=True)
        return {c: statistics.median(t) for c, t in times.items()}

    # -- checkpoints -----------------------------------------------------------------------
    def _state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        meta = {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "best_value": self.best_value, "best_step": self.best_step, "bad_epochs": self.bad_epochs,
                "stopped_early": self.stopped_early, "precision": self.precision,
                "channels_last": self.channels_last, "trainer_config": to_dict(self.config),
                "epoch_sums": {k: float(v) for k, v in self.epoch_sums.items()}, "epoch_counts": self.epoch_counts,
                "log_lines": len(self.history), "optimizers": {}, "schedulers": {}}
        tensors: dict[str, torch.Tensor] = {"gen/epoch": self.epoch_gen_state.clone(),
                                            "gen/current": self.gen.get_state()}
        for name, spec in self.specs.items():
            m, t = optimizer_to_parts(name, spec.optimizer)
            meta["optimizers"][name] = m
            tensors.update(t)
            sd = {k: v for k, v in spec.scheduler.state_dict().items() if k != "lr_lambdas"}
            meta["schedulers"][name] = sd
        rmeta, rt = rng_state()
        meta["rng"] = rmeta
        tensors.update(rt)
        if self.ema is not None:
            tensors.update(self.ema.state_tensors())
        if self.scaler is not None:
            meta["scaler"] = {k: (float(v) if isinstance(v, (int, float)) else v)
                              for k, v in self.scaler.state_dict().items()}
        return json_safe(meta), tensors

    def _save_checkpoint(self, name: str) -> Path | None:
        """Write ``checkpoints/<name>`` atomically; a non-finite state (weights, optimizer, EMA) is never
        written, so it can never replace a finite checkpoint."""
        if self.out_dir is None:
            return None
        path = self.out_dir / "checkpoints" / name
        meta, tensors = self._state()
        if not (_all_finite(self.model.state_dict().values()) and _all_finite(tensors.values())):
            raise TrainingDiverged(f"the training state at step {self.step} holds NaN or infinite values; "
                                   f"refusing to write it over {path}; lower the learning rate or set "
                                   "trainer.grad_clip")
        with atomic_dir(path) as tmp:
            write_model_files(self.model, tmp)
            write_state(tmp, meta, tensors)
        return path

    def _prune_step_checkpoints(self) -> None:
        steps = sorted((self.out_dir / "checkpoints").glob("step-*"))
        for old in steps[:-self.config.keep_step_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    def _load_checkpoint(self, path: Path) -> None:
        path = resolve_dir(path)
        if (path / "checkpoints" / "last").exists() or (path / "checkpoints" / "last.old").exists():
            path = resolve_dir(path / "checkpoints" / "last")
        elif not (path / "trainer_state.json").exists():
            raise CheckpointError(f"{path} has no checkpoints/last to resume from (the run stopped before its "
                                  "first checkpoint); start it again with --overwrite")
        try:
            self._restore(path)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            if isinstance(e, GenlabError):
                raise
            raise CheckpointError(f"{path}: the checkpoint is incomplete or corrupt ({type(e).__name__}: "
                                  f"{str(e).splitlines()[0] if str(e) else 'bad value'}); resume from another "
                                  "checkpoint (checkpoints/step-N) or start the run again") from None

    def _restore(self, path: Path) -> None:
        meta, tensors = read_state(path)
        try:
            rec = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else None
        except (ValueError, UnicodeDecodeError):
            rec = None
        own = model_record(self.model)
        if rec is None or rec.get("model") != own["model"] or rec.get("config") != own["config"]:
            raise CheckpointError(f"{path} was written for a different model/config than the one being trained; "
                                  "resume with the run's own config (genlab train --resume RUN)")
        load_state_into(self.model, load_tensors(path / WEIGHTS_NAME), path / WEIGHTS_NAME)
        for name, spec in self.specs.items():
            if name not in meta["optimizers"]:
                raise CheckpointError(f"{path}: no state for optimizer {name!r}; the checkpoint is from another model")
            optimizer_from_parts(name, spec.optimizer, meta["optimizers"][name], tensors)
            sd = spec.scheduler.state_dict()
            sd.update(meta["schedulers"][name])
            spec.scheduler.load_state_dict(sd)
        self.step, self.epoch, self.batch_in_epoch = meta["step"], meta["epoch"], meta["batch_in_epoch"]
        self.best_value, self.best_step = meta["best_value"], meta["best_step"]
        self.bad_epochs, self.stopped_early = meta["bad_epochs"], meta["stopped_early"]
        self.precision, self.channels_last = meta["precision"], meta["channels_last"]
        self.epoch_gen_state = tensors["gen/epoch"]
        self.epoch_sums = {k: torch.tensor(v, dtype=torch.float32, device=self.device)
                           for k, v in meta["epoch_sums"].items()}
        self.epoch_counts = dict(meta["epoch_counts"])
        self.gen.set_state(tensors["gen/current"])
        if self.ema is not None:
            self.ema.load_state_tensors(tensors)
        set_rng_state(meta["rng"], tensors)
        if self.out_dir is not None:  # drop log records written after the checkpoint
            mfile = self.out_dir / "metrics.jsonl"
            self.out_dir.mkdir(parents=True, exist_ok=True)
            lines = [ln for ln in (mfile.read_text().splitlines() if mfile.exists() else []) if ln.strip()]
            n = meta.get("log_lines")
            keep = lines[:n] if n is not None else [ln for ln in lines if json.loads(ln)["step"] <= self.step]
            if len(keep) < (n or 0):
                raise CheckpointError(f"{mfile} holds {len(keep)} records but the checkpoint was written after "
                                      f"{n}; the log was truncated or edited, so the run cannot resume exactly")
            new = "".join(ln + "\n" for ln in keep)
            if not mfile.exists() or mfile.read_text() != new:
                write_bytes_atomic(mfile, new.encode())  # a kill now must not lose the records kept
            self.history = [json.loads(ln) for ln in keep]
        log.info("resumed from %s at step %d (epoch %d)", path, self.step, self.epoch)

    def _finish(self, model) -> None:
        """Put the final weights in ``model`` (best if ``restore_best``, EMA if on) and export ``model/``."""
        best = self.out_dir / "checkpoints" / "best" if self.out_dir is not None else None
        if self.config.restore_best and best is not None and resolve_dir(best).exists() and \
                self.best_step is not None and self.best_step != self.step:
            best = resolve_dir(best)
            load_state_into(model, load_tensors(best / WEIGHTS_NAME), best / WEIGHTS_NAME)
            if self.ema is not None:
                _, tensors = read_state(best)
                self.ema.load_state_tensors(tensors)
            log.info("restored best weights from step %d (%s=%.6g)", self.best_step, self.monitor, self.best_value)
        if self.ema is not None:
            with torch.no_grad():
                sd = model.state_dict()
                for k in self.ema.names:
                    sd[k].copy_(self.ema.shadow[k])
        model.eval()
        if self.out_dir is not None:
            save_model(model, self.out_dir / "model")
