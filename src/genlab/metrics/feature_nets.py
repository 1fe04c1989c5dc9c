"""genlab's own small-image feature nets: classifiers whose penultimate activations replace Inception
features where Inception is absent or unsuited (8×8 digits, 28×28 grey MNIST-shaped images, 25×25 grey faces).
The ``lfw`` net is a face/non-face classifier trained on 160 of scikit-image's 200 ``lfw_subset`` images: its
features separate faces from other pictures and some of the variety between faces, far less than the digit
nets' ten classes do between digits (docs/evaluation.md).

Scores computed on these features are *not* comparable with published FID/KID numbers, so they are
always reported under their own label: ``metric_label("mnist", "fid") -> "FID-mnist"``.

>>> from genlab.metrics.feature_nets import load_feature_net, feature_net_for_shape
>>> name = feature_net_for_shape((1, 28, 28))          # "mnist"
>>> net = load_feature_net(name)                       # SHA-256 checked against the recorded one
>>> feats, logits = net.extract(images)                # (N, 128), (N, 10) float64 numpy

The shipped weights (``metrics/weights/<name>.safetensors``) are written by
``python -m genlab.tools.train_feature_net <name>``; beside each lies ``<name>.json`` with the
file's SHA-256, the data it was trained on, the held-out split and the held-out accuracy.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from torch import nn

from ..errors import CheckpointError, ConfigError, DataError, MissingFilesError

logger = logging.getLogger(__name__)

#: folder of the shipped weights (package data)
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: how metric keys are spelled in labels; unknown keys are used as given
_METRIC_NAMES = {"fid": "FID", "kid": "KID", "is": "IS", "inception_score": "IS", "precision_recall": "PR",
                 "density_coverage": "DC", "precision": "precision", "recall": "recall", "density": "density",
                 "coverage": "coverage", "ppl": "PPL"}


@dataclass(frozen=True)
class FeatureNetSpec:
    """A shipped feature net: its architecture (fixed here) and its recorded training outcome (read
    from ``weights/<name>.json``, written by the training script: one source of truth)."""

    name: str
    input_shape: tuple[int, int, int]
    channels: tuple[int, ...]
    strides: tuple[int, ...]
    feature_dim: int = 128
    num_classes: int = 10
    dropout: float = 0.3
    default_data: str = ""
    summary: str = ""
    weights_dir: Path = field(default=WEIGHTS_DIR, compare=False)

    @property
    def label(self) -> str:
        """The FID label of this net, e.g. ``"FID-mnist"``."""
        return metric_label(self.name, "fid")

    def arch(self) -> dict:
        """Keyword arguments of :class:`FeatureNet` (JSON-able)."""
        return {"input_shape": list(self.input_shape), "channels": list(self.channels), "strides": list(self.strides),
                "feature_dim": self.feature_dim, "num_classes": self.num_classes, "dropout": self.dropout}

    def record(self) -> dict | None:
        """The recorded metadata (``<name>.json``) or ``None`` when it is not present."""
        path = self.weights_dir / f"{self.name}.json"
        if not path.is_file():
            return None
        return _read_record(path, self.name)

    @property
    def sha256(self) -> str | None:
        rec = self.record()
        return None if rec is None else rec["sha256"]

    @property
    def accuracy(self) -> float | None:
        """Held-out accuracy recorded when the shipped weights were trained."""
        rec = self.record()
        return None if rec is None else rec["accuracy"]

    @property
    def data(self) -> str | None:
        """The data the shipped weights were trained on."""
        rec = self.record()
        return None if rec is None else rec["data"]


FEATURE_NETS: dict[str, FeatureNetSpec] = {
    "digits": FeatureNetSpec("digits", (1, 8, 8), channels=(32, 64), strides=(1, 2), default_data="digits",
                             summary="8x8 grey digits (scikit-learn digits): conv32-conv64/2-fc128"),
    "mnist": FeatureNetSpec("mnist", (1, 28, 28), channels=(32, 64, 128), strides=(2, 2, 2),
                            default_data="mnist5k",
                            summary="28x28 grey images (MNIST/Fashion-MNIST shaped): conv32/2-conv64/2-conv128/2-fc128"),
    "lfw": FeatureNetSpec("lfw", (1, 25, 25), channels=(32, 64, 128), strides=(2, 2, 2), num_classes=2,
                          default_data="lfw",
                          summary="25x25 grey faces (scikit-image lfw_subset, face vs non-face): "
                                  "conv32/2-conv64/2-conv128/2-fc128"),
}


def metric_label(name: str, metric: str = "fid") -> str:
    """How a score on net ``name``'s features is reported: ``metric_label("mnist", "fid") -> "FID-mnist"``,
    ``metric_label("digits", "kid") -> "KID-digits"``; ``name="inception"`` gives the plain label (``"FID"``)."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"feature net name must be a non-empty string, got {name!r}")
    pretty = _METRIC_NAMES.get(str(metric).lower(), str(metric))
    return pretty if name == "inception" else f"{pretty}-{name}"


