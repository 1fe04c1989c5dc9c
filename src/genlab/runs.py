"""Run orchestration: data -> model -> Trainer -> run folder (config, metrics, model, figures, report).

``genlab.train`` and the CLI's ``train``/``demo`` commands both go through :func:`train`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .config import check, from_dict, from_saved, read_json, to_dict
from .data import Normalization, TensorDataset, load_dataset
from .errors import CheckpointError, ConfigError, DataError, GenlabError
from .io.atomic import write_json_atomic
from .io.report import write_figures, write_loss_curves, write_report
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
    """Which data and how to split it.

    ``name``: a built-in data set or a path (folder, ``.npz``, ``.npy``, ``.csv``): the training data.
    ``val`` / ``test``: fractions of it held out for validation / testing (a seeded permutation from
    ``split_seed``); ``null`` = 0.1, or 0 when the split comes from its own file.
    ``val_data`` / ``test_data``: explicit validation / test sets (built-in name or path) instead of a fraction;
    they must match the training data's kind, sample shape and classes. ``standardize``: per-column for tabular
    data (``null`` = auto: on for tabular, off for images), by the training split's statistics. ``limit``: use
    only the first N samples of the training data (quick experiments; explicit val/test sets are kept whole).
    ``pair``: make a paired (source -> target) image data set on the fly for image-to-image models
    (:func:`genlab.data.paired.make_pairs`: ``downsample:K``, ``grey``, ``mask:box``, ``mask:free``, ``edges``).
    ``window`` / ``stride``: cut sequence data into windows of ``window`` steps every ``stride`` steps, the
    validation/test windows from the end of each series (:func:`genlab.data.sequence.split_windows`).
    """

    name: str = "digits"
    data_dir: str | None = None
    download: bool | None = None
    val: float | None = None
    test: float | None = None
    split_seed: int = 0
    standardize: bool | None = None
    limit: int | None = None
    val_data: str | None = None
    test_data: str | None = None
    pair: str | None = None
    window: int | None = None
    stride: int | None = None

    def __post_init__(self):
        for role in ("val", "test"):
            frac, path = getattr(self, role), getattr(self, f"{role}_data")
            check(path is None or (isinstance(path, str) and path.strip() != ""),
                  f"data.{role}_data must be a data set name or path, got {path!r}")
            check(path is None or not frac, f"data.{role}={frac} and data.{role}_data={path!r} both give the "
                  f"{role} split; give one of them")
            if frac is None:
                setattr(self, role, 0.0 if path is not None else 0.1)
        check(0 <= self.val < 1, f"data.val must be in [0, 1), got {self.val}")
        check(0 <= self.test < 1, f"data.test must be in [0, 1), got {self.test}")
        check(self.limit is None or self.limit >= 2, f"data.limit must be >= 2, got {self.limit}")


@dataclass
class FinalEvalConfig:
    """The held-out evaluation at the end of a run (the ``test_*`` numbers of ``final_metrics.json``), on the
    test split (the validation split when the test split is empty).

    ``enabled``: ``false`` skips it. ``iwae_k``: importance samples of the IWAE log-likelihood bound
    (``test_iwae_k<k>``) for models with a likelihood; ``0`` skips that bound (the one-sample ELBO is still
    reported). At most 100000 (the log weights of a batch are held in memory).
    """

    enabled: bool = True
    iwae_k: int = 100

    def __post_init__(self):
        check(0 <= self.iwae_k <= 100_000, f"test.iwae_k must be in [0, 100000] (0 = skip the IWAE bound), "
              f"got {self.iwae_k}")


#: sections of a run config
SECTIONS = ("data", "model", "test", "trainer")


@dataclass
class RunSpec:
    """A whole run config: model name and its config, trainer, data and end-of-run test sections."""

    model: str
    model_config: dict = field(default_factory=dict)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    test: FinalEvalConfig = field(default_factory=FinalEvalConfig)

    @classmethod
    def from_sections(cls, model: str, sections: dict, *, saved: bool = False) -> "RunSpec":
        """``saved``: the sections were read back from a run folder (:func:`genlab.config.from_saved`)."""
        unknown = sorted(set(sections) - set(SECTIONS), key=str)
        if unknown:
            raise ConfigError(f"unknown config section {unknown[0]!r}; valid sections: {', '.join(SECTIONS)}")
        entry = get_model_entry(model)
        mcfg = (from_saved if saved else from_dict)(entry.config_cls, sections.get("model") or {}, "model")
        return cls(model=model, model_config=to_dict(mcfg),
                   trainer=from_dict(TrainerConfig, sections.get("trainer"), "trainer"),
                   data=from_dict(DataConfig, sections.get("data"), "data"),
                   test=from_dict(FinalEvalConfig, sections.get("test"), "test"))

    def to_dict(self) -> dict:
        return {"model": self.model, "sections": {"model": self.model_config, "trainer": to_dict(self.trainer),
                                                  "data": to_dict(self.data), "test": to_dict(self.test)}}


@dataclass
class Splits:
    """The train / validation / test data of a run, and where each came from (:func:`data_source` records:
    origin, name, size and checksum; what a run folder records to rebuild and check them)."""

    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    sources: dict = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


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


def fingerprint(ds: TensorDataset) -> str:
    """SHA-256 of a data set's values as loaded (sample shape, float32 samples, int64 labels, class names):
    equal fingerprints mean the same data, whatever file format carried it."""
    h = hashlib.sha256()
    h.update(json.dumps({"shape": list(ds.x.shape), "labels": ds.y is not None, "classes": ds.classes}).encode())
    h.update(memoryview(ds.x.detach().cpu().contiguous().numpy()).cast("B"))
    if ds.y is not None:
        h.update(memoryview(ds.y.detach().cpu().contiguous().numpy()).cast("B"))
    return h.hexdigest()


def data_source(ds: TensorDataset, spec: str | None) -> dict:
    """What a run folder records about one data source: ``origin`` (``builtin``, ``path`` or ``memory``: an
    in-memory data set, which the folder cannot rebuild), ``name``, the absolute ``path`` of a file source,
    size and :func:`fingerprint`."""
    from .data import _builtin_name

    rec = {"origin": "memory", "name": ds.name, "n": len(ds), "sha256": fingerprint(ds)}
    if spec is not None:
        rec["name"] = str(spec)
        if _builtin_name(str(spec)) is not None:
            rec["origin"] = "builtin"
        else:
            from .data.sequence import absolute_spec  # series:[layout:]PATH keeps its prefix
            rec.update(origin="path", path=absolute_spec(str(spec)))
    return rec


def _load_source(role: str, spec: str, cfg: DataConfig, recorded: dict | None) -> tuple[TensorDataset, str]:
    """Load a built-in or file source; a recorded absolute path is preferred (a run opened from another folder)."""
    from .data.sequence import spec_exists
    if recorded and recorded.get("origin") == "path" and isinstance(recorded.get("path"), str) \
            and spec_exists(recorded["path"]):
        spec = recorded["path"]
    return load_dataset(spec, data_dir=cfg.data_dir, download=cfg.download), spec


def _check_source(role: str, ds: TensorDataset, rec: dict, recorded: dict | None, run: str) -> None:
    """Refuse data that differs from what the run recorded (a changed file, another data set passed in)."""
    if not recorded or "sha256" not in recorded:
        return  # a run written before sources were recorded: nothing to check against
    if rec["sha256"] != recorded["sha256"]:
        where = recorded.get("path") or recorded.get("name")
        raise DataError(f"{run}: the {role} data {where!r} now holds different values than the run was trained "
                        f"on ({len(ds)} samples, sha256 {rec['sha256'][:12]}; recorded {recorded.get('n')} "
                        f"samples, sha256 {str(recorded['sha256'])[:12]}); restore the original data")


def _matched(role: str, ds: TensorDataset, train: TensorDataset) -> TensorDataset:
    """An explicit val/test set checked against the training data (kind, sample shape, labels, classes) and
    given the training data's class names."""
    what = f"the {role} data {ds.name!r}"
    if ds.kind != train.kind or ds.sample_shape != train.sample_shape:
        raise DataError(f"{what} holds {ds.kind} samples of shape {ds.sample_shape} but the training data "
                        f"{train.name!r} holds {train.kind} samples of shape {train.sample_shape}; give {role} "
                        "data of the training data's kind and shape")
    if (ds.y is None) != (train.y is None):
        has, lacks = (what, f"the training data {train.name!r}") if train.y is None else \
            (f"the training data {train.name!r}", what)
        raise DataError(f"{has} has labels but {lacks} has none; give labels to both or to neither")
    if ds.y is not None:
        k = len(train.classes)
        if list(ds.classes) != list(train.classes[:len(ds.classes)]) or len(ds.classes) > k:
            raise DataError(f"{what} has classes {_names(ds.classes)} but the training data has "
                            f"{_names(train.classes)}; give {role} data labelled with the training classes")
        ds = TensorDataset(ds.x, ds.y, norm=ds.norm, name=ds.name, classes=train.classes, allow_empty=True,
                           allow_missing=ds.allow_missing, extras=ds.extras)
    return ds


