"""Encoders and decoders that size themselves from the data shape.

The conv plan halves the spatial size ``n_down = clamp(floor(log2(min(H, W) / 4)), 1, 4)`` times with
stride-2 3×3 convolutions (8×8 -> 4×4; 28×28 -> 14 -> 7; 32×32 -> 16 -> 8 -> 4; 64×64 -> 4×4), and the
decoder mirrors it with nearest upsampling to the exact recorded sizes followed by 3×3 convolutions,
so any H×W round-trips exactly (no output_padding arithmetic).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


def default_hidden(dim: int) -> list[int]:
    """Hidden widths for an MLP on ``dim`` inputs: two layers between 64 and 512 wide."""
    h1 = int(min(512, max(64, 2 ** math.ceil(math.log2(max(dim, 2))))))
    return [h1, max(32, h1 // 2)]


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


class MLP(nn.Sequential):
    """Linear layers with LeakyReLU(0.2) between them; no activation after the last layer.

    ``hidden=[]`` gives a single affine map (useful for closed-form tests and linear baselines).
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int):
        layers, d = hidden_layers(in_dim, hidden)
        layers.append(nn.Linear(d, out_dim))
        super().__init__(*layers)


def hidden_layers(in_dim: int, hidden: Sequence[int]) -> tuple[list[nn.Module], int]:
    """``Linear + LeakyReLU(0.2)`` per width in ``hidden``; returns the layers and the last width."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [nn.Linear(d, h), _act()]
        d = h
    return layers, d


def conv_plan(shape: Sequence[int], channels: Sequence[int] | None = None) -> tuple[list[int], list[tuple[int, int]]]:
    """Channel widths and spatial sizes (after each stage) of the conv encoder for ``(C, H, W)``.

    Returns ``(widths, sizes)`` where ``sizes[0]`` is the input ``(H, W)`` and ``sizes[i + 1]`` the
    size after the i-th stride-2 stage.
    """
    _, h, w = shape
    n_down = int(min(4, max(1, math.floor(math.log2(max(min(h, w), 1) / 4))))) if min(h, w) >= 4 else 1
    if channels is None:
        channels = [32 * 2 ** i for i in range(n_down)]
    widths = list(channels)[:n_down] if len(channels) >= n_down else list(channels) + \
        [channels[-1]] * (n_down - len(channels))
    sizes = [(h, w)]
    for _ in range(n_down):
        ph, pw = sizes[-1]
        sizes.append(((ph + 1) // 2, (pw + 1) // 2))
    return widths, sizes


class ConvEncoder(nn.Module):
    """``(B, C, H, W) -> (B, out_dim)``: stride-2 conv stages, then a linear head."""

    def __init__(self, shape: Sequence[int], out_dim: int, channels: Sequence[int] | None = None):
        super().__init__()
        c = shape[0]
        widths, sizes = conv_plan(shape, channels)
        layers: list[nn.Module] = []
        for wdt in widths:
            layers += [nn.Conv2d(c, wdt, 3, stride=2, padding=1), _act()]
            c = wdt
        self.features = nn.Sequential(*layers)
        fh, fw = sizes[-1]
        self.head = nn.Linear(c * fh * fw, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)  # (B, C', h, w)
        return self.head(h.flatten(1))  # (B, out_dim)


class ConvDecoder(nn.Module):
    """``(B, in_dim) -> (B, C, H, W)`` logits/means: linear stem, then upsample+conv stages."""

    def __init__(self, in_dim: int, shape: Sequence[int], channels: Sequence[int] | None = None):
        super().__init__()
        c_out = shape[0]
        widths, sizes = conv_plan(shape, channels)
        widths = widths[::-1]
        self.stem_shape = (widths[0], *sizes[-1])
        self.stem = nn.Linear(in_dim, math.prod(self.stem_shape))
        stages: list[nn.Module] = [_act()]
        targets = sizes[:-1][::-1]  # sizes to upsample to, smallest first
        for i, size in enumerate(targets):
            c_in = widths[i]
            c_next = widths[i + 1] if i + 1 < len(widths) else widths[-1]
            stages += [nn.Upsample(size=size, mode="nearest"), nn.Conv2d(c_in, c_next, 3, padding=1), _act()]
        stages.append(nn.Conv2d(widths[-1], c_out, 3, padding=1))
        self.net = nn.Sequential(*stages)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.stem(z).view(-1, *self.stem_shape)  # (B, C', h, w)
        return self.net(h)  # (B, C, H, W)


class _Flat(nn.Module):
    """Wraps an MLP so it reads/writes samples of any shape (images are flattened)."""

    def __init__(self, mlp: nn.Module, out_shape: Sequence[int] | None = None):
        super().__init__()
        self.mlp = mlp
        self.out_shape = tuple(out_shape) if out_shape is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(x.flatten(1))
        return y if self.out_shape is None else y.view(-1, *self.out_shape)


def resolve_arch(arch: str, shape: Sequence[int]) -> str:
    """``"auto"`` -> ``"conv"`` for ``(C, H, W)`` images, ``"mlp"`` otherwise."""
    if arch == "auto":
        return "conv" if len(shape) == 3 else "mlp"
    if arch == "conv" and len(shape) != 3:
        from ..errors import DataError
        raise DataError(f"arch='conv' needs image data (C, H, W), got sample shape {tuple(shape)}; use arch=mlp")
    return arch


def make_encoder(shape: Sequence[int], out_dim: int, *, arch: str = "auto", hidden: Sequence[int] | None = None,
                 channels: Sequence[int] | None = None) -> nn.Module:
    """Encoder ``(B, *shape) -> (B, out_dim)``; conv for images unless ``arch="mlp"``."""
    if resolve_arch(arch, shape) == "conv":
        return ConvEncoder(shape, out_dim, channels)
    d = math.prod(shape)
    return _Flat(MLP(d, default_hidden(d) if hidden is None else hidden, out_dim))


def make_decoder(in_dim: int, shape: Sequence[int], *, arch: str = "auto", hidden: Sequence[int] | None = None,
                 channels: Sequence[int] | None = None) -> nn.Module:
    """Decoder ``(B, in_dim) -> (B, *shape)``, mirroring :func:`make_encoder`."""
    if resolve_arch(arch, shape) == "conv":
        return ConvDecoder(in_dim, shape, channels)
    d = math.prod(shape)
    return _Flat(MLP(in_dim, (default_hidden(d) if hidden is None else hidden)[::-1], d), shape)


# -- conditioning on class labels (one-hot) ------------------------------------------------------------
def one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(B,)`` int labels -> ``(B, num_classes)`` one-hot rows of ``dtype`` (labels must be in range)."""
    return nn.functional.one_hot(labels.long(), num_classes).to(dtype)


