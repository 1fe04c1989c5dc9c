"""Sample-quality monitors: Trainer callbacks that every model that can sample gets.

* :class:`SampleQualityMonitor` (``trainer.fid_samples``): at each validation, the FID of generated samples
  against the validation split, the class coverage of the samples and, for conditional models, the accuracy
  of the genlab feature net on the requested labels. Logged as ``val/fid``, ``val/div_entropy``,
  ``val/div_classes``, ``val/cond_acc``, before the best-checkpoint decision, so ``trainer.monitor=val/fid``
  works for any sampler (a GAN's default monitor).
* :class:`DiversityMonitor` (``trainer.monitor_every``): every N steps, the diversity of a few samples
  (``div_entropy``/``div_classes``, or ``div_ratio``) in the step record, and a mode-collapse warning.

Features: images of a shape with a genlab feature net (1x8x8 digits, 1x28x28 MNIST;
:mod:`genlab.metrics.feature_nets`) are compared in that net's feature space (FID-digits / FID-mnist) and
classified by its head; tabular samples are compared on their (standardised) columns; images of other shapes
get no FID (the Inception weights cannot be assumed offline) and their diversity is measured on raw values.

Both run inside :meth:`Trainer.evaluating` (eval mode, EMA weights when EMA is on, no gradients, fp32) and
draw their noise from private generators under a forked RNG, so the training run (weights, RNG streams,
exact resume) is the same with or without them.
"""
from __future__ import annotations

import logging
from functools import lru_cache

import torch

from ..metrics.diversity import class_histogram, classes_covered, diversity_ratio, normalized_entropy
from ..metrics.feature_nets import feature_net_for_shape, load_feature_net
from ..metrics.fid import fid
from ..metrics.stats import FeatureStats
from ..models.base import capabilities
from .callbacks import Callback

log = logging.getLogger(__name__)

#: the seed of the samples each validation FID is computed on (the same noise every validation)
FID_SEED = 12345


@lru_cache(maxsize=None)
def _net(name: str):
    with torch.random.fork_rng(devices=[]):  # building the module draws initial weights: not from training's RNG
        return load_feature_net(name)


def feature_space(model) -> str | None:
    """What sample quality is measured on for ``model``'s data: a feature net's name (``"digits"``,
    ``"mnist"``), ``"raw"`` (tabular columns) or ``None`` (images of a shape without a genlab feature net)."""
    if model.kind == "tabular":
        return "raw"
    return feature_net_for_shape(model.shape)


