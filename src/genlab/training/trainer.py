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
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import from_dict, to_dict
from ..data.dataset import TensorDataset
from ..errors import CheckpointError, ConfigError, DataError, GenlabError
from ..io.atomic import atomic_dir, resolve_dir
from ..io.serialize import load_state_into, load_tensors, model_record, save_model, write_model_files, WEIGHTS_NAME
from .callbacks import Callback
from .config import TrainerConfig
from .ema import EMA
from .state import optimizer_from_parts, optimizer_to_parts, read_state, rng_state, set_rng_state, write_state

log = logging.getLogger(__name__)


class TrainingDiverged(GenlabError):
    """A loss became NaN or infinite; the last good state is kept in ``checkpoints/last``."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def select_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; otherwise the named device (checked to exist)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise DataError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"device {name!r} requested but CUDA is not available here; use device=auto or cpu")
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
    def fit(self, model, train: TensorDataset, val: TensorDataset | None = None, *,
            resume: str | Path | None = None) -> TrainResult:
        cfg = self.config
        if train.has_missing and not (train.allow_missing and getattr(model, "supports_missing", False)):
            hint = (f"model {model.registry_name!r} cannot train on missing values; use an ae or vae"
                    if train.allow_missing else "impute them first or drop incomplete rows")
            raise DataError(f"{train.name}: training data contains NaN (missing values); {hint}")
        if tuple(train.sample_shape) != tuple(model.shape):
            raise DataError(f"{train.name}: samples of shape {train.sample_shape} but the model was built for "
                            f"{model.shape}")
        self.device = select_device(cfg.device)
        model.to(self.device)
        self.model = model
        specs = model.configure_optimizers()
        self.specs = specs
        self.cycle = [name for name, spec in specs.items() for _ in range(spec.steps)]
        nb = train.num_batches(cfg.batch_size, cfg.drop_last)
        if nb == 0:
            raise DataError(f"{train.name}: {len(train)} samples give no full batch of {cfg.batch_size}; lower "
                            "trainer.batch_size or set trainer.drop_last=false")
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
        if self.precision == "fp16":
            self.scaler = torch.amp.GradScaler("cuda")
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        log.info("training %s on %s: precision=%s channels_last=%s, %d steps", model.registry_name,
                 self.device, self.precision, self.channels_last, total_iters)

        for cb in self.callbacks:
            cb.on_train_start(self, total_iters)
        t_train, n_seen = 0.0, 0
        t_start = time.perf_counter()
        try:
            while self.epoch < cfg.epochs and self.step < total_iters and not self.stopped_early:
                if self.batch_in_epoch == 0:
                    self.epoch_gen_state = self.gen.get_state()
                else:  # resuming mid-epoch: replay the epoch's permutation
                    self.gen.set_state(self.epoch_gen_state)
                model.train()
                if self.batch_in_epoch == 0:
                    self.epoch_sums, self.epoch_counts = {}, {}
                sums, counts = self.epoch_sums, self.epoch_counts
                t0 = time.perf_counter()
                for batch in train_dev.batches(cfg.batch_size, shuffle=True, generator=self.gen,
                                               drop_last=cfg.drop_last, start=self.batch_in_epoch):
                    out = self._train_step(batch)
                    for k, v in out.items():  # per-key counts: a GAN's d_loss is only logged on D steps
                        sums[k] = sums.get(k, 0.0) + v.detach().float()
                        counts[k] = counts.get(k, 0) + 1
                    n_seen += len(batch["x"])
                    self.step += 1
                    self.batch_in_epoch += 1
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
                t_train += time.perf_counter() - t0
                epoch_done = self.batch_in_epoch >= nb or self.step >= total_iters
                if not epoch_done:
                    break
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
                for cb in self.callbacks:
                    cb.on_epoch_end(self, {**logs, **({f"val/{k}": v for k, v in (val_logs or {}).items()
                                                       if k not in ("step", "epoch", "split")})})
        except KeyboardInterrupt:
            log.warning("interrupted at step %d; saving checkpoints/last for --resume", self.step)
            self._save_checkpoint("last")
            raise
        finally:
            if self.channels_last:
                model.to(memory_format=torch.contiguous_format)
        seconds = time.perf_counter() - t_start
        self._finish(model)
        for cb in self.callbacks:
            cb.on_train_end(self)
        return TrainResult(model=model, out_dir=self.out_dir, step=self.step, epoch=self.epoch,
                           best_value=self.best_value, best_step=self.best_step, stopped_early=self.stopped_early,
                           precision=self.precision, channels_last=self.channels_last,
                           samples_per_sec=n_seen / t_train if t_train > 0 else float("nan"), seconds=seconds,
                           history=self.history)

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
            where = self._save_checkpoint("last")
            kept = f"the last good state is in {where}" if where else "no checkpoint was written (no out_dir)"
            raise TrainingDiverged(f"loss became non-finite at step {self.step} (epoch {self.epoch}, optimizer "
                                   f"{name!r}: {bad}); {kept}; lower the learning rate or set trainer.grad_clip")
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
        self.step_lrs = self._lrs()  # the learning rates this step used
        spec.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return out

    def _lrs(self) -> dict:
        return {f"lr/{n}": s.optimizer.param_groups[0]["lr"] for n, s in self.specs.items()}

    def _log(self, rec: dict) -> None:
        self.history.append(rec)
        if self.out_dir is not None:
            with open(self.out_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")

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
        cfg = self.config
        dev = self.device
        if cfg.precision == "fp16" and dev.type != "cuda":
            raise GenlabError("trainer.precision=fp16 needs a CUDA device; use bf16 or fp32 on this machine")
        if cfg.precision == "bf16" and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise GenlabError("this GPU does not support bf16; use trainer.precision=fp16 or fp32")
        is_image = data.kind == "image"
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
                "optimizers": {}, "schedulers": {}}
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
        return meta, tensors

    def _save_checkpoint(self, name: str) -> Path | None:
        if self.out_dir is None:
            return None
        path = self.out_dir / "checkpoints" / name
        meta, tensors = self._state()
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
        meta, tensors = read_state(path)
        rec = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else None
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
            lines = mfile.read_text().splitlines() if mfile.exists() else []
            keep = [ln for ln in lines if ln.strip() and json.loads(ln)["step"] <= self.step]
            mfile.write_text("".join(ln + "\n" for ln in keep))
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