def _names(classes) -> str:
    shown = [str(c)[:20] for c in classes[:6]]
    return "[" + ", ".join(shown) + (", ..." if len(classes) > 6 else "") + "]"


def _paired(ds: TensorDataset, cfg: DataConfig, offset: int) -> TensorDataset:
    """``ds`` made into (source, target[, mask]) pairs by ``cfg.pair`` (seeded by ``split_seed + offset``)."""
    if cfg.pair is None:
        return ds
    from .data.paired import make_pairs
    return make_pairs(ds, cfg.pair, seed=cfg.split_seed + offset)


def prepare_data(cfg: DataConfig, data: TensorDataset | None = None, *, val: TensorDataset | None = None,
                 test: TensorDataset | None = None, recorded: dict | None = None, run: str = "run") -> Splits:
    """The train / validation / test splits a run trains on, built the same way every time.

    The training data (``data``, else ``cfg.name``) is cut to ``cfg.limit`` samples and split by the fractions
    ``cfg.val`` / ``cfg.test`` (seeded permutation, :meth:`TensorDataset.split`); an explicit validation / test
    set (``val`` / ``test`` in memory, else ``cfg.val_data`` / ``cfg.test_data``) replaces its fraction and is
    checked against the training data (kind, shape, labels, classes). Tabular data is standardised by the
    training split's statistics (``cfg.standardize``).

    ``recorded``: the ``data_sources`` of a run folder; each source loaded is then checked against its recorded
    checksum (a changed file is a one-line :class:`DataError`), and an in-memory source must be passed again.
    ``run`` names the run in those errors.
    """
    recorded = recorded or {}
    sources: dict = {}

    def load(role: str, given: TensorDataset | None, spec: str | None) -> TensorDataset | None:
        rec_in = recorded.get(role)
        if given is None and rec_in and rec_in.get("origin") == "memory":
            raise ConfigError(f"{run} was trained on in-memory {role} data {str(rec_in.get('name'))[:40]!r}, which a "
                              f"run folder does not hold; pass the same data again (e.g. open_run(RUN, "
                              f"{'data' if role == 'train' else role}=...)), it is checked against the recorded "
                              "checksum")
        if given is not None:
            ds, rec = given, data_source(given, None)
        elif spec is not None:
            ds, used = _load_source(role, spec, cfg, rec_in)
            rec = data_source(ds, spec)
            if used != spec:
                rec["path"] = used
        else:
            return None
        _check_source(role, ds, rec, rec_in, run)
        sources[role] = rec
        return ds

    ds = load("train", data, cfg.name)
    if cfg.limit is not None and cfg.limit < len(ds):
        ds = ds.subset(torch.arange(cfg.limit))
    ds = _paired(ds, cfg, 0)
    if cfg.window is not None:
        from .data.sequence import split_windows
        train, val_split, test_split = split_windows(ds, window=cfg.window, stride=cfg.stride, val=cfg.val,
                                                     test=cfg.test)
    else:
        train, val_split, test_split = ds.split(cfg.val, cfg.test, seed=cfg.split_seed)
    if val is not None and cfg.val:
        raise ConfigError(f"val= gives the validation data, and data.val={cfg.val} a fraction; give one of them")
    if test is not None and cfg.test:
        raise ConfigError(f"test= gives the test data, and data.test={cfg.test} a fraction; give one of them")
    for role, given, spec in (("val", val, cfg.val_data), ("test", test, cfg.test_data)):
        if given is not None and spec is not None:
            raise ConfigError(f"{role}= and data.{role}_data={spec!r} both give the {role} data; give one of them")
        extra = load(role, given, spec)
        if extra is not None:
            extra = _matched(role, _paired(extra, cfg, 1 if role == "val" else 2), ds)
            if role == "val":
                val_split = extra
            else:
                test_split = extra
    standardize = cfg.standardize if cfg.standardize is not None else ds.kind in ("tabular", "sequence")
    if standardize:
        train, val_split, test_split = (train.standardized(), val_split.standardized(train),
                                        test_split.standardized(train))
    return Splits(train, val_split, test_split, sources)