class ConditionalEncoder(nn.Module):
    """``(x (B, *shape), onehot (B, K)) -> (B, out_dim)``.

    Conv: the one-hot vector is appended to the image as ``K`` constant input channels
    (``(B, C + K, H, W)``). MLP: it is concatenated to the flattened input (``(B, D + K)``). Default MLP
    widths are sized from the unconditioned input, so they match :func:`make_encoder`'s.
    """

    def __init__(self, shape: Sequence[int], out_dim: int, num_classes: int, *, arch: str = "auto",
                 hidden: Sequence[int] | None = None, channels: Sequence[int] | None = None):
        super().__init__()
        self.conv = resolve_arch(arch, shape) == "conv"
        d = math.prod(shape)
        if self.conv:
            self.net = ConvEncoder((shape[0] + num_classes, *shape[1:]), out_dim, channels)
        else:
            self.net = MLP(d + num_classes, default_hidden(d) if hidden is None else hidden, out_dim)

    def forward(self, x: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        if self.conv:
            maps = onehot[:, :, None, None].expand(-1, -1, *x.shape[2:])  # (B, K, H, W)
            return self.net(torch.cat([x, maps.to(x.dtype)], 1))
        return self.net(torch.cat([x.flatten(1), onehot.to(x.dtype)], 1))  # (B, D + K) -> (B, out_dim)


class ConditionalDecoder(nn.Module):
    """``(z (B, L), onehot (B, K)) -> (B, *shape)``: the decoder of :func:`make_decoder` on ``[z, onehot]``."""

    def __init__(self, in_dim: int, shape: Sequence[int], num_classes: int, *, arch: str = "auto",
                 hidden: Sequence[int] | None = None, channels: Sequence[int] | None = None):
        super().__init__()
        self.net = make_decoder(in_dim + num_classes, shape, arch=arch, hidden=hidden, channels=channels)

    def forward(self, z: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, onehot.to(z.dtype)], 1))  # (B, L + K) -> (B, *shape)


class ConcatOutputs(nn.Module):
    """Wraps a module that returns a tuple of tensors (e.g. ``(mu, logvar)``, each ``(B, L)``) so it returns them
    concatenated along dim 1 (``(B, 2L)``): the VAE encoder convention for user-supplied networks."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args) -> torch.Tensor:
        return torch.cat(tuple(self.module(*args)), 1)
