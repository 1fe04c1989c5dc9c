"""Evaluate generators and sample sets: features from a chosen extractor, then the pure metrics.

``evaluate_model`` samples a trained model and compares with a real set (cached real features);
``evaluate_sets`` compares two sets of images (folders or arrays). Both return every number, the
metric names carrying the extractor (``FID-digits``), the sample counts and the conventions.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from .data import TensorDataset, load_dataset
from .errors import ConfigError, DataError
from .metrics import evaluate_features, perceptual_path_length, swd
from .metrics.extractors import Extractor, get_extractor, real_features
from .models.base import capabilities, require

log = logging.getLogger(__name__)

#: short CLI names -> evaluate_features names
METRIC_ALIASES = {"fid": "fid", "kid": "kid", "is": "inception_score", "pr": "precision_recall",
                  "dc": "density_coverage", "ppl": "ppl", "swd": "swd"}
LABELS = {"fid": "FID", "kid_mean": "KID", "kid_std": "KID_std", "inception_score_mean": "IS",
          "inception_score_std": "IS_std", "real_inception_score_mean": "IS_real",
          "real_inception_score_std": "IS_real_std", "precision": "precision", "recall": "recall",
          "density": "density", "coverage": "coverage", "ppl": "PPL", "swd": "SWD"}
#: metrics computed on the images themselves: their labels carry no extractor suffix
IMAGE_METRICS = ("swd",)
#: ``extractor`` of a result when every metric asked is an image metric (no feature net built or run)
NO_EXTRACTOR = {"name": "none", "reported_as": None, "note": "image metrics only (SWD): no feature net"}


def _needs_features(metrics: list[str]) -> bool:
    return any(m not in IMAGE_METRICS for m in metrics)


def _result(raw: dict, extractor: Extractor | None, **sets) -> dict:
    """The result of :func:`evaluate_model` / :func:`evaluate_sets`: labelled metrics, raw values, the extractor
    (:data:`NO_EXTRACTOR` when none was built), sample counts, ``sets`` (what was scored), conventions, warnings."""
    return {"metrics": _label(extractor, raw), "raw": {k: v for k, v in raw.items() if k != "conventions"},
            "extractor": extractor.describe() if extractor is not None else dict(NO_EXTRACTOR),
            "n_real": raw["n_real"], "n_fake": raw["n_fake"], **sets, "conventions": raw["conventions"],
            "sample_warnings": raw.get("sample_warnings", [])}


def parse_metrics(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"fid,kid,pr"`` -> canonical names; unknown names are a one-line error listing the valid ones."""
    names = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    bad = [n for n in names if n not in METRIC_ALIASES]
    if bad or not names:
        raise ConfigError(f"unknown metric {bad[0] if bad else spec!r}; valid: {', '.join(METRIC_ALIASES)}")
    return [METRIC_ALIASES[n] for n in names]


def _images(ds: TensorDataset, what: str) -> torch.Tensor:
    if ds.kind != "image":
        raise DataError(f"{what}: feature metrics need images, got tabular data of shape {ds.sample_shape}")
    return ds.x


def _label(extractor: Extractor, raw: dict) -> dict:
    """Rename raw metric keys with the extractor suffix (``fid`` -> ``FID-digits``)."""
    out = {}
    for k, v in raw.items():
        if k in IMAGE_METRICS:
            out[LABELS[k]] = v
        elif k in LABELS:
            name = LABELS[k]
            out[extractor.label(name) if name not in ("precision", "recall", "density", "coverage")
                else f"{name}{extractor.suffix}"] = v
    return out


def _compute(real_f, real_l, fake_f, fake_l, metrics: list[str], extractor: Extractor, *, real_x=None, fake_x=None,
             seed: int = 0, **kw) -> dict:
    feature_metrics = [m for m in metrics if m not in ("ppl", *IMAGE_METRICS)]
    if "inception_score" in feature_metrics and fake_l is None:
        raise ConfigError(f"the IS needs class logits, and extractor {extractor.name!r} gives none; drop 'is' "
                          "or use a classifier feature net")
    raw = evaluate_features(real_f, fake_f, real_l, fake_l, feature_metrics, **kw) if feature_metrics else \
        {"n_real": len(real_x), "n_fake": len(fake_x), "conventions": {}}
    if "swd" in metrics:
        res = swd(real_x, fake_x, seed=seed)
        raw["swd"] = res["mean"]
        raw["swd_levels"] = {f"{h}x{w}": v for h, w, v in res["levels"]}
        raw["conventions"]["swd"] = res["convention"]
    return raw


