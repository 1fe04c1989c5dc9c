"""Run orchestration: data -> model -> Trainer -> run folder (config, metrics, model, figures, report).

``genlab.train`` and the CLI's ``train``/``demo`` commands both go through :func:`train`.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .config import check, from_dict, read_json, to_dict
from .data import TensorDataset, load_dataset
from .errors import CheckpointError, ConfigError, GenlabError
from .io.atomic import write_json_atomic
from .io.report import plot_loss_curves, write_figures, write_report
from .registry import entry_for_record, get_model_entry, model_location
from .training import Trainer, TrainerConfig, TrainResult, seed_everything
from .training.callbacks import Callback, SampleGrid

log = logging.getLogger(__name__)

RUN_CONFIG = "config.json"

#: ``genlab demo``: a conv VAE on the built-in digits, sized to finish in well under 2 minutes on 2 cores.
DEMO_CONFIG = {
    "model": {"latent_dim": 8, "beta": 0.5},
    "trainer": {"epochs": 200, "batch_size": 128},
    "data": {"name": "digits"},
}


@dataclass
class DataConfig:
    """Which data and how to split it. ``standardize``: per-column for tabular data (``null`` = auto: on
    for tabular, off for images). ``limit``: use only the first N samples (quick experiments)."""

    name: str = "digits"
    data_dir: str | None = None
    download: bool | None = None
    val: float = 0.1
    test: float = 0.1
    split_seed: int = 0
    standardize: bool | None = None
    limit: int | None = None

    def __post_init__(self):
        check(0 <= self.val < 1, f"data.val must be in [0, 1), got {self.val}")
        check(0 <= self.test < 1, f"data.test must be in [0, 1), got {self.test}")
        check(self.limit is None or self.limit >= 2, f"data.limit must be >= 2, got {self.limit}")


@dataclass
class RunSpec:
    """A whole run config: model name and its config, trainer and data sections."""

    model: str
    model_config: dict = field(default_factory=dict)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    data: DataConfig = field(default_factory=DataConfig)

    @classmethod
    def from_sections(cls, model: str, sections: dict) -> "RunSpec":
        unknown = sorted(set(sections) - {"model", "trainer", "data"})
        if unknown:
            raise ConfigError(f"unknown config section {unknown[0]!r}; valid sections: data, model, trainer")
        entry = get_model_entry(model)
        mcfg = from_dict(entry.config_cls, sections.get("model") or {}, "model")
        return cls(model=model, model_config=to_dict(mcfg),
                   trainer=from_dict(TrainerConfig, sections.get("trainer"), "trainer"),
                   data=from_dict(DataConfig, sections.get("data"), "data"))

    def to_dict(self) -> dict:
        return {"model": self.model, "sections": {"model": self.model_config, "trainer": to_dict(self.trainer),
                                                  "data": to_dict(self.data)}}


@dataclass
class Splits:
    train: TensorDataset
    val: TensorDataset
    test: TensorDataset


@dataclass
class Run:
    """The outcome of :func:`train`."""

    model: torch.nn.Module
    spec: RunSpec
    splits: Splits
    result: TrainResult | None  # None: a resumed run that had already finished (nothing was done)
    out_dir: Path | None
    metrics: dict

    @property
    def report(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / "report.html"


def prepare_data(cfg: DataConfig, data: TensorDataset | None = None) -> Splits:
    """Load (unless given), split deterministically and standardise tabular data by train statistics."""
    ds = data if data is not None else load_dataset(cfg.name, data_dir=cfg.data_dir, download=cfg.download)
    if cfg.limit is not None and cfg.limit < len(ds):
        ds = ds.subset(torch.arange(cfg.limit))
    train, val, test = ds.split(cfg.val, cfg.test, seed=cfg.split_seed)
    standardize = cfg.standardize if cfg.standardize is not None else ds.kind == "tabular"
    if standardize:
        train, val, test = train.standardized(), val.standardized(train), test.standardized(train)
    return Splits(train, val, test)


def build_model(spec: RunSpec, data_info: dict, networks: dict | None = None):
    """The model ``spec`` names, with fresh weights; ``networks``: user-supplied networks (see ``train``)."""
    entry = get_model_entry(spec.model)
    cfg = from_dict(entry.config_cls, spec.model_config, "model")
    return entry.cls(cfg, data_info) if networks is None else entry.cls(cfg, data_info, networks=networks)


@torch.no_grad()
def test_metrics(model, splits: Splits, *, iwae_k: int = 100, seed: int = 0) -> dict:
    """Held-out numbers for a run: reconstruction MSE vs PCA with as many components as the latent size,
    and for VAEs the test ELBO and IWAE log-likelihood (nats per sample)."""
    from sklearn.decomposition import PCA

    model.eval()
    test = splits.test if len(splits.test) else splits.val
    if not len(test):
        return {}
    out: dict = {"test_samples": len(test)}
    x = test.x.to(model.device)
    if not getattr(model, "can_reconstruct", True):  # GANs: no encoder, no reconstruction figures
        return out
    cond = getattr(model, "conditional", False) and test.y is not None
    if cond:  # cvae: reconstruct with the true labels
        rec = torch.cat([model.reconstruct(xb, yb) for xb, yb in zip(x.split(512), test.y.split(512))])
    else:
        rec = torch.cat([model.reconstruct(xb) for xb in x.split(512)])
    observed = ~torch.isnan(x)  # data with missing entries (imputation): MSE over the observed ones, no PCA
    complete = bool(observed.all()) and not splits.train.has_missing
    out["test_mse"] = float(((rec - x) ** 2).mean() if complete else ((rec - x) ** 2)[observed].mean())
    k = getattr(model, "latent_dim", None)
    tr = splits.train.x.flatten(1).cpu().numpy().astype(np.float64)
    if k is not None and k < min(tr.shape) and complete:
        pca = PCA(n_components=k, svd_solver="full").fit(tr)
        te = test.x.flatten(1).cpu().numpy().astype(np.float64)
        out["pca_mse"] = float(np.mean((pca.inverse_transform(pca.transform(te)) - te) ** 2))
        out["mse_vs_pca"] = out["test_mse"] / out["pca_mse"]
    if hasattr(model, "log_likelihood"):
        # conditional models: log p(x | y) with the true labels (the label-marginal log p(x) costs K times more;
        # call model.log_likelihood(x) without labels for it)
        g = torch.Generator().manual_seed(seed)
        kw, tag = ({"labels": test.y.to(model.device)}, "_given_y") if cond else ({}, "")
        out[f"test_elbo{tag}"] = float(model.elbo(x, generator=g, **kw).mean())
        out[f"test_iwae_k{iwae_k}{tag}"] = float(model.log_likelihood(x, k=iwae_k, generator=g, **kw).mean())
    return out


def _write_run_outputs(run_dir: Path, model, splits: Splits, spec: RunSpec, result: TrainResult,
                       metrics: dict) -> None:
    from .io.report import read_metrics

    test_x = (splits.test if len(splits.test) else splits.val).x
    figs = write_figures(model, test_x, run_dir, seed=spec.trainer.seed)
    history = read_metrics(run_dir / "metrics.jsonl")
    if plot_loss_curves(history, run_dir / "loss_curves.png"):
        figs["Loss curves"] = "loss_curves.png"
    write_json_atomic(run_dir / "final_metrics.json", metrics)
    write_report(run_dir, title=f"genlab run: {spec.model} on {spec.data.name}", metrics=metrics, figures=figs,
                 config=spec.to_dict())


#: Trainer keys a resumed run may change (they do not change what was already trained); anything else in the
#: model, data or trainer sections is fixed by the checkpoint.
RESUMABLE_KEYS = ("epochs", "max_steps", "log_every", "checkpoint_every", "keep_step_checkpoints", "val_every",
                  "sample_every", "patience", "min_delta", "restore_best", "device")


def _read_run_config(run_dir: Path) -> dict:
    cfg_file = run_dir / RUN_CONFIG
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"--resume {run_dir}: that is a file; give the run folder written by genlab train")
    if not cfg_file.is_file():
        raise CheckpointError(f"{cfg_file} is missing; --resume takes a run folder written by genlab train")
    saved = read_json(cfg_file, error=CheckpointError, fix="the run config is corrupt or truncated: restore it "
                      "or start a new run")
    if not isinstance(saved, dict) or not isinstance(saved.get("model"), str) or \
            not isinstance(saved.get("sections"), dict):
        raise CheckpointError(f"{cfg_file} is not a genlab run config (needs 'model' and 'sections'); resume a "
                              "run folder written by genlab train, or start a new run")
    return saved


def _leaves(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _resume_sections(saved: dict, given: dict | None) -> dict:
    """The saved sections with the allowed changes of ``given`` applied; any other change is refused."""
    sections = json.loads(json.dumps(saved))
    if not given:
        return sections
    old = _leaves(saved)
    for key, value in _leaves(given).items():
        if old.get(key, object()) == value:
            continue
        section, _, name = key.partition(".")
        if section != "trainer" or name not in RESUMABLE_KEYS:
            raise ConfigError(f"{key} cannot change when resuming (the checkpoint was trained with "
                              f"{key}={json.dumps(old.get(key))}); resumable: "
                              f"{', '.join('trainer.' + k for k in RESUMABLE_KEYS)}; start a new run with --out")
        sections.setdefault("trainer", {})[name] = value
    return sections


def _finished(run_dir: Path, trainer_cfg: TrainerConfig) -> dict | None:
    """The last checkpoint's state if that run already ended under ``trainer_cfg`` and wrote its outputs."""
    from .io.atomic import resolve_dir
    from .training.state import read_state

    last = resolve_dir(run_dir / "checkpoints" / "last")
    if not (last / "trainer_state.json").is_file() or not (run_dir / "final_metrics.json").is_file() \
            or not (run_dir / "model").is_dir():
        return None
    meta, _ = read_state(last)
    try:
        done = meta["stopped_early"] or meta["epoch"] >= trainer_cfg.epochs or (
            trainer_cfg.max_steps is not None and meta["step"] >= trainer_cfg.max_steps)
    except (KeyError, TypeError):
        raise CheckpointError(f"{last / 'trainer_state.json'} is incomplete (no step/epoch); resume from another "
                              "checkpoint or start the run again") from None
    return meta if done else None