def build_model(spec: RunSpec, data_info: dict, networks: dict | None = None):
    """The model ``spec`` names, with fresh weights; ``networks``: user-supplied networks (see ``train``)."""
    entry = get_model_entry(spec.model)
    cfg = from_dict(entry.config_cls, spec.model_config, "model")
    return entry.build(cfg, data_info, networks)


@torch.no_grad()
def test_metrics(model, splits: Splits, *, iwae_k: int = 100, seed: int = 0) -> dict:
    """Held-out numbers for a run, on the test split (the validation split when it is empty).

    By the model's declared capabilities: ``test_mse`` of reconstructions (``can_reconstruct``; conditional
    models reconstruct with the true labels; data with missing entries: over the observed ones) and, for complete
    data, ``pca_mse`` of PCA with as many components as the latent size and their ratio ``mse_vs_pca``; for models
    with a likelihood the one-sample ``test_elbo`` and the IWAE bound ``test_iwae_k<k>`` with ``iwae_k`` importance
    samples (``0``: skipped), in nats per sample (conditional models: ``log p(x | y)`` with the true labels, keys
    ending ``_given_y``; the label-marginal ``log p(x)`` costs K times more: ``model.log_likelihood(x)``).
    """
    from sklearn.decomposition import PCA

    from .models.base import capabilities

    if iwae_k < 0:
        raise ConfigError(f"iwae_k must be >= 0 (0 = skip the IWAE bound), got {iwae_k}")
    caps = capabilities(model)
    model.eval()
    test = splits.test if len(splits.test) else splits.val
    if not len(test):
        return {}
    out: dict = {"test_samples": len(test)}
    if caps["has_likelihood"] and not caps["has_encoder"]:  # exact likelihood (pixelcnn): nats/image, bits/dim
        ll = torch.cat([model.log_likelihood(xb.to(model.device)) for xb in test.x.split(256)])
        out["test_nll"] = float(-ll.mean())
        out["test_bpd"] = out["test_nll"] / (test.x[0].numel() * math.log(2))
    if caps["translates"]:  # image-to-image models: test_l1 / test_psnr of the translations
        from .models.image2image import translation_metrics
        out.update(translation_metrics(model, test))
    if not caps["can_reconstruct"]:  # GANs: no encoder, nothing to reconstruct
        return out
    x = test.x.to(model.device)
    cond = caps["conditional"] and test.y is not None
    if cond:  # cvae: reconstruct with the true labels
        rec = torch.cat([model.reconstruct(xb, yb) for xb, yb in zip(x.split(512), test.y.split(512))])
    else:
        rec = torch.cat([model.reconstruct(xb) for xb in x.split(512)])
    observed = ~torch.isnan(x)  # data with missing entries (imputation): MSE over the observed ones, no PCA
    complete = bool(observed.all()) and not splits.train.has_missing
    out["test_mse"] = float(((rec - x) ** 2).mean() if complete else ((rec - x) ** 2)[observed].mean())
    k = None  # the code size: encode returns (B, latent_dim) codes
    if caps["has_encoder"] and complete:
        k = int(model.encode(x[:1], test.y[:1].to(model.device)).shape[1] if cond else model.encode(x[:1]).shape[1])
    tr = splits.train.x.flatten(1).cpu().numpy().astype(np.float64)
    if k is not None and k < min(tr.shape) and complete:
        pca = PCA(n_components=k, svd_solver="full").fit(tr)
        te = test.x.flatten(1).cpu().numpy().astype(np.float64)
        out["pca_mse"] = float(np.mean((pca.inverse_transform(pca.transform(te)) - te) ** 2))
        out["mse_vs_pca"] = out["test_mse"] / out["pca_mse"]
        if out["mse_vs_pca"] > 1:
            log.warning("%s reconstructs the held-out data worse than PCA with %d components (test MSE %.4g vs %.4g, "
                        "%.2f times); train longer, lower the KL weight (model.beta) or check trainer.ema_decay",
                        model.registry_name, k, out["test_mse"], out["pca_mse"], out["mse_vs_pca"])
    if caps["has_likelihood"]:
        g = torch.Generator().manual_seed(seed)
        kw, tag = ({"labels": test.y.to(model.device)}, "_given_y") if cond else ({}, "")
        out[f"test_elbo{tag}"] = float(model.elbo(x, generator=g, **kw).mean())
        if iwae_k:
            out[f"test_iwae_k{iwae_k}{tag}"] = float(model.log_likelihood(x, k=iwae_k, generator=g, **kw).mean())
    return out