def evaluate_model(model, real: TensorDataset, *, data_key: str, metrics=("fid", "kid", "precision_recall",
                   "density_coverage"), n: int = 10_000, features: str | torch.nn.Module = "auto",
                   seed: int = 0, batch_size: int = 500, ppl_n: int = 2_000, cache: str | os.PathLike | None = None,
                   use_cache: bool = True, inception_weights: str | os.PathLike | None = None,
                   kid_subset_size: int = 1000, progress: bool | None = None) -> dict:
    """Sample ``n`` images from ``model`` (seeded) and compare with the real images ``real``.

    ``data_key`` names the real set in the feature cache (data set, split, split seed).
    Returns ``{"metrics": {"FID-digits": ...}, "raw": {...}, "extractor": {...}, "n_real", "n_fake",
    "conventions": {...}, "sample_warnings": [...]}`` (the metrics computed on fewer samples than their
    convention needs, also logged as warnings: :mod:`genlab.metrics.samples`). ``progress``: show bars over sampling and the feature passes (the switch of
    :func:`genlab.training.progress.progress_enabled`; ``None`` = auto).
    """
    metrics = list(metrics)
    if n < 2:
        raise ConfigError(f"-n must be >= 2 generated samples, got {n}")
    require(model, "can_sample", purpose="evaluate_model")
    need = _needs_features(metrics)
    extractor = get_extractor(features, tuple(model.shape), inception_weights=inception_weights) if need else None
    real_x = _images(real, "real data")
    g = torch.Generator().manual_seed(seed)
    fake = _sample_with_progress(model, n, batch_size, g, progress)
    real_f = real_l = fake_f = fake_l = None
    if need:
        extractor = _with_progress(extractor, progress)
        fake_f, fake_l = extractor(fake)
        real_f, real_l, _ = real_features(real_x, data_key, extractor, cache=cache, use_cache=use_cache)
    raw = _compute(real_f, real_l, fake_f, fake_l, metrics, extractor, kid_subset_size=kid_subset_size,
                   real_x=real_x, fake_x=fake, seed=seed)
    if "ppl" in metrics:
        # conditional models: both ends of path i take label i % K (otherwise decode draws each end's label apart)
        ppl_labels = torch.arange(min(ppl_n, n)) % model.num_classes if capabilities(model)["conditional"] else None
        raw["ppl"] = perceptual_path_length(model, extractor.feature_fn, n=min(ppl_n, n), seed=seed,
                                            labels=ppl_labels)
        raw["conventions"]["ppl"] = (f"epsilon 1e-4, lerp in z, n={min(ppl_n, n)}, squared L2 of "
                                     f"{extractor.name} features / eps^2, 1st/99th percentile trimmed"
                                     + (", path i in class i mod K" if ppl_labels is not None else ""))
    return _result(raw, extractor, sample_seed=seed, real_set=data_key)


