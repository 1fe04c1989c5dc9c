"""Building blocks of the image-to-image models (:mod:`genlab.models.image2image`), sized from the data shape.

* :class:`UNetGenerator`: encoder-decoder with skip connections at every scale (Ronneberger et al. 2015, as the
  pix2pix generator of Isola et al. 2017), any ``H x W`` (inputs are padded to a multiple of ``2**depth`` by
  replication and the output is cropped back);
* :class:`PatchDiscriminator`: the PatchGAN of pix2pix, one logit per overlapping patch of
  :func:`patch_receptive_field` pixels (70 for ``n_layers=3``, the paper's 70x70 PatchGAN);
* :class:`SRResNet`: the SRGAN generator (Ledig et al. 2017): residual blocks, then sub-pixel (pixel-shuffle)
  upsampling by 2 (or 3) per stage;
* colour helpers: ITU-R BT.601 luma/chroma (full-range YCbCr, JPEG's) and :func:`chroma_to_rgb_in_gamut`, which
  keeps the luma of a colour image exact while fitting it into ``[0, 1]``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

#: normalisation layers the blocks take: ``batch`` (pix2pix, SRGAN), ``instance``, ``none``
NORMS = ("batch", "instance", "none")


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "instance":
        return nn.InstanceNorm2d(ch, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"norm must be one of {', '.join(NORMS)}, got {kind!r}")


def unet_depth(h: int, w: int) -> int:
    """Number of stride-2 stages of the U-Net for ``h x w`` images: ``floor(log2(min(h, w))) - 1`` (so the
    bottleneck is 2 to 4 pixels wide), between 1 and 6. ``8 -> 2``, ``25, 28 -> 3``, ``32 -> 4``, ``64 -> 5``."""
    return max(1, min(int(math.floor(math.log2(max(min(h, w), 2)))) - 1, 6))


class UNetGenerator(nn.Module):
    """U-Net ``(B, in_ch, H, W) -> (B, out_ch, H, W)`` logits (no output activation).

    A 3x3 stem to ``width`` channels, ``depth`` encoder stages ``LeakyReLU(0.2) -> conv4x4/2 -> norm`` (channels
    doubling up to ``max_width``; no norm at the innermost stage, as in pix2pix), then ``depth`` decoder stages
    ``ReLU -> convT4x4/2 -> norm [-> dropout]`` each followed by concatenation with the encoder activation of the
    same scale (the skip connections, ``depth + 1`` of them counting the stem's), and a 3x3 conv to ``out_ch``.
    """

    def __init__(self, in_ch: int, out_ch: int, size: Sequence[int], *, width: int = 32, depth: int | None = None,
                 max_width: int = 256, norm: str = "batch", dropout: float = 0.0):
        super().__init__()
        h, w = int(size[0]), int(size[1])
        self.size = (h, w)
        self.depth = int(depth) if depth is not None else unet_depth(h, w)
        if self.depth < 1:
            raise ConfigError(f"U-Net depth must be >= 1, got {self.depth}")
        m = 2 ** self.depth
        self.pad = ((-w) % m, (-h) % m)  # right, bottom
        chans = [min(width * 2 ** i, max_width) for i in range(self.depth + 1)]
        self.stem = nn.Conv2d(in_ch, width, 3, 1, 1)
        self.downs = nn.ModuleList()
        for i in range(self.depth):
            inner = i == self.depth - 1
            self.downs.append(nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(chans[i], chans[i + 1], 4, 2, 1),
                                            nn.Identity() if inner else _norm(norm, chans[i + 1])))
        self.ups = nn.ModuleList()
        for i in reversed(range(self.depth)):
            cin = chans[i + 1] * (1 if i == self.depth - 1 else 2)
            layers = [nn.ReLU(), nn.ConvTranspose2d(cin, chans[i], 4, 2, 1), _norm(norm, chans[i])]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            self.ups.append(nn.Sequential(*layers))
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(2 * chans[0], out_ch, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.size
        if any(self.pad):
            x = F.pad(x, (0, self.pad[0], 0, self.pad[1]), mode="replicate")  # (B, C, H', W'), multiples of 2^depth
        a = self.stem(x)
        skips = [a]
        for down in self.downs:
            a = down(a)
            skips.append(a)
        a = skips.pop()  # the bottleneck
        for up in self.ups:
            a = torch.cat([up(a), skips.pop()], 1)  # skip connection: decoder | encoder at the same scale
        return self.out(a)[:, :, :h, :w]


def patch_layers(h: int, w: int) -> int:
    """Stride-2 layers of the PatchGAN for ``h x w`` images: 3 (70x70 patches) from 64 pixels, 2 (34x34) from
    16, else 1 (16x16)."""
    side = min(h, w)
    return 3 if side >= 64 else 2 if side >= 16 else 1


def patch_receptive_field(n_layers: int) -> int:
    """Side in pixels of the input patch one PatchGAN logit sees: ``n_layers`` 4x4 convs of stride 2, then two of
    stride 1 (``r <- r * stride + (kernel - stride)`` from the output back): 16, 34, 70, 142 for 1 to 4 layers."""
    r = 1
    for k, s in [(4, 1), (4, 1)] + [(4, 2)] * n_layers:
        r = r * s + (k - s)
    return r


class PatchDiscriminator(nn.Module):
    """PatchGAN ``(B, in_ch, H, W) -> (B, 1, H', W')`` logits, one per patch of
    :func:`patch_receptive_field` ``(n_layers)`` pixels. ``conv4x4/2 -> LeakyReLU(0.2)`` (no norm), then
    ``n_layers - 1`` more ``conv4x4/2 -> norm -> LeakyReLU``, one ``conv4x4/1 -> norm -> LeakyReLU`` and a
    ``conv4x4/1`` to one channel. The caller concatenates the condition (the source image) with the image."""

    def __init__(self, in_ch: int, *, width: int = 32, n_layers: int = 3, max_width: int = 256, norm: str = "batch"):
        super().__init__()
        if n_layers < 1:
            raise ConfigError(f"PatchGAN n_layers must be >= 1, got {n_layers}")
        self.n_layers = n_layers
        layers: list[nn.Module] = [nn.Conv2d(in_ch, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = width
        for _ in range(n_layers - 1):
            c2 = min(2 * c, max_width)
            layers += [nn.Conv2d(c, c2, 4, 2, 1), _norm(norm, c2), nn.LeakyReLU(0.2)]
            c = c2
        c2 = min(2 * c, max_width)
        layers += [nn.Conv2d(c, c2, 4, 1, 1), _norm(norm, c2), nn.LeakyReLU(0.2), nn.Conv2d(c2, 1, 4, 1, 1)]
        self.net = nn.Sequential(*layers)

    @property
    def receptive_field(self) -> int:
        return patch_receptive_field(self.n_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def patch_output_side(side: int, n_layers: int) -> int:
    """Side of the PatchGAN's logit map for an input side ``side`` (each stride-2 layer: ``floor(s / 2)``, each
    stride-1 layer: ``s - 1``)."""
    for _ in range(n_layers):
        side //= 2
    return side - 2


class _ResBlock(nn.Module):
    def __init__(self, ch: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1), _norm(norm, ch), nn.PReLU(ch),
                                  nn.Conv2d(ch, ch, 3, 1, 1), _norm(norm, ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def upscale_stages(factor: int) -> list[int]:
    """Pixel-shuffle stages of an upscale ``factor``: ``2 -> [2]``, ``3 -> [3]``, ``4 -> [2, 2]``, ``8 -> [2, 2, 2]``;
    other factors are refused."""
    if factor == 3:
        return [3]
    if factor >= 2 and factor & (factor - 1) == 0 and factor <= 16:
        return [2] * int(math.log2(factor))
    raise ConfigError(f"upscale factor must be 2, 3, 4, 8 or 16 (pixel-shuffle stages), got {factor}")


class SRResNet(nn.Module):
    """SRGAN generator ``(B, C, h, w) -> (B, C, factor*h, factor*w)`` (no output activation).

    ``conv9x9 -> PReLU``, ``n_blocks`` residual blocks (``conv-norm-PReLU-conv-norm`` plus identity), ``conv-norm``
    with a long skip, then per stage ``conv3x3(width -> width * r^2) -> PixelShuffle(r) -> PReLU`` and a
    ``conv9x9`` to ``C`` channels, initialised at 0.1 of the default scale (the model adds the output to a
    bicubic upscale, so training starts near bicubic)."""

    def __init__(self, channels: int, factor: int, *, width: int = 64, n_blocks: int = 8, norm: str = "batch",
                 out_channels: int | None = None):
        super().__init__()
        self.factor = int(factor)
        self.head = nn.Sequential(nn.Conv2d(channels, width, 9, 1, 4), nn.PReLU(width))
        self.body = nn.Sequential(*[_ResBlock(width, norm) for _ in range(n_blocks)],
                                  nn.Conv2d(width, width, 3, 1, 1), _norm(norm, width))
        ups: list[nn.Module] = []
        for r in upscale_stages(self.factor):
            ups += [nn.Conv2d(width, width * r * r, 3, 1, 1), nn.PixelShuffle(r), nn.PReLU(width)]
        self.up = nn.Sequential(*ups)
        self.tail = nn.Conv2d(width, out_channels or channels, 9, 1, 4)
        with torch.no_grad():
            self.tail.weight.mul_(0.1)
            self.tail.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)  # (B, width, h, w)
        h = h + self.body(h)
        return self.tail(self.up(h))  # (B, C, factor*h, factor*w)


# -- colour (ITU-R BT.601, full-range YCbCr as in JPEG) -------------------------------------------------------
#: luma weights of R, G, B (ITU-R BT.601): ``Y = 0.299 R + 0.587 G + 0.114 B``
LUMA_601 = (0.299, 0.587, 0.114)
#: ``Cb = 0.5 + (B - Y) / (2 (1 - 0.114))``, ``Cr = 0.5 + (R - Y) / (2 (1 - 0.299))``
_CB_SCALE = 0.5 / (1 - LUMA_601[2])
_CR_SCALE = 0.5 / (1 - LUMA_601[0])


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB in [0, 1] -> ``(B, 3, H, W)`` full-range YCbCr (Y, Cb, Cr each in [0, 1])."""
    r, g, b = rgb.unbind(1)
    y = LUMA_601[0] * r + LUMA_601[1] * g + LUMA_601[2] * b
    return torch.stack([y, 0.5 + _CB_SCALE * (b - y), 0.5 + _CR_SCALE * (r - y)], 1)


