"""The FID Inception-V3 (TensorFlow 2015-12-05 graph, as ported by pytorch-fid), in plain torch.

Architecture: torchvision's Inception-V3 layout and state-dict names without the auxiliary
classifier, with pytorch-fid's FID patches: ``Mixed_5b..5d`` (InceptionA), ``Mixed_6b..6e``
(InceptionC) and ``Mixed_7b`` (InceptionE) average-pool their pool branch with
``count_include_pad=False`` (TensorFlow ignores the padding); ``Mixed_7c`` max-pools it (a quirk
of the TF graph). ``fc`` maps the 2048-d pooled features to 1008 logits. Every conv is
``Conv2d(bias=False) -> BatchNorm2d(eps=0.001) -> ReLU``.

Weights: ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid's release, 95,628,359 bytes),
looked up at, in order: the ``path`` argument, the ``GENLAB_INCEPTION`` environment variable
(a file path), ``~/.cache/genlab/weights/<file name>``. When missing and downloading is allowed
it is fetched from :data:`INCEPTION_URL` with :func:`genlab.data.download.download_file`
(temporary file, fsync, atomic rename) and verified against :data:`INCEPTION_SHA256`.
The full SHA-256 is not published by pytorch-fid; the value here is the one several independent
projects record for this file, and its first 8 hex digits are the ``6726825d`` in the file
name (torch.hub's convention). A local file with a different hash is used with a logged warning.
The file is read with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError, MissingFilesError
from ..io.paths import resolve_location

logger = logging.getLogger(__name__)

INCEPTION_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                 "pt_inception-2015-12-05-6726825d.pth")
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
ENV_VAR = "GENLAB_INCEPTION"
DEFAULT_DIR = Path("~/.cache/genlab/weights")
INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_LOGITS = 1008
PREPROCESS_MODES = ("tf-bilinear", "pytorch-fid")


class BasicConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_tf(x: torch.Tensor) -> torch.Tensor:
    # TF's 3x3/1 SAME average pool divides by the number of real (unpadded) pixels
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_tf(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)


class InceptionC(nn.Module):
    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(_avg_pool_tf(x))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class InceptionE(nn.Module):
    """InceptionE; ``pool="avg"`` (TF average pool, Mixed_7b) or ``"max"`` (Mixed_7c of the FID graph)."""

    def __init__(self, in_channels: int, pool: str):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.pool == "avg":
            p = _avg_pool_tf(x)
        else:
            p = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        bp = self.branch_pool(p)
        return torch.cat([b1, b3, bd, bp], 1)


class InceptionV3FID(nn.Module):
    """FID Inception-V3: preprocessed images (N, 3, 299, 299) -> (features (N, 2048), logits (N, 1008)).

    The input must already be preprocessed by :func:`preprocess`. Built with random weights; use
    :func:`load_inception` for the pretrained network.
    """

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, NUM_LOGITS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # (N, 3, 299, 299)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (N, 64, 147, 147)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (N, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # (N, 192, 71, 71)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (N, 192, 35, 35)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))  # (N, 288, 35, 35)
        x = self.Mixed_6a(x)  # (N, 768, 17, 17)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))  # (N, 768, 17, 17)
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))  # (N, 2048, 8, 8)
        feats = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # (N, 2048)
        return feats, self.fc(feats)  # (N, 2048), (N, 1008)


# ----------------------------------------------------------------------------- preprocessing

def tf1_bilinear_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TensorFlow 1.x ``resize_bilinear(align_corners=False)`` (legacy, no half-pixel centres).

    Output pixel ``i`` samples input coordinate ``i * (in / out)`` (float32 arithmetic, as TF),
    between pixels ``floor`` and ``min(floor + 1, in - 1)``; interpolates along the width first,
    then the height; no antialiasing. This is what the TF FID/IS code did and what torch-fidelity
    reproduces; it differs from ``F.interpolate(..., align_corners=False)`` (half-pixel centres).
    """
    n, c, h, w = x.shape
    out_h, out_w = size

    def coords(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scale = torch.tensor(n_in / n_out, dtype=torch.float32)
        src = torch.arange(n_out, dtype=torch.float32) * scale
        lo = src.floor().long().clamp(max=n_in - 1)
        hi = (lo + 1).clamp(max=n_in - 1)
        return lo.to(x.device), hi.to(x.device), (src - lo.float()).to(device=x.device, dtype=x.dtype)

    ylo, yhi, fy = coords(h, out_h)
    xlo, xhi, fx = coords(w, out_w)
    top, bottom = x[:, :, ylo, :], x[:, :, yhi, :]  # (N, C, out_h, W)
    fx = fx.view(1, 1, 1, out_w)
    top = top[..., xlo] + (top[..., xhi] - top[..., xlo]) * fx
    bottom = bottom[..., xlo] + (bottom[..., xhi] - bottom[..., xlo]) * fx
    return top + (bottom - top) * fy.view(1, 1, out_h, 1)  # (N, C, out_h, out_w)


def preprocess(images: Any, mode: str = "tf-bilinear") -> torch.Tensor:
    """Images (N, C, H, W), C in {1, 3} -> Inception input (N, 3, 299, 299) float32.

    Input: uint8 in [0, 255], or floats in [0, 1] (genlab's model space); 1 channel is repeated
    to 3. Modes:

    ``"tf-bilinear"`` (torch-fidelity's, matching the original TF FID/IS code): float input is
    converted to the uint8 scale as ``round(x * 255)`` (round half to even) so floats and their
    uint8 encoding give identical features; resized to 299x299 by :func:`tf1_bilinear_resize`
    (TF1 ``align_corners=False`` legacy coordinates, no antialias) in float32 — also when already
    299x299 (then it is the identity); then ``(x - 128) / 128``.

    ``"pytorch-fid"`` (pytorch-fid's): uint8 input divided by 255 (floats used as given);
    ``F.interpolate(size=299, mode="bilinear", align_corners=False)`` (half-pixel centres, no
    antialias); then ``2 x - 1``.
    """
    if mode not in PREPROCESS_MODES:
        raise DataError(f"unknown Inception preprocessing mode {mode!r}; use one of {', '.join(PREPROCESS_MODES)}")
    x = torch.from_numpy(np.asarray(images)) if isinstance(images, np.ndarray) else torch.as_tensor(images)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise DataError(f"Inception needs images of shape (N, 1 or 3, H, W), got {tuple(x.shape)}; "
                        f"convert to channels-first RGB or greyscale")
    is_uint8 = x.dtype == torch.uint8
    x = x.to(torch.float32)
    if not is_uint8:
        if not bool(torch.isfinite(x).all()):
            raise DataError("images contain NaN/inf; check the model that produced them")
        lo, hi = float(x.min()), float(x.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise DataError(f"float images must be in [0, 1] (got values in [{lo:.3g}, {hi:.3g}]); "
                            f"map them to [0, 1] or pass uint8")
        x = x.clamp(0.0, 1.0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if mode == "tf-bilinear":
        if not is_uint8:
            x = torch.round(x * 255.0)
        x = tf1_bilinear_resize(x, (INPUT_SIZE, INPUT_SIZE))
        return (x - 128.0) / 128.0
    if is_uint8:
        x = x / 255.0
    x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=False)
    return 2.0 * x - 1.0


# ----------------------------------------------------------------------------- weights

def inception_weights_path(path: str | os.PathLike | None = None) -> Path:
    """Where the weights are looked for: ``path``, else ``$GENLAB_INCEPTION``, else the cache folder."""
    return resolve_location(path, ENV_VAR, DEFAULT_DIR / INCEPTION_FILENAME)


def _missing_message(where: Path, reason: str) -> str:
    return (f"FID Inception weights not found at {where} ({reason}); download {INCEPTION_URL} and put it there, "
            f"or point {ENV_VAR} (or the path argument) at the file")


def load_inception(path: str | os.PathLike | None = None, *, download: bool | None = None,
                   device: str | torch.device = "cpu") -> InceptionV3FID:
    """The pretrained FID Inception-V3 in eval mode with frozen parameters.

    ``download=None``/``True`` fetches the weights when missing (only to the default location or
    ``$GENLAB_INCEPTION``, never over an explicit ``path``); ``False`` never uses the network.
    Raises :class:`MissingFilesError` when the file is absent, :class:`DataError` when it does not
    match the architecture.
    """
    where = inception_weights_path(path)
    if not where.is_file():
        if download is False:
            raise MissingFilesError(_missing_message(where, "download disabled"))
        if path is not None:
            raise MissingFilesError(_missing_message(where, "no such file"))
        from ..data.download import download_file  # the shared, atomic, checksummed downloader

        try:
            download_file(INCEPTION_URL, where, INCEPTION_SHA256)
        except OSError as e:
            reason = " ".join(str(e).split()) or type(e).__name__
            raise MissingFilesError(_missing_message(where, f"download failed: {reason}")) from None
    model = InceptionV3FID()
    try:
        state = torch.load(where, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, or something that is not a plain tensor dict
        # a file the user named is theirs: never suggest deleting it
        fix = (f"give the path of {INCEPTION_FILENAME} (from {INCEPTION_URL})" if path is not None else
               f"delete it and download {INCEPTION_URL} again")
        raise DataError(f"cannot read Inception weights {where} ({type(e).__name__}: "
                        f"{' '.join(str(e).split())[:200]}); {fix}") from None
    load_inception_state_dict(model, state, source=str(where))
    from ..data.download import sha256_file
    digest = sha256_file(where)  # checked once the file is known to be weights: an unreadable one is one error line
    if digest != INCEPTION_SHA256:
        logger.warning("%s has SHA-256 %s, not the published FID weights' %s; numbers may not be "
                       "comparable with other FID implementations", where, digest, INCEPTION_SHA256)
    return model.to(device).eval().requires_grad_(False)


def load_inception_state_dict(model: InceptionV3FID, state: Any, *, source: str = "state dict") -> None:
    """Strictly load ``state`` (BatchNorm ``num_batches_tracked`` may be absent), with one-line errors."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{source} is not a state dict of tensors; use {INCEPTION_FILENAME} from {INCEPTION_URL}")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        raise DataError(f"{source} does not fit the FID Inception-V3: {len(missing)} missing keys "
                        f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, {len(wrong)} with "
                        f"wrong shapes {wrong[:3]}; use {INCEPTION_FILENAME} from {INCEPTION_URL}")
    full = dict(state)
    for k, v in expected.items():
        if k not in full:  # num_batches_tracked of old checkpoints; unused in eval mode
            full[k] = v
    model.load_state_dict(full, strict=True)


@torch.no_grad()
def inception_features(images: Any, model: InceptionV3FID | None = None, *, mode: str = "tf-bilinear",
                       batch_size: int = 50, device: str | torch.device | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pool features (N, 2048) and logits (N, 1008) as float64 arrays, ``batch_size`` images at a time.

    ``model=None`` loads the pretrained network with :func:`load_inception`. The network runs in
    float32; outputs are widened to float64. See :func:`preprocess` for ``mode``.
    """
    if model is None:
        model = load_inception(device=device or "cpu")
    dev = device or next(model.parameters()).device
    n = len(images)
    feats, logits = [], []
    for lo in range(0, n, batch_size):
        x = preprocess(images[lo:lo + batch_size], mode).to(dev)
        f, l = model(x)
        feats.append(f.double().cpu().numpy())
        logits.append(l.double().cpu().numpy())
    return np.concatenate(feats), np.concatenate(logits)