def features(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(features (N, F), class logits (N, K) or None)`` of model-space samples ``x`` on the CPU (float64 from
    a feature net for its image shape, inputs clamped to [0, 1]; else the raw values flattened, float32)."""
    space = feature_space(model)
    if space is None or space == "raw":
        return x.detach().float().flatten(1).cpu(), None
    net = _net(space).to(x.device)
    f, lg = net.extract(x.detach().float().clamp(0, 1))
    return torch.from_numpy(f), torch.from_numpy(lg)


#: samples drawn per chunk by :func:`draw`; chunk ``i`` has its own noise generator, seeded ``seed + i * CHUNK_SEED``
CHUNK = 500
CHUNK_SEED = 7919


def draw(model, n: int, seed: int, *, part: tuple[int, int] = (0, 1)) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` samples of ``model`` in chunks of :data:`CHUNK`, chunk ``i`` from a generator seeded
    ``seed + i * CHUNK_SEED`` (chunk 0: ``seed``), with the labels requested: conditional models get ``0..K-1``
    cycled, others ``None``. ``part=(r, W)`` draws only the chunks ``i`` with ``i % W == r`` (the same samples
    the single process draws for those chunks: what a rank of a multi-process run generates)."""
    k = int(model.data_info.get("num_classes") or 0) if capabilities(model)["conditional"] else 0
    labels = torch.arange(n) % k if k else None
    rank, world = part
    xs, ls = [], []
    for i, ix in enumerate(torch.arange(n).split(CHUNK)):
        if i % world != rank:
            continue
        g = torch.Generator().manual_seed(seed + i * CHUNK_SEED)
        lab = None if labels is None else labels[ix]
        xs.append(model.sample(len(ix), labels=lab, generator=g).float())
        ls.append(lab)
    if not xs:  # more ranks than chunks: this rank draws nothing
        return torch.empty(0), (None if labels is None else labels[:0])
    return torch.cat(xs), (None if labels is None else torch.cat(ls))


def class_figures(logits: torch.Tensor | None = None, *, counts=None) -> dict[str, float]:
    """``div_entropy`` (entropy of the predicted-class histogram / log K) and ``div_classes`` (classes holding
    more than a tenth of their uniform share) of feature-net logits ``(N, K)``, or of the histogram ``counts``."""
    counts = class_histogram(logits) if counts is None else counts
    return {"div_entropy": normalized_entropy(counts), "div_classes": float(classes_covered(counts, 0.1 / len(counts)))}


def complete_rows(x: torch.Tensor) -> torch.Tensor:
    """The samples of ``x`` without missing (NaN) entries: data with missing values (imputation) is compared on
    its complete samples only."""
    return x if not x.is_floating_point() else x[torch.isfinite(x.flatten(1)).all(1)]


def _can_sample(model) -> bool:
    return capabilities(model)["can_sample"]


def real_stats(model, x: torch.Tensor) -> FeatureStats:
    """Feature statistics of real model-space data ``x`` in ``model``'s feature space (see :func:`features`)."""
    return FeatureStats.from_features(torch.cat([features(model, xb)[0] for xb in x.split(1000)]).double())


@torch.no_grad()
def sample_quality(model, real: FeatureStats, n: int, *, seed: int = FID_SEED, dist=None) -> dict[str, float]:
    """``fid`` of ``n`` samples of ``model`` (noise seeded ``seed``, see :func:`draw`) against the real statistics
    ``real``; with a feature net also ``div_entropy``/``div_classes`` and, for conditional models whose class count
    is the net's, ``cond_acc`` (the fraction of samples classified as the label they were generated for). Samples
    in the model's current mode: callers put it in eval mode (the monitor does, through ``trainer.evaluating``).

    With ``dist`` (a :class:`~genlab.training.distributed.Distributed`), each rank generates and embeds its share
    of the chunks; the feature statistics (count, mean, scatter), class counts and correct labels are gathered
    and merged in rank order, so every rank gets the same numbers, equal to the single-process ones up to the
    float64 rounding of the merge (~1e-12 relative)."""
    part = (dist.rank, dist.world_size) if dist is not None else (0, 1)
    fake, labels = draw(model, n, seed, part=part)
    feats, logits = features(model, fake) if len(fake) else (None, None)
    if dist is None:
        stats = FeatureStats.from_features(feats.double())
        counts = class_histogram(logits) if logits is not None else None
        correct = float((logits.argmax(1) == labels).sum()) if logits is not None and labels is not None else 0.0
    else:
        stats, counts, correct = _merge_ranks(model, dist, feats, logits, labels)
    out = {"fid": fid(stats, real)}
    if counts is not None:
        out.update(class_figures(counts=counts))
        if labels is not None and len(counts) == int(model.data_info.get("num_classes") or 0):
            out["cond_acc"] = correct / n
    return out


def _merge_ranks(model, dist, feats, logits, labels):
    """Gather each rank's ``(n, mean, M2, class counts, correct)`` and merge them in rank order."""
    space = feature_space(model)
    k = _net(space).num_classes if space not in (None, "raw") else 0
    # every rank sends the same length, also one that drew no chunk: the dimension of the net's features, or of
    # the flattened samples (tabular)
    real_dim = _net(space).feature_dim if k else int(torch.Size(model.shape).numel())
    vec = torch.zeros(1 + real_dim + real_dim * real_dim + k + 1, dtype=torch.float64)
    if feats is not None and len(feats):
        s = FeatureStats.from_features(feats.double())
        vec[0] = s.n
        vec[1:1 + real_dim] = torch.from_numpy(s.mean)
        vec[1 + real_dim:1 + real_dim + real_dim ** 2] = torch.from_numpy(s._m2).reshape(-1)
        if k and logits is not None:
            vec[1 + real_dim + real_dim ** 2:-1] = torch.from_numpy(class_histogram(logits, k)).double()
            if labels is not None:
                vec[-1] = float((logits.argmax(1) == labels).sum())
    rows = dist.gather_rows(vec)  # (W, L), rank order
    merged = FeatureStats(real_dim)
    for r in rows:
        if r[0] > 0:
            part = FeatureStats(real_dim)
            part.n, part._mean = int(r[0]), r[1:1 + real_dim].numpy().copy()
            part._m2 = r[1 + real_dim:1 + real_dim + real_dim ** 2].numpy().reshape(real_dim, real_dim).copy()
            merged.merge(part)
    counts = rows[:, 1 + real_dim + real_dim ** 2:-1].sum(0).numpy().astype("int64") if k else None
    return merged, counts, float(rows[:, -1].sum())


@torch.no_grad()
def diversity(model, n: int, *, real: torch.Tensor | None = None, seed: int = 0,
              min_real_entropy: float = 0.5) -> dict[str, float]:
    """Diversity of ``n`` samples (noise seeded ``seed``): ``div_entropy``/``div_classes`` with a feature net
    (see :func:`class_figures`), else, given ``real`` model-space samples, ``div_ratio`` (mean pairwise distance
    of the samples over that of ``real``, raw values; :func:`genlab.metrics.diversity.diversity_ratio`). With a
    feature net and ``real`` whose own classes are not diverse (their ``div_entropy`` below ``min_real_entropy``:
    faces, which the ``lfw`` net sorts into face / non-face), the class histogram cannot show a collapse, so
    ``div_ratio`` is added, measured in the feature net's feature space."""
    fake, _ = draw(model, n, seed)
    feats, logits = features(model, fake)
    if logits is not None:
        out = class_figures(logits)
        if real is not None and len(real) >= 2:
            real_feats, real_logits = features(model, real)
            if class_figures(real_logits)["div_entropy"] < min_real_entropy:
                out["div_ratio"] = diversity_ratio(feats, real_feats)
        return out
    if real is None or len(real) < 2:
        return {}
    return {"div_ratio": diversity_ratio(feats, features(model, real)[0])}


class SampleQualityMonitor(Callback):
    """:func:`sample_quality` of ``samples`` samples at each validation, against the validation split (its
    statistics computed once per data set and cached); the noise is seeded :data:`FID_SEED` every time, so epochs
    are compared on the same noise."""

    def __init__(self, samples: int = 1000, *, seed: int = FID_SEED):
        self.samples, self.seed = samples, seed
        self._real: tuple | None = None  # (data key, feature space, FeatureStats)

    def validation_keys(self, trainer, model, val) -> set[str]:
        space = feature_space(model)
        if not self.samples or space is None or not _can_sample(model) or val is None or \
                len(complete_rows(val.x)) < 2:
            return set()
        if space == "raw":
            return {"fid"}
        keys = {"fid", "div_entropy", "div_classes"}
        if capabilities(model)["conditional"] and int(model.data_info.get("num_classes") or 0) == _net(space).num_classes:
            keys.add("cond_acc")
        return keys

    def _real_stats(self, model, data) -> FeatureStats:
        x = data.x
        key = (x.data_ptr(), tuple(x.shape), str(x.device), float(x.flatten()[:: max(1, x.numel() // 97)].sum()))
        space = feature_space(model)
        if self._real is None or self._real[0] != key or self._real[1] != space:
            self._real = (key, space, real_stats(model, complete_rows(x)))
        return self._real[2]

    def validation_figures(self, trainer, data) -> dict:
        model = trainer.model
        if not self.validation_keys(trainer, model, data):
            return {}
        with trainer.evaluating():
            return sample_quality(model, self._real_stats(model, data), self.samples, seed=self.seed,
                                  dist=trainer.dist)


class DiversityMonitor(Callback):
    """Every ``every`` steps: :func:`diversity` of ``samples`` samples (noise seeded by the step; ``div_ratio``
    against the real batch of the step) in the step record, and a warning when ``div_entropy`` (or, where the
    record has it, ``div_ratio``: no feature net, or real data of one class such as faces) falls below
    ``threshold`` after ``warmup`` steps (a fresh generator always looks collapsed)."""

    def __init__(self, every: int = 100, *, samples: int = 256, threshold: float = 0.5, warmup: int = 500):
        self.every, self.samples, self.threshold, self.warmup = every, samples, threshold, warmup

    def step_figures(self, trainer, batch: dict) -> dict:
        model = trainer.model
        if not self.every or trainer.step % self.every or not _can_sample(model):
            return {}
        with trainer.evaluating():
            out = diversity(model, self.samples, real=complete_rows(batch["x"]), seed=trainer.step,
                            min_real_entropy=self.threshold)
        if trainer.step >= self.warmup:
            for key in ("div_ratio",) if "div_ratio" in out else ("div_entropy",):
                if key in out and out[key] < self.threshold:
                    log.warning("%s: possible mode collapse at step %d: %s=%.3f < collapse_threshold=%.2f%s; try a "
                                "lower lr, spectral_norm=true, diffaugment or another loss",
                                model.registry_name, trainer.step, key, out[key], self.threshold,
                                f" ({int(out['div_classes'])} classes)" if "div_classes" in out else "")
        return out


def default_monitors(config) -> list[Callback]:
    """The monitors a :class:`~genlab.training.TrainerConfig` asks for (each switched off by a 0)."""
    out: list[Callback] = []
    if config.fid_samples:
        out.append(SampleQualityMonitor(config.fid_samples))
    if config.monitor_every:
        out.append(DiversityMonitor(config.monitor_every, samples=config.monitor_samples,
                                    threshold=config.collapse_threshold, warmup=config.collapse_warmup))
    return out