def _write_run_outputs(run_dir: Path, model, splits: Splits, spec: RunSpec, result: TrainResult,
                       metrics: dict) -> None:
    from .io.report import read_metrics

    # the figures' held-out images: the test split only when this run scores it (test.enabled=false, as in tune
    # trials, keeps the test split untouched: the figures use the validation split)
    held_out = splits.test if spec.test.enabled and len(splits.test) else splits.val
    from .io.report import run_header
    from .models.base import capabilities
    from .training.monitors import feature_space

    figs = write_figures(model, held_out.x, run_dir, test_y=held_out.y, seed=spec.trainer.seed,
                         test_extras=held_out.extras)
    history = read_metrics(run_dir / "metrics.jsonl")
    figs.update(write_loss_curves(history, run_dir))
    # the report: header facts, the conventions of the sample-quality numbers, the config against its defaults
    context = {"space": feature_space(model), "n_real": len(splits.val), "n_fake": spec.trainer.fid_samples}
    write_report(run_dir, title=f"genlab run: {spec.model} on {spec.data.name}", metrics=metrics, figures=figs,
                 config=spec.to_dict(), defaults=RunSpec.from_sections(spec.model, {}).to_dict(), history=history,
                 header=run_header(model, splits.sizes(), metrics), context=context,
                 strip_folder=run_dir / "samples", conditional=capabilities(model)["conditional"])


#: Trainer keys a resumed run may change (they do not change what was already trained); the ``test`` section may
#: change too; anything else in the model, data or trainer sections is fixed by the checkpoint.
RESUMABLE_KEYS = ("epochs", "max_steps", "max_seconds", "log_every", "checkpoint_every", "keep_step_checkpoints",
                  "chore_overhead", "val_every", "sample_every", "patience", "min_delta", "restore_best", "device",
                  "log_to", "log_dir")


def _read_run_config(run_dir: Path) -> dict:
    cfg_file = run_dir / RUN_CONFIG
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"--resume {run_dir}: that is a file; give the run folder written by genlab train")
    if not cfg_file.is_file():
        raise CheckpointError(f"{cfg_file} is missing; --resume takes a run folder written by genlab train")
    return _run_record(cfg_file, fix="start a new run", want="resume a run folder written by genlab train, or start "
                       "a new run")


def _run_record(cfg_file: Path, *, fix: str, want: str) -> dict:
    """The run config ``cfg_file`` read through the bounded JSON reader and checked to hold ``model`` and
    ``sections`` (one-line CheckpointError otherwise; ``fix`` and ``want`` end the messages)."""
    record = read_json(cfg_file, error=CheckpointError, fix=f"the run config is corrupt or truncated: restore it or {fix}")
    if not isinstance(record, dict) or not isinstance(record.get("model"), str) or \
            not isinstance(record.get("sections"), dict):
        raise CheckpointError(f"{cfg_file} is not a genlab run config (needs 'model' and 'sections'); {want}")
    return record


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
        if section == "test":  # the end-of-run evaluation does not change what is trained
            sections.setdefault("test", {})[name] = value
            continue
        if section != "trainer" or name not in RESUMABLE_KEYS:
            raise ConfigError(f"{key} cannot change when resuming (the checkpoint was trained with "
                              f"{key}={json.dumps(old.get(key))}); resumable: "
                              f"{', '.join('trainer.' + k for k in RESUMABLE_KEYS)}, test.*; start a new run "
                              "with --out")
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
            trainer_cfg.max_steps is not None and meta["step"] >= trainer_cfg.max_steps) or (
            trainer_cfg.max_seconds is not None
            and float(meta.get("budget_seconds") or 0) >= trainer_cfg.max_seconds)  # the time budget is used up
    except (KeyError, TypeError):
        raise CheckpointError(f"{last / 'trainer_state.json'} is incomplete (no step/epoch); resume from another "
                              "checkpoint or start the run again") from None
    return meta if done else None