def train(model: str | None = None, data: str | TensorDataset | None = None, *, out: str | Path | None = None,
          config: dict | None = None, callbacks: list[Callback] | tuple = (), resume: str | Path | None = None,
          figures: bool = True, overwrite: bool = False, networks: dict | None = None) -> Run:
    """Train a registered model and (with ``out``) write a run folder.

    Parameters
    ----------
    model : str
        Registered model name (see :func:`genlab.list_models`). Not needed with ``resume``.
    data : str or TensorDataset, optional
        Built-in name or path (overrides ``config["data"]["name"]``), or an in-memory data set.
    out : path, optional
        Run folder to write: ``config.json``, ``metrics.jsonl``, ``checkpoints/``, ``model/``, figures,
        ``final_metrics.json`` and ``report.html``. It must not exist, be empty, or (with ``overwrite``) hold
        a genlab run. Everything is validated before it is created; a run that fails before its first
        checkpoint removes what it wrote.
    config : dict, optional
        Sections ``model`` (model config), ``trainer`` (:class:`TrainerConfig`) and ``data`` (:class:`DataConfig`).
        With ``resume``: changes to the run's own config, limited to :data:`RESUMABLE_KEYS` (e.g. a larger
        ``trainer.epochs`` extends a finished run).
    resume : path, optional
        A run folder to continue in place from its ``checkpoints/last``. Resuming a finished run is a no-op
        (``Run.result`` is ``None``) unless ``config`` raises ``trainer.epochs``/``max_steps``.
    overwrite : bool
        Replace the genlab run at ``out``: only genlab's own files are removed (never a folder genlab did not
        write; a user's own files in it are kept).
    networks : dict of nn.Module, optional
        Your own networks in place of the model's, by slot (``{"encoder": enc, "decoder": dec}`` for the ae and
        vae families, ``{"generator": g, "discriminator": d}`` for GANs; output conventions in
        docs/models/adding.md), checked with a dry run. The run folder stores their weights and lists them in
        ``config.json``; reload with ``genlab.load(RUN, networks=...)`` (fresh instances) and resume with the
        same argument. For a model that reloads anywhere, subclass it and override ``build_networks``.

    A run folder is locked while it is written: a second writer gets :class:`~genlab.io.runfolder.RunLocked`.
    """
    from .io.runfolder import RunLock, check_out_dir, clear_run, remove_stale_temps, write_marker

    dataset = data if isinstance(data, TensorDataset) else None
    if resume is not None:
        run_dir = Path(resume)
        if out is not None and Path(out).resolve() != run_dir.resolve():
            raise ConfigError(f"--resume continues {run_dir} in place, but --out {out} names another folder; drop "
                              "--out (copy the run folder first to branch it)")
        saved = _read_run_config(run_dir)
        if dataset is not None or data is not None:
            raise ConfigError("resume uses the run's own data; drop the data argument (--data) when resuming")
        sections = _resume_sections(saved["sections"], config)
        entry_for_record(saved["model"], saved, where=str(run_dir / RUN_CONFIG))  # imports an external model's module
        if saved.get("user_networks") and networks is None:
            names = ", ".join(map(str, saved["user_networks"]))
            raise ConfigError(f"{run_dir} was trained with user-supplied networks ({names}); resume it in Python with "
                              "genlab.train(resume=RUN, networks={...}) built as for training")
        spec = RunSpec.from_sections(saved["model"], sections)
        out = run_dir
    else:
        if model is None:
            raise ConfigError("no model name given; pick one of genlab.list_models()")
        sections = json.loads(json.dumps(config or {}))
        if isinstance(data, (str, Path)):
            sections.setdefault("data", {})["name"] = str(data)
        elif dataset is not None:
            sections.setdefault("data", {})["name"] = dataset.name
        spec = RunSpec.from_sections(model, sections)
    out_dir = Path(out) if out is not None else None
    if out_dir is not None and resume is None:
        check_out_dir(out_dir, overwrite=overwrite)
    splits = prepare_data(spec.data, dataset)
    seed_everything(spec.trainer.seed)
    net = build_model(spec, splits.train.info(), networks)
    callbacks = list(callbacks)
    every = spec.trainer.sample_every
    if every is None:
        every = 1 if not net.can_reconstruct else max(1, spec.trainer.epochs // 10)
    if out_dir is not None and every and net.kind == "image" and net.can_sample:
        callbacks.append(SampleGrid(out_dir, every, seed=spec.trainer.seed))
    trainer = Trainer(spec.trainer, out_dir=out_dir, callbacks=callbacks)
    trainer.check(net, splits.train, splits.val)  # device, precision, data: refused before anything is written
    if out_dir is None:
        return _train_and_finish(trainer, net, spec, splits, None, resume=False, figures=figures)
    created = not out_dir.exists()
    with RunLock(out_dir):
        if resume is not None:
            remove_stale_temps(out_dir)
            done = _finished(out_dir, spec.trainer)
            if done is not None:
                from .io import load
                log.warning("%s already finished at epoch %d (step %d); nothing to do (raise trainer.epochs to "
                            "extend it)", out_dir, done["epoch"], done["step"])
                metrics = json.loads((out_dir / "final_metrics.json").read_text())
                return Run(model=load(out_dir, networks=networks), spec=spec, splits=splits, result=None,
                           out_dir=out_dir, metrics=metrics)
            if sections != saved["sections"]:
                write_json_atomic(out_dir / RUN_CONFIG, {**saved, **spec.to_dict()})
            try:
                return _train_and_finish(trainer, net, spec, splits, out_dir, resume=True, figures=figures)
            except KeyboardInterrupt:
                raise TrainingInterrupted(out_dir, trainer.step) from None
        check_out_dir(out_dir, overwrite=overwrite)  # again, now that we hold the lock
        if any(e.name != ".genlab.lock" for e in out_dir.iterdir()):
            clear_run(out_dir)
        write_marker(out_dir)
        where = {**model_location(net), **({"user_networks": list(net.user_networks)} if net.user_networks else {})}
        write_json_atomic(out_dir / RUN_CONFIG, {"genlab_version": __version__, **spec.to_dict(), **where,
                                                 "data_info": splits.train.info()})
        try:
            return _train_and_finish(trainer, net, spec, splits, out_dir, resume=False, figures=figures)
        except (GenlabError, KeyboardInterrupt) as e:
            from .io.atomic import resolve_dir
            if not resolve_dir(out_dir / "checkpoints" / "last").exists():  # nothing worth keeping was written
                clear_run(out_dir)
                (out_dir / ".genlab.lock").unlink(missing_ok=True)
                if created and not any(out_dir.iterdir()):
                    out_dir.rmdir()
                if isinstance(e, KeyboardInterrupt):
                    raise TrainingInterrupted(None, trainer.step) from None
            elif isinstance(e, KeyboardInterrupt):
                raise TrainingInterrupted(out_dir, trainer.step) from None
            raise


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run; ``run_dir`` is the folder to ``--resume`` (``None``: nothing was saved)."""

    def __init__(self, run_dir: Path | None, step: int):
        super().__init__(f"interrupted at step {step}")
        self.run_dir, self.step = run_dir, step


def _train_and_finish(trainer: Trainer, net, spec: RunSpec, splits: Splits, out_dir: Path | None, *, resume: bool,
                      figures: bool) -> Run:
    t0 = time.perf_counter()
    result = trainer.fit(net, splits.train, splits.val, resume=(out_dir if resume else None))
    metrics = {"model": spec.model, "data": spec.data.name, "steps": result.step, "epochs": result.epoch,
               "train_seconds": round(time.perf_counter() - t0, 2),
               "samples_per_sec": round(result.samples_per_sec, 1), "precision": result.precision,
               "channels_last": result.channels_last, "device": str(trainer.device)}
    final = result.final
    metrics.update({f"val_{k}": v for k, v in final.items() if k not in ("step", "epoch", "split")})
    if result.best_value is not None:
        metrics[f"best_{trainer.monitor.replace('/', '_')}"] = result.best_value
        metrics["best_step"] = result.best_step
    metrics.update(test_metrics(net, splits, seed=spec.trainer.seed))
    if out_dir is not None and figures:
        _write_run_outputs(out_dir, net, splits, spec, result, metrics)
    return Run(model=net, spec=spec, splits=splits, result=result, out_dir=out_dir, metrics=metrics)
