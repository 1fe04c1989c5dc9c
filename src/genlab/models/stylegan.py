"""``stylegan``: a StyleGAN2-style generator at small scale (Karras et al. 2020), and its residual discriminator.

Generator: a mapping network (``mapping_layers`` equalised-lr linear layers with learning-rate multiplier
``mapping_lr_mul``, 0.01, LeakyReLU(0.2) times sqrt(2), on the pixel-normed ``z``) gives ``w``; the synthesis
network starts from a learned constant 4x4 map and doubles the side up to ``R`` (the next power of two >= the data
side; other sides are padded with replicated edges for the networks and cropped back), each layer a
modulated/demodulated 3x3 convolution (:class:`~genlab.nn.style_blocks.ModulatedConv2d`) + per-pixel noise scaled by
a learned per-layer strength + bias + LeakyReLU(0.2) (times sqrt(2)) (+ pixel norm with ``pixel_norm=True``); RGB
outputs (1x1 modulated, not demodulated) are summed across sides (skip architecture, bilinear upsampling;
``architecture="orig"``: one RGB layer after the last side, ``upsample="nearest"``: nearest upsampling). There are
``num_ws`` = 2 log2(R) - 2 style inputs (one per convolution, the last one for the final RGB layer, as in StyleGAN2).
Outputs are ``[-1, 1]`` values mapped to model space by ``(t + 1) / 2`` (clamped in ``sample``/``decode``).

Training: non-saturating logistic loss; style mixing regularisation (with probability ``mixing_prob`` a batch
takes ``w`` from a second ``z`` from a random layer index on); R1 penalty ``r1_gamma / 2 * E ||grad_x D(x)||^2``
every ``r1_every`` discriminator steps (lazy regularisation: the term is multiplied by ``r1_every`` and Adam's
learning rate and betas are adjusted by ``c = every / (every + 1)``); optional path-length regularisation
(``pl_weight > 0``, every ``pl_every`` generator steps). ``w_avg`` (a buffer) follows the mean ``w`` of the
training batches (``w_avg <- lerp(w_avg, mean w, 1 - w_avg_beta)``) for the truncation trick:
``sample(n, psi=0.7)`` uses ``w_avg + psi (w - w_avg)``.

Conditional variant ``cstylegan`` (class labels, StyleGAN2-ADA's conditioning): the label goes through an
equalised-lr linear embedding (``embed_dim``, default ``w_dim``) of its one-hot code; the mapping network takes
``cat(pixel_norm(z), pixel_norm(embed(y)))``. The discriminator is a projection discriminator (Miyato & Koyama 2018):
``out(phi(x)) + <e(y), phi(x)> / sqrt(dim phi)`` with a learned class embedding ``e`` (equalised: drawn from
N(0, 1), scaled by ``1 / sqrt(dim phi)`` at run time). Truncation (``truncation``): ``"class"`` (default) pulls
``w`` towards the mean ``w`` of its own class (``w_avg_class``, one row per class, each following the mean ``w`` of
that class's samples in the training batches with the same ``w_avg_beta``), ``"global"`` towards the mean over all
classes (``w_avg``, as StyleGAN2-ADA does). The global centre is one point for all classes, so a low ``psi`` pulls
every class towards it; a per-class centre lies in the class's own region. Measured on digits (docs/models/stylegan.md,
one barely trained model): per class kept more of the class at psi 0.5 and 0.7 (conditional accuracy 37.8 vs 17.7 %
at 0.5) with a lower FID, hence the default.

Noise: ``sample`` draws it from its ``generator`` (after ``z``); ``decode``/``synthesize`` use fixed per-layer
noise maps (buffers saved with the weights), so they are deterministic functions of the latents (what path
length measures need).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check
from ..errors import ConfigError
from ..nn.style_blocks import (LRELU_GAIN, EqualConv2d, EqualLinear, LReLUGain, MinibatchStd, ModulatedConv2d,
                               UPSAMPLE_MODES, channels, crop_to, down2, lrelu_gain, pad_to, pixel_norm, power_side,
                               up2)
from ..registry import register_model
from .gan import GAN, _GANBaseConfig
from .vae import check_labels


@dataclass
class StyleGANConfig(_GANBaseConfig):
    """``stylegan``: see :mod:`genlab.models.stylegan`.

    latent_dim: z size; w_dim: w size; mapping_layers: depth of the mapping network; width: channels of the
    synthesis and discriminator blocks at the low sides (halved per doubling above 8x8, at least 16). mixing_prob: style
    mixing probability in [0, 1]. r1_gamma / r1_every: R1 weight and its lazy interval. pl_weight / pl_every /
    pl_decay: path-length regularisation (0: off). w_avg_beta: decay of the tracked mean ``w``. lr_g, lr_d:
    Adam learning rates (different values: TTUR), betas (0, 0.99). architecture: ``skip`` (StyleGAN2's generator: RGB
    outputs of every side summed) or ``orig`` (one RGB layer after the last side, StyleGAN2-ADA's ``orig``);
    upsample: ``bilinear`` or ``nearest`` (the generator's 2x upsampling, skip outputs included). mapping_lr_mul: the
    mapping network's learning-rate multiplier (StyleGAN's 0.01). pixel_norm: pixel norm after every synthesis layer's
    activation (ProGAN's normalisation; StyleGAN2 has none, its demodulation takes that role). ``hidden`` and
    ``spectral_norm`` are not used.
    """

    latent_dim: int = 128
    w_dim: int = 128
    mapping_layers: int = 4
    width: int = 64
    mixing_prob: float = 0.9
    r1_gamma: float = 0.05
    r1_every: int = 16
    pl_weight: float = 0.0
    pl_every: int = 4
    pl_decay: float = 0.01
    w_avg_beta: float = 0.995
    lr_g: float = 2e-3
    lr_d: float = 2e-3
    beta1: float = 0.0
    beta2: float = 0.99
    mbstd_group: int = 4
    resolution: int | None = None
    architecture: Literal["skip", "orig"] = "skip"
    upsample: Literal["bilinear", "nearest"] = "bilinear"
    mapping_lr_mul: float = 0.01
    pixel_norm: bool = False

    def __post_init__(self):
        super().__post_init__()
        check(self.architecture in ("skip", "orig"), f"architecture must be 'skip' (RGB outputs summed over sides) or "
                                                     f"'orig' (one RGB layer at the end), got {self.architecture!r}")
        check(self.upsample in UPSAMPLE_MODES, f"upsample must be 'bilinear' or 'nearest', got {self.upsample!r}")
        check(self.mapping_lr_mul > 0, f"mapping_lr_mul must be > 0 (StyleGAN's 0.01), got {self.mapping_lr_mul}")
        check(self.w_dim >= 1, f"w_dim must be >= 1, got {self.w_dim}")
        check(self.mapping_layers >= 1, f"mapping_layers must be >= 1, got {self.mapping_layers}")
        check(0 <= self.mixing_prob <= 1, f"mixing_prob must be in [0, 1], got {self.mixing_prob}")
        check(self.r1_gamma >= 0, f"r1_gamma must be >= 0, got {self.r1_gamma}")
        check(self.pl_weight >= 0, f"pl_weight must be >= 0, got {self.pl_weight}")
        check(self.pl_every >= 1, f"pl_every must be >= 1, got {self.pl_every}")
        check(0 < self.pl_decay <= 1, f"pl_decay must be in (0, 1], got {self.pl_decay}")
        check(0 <= self.w_avg_beta < 1, f"w_avg_beta must be in [0, 1), got {self.w_avg_beta}")
        check(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, f"beta1, beta2 must be in [0, 1), got "
                                                           f"{self.beta1}, {self.beta2}")
        check(self.mbstd_group >= 1, f"mbstd_group must be >= 1, got {self.mbstd_group}")


@dataclass
class CStyleGANConfig(StyleGANConfig):
    """``cstylegan``: :class:`StyleGANConfig` plus embed_dim: size of the label embedding fed to the mapping network
    (null: ``w_dim``, StyleGAN2-ADA's choice); truncation: ``"class"`` (towards the class's mean ``w``) or
    ``"global"`` (towards the mean ``w`` of all classes) for ``sample(n, psi=...)``."""

    embed_dim: int | None = None
    truncation: Literal["class", "global"] = "class"

    def __post_init__(self):
        super().__post_init__()
        check(self.embed_dim is None or self.embed_dim >= 1, f"embed_dim must be >= 1 (or null: w_dim), got "
                                                             f"{self.embed_dim}")
        check(self.truncation in ("class", "global"), f"truncation must be 'class' or 'global', got "
                                                      f"{self.truncation!r}")


def check_psi(psi: float, name: str = "truncation psi") -> float:
    """``psi`` as a float in (0, 1], or a one-line ConfigError naming it ``name`` (the CLI: ``--psi``)."""
    if isinstance(psi, bool) or not isinstance(psi, (int, float)) or not 0 < psi <= 1:
        raise ConfigError(f"{name} must be in (0, 1] (1 = no truncation), got {psi!r}")
    return float(psi)


class _Layer(nn.Module):
    """Modulated 3x3 conv + noise + bias + LeakyReLU * sqrt(2) (+ pixel norm with ``pnorm``)."""

    def __init__(self, a: int, b: int, w_dim: int, side: int, up: bool, up_mode: str = "bilinear",
                 pnorm: bool = False):
        super().__init__()
        self.pnorm = pnorm
        self.conv = ModulatedConv2d(a, b, 3, w_dim, up=up, up_mode=up_mode)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(b))
        self.register_buffer("noise_const", torch.randn(1, 1, side, side))

    def forward(self, x, w, noise: str | torch.Generator | None):
        x = self.conv(x, w)  # (B, b, s, s)
        if noise == "const":
            n = self.noise_const
        else:
            gen = noise if isinstance(noise, torch.Generator) else None
            dev = "cpu" if gen is None and x.device.type == "cpu" or gen is not None and gen.device.type == "cpu" \
                else x.device
            n = torch.randn(len(x), 1, *x.shape[2:], generator=gen, device=dev).to(x)
        x = lrelu_gain(x + self.noise_strength * n + self.bias[:, None, None])
        return pixel_norm(x) if self.pnorm else x


class _Synthesis(nn.Module):
    """``architecture="skip"``: an RGB layer after every side, the running image upsampled and summed (StyleGAN2);
    ``"orig"``: one RGB layer after the last side. Either way the RGB layer of side ``k`` reads style ``2k + 1``
    (the next layer's index, as in StyleGAN2), so ``num_ws`` is the same."""

    def __init__(self, w_dim: int, out_ch: int, side: int, width: int, architecture: str = "skip",
                 upsample: str = "bilinear", pnorm: bool = False):
        super().__init__()
        sides = [4 * 2 ** k for k in range(side.bit_length() - 2)]  # 4, 8, ..., R
        c0 = channels(width, 4)
        self.skip, self.up_mode = architecture == "skip", upsample
        self.const = nn.Parameter(torch.randn(c0, 4, 4))
        self.layers = nn.ModuleList([_Layer(c0, c0, w_dim, 4, up=False, pnorm=pnorm)])
        self.to_rgb, self.rgb_bias = nn.ModuleList(), nn.ParameterList()

        def rgb(c: int) -> None:
            self.to_rgb.append(ModulatedConv2d(c, out_ch, 1, w_dim, demodulate=False))
            self.rgb_bias.append(nn.Parameter(torch.zeros(out_ch)))
        if self.skip or side == 4:  # built in this order so that a seed gives the same weights as before the option
            rgb(c0)
        for a, b in zip(sides[:-1], sides[1:]):
            ca, cb = channels(width, a), channels(width, b)
            self.layers.append(_Layer(ca, cb, w_dim, b, up=True, up_mode=upsample, pnorm=pnorm))
            self.layers.append(_Layer(cb, cb, w_dim, b, up=False, pnorm=pnorm))
            if self.skip or b == side:
                rgb(cb)
        self.num_ws = len(self.layers) + 1

    def _rgb(self, j: int, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.to_rgb[j](x, w) + self.rgb_bias[j][:, None, None]

    def forward(self, ws: torch.Tensor, noise) -> torch.Tensor:
        """``ws`` ``(B, num_ws, w_dim)`` -> ``(B, C, R, R)`` in ``[-1, 1]`` (unbounded)."""
        x = self.const[None].expand(len(ws), -1, -1, -1)  # (B, c0, 4, 4)
        x = self.layers[0](x, ws[:, 0], noise)
        rgb = self._rgb(0, x, ws[:, 1]) if self.skip else None
        for k in range(1, (len(self.layers) + 1) // 2):
            i = 2 * k - 1
            x = self.layers[i](x, ws[:, i], noise)
            x = self.layers[i + 1](x, ws[:, i + 1], noise)
            if self.skip:
                rgb = up2(rgb, self.up_mode) + self._rgb(k, x, ws[:, i + 2])
        return rgb if self.skip else self._rgb(0, x, ws[:, -1])


class _Discriminator(nn.Module):
    """Residual discriminator: from-RGB 1x1, then per side two 3x3 convs and a 2x average pool, plus a 1x1 skip,
    summed and divided by sqrt(2); minibatch std, 3x3 conv, two linear layers at 4x4."""

    def __init__(self, in_ch: int, side: int, width: int, group: int):
        super().__init__()
        sides = [side // 2 ** k for k in range(side.bit_length() - 2)]  # R, R/2, ..., 4
        self.from_rgb = EqualConv2d(in_ch, channels(width, side), 1)
        self.blocks = nn.ModuleList()
        for a, b in zip(sides[:-1], sides[1:]):
            ca, cb = channels(width, a), channels(width, b)
            self.blocks.append(nn.ModuleList([EqualConv2d(ca, ca, 3), EqualConv2d(ca, cb, 3),
                                              EqualConv2d(ca, cb, 1, bias=False)]))
        c0 = channels(width, 4)
        self.mbstd = MinibatchStd(group)
        self.conv = EqualConv2d(c0 + 1, c0, 3)
        self.fc = EqualLinear(c0 * 16, c0)
        self.out = EqualLinear(c0, 1)
        self.out_dim = c0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = lrelu_gain(self.from_rgb(x))
        for c1, c2, skip in self.blocks:
            y = lrelu_gain(c1(h))
            y = down2(lrelu_gain(c2(y)))
            h = (y + skip(down2(h))) / LRELU_GAIN
        h = lrelu_gain(self.conv(self.mbstd(h)))  # (B, c0, 4, 4)
        return lrelu_gain(self.fc(h.flatten(1)))  # (B, c0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x)).squeeze(1)  # (B,)


@register_model("stylegan", StyleGANConfig, "StyleGAN2-style GAN: mapping net, modulated convs, noise, style mixing, "
                                            "truncation, lazy R1")
class StyleGAN(GAN):
    """StyleGAN2-style GAN on images; ``sample(n, psi=0.7)`` truncates; ``mapping``/``synthesize`` give the W space
    (``has_w_space``: :func:`genlab.metrics.perceptual_path_length` takes ``space="w"``)."""

    input_kinds = ("image",)
    network_slots = {}
    #: the model has a W space: ``mapping(z) -> w`` and ``synthesize(w)`` (PPL in W)
    has_w_space = True

    @property
    def double_backward(self) -> bool:
        return super().double_backward or self.config.pl_weight > 0

    def __init__(self, config: StyleGANConfig, data_info: dict, *, networks: dict | None = None):
        c = config
        self._init_own_networks(c, data_info, networks, "nonsaturating")
        self.side = power_side(self.shape, self.registry_name, c.resolution)
        if self.conditional:
            self.num_classes = self.labelled_classes("an unconditional 'stylegan'")
        layers: list[nn.Module] = []
        map_in = c.latent_dim + self._embed_dim()
        for i in range(c.mapping_layers):
            layers += [EqualLinear(map_in if i == 0 else c.w_dim, c.w_dim, lr_mul=c.mapping_lr_mul), LReLUGain()]
        self.mapping_net = nn.Sequential(*layers)
        self.synthesis = _Synthesis(c.w_dim, self.shape[0], self.side, c.width, c.architecture, c.upsample,
                                    c.pixel_norm)
        self.num_ws = self.synthesis.num_ws
        self.disc = _Discriminator(self.shape[0], self.side, c.width, c.mbstd_group)
        self.register_buffer("w_avg", torch.zeros(c.w_dim))
        self.register_buffer("pl_mean", torch.zeros(()))
        self.build_conditioning()
        self._training = False  # inside a training step: mixing, random noise
        self._track = False  # inside a D training step: w_avg follows the batch's mean w

    # -- conditioning hooks (cstylegan) -------------------------------------------------------------
    def _embed_dim(self) -> int:
        """Width of the label embedding concatenated to the normalised ``z`` (0: unconditional)."""
        return 0

    def _map_input(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if labels is not None:
            raise ConfigError(f"{self.registry_name}.mapping: labels given but the model is unconditional; train a "
                              "'cstylegan' to condition on labels")
        return pixel_norm(z)

    def _w_centre(self, labels: torch.Tensor | None) -> torch.Tensor:
        """The truncation centre: ``w_avg`` ``(w_dim,)`` (``cstylegan``: per class, ``(B, w_dim)``)."""
        return self.w_avg

    def _track_w(self, w: torch.Tensor, labels: torch.Tensor | None) -> None:
        self.w_avg.lerp_(w.detach().to(self.w_avg.dtype).mean(0), 1 - self.config.w_avg_beta)  # fp32 under autocast

    def _random_labels(self, n: int, device) -> torch.Tensor | None:
        return None

    # -- latent spaces ------------------------------------------------------------------------------
    def mapping(self, z: torch.Tensor, psi: float = 1.0, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``z`` ``(B, latent_dim) -> w`` ``(B, w_dim)``; ``psi < 1`` truncates towards ``w_avg`` (``cstylegan``:
        ``labels`` ``(B,)`` are required, and the centre is the class's or the global mean ``w``)."""
        psi = check_psi(psi)
        w = self.mapping_net(self._map_input(z, labels))
        return w if psi == 1.0 else torch.lerp(self._w_centre(labels), w, psi)

    def synthesize(self, w: torch.Tensor, noise: str | torch.Generator | None = "const") -> torch.Tensor:
        """Images in model space ``(B, *shape)`` (clamped to [0, 1]) from ``w`` ``(B, w_dim)`` (every layer) or
        ``(B, num_ws, w_dim)`` (per layer). ``noise``: ``"const"`` (the fixed maps), a ``torch.Generator``, or
        ``None`` (the global RNG)."""
        ws = w[:, None].expand(-1, self.num_ws, -1) if w.ndim == 2 else w
        return self._to_data(self.synthesis(ws, noise)).clamp(0, 1)

    def _to_data(self, t: torch.Tensor) -> torch.Tensor:
        return crop_to((t + 1) / 2, *self.shape[1:])

    def decode_w(self, w: torch.Tensor) -> torch.Tensor:
        """``synthesize(w)`` with the fixed noise maps, no gradients (W-space counterpart of ``decode``)."""
        with torch.no_grad():
            return self.synthesize(w.to(self.device), "const")

    # -- networks -----------------------------------------------------------------------------------
    def discriminator_modules(self) -> list[nn.Module]:
        return [self.disc]

    def _ws(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Training: per-layer ``ws`` ``(B, num_ws, w_dim)`` with style mixing (the second ``z`` keeps the labels),
        tracking ``w_avg``."""
        c = self.config
        w = self.mapping(z, labels=labels)
        if self._track:
            with torch.no_grad():
                self._track_w(w, labels)
        ws = w[:, None].repeat(1, self.num_ws, 1)
        if c.mixing_prob > 0 and torch.rand(()).item() < c.mixing_prob:
            cut = int(torch.randint(1, self.num_ws, ()).item())
            ws[:, cut:] = self.mapping(torch.randn_like(z), labels=labels)[:, None]
        return ws

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Training step: ``G(z)`` with mixing and random noise, padded side, model space, unclamped. Otherwise:
        ``decode``'s deterministic map (constant noise), data shape, clamped."""
        if self._training:
            return (self.synthesis(self._ws(z, labels), None) + 1) / 2  # (B, C, R, R)
        return self.synthesize(self.mapping(z, labels=labels), "const")

    def discriminate(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        return self.disc(2 * x - 1), None

    @torch.no_grad()
    def sample(self, n: int, *, labels: torch.Tensor | None = None, generator: torch.Generator | None = None,
               psi: float = 1.0) -> torch.Tensor:
        """``n`` images: ``z ~ N(0, I)`` then the noise maps from ``generator``; ``psi`` in (0, 1] truncates
        ``w`` towards the tracked mean ``w_avg`` (1: no truncation)."""
        psi = check_psi(psi)
        if n < 1:
            raise ConfigError(f"number of samples must be >= 1, got {n}")
        y = self._sample_labels(labels, n, generator, "sample")
        z = self._randn((n, self.latent_dim), generator)
        return self.synthesize(self.mapping(z, psi, y), generator if generator is not None else None)

    @torch.no_grad()
    def style_mix(self, z_rows: torch.Tensor, z_cols: torch.Tensor, cut: int, psi: float = 1.0, *,
                  row_labels: torch.Tensor | None = None, col_labels: torch.Tensor | None = None) -> torch.Tensor:
        """Style-mixing grid ``(R, C, *shape)``: image ``(i, j)`` takes ``w`` of ``z_rows[i]`` for the style inputs
        ``< cut`` (coarse styles) and of ``z_cols[j]`` from ``cut`` on (fine styles); constant noise.
        ``cstylegan``: the rows' and columns' labels (default ``0, 1, ...`` cycled over the classes)."""
        if not 1 <= cut < self.num_ws:
            raise ConfigError(f"cut must be in [1, {self.num_ws - 1}], got {cut}")
        if self.conditional:
            k = self.num_classes
            row_labels = self._sample_labels(torch.arange(len(z_rows)) % k if row_labels is None else row_labels,
                                             len(z_rows), None, "style_mix")
            col_labels = self._sample_labels(torch.arange(len(z_cols)) % k if col_labels is None else col_labels,
                                             len(z_cols), None, "style_mix")
        wr = self.mapping(z_rows.to(self.device), psi, row_labels)
        wc = self.mapping(z_cols.to(self.device), psi, col_labels)
        r, k = len(wr), len(wc)
        ws = wr[:, None, None].expand(r, k, self.num_ws, -1).clone()  # (R, C, num_ws, w_dim)
        ws[:, :, cut:] = wc[None, :, None]
        return self.synthesize(ws.reshape(r * k, self.num_ws, -1), "const").reshape(r, k, *self.shape)

    # -- training -----------------------------------------------------------------------------------
    def _path_length(self, n: int, device) -> dict:
        c = self.config
        z = torch.randn(max(1, n // 2), self.latent_dim, device=device)
        ws = self._ws(z, self._random_labels(len(z), device))
        img = self.synthesis(ws, None)  # (B, C, R, R)
        y = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (g,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)
        lengths = g.pow(2).sum(2).mean(1).sqrt()  # (B,)
        with torch.no_grad():
            self.pl_mean.lerp_(lengths.mean().detach().to(self.pl_mean.dtype), c.pl_decay)
        return {"pl": c.pl_weight * c.pl_every * (lengths - self.pl_mean).pow(2).mean()}

    def training_step(self, batch: dict, step: int, optimizer: str = "d") -> dict:
        """As :meth:`GAN.training_step` (non-saturating loss, fakes shared by the D and G steps of a batch), real
        images padded to the network side; plus lazy R1 (``r1``) on D and path-length regularisation (``pl``)
        on G when due."""
        c = self.config
        x = pad_to(batch["x"], self.side)
        self._training = True
        self._track = step >= 0 and torch.is_grad_enabled() and optimizer == "d"
        try:
            out = super().training_step({**batch, "x": x}, step, optimizer)
            if optimizer == "g" and c.pl_weight > 0 and step >= 0 and torch.is_grad_enabled() \
                    and (step // c.n_critic) % c.pl_every == 0:
                self._track = False
                pl = self._path_length(len(x), x.device)
                out["loss"] = out["loss"] + pl["pl"]
                out["pl"] = pl["pl"].detach()
        finally:
            self._training, self._track = False, False
        return out

    @torch.no_grad()
    def validation_step(self, batch: dict) -> dict:
        self._training, self._track = True, False
        try:
            return super().validation_step({**batch, "x": pad_to(batch["x"], self.side)})
        finally:
            self._training = False

    def _lazy_every(self) -> dict[str, int]:
        """GAN's (lazy R1 on D), plus G's path-length term every ``pl_every`` G steps when ``pl_weight > 0``: Adam
        gets StyleGAN2's adjustment for each lazy term, none when it runs every step (``k = 1``; this class's own
        copy of ``configure_optimizers`` gave ``r = 1/2`` there before)."""
        c = self.config
        return {**super()._lazy_every(), "g": c.pl_every if c.pl_weight > 0 else 1}


@register_model("cstylegan", CStyleGANConfig, "Class-conditional StyleGAN: label embedding into the mapping network, "
                                              "projection discriminator, per-class truncation")
class CStyleGAN(StyleGAN):
    """Class-conditional :class:`StyleGAN`: ``sample(n, labels=..., psi=...)``; ``mapping(z, psi, labels)``.
    ``w_avg_class`` ``(K, w_dim)`` holds the per-class truncation centres (``truncation="class"``)."""

    conditional = True

    def _embed_dim(self) -> int:
        c = self.config
        return c.embed_dim if c.embed_dim is not None else c.w_dim

    def build_conditioning(self) -> None:
        k, c0 = self.num_classes, self.disc.out_dim
        self.label_embed = EqualLinear(k, self._embed_dim())  # one-hot (B, K) -> (B, E): G's label embedding
        self.d_embed = _ClassEmbed(k, c0)  # D's projection embedding
        self.register_buffer("w_avg_class", torch.zeros(k, self.config.w_dim))

    def discriminator_modules(self) -> list[nn.Module]:
        return [self.disc, self.d_embed]

    def _map_input(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if labels is None:
            raise ConfigError(f"{self.registry_name}.mapping needs labels (B,) in [0, {self.num_classes - 1}]")
        y = check_labels(labels, self.num_classes, len(z), f"{self.registry_name}.mapping").to(z.device)
        e = self.label_embed(F.one_hot(y, self.num_classes).to(z.dtype))  # (B, E)
        return torch.cat([pixel_norm(z), pixel_norm(e)], 1)  # (B, latent_dim + E)

    def _w_centre(self, labels: torch.Tensor | None) -> torch.Tensor:
        if self.config.truncation == "global":
            return self.w_avg
        return self.w_avg_class[labels.to(self.w_avg_class.device)]  # (B, w_dim)

    def _track_w(self, w: torch.Tensor, labels: torch.Tensor | None) -> None:
        super()._track_w(w, labels)
        w = w.detach().to(self.w_avg_class.dtype)  # the running centres stay fp32 under bf16 autocast
        k = self.num_classes
        sums = torch.zeros(k, w.shape[1], dtype=w.dtype, device=w.device).index_add_(0, labels, w)  # (K, w_dim)
        counts = torch.bincount(labels, minlength=k).to(w.dtype)  # (K,)
        seen = counts > 0
        means = sums[seen] / counts[seen, None]
        self.w_avg_class[seen] = torch.lerp(self.w_avg_class[seen], means, 1 - self.config.w_avg_beta)

    def _random_labels(self, n: int, device) -> torch.Tensor:
        return torch.randint(self.num_classes, (n,), device=device)

    def discriminate(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        """Projection discriminator: ``out(phi(x)) + <e(y), phi(x)>`` (``e`` scaled by ``1 / sqrt(dim phi)``)."""
        h = self.disc.features(2 * x - 1)  # (B, c0)
        proj = (self.d_embed(labels) * h).sum(1)  # (B,)
        return self.disc.out(h).squeeze(1) + proj, None



class _ClassEmbed(nn.Module):
    """Class embedding with equalised learning rate: rows drawn from N(0, 1), scaled by ``1 / sqrt(dim)`` at run
    time. ``(B,) int -> (B, dim)``."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, dim))
        self.scale = 1 / math.sqrt(dim)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.weight[labels] * self.scale
