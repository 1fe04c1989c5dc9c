"""Blocks of the progressive and style-based GANs (:mod:`genlab.models.progan`, :mod:`genlab.models.stylegan`).

* equalised learning rate (Karras et al. 2018): weights drawn from ``N(0, 1) / lr_mul`` and scaled at run time
  by ``lr_mul / sqrt(fan_in)`` (:class:`EqualLinear`, :class:`EqualConv2d`), so Adam's per-parameter step size
  acts alike on every layer;
* LeakyReLU(0.2) with the He gain ``sqrt(2)`` (:func:`lrelu_gain`, :class:`LReLUGain`), after every activation of
  both papers' networks: with unit-variance equalised weights, a plain LeakyReLU(0.2) shrinks the second moment by
  about 0.52 per layer, so a deep stack starts near zero (StyleGAN2 applies the gain after the activation, ProGAN in
  the He constant of the weight; the two differ only in the bias's scale);
* pixel norm ``x / sqrt(mean_c x^2 + 1e-8)`` (:func:`pixel_norm`) and the minibatch standard deviation channel
  (:class:`MinibatchStd`);
* the modulated/demodulated convolution of StyleGAN2 (:class:`ModulatedConv2d`);
* power-of-two sides: images whose side is not a power of two are padded (edge replicated, centred) to the next
  power of two for the networks and generated images are cropped back (:func:`power_side`, :func:`pad_to`,
  :func:`crop_to`).

Upsampling is bilinear (``F.interpolate``, ``align_corners=False``) or nearest (:func:`up2`) and downsampling a 2x2
average; the papers' FIR filters are left out at these small sizes.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError


def power_side(shape, who: str, resolution: int | None = None) -> int:
    """The square power-of-two side the networks work at for images ``(C, H, W)``: ``resolution`` if given (it
    must be a power of two >= 4 and >= H and W), else the next power of two >= max(H, W)."""
    if len(shape) != 3:
        raise DataError(f"{who} needs images (C, H, W), got sample shape {tuple(shape)}")
    side = max(shape[1], shape[2])
    if resolution is None:
        return max(4, 1 << (side - 1).bit_length())
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 4 \
            or resolution & (resolution - 1) or resolution < side:
        first = max(4, 1 << (side - 1).bit_length())
        raise DataError(f"{who}: resolution={resolution} cannot be reached by growing from 4x4 for images of "
                        f"{shape[1]}x{shape[2]}; resolution must be a power of two >= {max(4, side)} ({first}, "
                        f"{2 * first}, ...), or null for the next power of two")
    return resolution


def channels(width: int, side: int) -> int:
    """Feature maps at resolution ``side`` in ``progan`` and ``stylegan``: ``width`` up to 8×8, then halved with
    each doubling of the side, never below 16."""
    return min(width, max(16, width * 8 // side))


def pad_to(x: torch.Tensor, side: int) -> torch.Tensor:
    """``(B, C, H, W) -> (B, C, side, side)``: centred, edges replicated (identity when already that size)."""
    h, w = x.shape[2:]
    if h == side and w == side:
        return x
    ph, pw = side - h, side - w
    return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2], mode="replicate")


def crop_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The centred ``h x w`` window of ``(B, C, S, S)``, the inverse of :func:`pad_to`."""
    s = x.shape[2]
    top, left = (s - h) // 2, (x.shape[3] - w) // 2
    return x[:, :, top:top + h, left:left + w]


LRELU_GAIN = math.sqrt(2)


def lrelu_gain(x: torch.Tensor) -> torch.Tensor:
    """``LeakyReLU(0.2)(x) * sqrt(2)``: the activation of every hidden layer of ``stylegan`` and ``progan``."""
    return F.leaky_relu(x, 0.2) * LRELU_GAIN


class LReLUGain(nn.Module):
    """:func:`lrelu_gain` as a module (for ``nn.Sequential``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lrelu_gain(x)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalise each feature vector (dim 1) to unit root mean square."""
    return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + eps)


