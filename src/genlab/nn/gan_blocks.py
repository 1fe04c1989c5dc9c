"""Generator and discriminator networks for the GAN family (:mod:`genlab.models.gan`).

Every network works in genlab's model space: generators emit samples of the data shape (images in
``[0, 1]``), discriminators read them. A discriminator is split into ``features`` ``(B, *shape) -> (B, F)``
and a linear ``head`` ``(B, F) -> (B,)`` so conditional heads (projection, auxiliary classifier) can share
the features.

Other image sizes up to 64 (non-square ones too) run on the DCGAN side ``S`` just above them: the generator's
``S×S`` output is cropped to the centred ``H×W`` window and the discriminator's input edge-padded back to ``S×S``
(:func:`genlab.nn.style_blocks.pad_to` / ``crop_to``, as ``progan`` and ``stylegan`` do), so 25×25 faces train on
28×28 nets; the sizes in :data:`DCGAN_SIZES` neither pad nor crop.

DCGAN plan (Radford et al. 2016) for square images of side ``S`` in :data:`DCGAN_SIZES`: the generator
starts from a ``s×s`` map (``s = 7`` for 28, else 4) made by a ``s×s`` transposed convolution of
``z`` (as a 1×1 map), then doubles the side with 4×4 stride-2 transposed convolutions (BatchNorm +
ReLU between them) until ``S``, with a Tanh output. The discriminator mirrors it with 4×4 stride-2
convolutions and LeakyReLU(0.2) (BatchNorm on all but the first, unless ``norm=False``), and its
``s×s`` last convolution is the linear head on the flattened ``s×s`` features. Weights are drawn from
``N(0, 0.02)`` (BatchNorm scales from ``N(1, 0.02)``). Tanh outputs ``t`` are mapped to model space as
``(t + 1) / 2``, and the discriminator reads ``2 x - 1``, so the nets see ``[-1, 1]`` as in the paper.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..errors import DataError
from .blocks import hidden_layers
from .style_blocks import crop_to, pad_to

#: image sides the DCGAN plan can produce (square images only)
DCGAN_SIZES = (8, 16, 28, 32, 64)


def dcgan_side(shape: Sequence[int], who: str = "dcgan") -> int:
    """The side ``S`` of the DCGAN networks for images ``(C, H, W)``: the smallest of :data:`DCGAN_SIZES` that
    holds ``H`` and ``W`` (samples are cropped to ``H×W``, discriminator inputs padded to ``S×S``); DataError for
    non-images and sides above 64."""
    if len(shape) != 3:
        raise DataError(f"{who}: the DCGAN networks need images (C, H, W), got sample shape {tuple(shape)}; "
                        "use arch=mlp")
    _, h, w = shape
    fits = [s for s in DCGAN_SIZES if s >= max(h, w)]
    if not fits:
        raise DataError(f"{who}: image size {h}x{w} is larger than the DCGAN networks' largest side, "
                        f"{DCGAN_SIZES[-1]}x{DCGAN_SIZES[-1]}; resize the images to at most that (or use progan or "
                        "stylegan, which grow to any power-of-two side)")
    return fits[0]


def dcgan_plan(shape: Sequence[int], who: str = "dcgan") -> tuple[int, int]:
    """``(start side s, number of stride-2 stages)`` of the networks for images ``(C, H, W)`` (on the side
    :func:`dcgan_side` picks); DataError for non-images and sides above 64."""
    side = dcgan_side(shape, who)
    start = 7 if side == 28 else 4
    return start, int(round(math.log2(side // start)))


def dcgan_init(module: nn.Module) -> None:
    """``N(0, 0.02)`` conv/linear weights, zero biases, ``N(1, 0.02)`` BatchNorm scales (Radford et al.)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """``(B, in_dim) -> (B, C, H, W)`` in ``[0, 1]`` (made at the DCGAN side ``S`` and cropped to ``H×W``)."""

    def __init__(self, in_dim: int, shape: Sequence[int], width: int = 64):
        super().__init__()
        start, n = dcgan_plan(shape)
        self.out_hw = tuple(shape[1:])
        widths = [width * 2 ** (n - 1 - i) for i in range(n)]  # e.g. 4w, 2w, w
        layers: list[nn.Module] = [nn.ConvTranspose2d(in_dim, widths[0], start, 1, 0, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], shape[0], 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        t = self.net(z[:, :, None, None])  # (B, C, S, S) in [-1, 1]
        if t.shape[2:] != self.out_hw:
            t = crop_to(t, *self.out_hw)
        return (t + 1) / 2


class DCGANFeatures(nn.Module):
    """``(B, C, H, W)`` in ``[0, 1]`` (edge-padded to the DCGAN side ``S``) -> ``(B, F)`` with
    ``F = widths[-1] * s * s``."""

    def __init__(self, shape: Sequence[int], width: int = 64, batch_norm: bool = True):
        super().__init__()
        start, n = dcgan_plan(shape)
        self.side = dcgan_side(shape)
        widths = [width * 2 ** i for i in range(n)]  # w, 2w, 4w
        layers: list[nn.Module] = [nn.Conv2d(shape[0], widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1, bias=not batch_norm)]
            layers += [nn.BatchNorm2d(b)] if batch_norm else []
            layers += [nn.LeakyReLU(0.2, True)]
        self.net = nn.Sequential(*layers)
        self.out_dim = widths[-1] * start * start
        dcgan_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(2 * pad_to(x, self.side) - 1).flatten(1)  # (B, F)


class MLPGenerator(nn.Module):
    """``(B, in_dim) -> (B, *shape)``: Linear layers with LeakyReLU(0.2), BatchNorm1d on every hidden layer
    but the first (``batch_norm=True``, as the common MLP GAN references do: without it the generator
    collapsed to one digit class on ``digits`` in our runs), sigmoid output for images (``[0, 1]``),
    linear for tabular data."""

    def __init__(self, in_dim: int, shape: Sequence[int], hidden: Sequence[int], sigmoid: bool,
                 batch_norm: bool = True):
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for i, h in enumerate(hidden):
            layers.append(nn.Linear(d, h))
            if batch_norm and i > 0:
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.LeakyReLU(0.2))
            d = h
        layers.append(nn.Linear(d, math.prod(shape)))
        self.net = nn.Sequential(*layers)
        self.shape = tuple(shape)
        self.sigmoid = sigmoid

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.net(z).view(-1, *self.shape)  # (B, *shape)
        return torch.sigmoid(out) if self.sigmoid else out


