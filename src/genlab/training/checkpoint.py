"""The Trainer's checkpoints: what a resume needs, written atomically, and read back exactly.

A checkpoint folder holds ``config.json`` + ``model.safetensors`` (so ``genlab.load`` reads it) and
``trainer_state.json`` + ``trainer_state.safetensors``: optimizer and scheduler states, Python/NumPy/torch RNG
states, the shuffling generator (at the start of the epoch and now), step, epoch, position in the epoch,
partial epoch sums, early-stopping state and how many log records existed. A run of several processes
(torchrun) records its ``world_size`` and every rank's RNG states (``rank<R>/rng/...``); rank 0 writes the
folder, and a checkpoint resumes only with the world size that wrote it.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch

from ..config import from_saved, to_dict
from ..errors import CheckpointError, GenlabError
from ..io.atomic import atomic_dir, json_safe, resolve_dir, write_bytes_atomic
from ..io.serialize import WEIGHTS_NAME, load_state_into, load_tensors, model_record, write_model_files
from .ema import EMA
from .state import optimizer_from_parts, optimizer_to_parts, read_state, rng_state, set_rng_state, write_state

log = logging.getLogger(__name__)


def all_finite(tensors) -> bool:
    """True when every floating tensor in ``tensors`` is finite (one reduction per dtype/device group)."""
    floats = [t.detach() for t in tensors if t.is_floating_point() and t.numel()]
    if not floats:
        return True
    norms = torch._foreach_norm(floats, 1)
    return bool(torch.isfinite(torch.stack([n.float().cpu() for n in norms])).all())


def trainer_state(trainer) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(JSON-able meta, tensors)`` of everything a resume needs besides the weights."""
    t = trainer
    meta = {"step": t.step, "epoch": t.epoch, "batch_in_epoch": t.batch_in_epoch,
            "best_value": t.best_value, "best_step": t.best_step, "bad_epochs": t.bad_epochs,
            "stopped_early": t.stopped_early, "precision": t.precision,
            "channels_last": t.channels_last, "trainer_config": to_dict(t.config),
            "epoch_sums": {k: float(v) for k, v in t.epoch_sums.items()}, "epoch_counts": t.epoch_counts,
            "log_lines": len(t.history), "optimizers": {}, "schedulers": {},
            "budget_seconds": t.budget_seconds(),
            # the EMA in use, as resolved (trainer.ema_decay='auto' follows the model's default_ema, which a later
            # genlab version may change: a resume keeps the one the run started with)
            "ema": None if t.ema is None else {"decay": t.ema.decay, "rampup": t.ema.rampup}}
    tensors: dict[str, torch.Tensor] = {"gen/epoch": t.epoch_gen_state.clone(), "gen/current": t.gen.get_state()}
    for name, spec in t.specs.items():
        m, parts = optimizer_to_parts(name, spec.optimizer)
        meta["optimizers"][name] = m
        tensors.update(parts)
        meta["schedulers"][name] = {k: v for k, v in spec.scheduler.state_dict().items() if k != "lr_lambdas"}
    rmeta, rt = rng_state()
    meta["rng"] = rmeta
    tensors.update(rt)
    dist = getattr(t, "dist", None)
    if dist is not None:  # collective: every rank's RNG streams, so each rank resumes its own noise
        meta["world_size"] = dist.world_size
        meta["rng_ranks"] = {}
        for r, (m, ts) in enumerate(dist.gather_rng(rmeta, rt)):
            if r:
                meta["rng_ranks"][str(r)] = m
                tensors.update({f"rank{r}/{k}": v for k, v in ts.items()})
    if t.ema is not None:
        tensors.update(t.ema.state_tensors())
    if t.scaler is not None:
        meta["scaler"] = {k: (float(v) if isinstance(v, (int, float)) else v) for k, v in t.scaler.state_dict().items()}
    return json_safe(meta), tensors