def _data_arguments(sections: dict, data, val, test) -> dict:
    """``train``'s ``data``/``val``/``test`` arguments written into the config sections (refusing a second,
    different answer in the config)."""
    dsec = sections.setdefault("data", {})
    if not isinstance(dsec, dict):
        raise ConfigError(f"config section 'data' must be a mapping, got {str(dsec)[:40]!r}")
    if isinstance(data, (str, Path)):
        dsec["name"] = str(data)
    elif isinstance(data, TensorDataset):
        dsec["name"] = data.name
    elif data is not None:
        raise ConfigError(f"data must be a data set name, a path or a TensorDataset, got {type(data).__name__}")
    for role, given in (("val", val), ("test", test)):
        if given is None:
            continue
        if dsec.get(f"{role}_data") is not None:
            raise ConfigError(f"{role}= and data.{role}_data={dsec[f'{role}_data']!r} both give the {role} data; "
                              "give one of them")
        if dsec.get(role):
            raise ConfigError(f"{role}= gives the {role} data and data.{role}={dsec[role]} a fraction; give one "
                              "of them")
        if isinstance(given, TensorDataset):
            dsec[role] = 0.0
        elif isinstance(given, (str, Path)):
            dsec[f"{role}_data"] = str(given)
        else:
            raise ConfigError(f"{role} must be a data set name, a path or a TensorDataset, got "
                              f"{type(given).__name__}")
    return sections


def train(model: str | None = None, data: str | TensorDataset | None = None, *,
          val: str | Path | TensorDataset | None = None, test: str | Path | TensorDataset | None = None,
          out: str | Path | None = None, config: dict | None = None, callbacks: list[Callback] | tuple = (),
          resume: str | Path | None = None, figures: bool = True, overwrite: bool = False,
          networks: dict | None = None, progress: bool | None = None) -> Run:
    """Train a registered model and (with ``out``) write a run folder.

    Parameters
    ----------
    model : str
        Registered model name (see :func:`genlab.list_models`). Not needed with ``resume``.
    data : str or TensorDataset, optional
        Built-in name or path (overrides ``config["data"]["name"]``), or an in-memory data set.
    val, test : str, path or TensorDataset, optional
        Explicit validation / test data instead of the fractions ``data.val`` / ``data.test`` of ``data``: a
        built-in name or path (recorded as ``data.val_data`` / ``data.test_data``) or an in-memory data set.
        Checked against the training data (kind, sample shape, labels, classes). The run folder records each
        source with its checksum: :func:`genlab.open_run` rebuilds file and built-in splits and refuses a changed
        file; in-memory data must be passed again (``open_run(RUN, val=...)``).
    out : path, optional
        Run folder to write: ``config.json``, ``metrics.jsonl``, ``checkpoints/``, ``model/``, figures,
        ``final_metrics.json`` and ``report.html``. It must not exist, be empty, or (with ``overwrite``) hold
        a genlab run. Everything is validated before it is created; a run that fails before its first
        checkpoint removes what it wrote.
    config : dict, optional
        Sections ``model`` (model config), ``trainer`` (:class:`TrainerConfig`), ``data`` (:class:`DataConfig`)
        and ``test`` (:class:`FinalEvalConfig`: the end-of-run held-out evaluation, e.g. ``{"iwae_k": 0}`` or
        ``{"enabled": False}``). With ``resume``: changes to the run's own config, limited to
        :data:`RESUMABLE_KEYS` and the ``test`` section (e.g. a larger ``trainer.epochs`` extends a finished run).
    figures : bool
        Write the run folder's figures (samples, reconstructions, loss curves) and ``report.html`` at the end
        (default); ``False`` skips them (``final_metrics.json`` is written either way).
    resume : path, optional
        A run folder to continue in place from its ``checkpoints/last``, on the data it recorded (checked against
        the recorded checksums; a run trained on in-memory data takes the same ``data``/``val``/``test`` again).
        Resuming a finished run is a no-op (``Run.result`` is ``None``) unless ``config`` raises
        ``trainer.epochs``/``max_steps``.
    overwrite : bool
        Replace the genlab run at ``out``: only genlab's own files are removed (never a folder genlab did not
        write; a user's own files in it are kept).
    networks : dict of nn.Module, optional
        Your own networks in place of the model's, by slot (``{"encoder": enc, "decoder": dec}`` for the ae and
        vae families, ``{"generator": g, "discriminator": d}`` for GANs; output conventions in
        docs/models/adding.md), checked with a dry run. The run folder stores their weights and lists them in
        ``config.json``; reload with ``genlab.load(RUN, networks=...)`` (fresh instances) and resume with the
        same argument. For a model that reloads anywhere, subclass it and override ``build_networks``.
    progress : bool or None
        Show the training progress display (rich, on stderr): ``True`` on, ``False`` off, ``None`` (default)
        auto: on when stderr is a terminal and ``CI`` is not set; ``GENLAB_PROGRESS=1``/``0`` overrides auto
        (:func:`genlab.training.progress.progress_enabled`).

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
        recorded = saved.get("data_sources") if isinstance(saved.get("data_sources"), dict) else {}
        for role, given in (("train", data), ("val", val), ("test", test)):
            if given is not None and not (isinstance(given, TensorDataset)
                                          and (recorded.get(role) or {}).get("origin") == "memory"):
                raise ConfigError(f"resume uses the run's own data; drop the {'data' if role == 'train' else role}"
                                  " argument (--data) when resuming")
        sections = _resume_sections(saved["sections"], config)
        entry_for_record(saved["model"], saved, where=str(run_dir / RUN_CONFIG))  # imports an external model's module
        if saved.get("user_networks") and networks is None:
            names = ", ".join(map(str, saved["user_networks"]))
            raise ConfigError(f"{run_dir} was trained with user-supplied networks ({names}); resume it in Python with "
                              "genlab.train(resume=RUN, networks={...}) built as for training")
        spec = RunSpec.from_sections(saved["model"], sections, saved=True)
        out = run_dir
    else:
        if model is None:
            raise ConfigError("no model name given; pick one of genlab.list_models()")
        recorded = None
        sections = _data_arguments(json.loads(json.dumps(config or {})), data, val, test)
        spec = RunSpec.from_sections(model, sections)
    out_dir = Path(out) if out is not None else None
    if out_dir is not None and resume is None and not _is_torchrun_follower():
        # rank 0 alone owns the folder: a follower that checked it could find it already made by rank 0 (a race
        # under load), refuse silently (it leaves bad input to rank 0) and stop the launch with exit 2
        check_out_dir(out_dir, overwrite=overwrite)
    splits = prepare_data(spec.data, dataset, val=val if isinstance(val, TensorDataset) else None,
                          test=test if isinstance(test, TensorDataset) else None, recorded=recorded,
                          run=str(out_dir) if resume is not None else "run")
    seed_everything(spec.trainer.seed)
    net = build_model(spec, splits.train.info(), networks)
    if out_dir is not None and _is_torchrun_follower():  # rank > 0 of torchrun: trains, writes nothing
        return _follow_rank0(spec, net, splits, list(callbacks), out_dir if resume is not None else None)
    callbacks = list(callbacks)
    from .training.progress import TrainProgress
    callbacks.insert(0, TrainProgress(spec.model, progress=progress))  # closed by _train_and_finish
    every = spec.trainer.sample_every
    if every is None:  # automatic: also kept under trainer.chore_overhead of the time
        every = 1 if not net.can_reconstruct else max(1, spec.trainer.epochs // 10)
    if out_dir is not None and every and net.kind == "image" and net.can_sample:
        callbacks.append(SampleGrid(out_dir, every, seed=spec.trainer.seed, auto=spec.trainer.sample_every is None))
    from .training.tracking import make_trackers  # trainer.log_to: after SampleGrid, checked before any write
    callbacks += make_trackers(spec.trainer, run_dir=out_dir, run_config=spec.to_dict(), resume=resume is not None,
                               overwrite=overwrite)
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
                finished = load(out_dir, networks=networks)  # a damaged model is reported before "finished"
                log.warning("%s already finished at epoch %d (step %d); nothing to do (raise trainer.epochs, max_steps "
                            "or max_seconds to extend it)", out_dir, done["epoch"], done["step"])
                metrics = json.loads((out_dir / "final_metrics.json").read_text())
                return Run(model=finished, spec=spec, splits=splits, result=None, out_dir=out_dir, metrics=metrics)
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
                                                 "data_info": splits.train.info(), "data_sources": splits.sources,
                                                 "split_sizes": splits.sizes()})
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


def _is_torchrun_follower() -> bool:
    from .training.distributed import is_follower
    return is_follower()


def _follow_rank0(spec: RunSpec, net, splits: Splits, callbacks: list, resume_dir: Path | None) -> Run:
    """A rank > 0 of a torchrun launch (docs/distributed.md): the same training in step with rank 0, which alone
    writes the run folder; this rank reads it only to resume, and returns a Run without metrics or folder."""
    if resume_dir is not None and _finished(resume_dir, spec.trainer) is not None:  # rank 0 stops too
        return Run(model=net, spec=spec, splits=splits, result=None, out_dir=None, metrics={})
    trainer = Trainer(spec.trainer, out_dir=None, callbacks=callbacks)
    trainer.check(net, splits.train, splits.val)
    result = trainer.fit(net, splits.train, splits.val, resume=resume_dir)
    return Run(model=net, spec=spec, splits=splits, result=result, out_dir=None, metrics={})


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run; ``run_dir`` is the folder to ``--resume`` (``None``: nothing was saved)."""

    def __init__(self, run_dir: Path | None, step: int):
        super().__init__(f"interrupted at step {step}")
        self.run_dir, self.step = run_dir, step