class MLPFeatures(nn.Module):
    """``(B, *shape) -> (B, F)``: flattened input through Linear + LeakyReLU(0.2) layers (``F`` = last width)."""

    def __init__(self, in_dim: int, hidden: Sequence[int]):
        super().__init__()
        layers, d = hidden_layers(in_dim, hidden)
        self.net = nn.Sequential(*layers)
        self.out_dim = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))  # (B, F)


def gan_hidden(dim: int, hidden: Sequence[int] | None) -> list[int]:
    """Discriminator MLP widths (the generator uses them reversed): default ``[512, 256]``, or
    ``[1024, 512]`` for inputs of more than 1,024 values."""
    if hidden is not None:
        return list(hidden)
    return [1024, 512] if dim > 1024 else [512, 256]


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) on every Linear/Conv weight of ``module`` (in place)."""
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            apply_spectral_norm(child)
    return module


# -- DiffAugment (Zhao et al. 2020) ---------------------------------------------------------------------------
DIFFAUGMENT_OPS = ("color", "translation", "cutout")


def diff_augment(x: torch.Tensor, policy: Sequence[str]) -> torch.Tensor:
    """Differentiable augmentation of images ``(B, C, H, W)`` in model space ``[0, 1]``, applied to real and
    fake batches alike (gradients flow through to the generator). Random draws use the global RNG.

    Magnitudes follow the reference implementation, which works in ``[-1, 1]``; here in ``[0, 1]``:
    ``color``: brightness ``+ U(-0.25, 0.25)`` (``U(-0.5, 0.5)`` in [-1, 1]), saturation ``x (mean over
    channels) + (x - mean) * U(0, 2)``, contrast ``mean + (x - mean) * U(0.5, 1.5)`` (mean over C, H, W);
    ``translation``: integer shifts of up to ``round(S / 8)`` pixels per axis, filled with 0.5 (the zero of
    [-1, 1]); ``cutout``: a square of side ``round(S / 2)`` at a random centre set to 0.5.
    """
    if not policy:
        return x
    b, _, h, w = x.shape
    dev, dt = x.device, x.dtype
    if "color" in policy:
        x = x + (torch.rand(b, 1, 1, 1, device=dev, dtype=dt) - 0.5) / 2
        m = x.mean(1, keepdim=True)
        x = (x - m) * (torch.rand(b, 1, 1, 1, device=dev, dtype=dt) * 2) + m
        m = x.mean((1, 2, 3), keepdim=True)
        x = (x - m) * (torch.rand(b, 1, 1, 1, device=dev, dtype=dt) + 0.5) + m
    gy, gx = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij")  # (H, W)
    if "translation" in policy:
        sh, sw = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)
        ty = torch.randint(-sh, sh + 1, (b, 1, 1), device=dev)
        tx = torch.randint(-sw, sw + 1, (b, 1, 1), device=dev)
        xp = torch.nn.functional.pad(x, [sw, sw, sh, sh], value=0.5)  # (B, C, H + 2sh, W + 2sw)
        iy, ix = gy[None] + ty + sh, gx[None] + tx + sw  # (B, H, W)
        x = xp[torch.arange(b, device=dev)[:, None, None], :, iy, ix].permute(0, 3, 1, 2)  # (B, C, H, W)
    if "cutout" in policy:
        ch, cw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
        cy = torch.randint(0, h, (b, 1, 1), device=dev)
        cx = torch.randint(0, w, (b, 1, 1), device=dev)
        inside = ((gy[None] - cy).abs() <= ch // 2) & ((gx[None] - cx).abs() <= cw // 2)  # (B, H, W)
        x = torch.where(inside[:, None], torch.full_like(x, 0.5), x)
    return x