def save_checkpoint(trainer, name: str) -> Path | None:
    """Write ``checkpoints/<name>`` atomically (``None`` without a run folder); a non-finite state (weights,
    optimizer, EMA) is never written, so it can never replace a finite checkpoint."""
    from .trainer import TrainingDiverged

    if trainer.out_dir is None and getattr(trainer, "dist", None) is None:
        return None
    meta, tensors = trainer_state(trainer)  # under torchrun a collective: every rank calls it, rank 0 writes
    if trainer.out_dir is None:
        return None
    path = trainer.out_dir / "checkpoints" / name
    if not (all_finite(trainer.model.state_dict().values()) and all_finite(tensors.values())):
        raise TrainingDiverged(f"the training state at step {trainer.step} holds NaN or infinite values; "
                               f"refusing to write it over {path}; lower the learning rate or set "
                               "trainer.grad_clip")
    with atomic_dir(path) as tmp:
        write_model_files(trainer.model, tmp)
        write_state(tmp, meta, tensors)
    return path


def prune_step_checkpoints(trainer) -> None:
    if trainer.out_dir is None:  # no run folder (or a rank > 0 under torchrun): nothing was written
        return
    steps = sorted((trainer.out_dir / "checkpoints").glob("step-*"))
    for old in steps[:-trainer.config.keep_step_checkpoints]:
        shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(trainer, path: Path) -> None:
    """Restore ``trainer`` (and its model, optimizers, RNGs, log) from a run folder's ``checkpoints/last`` or a
    checkpoint folder; every defect is a one-line :class:`CheckpointError`."""
    path = resolve_dir(path)
    if (path / "checkpoints" / "last").exists() or (path / "checkpoints" / "last.old").exists():
        path = resolve_dir(path / "checkpoints" / "last")
    elif not (path / "trainer_state.json").exists():
        raise CheckpointError(f"{path} has no checkpoints/last to resume from (the run stopped before its "
                              "first checkpoint); start it again with --overwrite")
    try:
        restore(trainer, path)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        if isinstance(e, GenlabError):
            raise
        raise CheckpointError(f"{path}: the checkpoint is incomplete or corrupt ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else 'bad value'}); resume from another "
                              "checkpoint (checkpoints/step-N) or start the run again") from None


def _same_config(model, saved) -> bool:
    """Whether a checkpoint's recorded model config is the model's (keys a config class lists as moved are
    ignored, so checkpoints of older genlab versions still match)."""
    if not isinstance(saved, dict):
        return False
    try:
        return to_dict(from_saved(type(model.config), saved, "model")) == model_record(model)["config"]
    except GenlabError:
        return False


def _resume_ema(t, meta: dict) -> None:
    """With ``trainer.ema_decay='auto'``, resume with the EMA the checkpoint recorded (``meta['ema']``) when the
    model's ``default_ema`` resolves to another one now (a newer genlab measured another default): the run goes on
    as it started. An explicit ``ema_decay`` (or ``ema_rampup``) is the user's choice and is kept; checkpoints
    written before the EMA was recorded resume with the EMA resolved now, as before."""
    if t.config.ema_decay != "auto" or "ema" not in meta:
        return
    rec = meta["ema"]
    want = (None, None) if rec is None else t.config.auto_ema(
        (float(rec["decay"]), None if rec["rampup"] is None else float(rec["rampup"])))
    have = (None, None) if t.ema is None else (t.ema.decay, t.ema.rampup)
    if want == have:
        return
    log.warning("trainer.ema_decay=auto: the run started with %s, the model's default_ema is now %s; resuming with "
                "the run's own (set trainer.ema_decay to choose)", _ema_text(*want), _ema_text(*have))
    t.ema = EMA(t.model, *want) if want[0] else None


def _ema_text(decay, rampup) -> str:
    if decay is None:
        return "no EMA"
    return f"EMA decay {decay:g}" + ("" if rampup is None else f" ramp-up {rampup:g}")