def chroma_offsets(cbcr: torch.Tensor) -> torch.Tensor:
    """``(B, 2, H, W)`` (Cb, Cr) -> ``(B, 3, H, W)`` the RGB offsets from grey ``(R - Y, G - Y, B - Y)``; their
    luma is 0 by construction (``0.299 dR + 0.587 dG + 0.114 dB = 0``)."""
    db = (cbcr[:, 0] - 0.5) / _CB_SCALE  # B - Y
    dr = (cbcr[:, 1] - 0.5) / _CR_SCALE  # R - Y
    dg = -(LUMA_601[0] * dr + LUMA_601[2] * db) / LUMA_601[1]  # G - Y, from Y = sum of w * (Y + d)
    return torch.stack([dr, dg, db], 1)


def chroma_to_rgb_in_gamut(y: torch.Tensor, cbcr: torch.Tensor) -> torch.Tensor:
    """RGB ``(B, 3, H, W)`` in [0, 1] whose BT.601 luma is exactly ``y`` ``(B, 1, H, W)`` (in [0, 1]).

    ``rgb = y + t * d`` with ``d`` :func:`chroma_offsets` of ``cbcr`` and, per pixel, the largest ``t <= 1`` that
    keeps every channel in [0, 1] (``t = 1``: the predicted colour; ``t < 1``: the same hue, desaturated toward
    the grey ``y`` until it fits). ``d`` has luma 0, so the luma stays ``y`` whatever ``t`` is."""
    d = chroma_offsets(cbcr)  # (B, 3, H, W)
    y = y.clamp(0, 1)
    eps = 1e-12
    room = torch.where(d > 0, (1 - y) / d.clamp_min(eps), torch.where(d < 0, y / (-d).clamp_min(eps),
                                                                      torch.ones_like(d)))  # (B, 3, H, W)
    t = room.amin(1, keepdim=True).clamp(max=1.0)  # (B, 1, H, W)
    return (y + t * d).clamp(0, 1)  # rounding only (< 1e-6): the luma stays y