UPSAMPLE_MODES = ("bilinear", "nearest")


def up2(x: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """2x upsampling, ``mode`` ``"bilinear"`` (``align_corners=False``) or ``"nearest"``."""
    if mode == "nearest":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def down2(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate; ``lr_mul`` scales the effective learning rate (StyleGAN's
    mapping network uses 0.01)."""

    def __init__(self, in_dim: int, out_dim: int, *, bias: bool = True, bias_init: float = 0.0, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init) / lr_mul)) if bias else None
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bias * self.lr_mul if self.bias is not None else None
        return F.linear(x, self.weight * self.scale, b)


class EqualConv2d(nn.Module):
    """Conv2d (stride 1, 'same' padding) with equalised learning rate."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, *, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1 / math.sqrt(in_ch * kernel * kernel)
        self.pad = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)


class MinibatchStd(nn.Module):
    """Appends ``channels`` feature maps holding the standard deviation across groups of ``group`` samples (the
    largest divisor of the batch size <= ``group``), averaged over features and pixels (Karras et al. 2018,
    StyleGAN2's grouped form). ``(B, C, H, W) -> (B, C + 1, H, W)``."""

    def __init__(self, group: int = 4):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = max(d for d in range(1, min(self.group, b) + 1) if b % d == 0)
        y = x.reshape(g, b // g, c, h, w)  # (G, M, C, H, W)
        y = (y.var(0, unbiased=False) + 1e-8).sqrt().mean((1, 2, 3))  # (M,)
        y = y.repeat(g)[:, None, None, None].expand(b, 1, h, w)  # sample i is in group i % M
        return torch.cat([x, y], 1)


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated convolution: the weight ``w[o, i, k, l]`` is scaled per sample by the style
    ``s[i] = affine(w_latent)`` (bias init 1) and, with ``demodulate``, each output channel's scaled weight is
    divided by its L2 norm ``sqrt(sum_{i,k,l} (w s)^2 + 1e-8)``. ``up=True``
    upsamples the input 2x first (:func:`up2` with ``up_mode``). ``(B, in, H, W), (B, w_dim) -> (B, out, H', W')``."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, w_dim: int, *, demodulate: bool = True, up: bool = False,
                 up_mode: str = "bilinear"):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)
        self.scale = 1 / math.sqrt(in_ch * kernel * kernel)
        self.demodulate, self.up, self.up_mode, self.pad = demodulate, up, up_mode, kernel // 2

    def modulated_weight(self, w: torch.Tensor) -> torch.Tensor:
        """The per-sample weights ``(B, out, in, k, k)`` for latents ``w`` ``(B, w_dim)``."""
        s = self.affine(w)  # (B, in)
        wt = self.weight[None] * self.scale * s[:, None, :, None, None]  # (B, out, in, k, k)
        if self.demodulate:
            wt = wt * torch.rsqrt(wt.pow(2).sum((2, 3, 4), keepdim=True) + 1e-8)
        return wt

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Computed without per-sample weights (StyleGAN2's non-fused path, much faster on CPUs than a grouped
        convolution): scale the input channels by ``s``, convolve with the shared weight, scale the output channels
        by the demodulation coefficients ``1 / sqrt(sum_i s_i^2 sum_{k,l} w[o, i, k, l]^2 + 1e-8)``; equal to
        convolving each sample with :meth:`modulated_weight` (tests/models/test_stylegan.py checks it)."""
        if self.up:
            x = up2(x, self.up_mode)
        s = self.affine(w)  # (B, in)
        wt = self.weight * self.scale  # (out, in, k, k)
        out = F.conv2d(x * s[:, :, None, None], wt, padding=self.pad)  # (B, out, H, W)
        if self.demodulate:
            d = torch.rsqrt(s.pow(2) @ wt.pow(2).sum((2, 3)).t() + 1e-8)  # (B, out)
            out = out * d[:, :, None, None]
        return out
