"""Feature extractors behind one interface, and the on-disk cache of real-set features/statistics.

``get_extractor(spec, shape)`` accepts ``"auto"`` (genlab's own net for 1×8×8 / 1×28×28 images, else
Inception), ``"digits"``, ``"mnist"``, ``"inception"``, or any user ``nn.Module`` whose forward returns
features ``(N, D)`` or ``(features, logits)``. Metric names carry the extractor: ``FID-digits``,
``FID-mnist``, ``FID-custom``; only Inception features give plain ``FID``.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, DataError
from ..io.atomic import write_bytes_atomic
from .feature_nets import FEATURE_NETS, feature_net_for_shape, load_feature_net
from .stats import FeatureStats

log = logging.getLogger(__name__)

NAMES = ("auto", *FEATURE_NETS, "inception")


@dataclass
class Extractor:
    """A feature network with what identifies it in metric names and cache keys."""

    name: str
    suffix: str  # "" for Inception (plain FID), "-digits", "-mnist", "-custom"
    weights_hash: str
    input_shape: tuple[int, ...] | None
    extract_fn: Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray | None]]
    feature_fn: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """``(N, C, H, W)`` images in [0, 1] -> float64 ``(features, logits or None)``."""
        self.check(images)
        return self.extract_fn(images)

    def check(self, images: torch.Tensor) -> None:
        if self.input_shape is not None and tuple(images.shape[1:]) != tuple(self.input_shape):
            raise DataError(f"feature net {self.name!r} takes images of shape {tuple(self.input_shape)}, got "
                            f"{tuple(images.shape[1:])}; choose --features inception or a net for that shape")

    def label(self, metric: str) -> str:
        return f"{metric}{self.suffix}"

    def describe(self) -> dict:
        return {"name": self.name, "weights_sha256": self.weights_hash,
                "input_shape": list(self.input_shape) if self.input_shape else None,
                "reported_as": self.label("FID")}


def _module_hash(module: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _batched(fn, images: torch.Tensor, batch_size: int = 500):
    feats, logits = [], []
    with torch.no_grad():
        for xb in images.split(batch_size):
            out = fn(xb)
            f, lg = out if isinstance(out, tuple) else (out, None)
            feats.append(f.flatten(1).double().cpu().numpy())
            if lg is not None:
                logits.append(lg.double().cpu().numpy())
    return np.concatenate(feats), (np.concatenate(logits) if logits else None)


def get_extractor(spec: str | nn.Module = "auto", shape: tuple[int, ...] | None = None, *,
                  inception_weights: str | os.PathLike | None = None, device: str = "cpu") -> Extractor:
    """Resolve an extractor by name (see module doc) for images of sample ``shape``."""
    if isinstance(spec, nn.Module):
        module = spec.to(device).eval()
        return Extractor("custom", "-custom", _module_hash(module), None,
                         lambda x: _batched(module, x.to(device)),
                         lambda x: _first(module(x)))
    if spec == "auto":
        if shape is None:
            raise ConfigError("features='auto' needs the image shape; pass shape or name an extractor")
        spec = feature_net_for_shape(tuple(shape)) or "inception"
    if spec in FEATURE_NETS:
        net = load_feature_net(spec, device=device)
        entry = FEATURE_NETS[spec]
        return Extractor(spec, f"-{spec}", entry.sha256, tuple(entry.input_shape),
                         lambda x: tuple(net.extract(x.to(device))), lambda x: net.features(x))
    if spec == "inception":
        from .inception import inception_features, load_inception, preprocess
        model = load_inception(inception_weights, device=device)
        digest = _module_hash(model)
        return Extractor("inception", "", digest, None,
                         lambda x: inception_features(x, model, device=device),
                         lambda x: model(preprocess(x).to(device))[0])
    raise ConfigError(f"unknown feature extractor {spec!r}; valid: {', '.join(NAMES)} (or pass an nn.Module)")


def _first(out):
    return out[0] if isinstance(out, tuple) else out


# ----------------------------------------------------------------------------- real-set cache

def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$GENLAB_CACHE/stats``, else ``~/.cache/genlab/stats``."""
    if path is not None:
        return Path(path)
    root = os.environ.get("GENLAB_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "genlab") / "stats"


def cache_key(data_key: str, extractor: Extractor) -> str:
    """File stem for a real set: data set + split description, extractor name and its weight hash."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", data_key).strip("_")[:80]
    return f"{slug}--{extractor.name}-{extractor.weights_hash[:16]}"


def real_features(images: torch.Tensor, data_key: str, extractor: Extractor, *,
                  cache: str | os.PathLike | None = None, use_cache: bool = True
                  ) -> tuple[np.ndarray, np.ndarray | None, FeatureStats]:
    """Features, logits and :class:`FeatureStats` of a real set, read from / written to the cache.

    The cache holds ``<key>.npz`` (features, logits, sample count) and ``<key>.stats.npz``
    (:meth:`FeatureStats.save`), keyed by ``data_key`` (data set, split and seed), extractor name
    and weight hash. A cached file whose sample count differs from ``len(images)`` is recomputed.
    """
    folder = cache_dir(cache)
    stem = cache_key(data_key, extractor)
    fpath, spath = folder / f"{stem}.npz", folder / f"{stem}.stats.npz"
    if use_cache and fpath.is_file() and spath.is_file():
        try:
            with np.load(fpath, allow_pickle=False) as z:
                if int(z["n"]) == len(images):
                    logits = z["logits"] if z["has_logits"] else None
                    log.info("real features from cache %s", fpath)
                    return z["features"], logits, FeatureStats.load(spath)
        except (OSError, ValueError, KeyError, DataError) as e:
            log.warning("ignoring unreadable cache file %s (%s); recomputing", fpath, e)
    feats, logits = extractor(images)
    stats = FeatureStats.from_features(feats)
    if use_cache:
        buf = io.BytesIO()
        np.savez(buf, features=feats, logits=logits if logits is not None else np.zeros((0,)),
                 has_logits=np.array(logits is not None), n=np.array(len(images)))
        write_bytes_atomic(fpath, buf.getvalue())
        folder.mkdir(parents=True, exist_ok=True)
        stats.save(spath)
    return feats, logits, stats