def _shape_text(shape) -> str:
    return "(N, " + ", ".join(str(s) for s in shape) + ")"


class FeatureNet(nn.Module):
    """Small conv classifier on grey images in [0, 1]; its penultimate layer gives the features.

    ``conv3x3(channels[i], stride=strides[i]) + ReLU`` per stage, then ``fc(feature_dim) + ReLU``
    (the features), dropout, and ``fc(num_classes)`` (the logits). No BatchNorm, so features do not
    depend on the batch; :meth:`extract` still runs in eval mode (dropout off).
    """

    def __init__(self, *, input_shape=(1, 8, 8), channels=(32, 64), strides=(1, 2), feature_dim: int = 128,
                 num_classes: int = 10, dropout: float = 0.3, name: str = "custom"):
        super().__init__()
        input_shape = tuple(int(s) for s in input_shape)
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ConfigError(f"input_shape must be (C, H, W), got {input_shape}")
        if len(channels) != len(strides) or not channels:
            raise ConfigError(f"channels {tuple(channels)} and strides {tuple(strides)} must be non-empty and of "
                              "equal length")
        self.input_shape = input_shape
        self.feature_dim = int(feature_dim)
        self.num_classes = int(num_classes)
        self.name = name
        layers: list[nn.Module] = []
        c, h, w = input_shape
        for ch, st in zip(channels, strides):
            layers += [nn.Conv2d(c, int(ch), 3, stride=int(st), padding=1), nn.ReLU()]
            c, h, w = int(ch), (h - 1) // int(st) + 1, (w - 1) // int(st) + 1
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Linear(c * h * w, self.feature_dim)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.feature_dim, self.num_classes)

    def check_shape(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise DataError(f"feature net {self.name!r} takes images of shape {_shape_text(self.input_shape)} in "
                            f"[0, 1], got {tuple(x.shape)}; resize the images or use the net for their shape")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations ``(N, feature_dim)`` (after ReLU, before dropout)."""
        self.check_shape(x)
        h = self.conv(x)  # (N, C', H', W')
        return F.relu(self.fc(h.flatten(1)))  # (N, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, num_classes)``."""
        return self.head(self.drop(self.features(x)))

    @torch.no_grad()
    def extract(self, x: Any, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """Features ``(N, feature_dim)`` and logits ``(N, num_classes)`` as float64 numpy arrays.

        Runs in eval mode without gradients, ``batch_size`` images at a time, in float32 on the
        net's device; the net's train/eval mode is restored afterwards. ``x`` is a tensor or array
        of images in [0, 1] (values outside [-0.01, 1.01] are rejected: wrong scale).
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        x = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
        self.check_shape(x)
        if not x.is_floating_point():
            raise DataError(f"feature net {self.name!r} takes float images in [0, 1], got dtype {x.dtype}; "
                            "divide 8-bit pixels by 255")
        if len(x) and (torch.isnan(x).any() or x.min() < -0.01 or x.max() > 1.01):
            raise DataError(f"feature net {self.name!r} takes images in [0, 1], got values in "
                            f"[{float(x.min()):.3g}, {float(x.max()):.3g}]; rescale (or clamp) them to [0, 1]")
        dev = next(self.parameters()).device
        was_training = self.training
        self.eval()
        feats, logits = [], []
        try:
            for lo in range(0, len(x), batch_size):
                f = self.features(x[lo:lo + batch_size].to(dev, torch.float32))
                feats.append(f.double().cpu().numpy())
                logits.append(self.head(f).double().cpu().numpy())
        finally:
            self.train(was_training)
        if not feats:
            return np.zeros((0, self.feature_dim)), np.zeros((0, self.num_classes))
        return np.concatenate(feats), np.concatenate(logits)


# ---------------------------------------------------------------------------- loading
def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _retrain_hint(name: str) -> str:
    return f"reinstall genlab or retrain with `python -m genlab.tools.train_feature_net {name}`"


def _read_record(path: Path, name: str) -> dict:
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"feature net {name!r}: {path} is unreadable ({str(e).splitlines()[0]}); "
                              f"{_retrain_hint(name)}") from None
    missing = [k for k in ("sha256", "accuracy", "data", "arch") if k not in rec] if isinstance(rec, dict) else ["all"]
    if missing:
        raise CheckpointError(f"feature net {name!r}: {path} lacks {', '.join(missing)}; {_retrain_hint(name)}")
    return rec


def list_feature_nets() -> list[dict]:
    """One dict per shipped net: name, input_shape, feature_dim, label, data, accuracy, sha256, available."""
    out = []
    for spec in FEATURE_NETS.values():
        rec = spec.record() if (spec.weights_dir / f"{spec.name}.json").is_file() else None
        out.append({"name": spec.name, "input_shape": spec.input_shape, "feature_dim": spec.feature_dim,
                    "label": spec.label, "summary": spec.summary,
                    "data": rec["data"] if rec else None, "accuracy": rec["accuracy"] if rec else None,
                    "sha256": rec["sha256"] if rec else None,
                    "available": rec is not None and (spec.weights_dir / f"{spec.name}.safetensors").is_file()})
    return out


def feature_net_for_shape(shape) -> str | None:
    """Name of the shipped net for images of sample shape ``(C, H, W)`` (a leading batch dimension is
    ignored): ``(1, 8, 8) -> "digits"``, ``(1, 28, 28) -> "mnist"``; ``None`` for any other shape."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 4:
        shape = shape[1:]
    for spec in FEATURE_NETS.values():
        if spec.input_shape == shape:
            return spec.name
    return None


def load_feature_net(name: str, *, weights_dir: str | os.PathLike | None = None,
                     device: str | torch.device = "cpu") -> FeatureNet:
    """Load feature net ``name`` in eval mode (no gradients), after checking its weights' SHA-256.

    Parameters
    ----------
    name : str
        A shipped net (``"digits"``, ``"mnist"``) or, with ``weights_dir``, any net written there by
        ``python -m genlab.tools.train_feature_net ... --out weights_dir``.
    weights_dir : path, optional
        Folder holding ``<name>.safetensors`` and ``<name>.json``; default: the shipped weights.

    Raises
    ------
    MissingFilesError
        The weights or their record are missing.
    CheckpointError
        The file's SHA-256 differs from the recorded one (corrupt or replaced), or it does not load.
    """
    if weights_dir is None and name not in FEATURE_NETS:
        raise ConfigError(f"unknown feature net {name!r}; choose one of {', '.join(FEATURE_NETS)} "
                          "(or pass weights_dir= for one you trained)")
    folder = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    jpath, wpath = folder / f"{name}.json", folder / f"{name}.safetensors"
    for p in (jpath, wpath):
        if not p.is_file():
            raise MissingFilesError(f"feature net {name!r}: {p} is missing; {_retrain_hint(name)}")
    rec = _read_record(jpath, name)
    data = wpath.read_bytes()
    got = sha256_bytes(data)
    if got != rec["sha256"]:
        raise CheckpointError(f"feature net {name!r}: {wpath} has SHA-256 {got[:16]}... but {jpath.name} records "
                              f"{str(rec['sha256'])[:16]}... (corrupt or replaced); {_retrain_hint(name)}")
    arch = rec["arch"]
    if name in FEATURE_NETS and weights_dir is None and arch != FEATURE_NETS[name].arch():
        raise CheckpointError(f"feature net {name!r}: {jpath.name} records architecture {arch}, not the one this "
                              f"genlab version defines; {_retrain_hint(name)}")
    try:
        tensors = load_safetensors_bytes(data)
        with torch.random.fork_rng(devices=[]):  # building the net must not move the caller's RNG stream
            net = FeatureNet(**arch, name=name)
        net.load_state_dict(tensors, strict=True)
    except (SafetensorError, RuntimeError, TypeError, ValueError) as e:
        raise CheckpointError(f"feature net {name!r}: {wpath} does not load ({str(e).splitlines()[0]}); "
                              f"{_retrain_hint(name)}") from None
    net.record = rec
    logger.debug("loaded feature net %s from %s (sha256 %s)", name, wpath, got)
    return net.to(device).eval().requires_grad_(False)