def _train_and_finish(trainer: Trainer, net, spec: RunSpec, splits: Splits, out_dir: Path | None, *, resume: bool,
                      figures: bool) -> Run:
    t0 = time.perf_counter()
    from .training.progress import close_displays
    from .training.tracking import finish_tracking
    try:
        result = trainer.fit(net, splits.train, splits.val, resume=(out_dir if resume else None))
    except BaseException:
        finish_tracking(trainer.callbacks, run_dir=out_dir, metrics=None, step=trainer.step, failed=True)
        raise
    finally:
        close_displays(trainer.callbacks)  # a run that raised leaves no live progress display behind
    metrics = {"model": spec.model, "data": spec.data.name, "steps": result.step, "epochs": result.epoch,
               "train_seconds": round(time.perf_counter() - t0, 2),
               "samples_per_sec": round(result.samples_per_sec, 1), "precision": result.precision,
               "channels_last": result.channels_last, "device": str(trainer.device)}
    final = result.final
    metrics.update({f"val_{k}": v for k, v in final.items() if k not in ("step", "epoch", "split")})
    if result.best_value is not None:
        metrics[f"best_{trainer.monitor.replace('/', '_')}"] = result.best_value
        metrics["best_step"] = result.best_step
    if spec.test.enabled:
        metrics.update(test_metrics(net, splits, iwae_k=spec.test.iwae_k, seed=spec.trainer.seed))
    if out_dir is not None:  # the metrics mark a finished run (resume's no-op), with or without figures
        write_json_atomic(out_dir / "final_metrics.json", metrics)
        if figures:
            _write_run_outputs(out_dir, net, splits, spec, result, metrics)
    finish_tracking(trainer.callbacks, run_dir=out_dir, metrics=metrics, step=result.step)  # final files
    return Run(model=net, spec=spec, splits=splits, result=result, out_dir=out_dir, metrics=metrics)