def evaluate_sets(real: str | TensorDataset, fake: str | TensorDataset, *, metrics=("fid", "kid", "precision_recall",
                  "density_coverage"), features: str | torch.nn.Module = "auto", cache=None, use_cache: bool = True,
                  inception_weights=None, kid_subset_size: int = 1000, progress: bool | None = None) -> dict:
    """Compare two image sets (folders / ``.npz`` / ``.npy`` paths or in-memory data sets); ``progress`` as in
    :func:`evaluate_model`."""
    metrics = list(metrics)
    if "ppl" in metrics:
        raise ConfigError("ppl needs a model (it walks the latent space); use genlab evaluate RUN --metrics ppl")
    r = real if isinstance(real, TensorDataset) else load_dataset(str(real))
    f = fake if isinstance(fake, TensorDataset) else load_dataset(str(fake))
    rx, fx = _images(r, f"--real {r.name}"), _images(f, f"--fake {f.name}")
    if rx.shape[1:] != fx.shape[1:]:
        raise DataError(f"real images are {tuple(rx.shape[1:])} but fake images are {tuple(fx.shape[1:])}; "
                        "give sets of the same shape")
    extractor = real_f = real_l = fake_f = fake_l = None
    if _needs_features(metrics):
        extractor = _with_progress(get_extractor(features, tuple(rx.shape[1:]),
                                                 inception_weights=inception_weights), progress)
        fake_f, fake_l = extractor(fx)
        key = f"file-{Path(r.name).resolve()}-{len(rx)}" if not isinstance(real, TensorDataset) else f"mem-{r.name}"
        real_f, real_l, _ = real_features(rx, key, extractor, cache=cache,
                                          use_cache=use_cache and not isinstance(real, TensorDataset))
    raw = _compute(real_f, real_l, fake_f, fake_l, metrics, extractor, kid_subset_size=kid_subset_size,
                   real_x=rx, fake_x=fx)
    return _result(raw, extractor, real_set=r.name, fake_set=f.name)


def evaluate_run(run: str | os.PathLike, *, split: str = "train", **kw) -> dict:
    """:func:`evaluate_model` on a run folder's model, against the run's own data ``split`` (train/val/test/all),
    rebuilt by :func:`genlab.open_run` (checked against the recorded data checksums)."""
    from .runs import SPLIT_NAMES, is_run_folder, open_run

    if split not in SPLIT_NAMES:
        raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLIT_NAMES)}")
    if Path(run).is_dir() and not is_run_folder(run):
        raise ConfigError(f"{run} is not a run folder (no run config.json); give a run folder, or use "
                          "--real A --fake B to compare image sets")
    rf = open_run(run)
    model = rf.model
    require(model, "can_sample", purpose="genlab evaluate")
    real = rf.split(split)
    if len(real) < 2:
        raise ConfigError(f"the run's {split} split holds {len(real)} samples; choose --split train or all")
    return evaluate_model(model, real, data_key=rf.data_key(split), **kw)


# ---------------------------------------------------------------------------------------------- progress hooks
def _sample_with_progress(model, n: int, batch_size: int, generator, progress) -> torch.Tensor:
    """``n`` samples in batches from one generator (the same numbers as without a bar), with a progress bar. The
    result is allocated first: an ``n`` too large for memory fails at once with the allocator's error (the CLI's
    one-line out-of-memory message), not after hours of sampling."""
    from .training.progress import progress_bar
    out = torch.empty((n, *model.shape))
    with progress_bar("sampling", n, progress=progress) as bar:
        for i in range(0, n, batch_size):
            out[i:i + batch_size] = model.sample(min(batch_size, n - i), generator=generator).cpu()
            bar.advance(min(batch_size, n - i))
    return out


#: images per call of the feature net while a bar is shown (the extractors batch by 500 too)
FEATURE_CHUNK = 500


def _with_progress(extractor: Extractor, progress) -> Extractor:
    """``extractor`` whose feature pass advances a progress bar ("features"); same name, weights hash and cache
    key, and the same numbers (the pass runs in chunks of :data:`FEATURE_CHUNK`, as the extractors batch)."""
    import dataclasses

    import numpy as np

    from .training.progress import progress_bar, progress_enabled
    if not progress_enabled(progress):
        return extractor
    inner = extractor.extract_fn

    def extract(images: torch.Tensor):
        feats, logits = [], []
        with progress_bar(f"features ({extractor.name})", len(images), progress=progress) as bar:
            for xb in images.split(FEATURE_CHUNK):
                f, lg = inner(xb)
                feats.append(f)
                if lg is not None:
                    logits.append(lg)
                bar.advance(len(xb))
        return np.concatenate(feats), (np.concatenate(logits) if logits else None)

    return dataclasses.replace(extractor, extract_fn=extract)