def restore(trainer, path: Path) -> None:
    from .distributed import check_world_size

    t = trainer
    meta, tensors = read_state(path)
    check_world_size(meta.get("world_size"), path)
    cfg = path / "config.json"
    if not cfg.is_file():
        raise CheckpointError(f"{cfg} is missing: the checkpoint is incomplete; resume from another checkpoint "
                              "(checkpoints/step-N) or start the run again")
    try:
        rec = json.loads(cfg.read_text())
    except (ValueError, UnicodeDecodeError) as e:  # damaged, not another model's: say so
        why = " ".join(str(e).split())[:80] or type(e).__name__
        raise CheckpointError(f"{cfg} is corrupt ({why}): the checkpoint is damaged; resume from another "
                              "checkpoint (checkpoints/step-N) or start the run again") from None
    own = model_record(t.model)
    if not isinstance(rec, dict) or rec.get("model") != own["model"] or not _same_config(t.model, rec.get("config")):
        raise CheckpointError(f"{path} was written for a different model/config than the one being trained; "
                              "resume with the run's own config (genlab train --resume RUN)")
    load_state_into(t.model, load_tensors(path / WEIGHTS_NAME), path / WEIGHTS_NAME)
    for name, spec in t.specs.items():
        if name not in meta["optimizers"]:
            raise CheckpointError(f"{path}: no state for optimizer {name!r}; the checkpoint is from another model")
        optimizer_from_parts(name, spec.optimizer, meta["optimizers"][name], tensors)
        sd = spec.scheduler.state_dict()
        sd.update(meta["schedulers"][name])
        spec.scheduler.load_state_dict(sd)
    t.step, t.epoch, t.batch_in_epoch = meta["step"], meta["epoch"], meta["batch_in_epoch"]
    t.best_value, t.best_step = meta["best_value"], meta["best_step"]
    t.bad_epochs, t.stopped_early = meta["bad_epochs"], meta["stopped_early"]
    t.budget_before = float(meta.get("budget_seconds", 0.0))  # trainer.max_seconds counts the whole run
    t.precision, t.channels_last = meta["precision"], meta["channels_last"]
    t.epoch_gen_state = tensors["gen/epoch"]
    t.epoch_sums = {k: torch.tensor(v, dtype=torch.float32, device=t.device) for k, v in meta["epoch_sums"].items()}
    t.epoch_counts = dict(meta["epoch_counts"])
    t.gen.set_state(tensors["gen/current"])
    _resume_ema(t, meta)
    if t.ema is not None:
        t.ema.load_state_tensors(tensors)
    rank = t.dist.rank if getattr(t, "dist", None) is not None else 0
    if rank:
        prefix = f"rank{rank}/"
        set_rng_state(meta["rng_ranks"][str(rank)],
                      {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    else:
        set_rng_state(meta["rng"], tensors)
    if t.out_dir is not None:  # drop log records written after the checkpoint
        mfile = t.out_dir / "metrics.jsonl"
        t.out_dir.mkdir(parents=True, exist_ok=True)
        lines = [ln for ln in (mfile.read_text().splitlines() if mfile.exists() else []) if ln.strip()]
        n = meta.get("log_lines")
        keep = lines[:n] if n is not None else [ln for ln in lines if json.loads(ln)["step"] <= t.step]
        if len(keep) < (n or 0):
            raise CheckpointError(f"{mfile} holds {len(keep)} records but the checkpoint was written after "
                                  f"{n}; the log was truncated or edited, so the run cannot resume exactly")
        new = "".join(ln + "\n" for ln in keep)
        if not mfile.exists() or mfile.read_text() != new:
            write_bytes_atomic(mfile, new.encode())  # a kill now must not lose the records kept
        t.history = [json.loads(ln) for ln in keep]
    log.info("resumed from %s at step %d (epoch %d)", path, t.step, t.epoch)


def restore_best(trainer, model) -> bool:
    """Load the best state into ``model`` (and the EMA): from ``checkpoints/best`` of the run folder, or from the
    in-memory copy a Trainer without a run folder keeps. False when there is none."""
    t = trainer
    if t.out_dir is not None:
        best = resolve_dir(t.out_dir / "checkpoints" / "best")
        if not best.exists():
            return False
        load_state_into(model, load_tensors(best / WEIGHTS_NAME), best / WEIGHTS_NAME)
        if t.ema is not None:
            _, tensors = read_state(best)
            t.ema.load_state_tensors(tensors)
        return True
    if t.best_memory is None:
        return False
    weights, ema = t.best_memory
    model.load_state_dict(weights)
    if t.ema is not None:
        t.ema.load_state_tensors(ema)
    return True


def keep_best(trainer) -> None:
    """Keep the current state as the best: ``checkpoints/best`` in the run folder, else a copy in memory (so the
    exported model is the same with or without a run folder)."""
    t = trainer
    if t.out_dir is not None or getattr(t, "dist", None) is not None:
        save_checkpoint(t, "best")  # under torchrun a collective: rank 0 writes, the others keep a copy in memory
    if t.out_dir is not None:
        return
    weights = {k: v.detach().clone() for k, v in t.model.state_dict().items()}
    ema = {k: v.clone() for k, v in t.ema.state_tensors().items()} if t.ema is not None else {}
    t.best_memory = (weights, ema)