# ---------------------------------------------------------------------------------------------- opening a run
@dataclass(frozen=True)
class DataInfo:
    """What a run's model was trained on (``config.json``'s ``data_info``, as :meth:`TensorDataset.info` wrote
    it): the training data's name, ``kind`` (``image``/``tabular``), sample ``shape``, classes and the
    normalisation that maps model-space values back to raw units (``raw = x * scale + shift``)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    num_classes: int | None
    classes: tuple[str, ...] | None
    norm: Normalization
    #: sample shapes of the per-sample tensors beside ``x`` (paired data: ``{"src": [...], "mask": [...]}``)
    extras: dict | None = None

    @classmethod
    def from_dict(cls, info: dict, where: str = "data_info") -> "DataInfo":
        """From a recorded data description, checked (:func:`~genlab.data.dataset.check_data_info`)."""
        from .data.dataset import check_data_info

        check_data_info(info, where)
        classes = info.get("classes")
        return cls(name=str(info.get("name", "?")), kind=info["kind"], shape=tuple(int(s) for s in info["shape"]),
                   num_classes=info.get("num_classes"), classes=None if classes is None else tuple(classes),
                   norm=Normalization.from_dict(info["norm"], where), extras=info.get("extras"))

    def to_dict(self) -> dict:
        out = {"name": self.name, "kind": self.kind, "shape": list(self.shape), "num_classes": self.num_classes,
               "classes": None if self.classes is None else list(self.classes), "norm": self.norm.to_dict()}
        if self.extras:
            out["extras"] = {k: list(v) for k, v in self.extras.items()}
        return out


SPLIT_NAMES = ("train", "val", "test", "all")


def is_run_folder(path: str | Path) -> bool:
    """Whether ``path`` looks like a run folder (``config.json`` with the run sections beside ``model/``), as
    opposed to a saved model folder (``config.json`` + ``model.safetensors``); cheap, reads no file."""
    from .io.serialize import WEIGHTS_NAME

    path = Path(path)
    return (path / RUN_CONFIG).is_file() and not (path / WEIGHTS_NAME).exists()


class RunFolder:
    """A run folder written by :func:`train` / ``genlab train``, opened for reading (see :func:`open_run`).

    Attributes
    ----------
    path : Path
        The folder.
    model_name : str
        Registered name of the model.
    spec : RunSpec
        The run config; its sections as dataclasses: :attr:`model_config`, :attr:`trainer_config`,
        :attr:`data_config`, :attr:`test_config`.
    data_info : DataInfo
        What the model was trained on (frozen).
    sources : dict
        Where each split's data came from (``train``/``val``/``test``: origin, name, path, size, sha256);
        empty for runs written before genlab recorded them.
    genlab_version : str or None
        The genlab that wrote the run.

    ``splits``, ``model``, ``metrics`` and ``history`` are read when first asked for.
    """

    def __init__(self, path: Path, record: dict, *, data: TensorDataset | None = None,
                 val: TensorDataset | None = None, test: TensorDataset | None = None):
        cfg_file = path / RUN_CONFIG
        self.path = path
        self.model_name: str = record["model"]
        self.genlab_version = record.get("genlab_version")
        entry_for_record(self.model_name, record, where=str(cfg_file))  # imports an external model's module
        try:
            self.spec = RunSpec.from_sections(self.model_name, record["sections"], saved=True)
        except GenlabError as e:
            raise CheckpointError(f"{cfg_file}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        if "data_info" not in record:
            raise CheckpointError(f"{cfg_file} has no data_info (the training data's shape and normalisation); the "
                                  "run config is damaged: restore it or re-train")
        try:
            self.data_info = DataInfo.from_dict(record["data_info"], str(cfg_file))
        except GenlabError as e:
            raise CheckpointError(str(e).splitlines()[0]) from None
        sources = record.get("data_sources")
        self.sources: dict = sources if isinstance(sources, dict) else {}
        sizes = record.get("split_sizes")
        self.split_sizes: dict | None = sizes if isinstance(sizes, dict) else None
        self._given = {"data": data, "val": val, "test": test}
        self._splits: Splits | None = None
        self._model = None

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r}, model={self.model_name!r}, data={self.data_config.name!r})"

    # -- the config sections as dataclasses ---------------------------------------------------------------------
    @property
    def model_config(self):
        """The model's config dataclass (``registry`` entry's ``config_cls``)."""
        return from_dict(get_model_entry(self.model_name).config_cls, self.spec.model_config, "model")

    @property
    def trainer_config(self) -> TrainerConfig:
        return self.spec.trainer

    @property
    def data_config(self) -> DataConfig:
        return self.spec.data

    @property
    def test_config(self) -> FinalEvalConfig:
        return self.spec.test

    # -- data ------------------------------------------------------------------------------------------------
    @property
    def splits(self) -> Splits:
        """The train / val / test splits, rebuilt exactly as training built them (:func:`prepare_data` with the
        recorded data config), each source checked against its recorded checksum. Built-in and file sources are
        loaded again; in-memory sources must have been passed to :func:`open_run`."""
        if self._splits is None:
            g = self._given
            self._splits = prepare_data(self.data_config, g["data"], val=g["val"], test=g["test"],
                                        recorded=self.sources, run=str(self.path))
        return self._splits

    def split(self, name: str) -> TensorDataset:
        """One split by name: ``train``, ``val``, ``test`` or ``all`` (the three together, in that order)."""
        if name not in SPLIT_NAMES:
            raise ConfigError(f"unknown split {name!r}; use one of {', '.join(SPLIT_NAMES)}")
        s = self.splits
        if name != "all":
            return getattr(s, name)
        parts = (s.train, s.val, s.test)
        y = torch.cat([p.y for p in parts]) if all(p.y is not None for p in parts) else None
        return TensorDataset(torch.cat([p.x for p in parts]), y, norm=s.train.norm, name=s.train.name,
                             classes=s.train.classes if y is not None else None,
                             allow_missing=s.train.allow_missing,
                             extras={k: torch.cat([p.extras[k] for p in parts]) for k in s.train.extras})

    def data_key(self, split: str) -> str:
        """A name for one split of this run's data that changes whenever its values could (data set, split
        config, size and the recorded checksums): the key of cached real-image features."""
        d = self.data_config
        n = len(self.split(split))
        key = f"{d.name}-{split}-val{d.val}-test{d.test}-seed{d.split_seed}-limit{d.limit}-n{n}"
        shas = [str(self.sources[r].get("sha256")) for r in ("train", "val", "test")
                if isinstance(self.sources.get(r), dict)]
        if shas:
            key += "-" + hashlib.sha256("".join(shas).encode()).hexdigest()[:12]
        return key

    # -- model and outputs -----------------------------------------------------------------------------------
    @property
    def model(self):
        """The exported model (``model/``), loaded on the CPU in eval mode (:func:`genlab.load`)."""
        if self._model is None:
            from .io import load
            self._model = load(self.path)
        return self._model

    @property
    def checkpoints(self) -> dict[str, Path]:
        """``{name: folder}`` of the checkpoints present (``last``, ``best``, ``step-NNNNNNN``)."""
        from .io.atomic import resolve_dir
        from .io.serialize import WEIGHTS_NAME

        root = self.path / "checkpoints"
        if not root.is_dir():
            return {}
        names = sorted({e.name.removesuffix(".old") for e in root.iterdir() if not e.name.startswith(".")})
        out = {}
        for n in names:
            folder = resolve_dir(root / n)
            if (folder / WEIGHTS_NAME).is_file():
                out[n] = folder
        return out

    def load_checkpoint(self, name: str = "best"):
        """The model as saved in ``checkpoints/<name>`` (eval mode, CPU)."""
        from .io import load

        have = self.checkpoints
        if name not in have:
            raise CheckpointError(f"{self.path} has no checkpoint {name!r}; it has: "
                                  f"{', '.join(have) if have else 'none'}")
        return load(have[name])

    @property
    def finished(self) -> bool:
        """Whether the run wrote its final outputs (``final_metrics.json``)."""
        return (self.path / "final_metrics.json").is_file()

    @property
    def metrics(self) -> dict:
        """``final_metrics.json`` (``{}`` for a run that has not finished)."""
        f = self.path / "final_metrics.json"
        if not f.is_file():
            return {}
        m = read_json(f, error=CheckpointError, fix="the file is damaged: resume the run or re-train it")
        if not isinstance(m, dict):
            raise CheckpointError(f"{f} is not a mapping of metric names to values; the file is damaged: resume the "
                                  "run or re-train it")
        return m

    @property
    def history(self) -> list[dict]:
        """The records of ``metrics.jsonl`` (``step``, ``epoch``, ``split`` and the logged values)."""
        from .io.report import read_metrics
        return read_metrics(self.path / "metrics.jsonl")

    @property
    def report(self) -> Path | None:
        f = self.path / "report.html"
        return f if f.is_file() else None


def open_run(path: str | Path, *, data: TensorDataset | None = None, val: TensorDataset | None = None,
             test: TensorDataset | None = None) -> RunFolder:
    """Open a run folder written by :func:`genlab.train` / ``genlab train``.

    Parameters
    ----------
    path : path
        The run folder.
    data, val, test : TensorDataset, optional
        Only for runs trained on in-memory data sets (which a run folder does not hold): the same data again,
        checked against the recorded checksums when :attr:`RunFolder.splits` is built.

    Returns
    -------
    RunFolder
        The typed run: config sections, :class:`DataInfo`, splits, model, final metrics, log, checkpoints.

    Raises
    ------
    CheckpointError
        One line naming the problem: no such folder, not a run folder (e.g. a saved model folder), corrupt or
        incomplete ``config.json``, an unknown model name.
    """
    from .io.atomic import resolve_dir
    from .io.serialize import WEIGHTS_NAME

    for role, given in (("data", data), ("val", val), ("test", test)):
        if given is not None and not isinstance(given, TensorDataset):
            raise ConfigError(f"open_run({role}=...) takes the in-memory TensorDataset the run was trained on, got "
                              f"{type(given).__name__}")
    path = resolve_dir(Path(path))
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; give a run folder written by genlab train")
    if not path.is_dir():
        raise CheckpointError(f"{path} is a file, not a run folder; give the folder genlab train wrote")
    cfg_file = path / RUN_CONFIG
    if (path / WEIGHTS_NAME).exists():
        raise CheckpointError(f"{path} is a saved model folder, not a run folder; load it with genlab.load({str(path)!r})")
    if not cfg_file.is_file():
        raise CheckpointError(f"{path} is not a run folder (no {RUN_CONFIG}); give a folder written by genlab train")
    record = _run_record(cfg_file, fix="re-train", want="give a folder written by genlab train")
    return RunFolder(path, record, data=data, val=val, test=test)
