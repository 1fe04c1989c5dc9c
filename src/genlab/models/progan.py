"""``progan``: Progressive Growing of GANs (Karras et al. 2018) at small scale.

Both networks are built for the final side ``R`` (the next power of two >= the data side, or ``resolution``) and
train from 4x4 upwards: stage ``k`` works at ``4 * 2**k``. Growth follows the number of real images the
discriminator has seen (``seen``, an int64 buffer saved with the weights, so a run resumed in the middle of a
fade-in continues exactly): stage 0 trains ``stable_images`` images; each later stage first fades in over
``fade_images`` images (``alpha`` rising linearly from 0 to 1), then trains ``stable_images`` images; the last
stage then trains for the rest of the run. :meth:`ProGAN.schedule` is that function.

Fade-in: the generator's output at stage ``k`` is ``lerp(up(rgb_{k-1}(h_{k-1})), rgb_k(block_k(h_{k-1})), alpha)`` and
the discriminator's input path ``lerp(from_rgb_{k-1}(down(x)), block_k(from_rgb_k(x)), alpha)``; real images are
average-pooled to the stage side and, during a fade-in, blended the same way (``lerp(up(down(x)), x, alpha)``), as in
the paper. Networks: equalised learning rate, pixel norm after every generator convolution, LeakyReLU(0.2) with the He
gain sqrt(2) (``lrelu_gain``; it matters in the discriminator, which has no pixel norm: without it each of its ~9
layers shrinks the signal's second moment by ~0.52), the minibatch standard-deviation channel in the discriminator's
last block; channels ``min(width, max(16, width * 8 // side))`` per side. The generator emits ``[-1, 1]`` values
mapped to model space as ``(t + 1) / 2`` (clamped to ``[0, 1]`` in ``sample``/``decode``); before the last stage
samples are upsampled (nearest) to ``R``; images whose side is not ``R`` are padded (edges replicated) for the
networks and cropped back.

Losses: ``loss="wgan-gp"`` (the paper: critic loss + ``gp_weight`` gradient penalty + ``drift * mean r^2``)
or ``"nonsaturating"``; Adam(``lr``, (0, 0.99)).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..config import check
from ..errors import ConfigError
from ..nn.style_blocks import (EqualConv2d, EqualLinear, MinibatchStd, channels, crop_to, down2, lrelu_gain,
                               pad_to, pixel_norm, power_side)
from ..registry import register_model
from .gan import GAN, _GANBaseConfig
from .gan_losses import gradient_penalty


@dataclass
class ProGANConfig(_GANBaseConfig):
    """``progan``: see :mod:`genlab.models.progan`.

    fade_images: real images over which each new resolution fades in (>= 1). stable_images: images trained at
    each resolution before the next one fades in (>= 0). resolution: the final side (a power of two >= the data
    side; null: the next power of two). width: channels at the low resolutions. loss: ``wgan-gp`` or
    ``nonsaturating``; gp_weight and drift apply to ``wgan-gp``. lr_g, lr_d: Adam learning rates of the two
    players (different values: TTUR). ``hidden`` is not used.
    """

    latent_dim: int = 128
    width: int = 64
    fade_images: int = 20_000
    stable_images: int = 20_000
    resolution: int | None = None
    loss: Literal["wgan-gp", "nonsaturating"] = "wgan-gp"
    gp_weight: float = 10.0
    drift: float = 1e-3
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    beta1: float = 0.0
    beta2: float = 0.99
    mbstd_group: int = 4

    def __post_init__(self):
        super().__post_init__()
        check(self.fade_images >= 1, f"fade_images (images per fade-in) must be >= 1, got {self.fade_images}")
        check(self.stable_images >= 0, f"stable_images must be >= 0, got {self.stable_images}")
        check(self.loss in ("wgan-gp", "nonsaturating"), f"loss must be wgan-gp or nonsaturating, got {self.loss!r}")
        check(self.gp_weight >= 0, f"gp_weight must be >= 0, got {self.gp_weight}")
        check(self.drift >= 0, f"drift must be >= 0, got {self.drift}")
        check(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, f"beta1, beta2 must be in [0, 1), got "
                                                           f"{self.beta1}, {self.beta2}")
        check(self.mbstd_group >= 1, f"mbstd_group must be >= 1, got {self.mbstd_group}")


class _Generator(nn.Module):
    def __init__(self, latent_dim: int, out_ch: int, sides: list[int], width: int):
        super().__init__()
        c0 = channels(width, 4)
        self.fc = EqualLinear(latent_dim, c0 * 16)
        self.blocks = nn.ModuleList([EqualConv2d(c0, c0, 3)])
        self.to_rgb = nn.ModuleList([EqualConv2d(c0, out_ch, 1)])
        for a, b in zip(sides[:-1], sides[1:]):
            ca, cb = channels(width, a), channels(width, b)
            self.blocks.append(nn.ModuleList([EqualConv2d(ca, cb, 3), EqualConv2d(cb, cb, 3)]))
            self.to_rgb.append(EqualConv2d(cb, out_ch, 1))
        self.c0 = c0

    def forward(self, z: torch.Tensor, stage: int, alpha: float) -> torch.Tensor:
        h = self.fc(pixel_norm(z)).view(len(z), self.c0, 4, 4)  # (B, c0, 4, 4)
        h = pixel_norm(lrelu_gain(self.blocks[0](pixel_norm(lrelu_gain(h)))))
        prev = None
        for k in range(1, stage + 1):
            prev = h
            h = nn.functional.interpolate(h, scale_factor=2, mode="nearest")
            for conv in self.blocks[k]:
                h = pixel_norm(lrelu_gain(conv(h)))
        rgb = self.to_rgb[stage](h)  # (B, C, s, s) in [-1, 1] (unbounded)
        if stage > 0 and alpha < 1:
            low = nn.functional.interpolate(self.to_rgb[stage - 1](prev), scale_factor=2, mode="nearest")
            rgb = torch.lerp(low, rgb, alpha)
        return rgb


class _Critic(nn.Module):
    def __init__(self, in_ch: int, sides: list[int], width: int, group: int):
        super().__init__()
        self.from_rgb = nn.ModuleList([EqualConv2d(in_ch, channels(width, s), 1) for s in sides])
        self.blocks = nn.ModuleList([nn.Identity()])
        for a, b in zip(sides[:-1], sides[1:]):
            ca, cb = channels(width, a), channels(width, b)
            self.blocks.append(nn.ModuleList([EqualConv2d(cb, cb, 3), EqualConv2d(cb, ca, 3)]))
        c0 = channels(width, 4)
        self.mbstd = MinibatchStd(group)
        self.conv = EqualConv2d(c0 + 1, c0, 3)
        self.fc = EqualLinear(c0 * 16, c0)
        self.out = EqualLinear(c0, 1)

    def forward(self, x: torch.Tensor, stage: int, alpha: float) -> torch.Tensor:
        h = lrelu_gain(self.from_rgb[stage](x))
        for k in range(stage, 0, -1):
            for conv in self.blocks[k]:
                h = lrelu_gain(conv(h))
            h = down2(h)
            if k == stage and alpha < 1:
                h = torch.lerp(lrelu_gain(self.from_rgb[k - 1](down2(x))), h, alpha)
        h = lrelu_gain(self.conv(self.mbstd(h)))  # (B, c0, 4, 4)
        return self.out(lrelu_gain(self.fc(h.flatten(1)))).squeeze(1)  # (B,)


@register_model("progan", ProGANConfig, "Progressive Growing of GANs: 4x4 -> data size with fade-in, minibatch std, "
                                        "equalised lr, pixel norm")
class ProGAN(GAN):
    """Progressive GAN; unconditional images. ``growth()`` gives the current ``(stage, alpha)``."""

    input_kinds = ("image",)
    network_slots = {}
    default_monitor = ("val/fid", "min")

    @property
    def double_backward(self) -> bool:
        c = self.config
        return super().double_backward or (c.loss == "wgan-gp" and c.gp_weight > 0)

    def __init__(self, config: ProGANConfig, data_info: dict, *, networks: dict | None = None):
        c = config
        self._init_own_networks(c, data_info, networks, "wasserstein" if c.loss == "wgan-gp" else "nonsaturating")
        self.side = power_side(self.shape, "progan", c.resolution)
        self.sides = [4 * 2 ** k for k in range(self.side.bit_length() - 3 + 1)]  # 4, 8, ..., R
        self.generator = _Generator(c.latent_dim, self.shape[0], self.sides, c.width)
        self.critic_net = _Critic(self.shape[0], self.sides, c.width, c.mbstd_group)
        self.register_buffer("seen", torch.zeros((), dtype=torch.int64))
        self._ctx: tuple[int, int, float] | None = None  # (step, stage, alpha) of the batch being trained
        self._active: tuple[int, float] | None = None  # (stage, alpha) while a training/validation step runs
        if c.spectral_norm:
            raise ConfigError("progan: spectral_norm is not supported (equalised learning rate instead); set "
                              "spectral_norm=false")

    # -- growth -------------------------------------------------------------------------------------
    @property
    def stages(self) -> int:
        """Number of stages (4x4 is stage 0)."""
        return len(self.sides)

    def schedule(self, images: int) -> tuple[int, float]:
        """``(stage, alpha)`` after ``images`` real images: stage 0 for ``stable_images``; then per stage a fade-in of
        ``fade_images`` (``alpha = done / fade_images``) and ``stable_images`` at ``alpha = 1``."""
        c = self.config
        last = self.stages - 1
        if images < c.stable_images or last == 0:
            return 0, 1.0
        r = images - c.stable_images
        k, within = 1 + r // (c.fade_images + c.stable_images), r % (c.fade_images + c.stable_images)
        if k > last:
            return last, 1.0
        return k, (within / c.fade_images if within < c.fade_images else 1.0)

    def growth(self) -> tuple[int, float]:
        """The current ``(stage, alpha)`` (from the ``seen`` counter)."""
        return self.schedule(int(self.seen))

    # -- networks -----------------------------------------------------------------------------------
    def discriminator_modules(self) -> list[nn.Module]:
        return [self.critic_net]

    def _state(self) -> tuple[int, float]:
        return self._active if self._active is not None else (self.stages - 1, 1.0)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Training: ``G(z)`` at the current stage side, model space, unclamped. Otherwise (``sample``/``decode``):
        at the current growth state, upsampled to the final side, cropped to the data shape, clamped to [0, 1]."""
        if self._active is not None:
            stage, alpha = self._active
            return (self.generator(z, stage, alpha) + 1) / 2
        stage, alpha = self.growth()
        x = (self.generator(z, stage, alpha) + 1) / 2  # (B, C, s, s)
        if x.shape[2] < self.side:
            x = nn.functional.interpolate(x, size=(self.side, self.side), mode="nearest")
        return crop_to(x, *self.shape[1:]).clamp(0, 1)

    def discriminate(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        stage, alpha = self._state()
        return self.critic_net(2 * x - 1, stage, alpha), None

    def real_at_stage(self, x: torch.Tensor, stage: int, alpha: float) -> torch.Tensor:
        """Real images ``(B, C, H, W)`` as the critic sees them at ``stage``: padded to the final side, averaged down
        to the stage side and, during a fade-in, blended with their 2x coarser version."""
        x = pad_to(x, self.side)
        for _ in range(self.stages - 1 - stage):
            x = down2(x)
        if stage > 0 and alpha < 1:
            x = torch.lerp(nn.functional.interpolate(down2(x), scale_factor=2, mode="nearest"), x, alpha)
        return x

    # -- training -----------------------------------------------------------------------------------
    def d_extra(self, x, fake, y, real_cls, fake_cls) -> dict:
        c = self.config
        if c.loss != "wgan-gp":
            return {}
        out = {"gp": c.gp_weight * gradient_penalty(self.critic, x, fake)}
        if c.drift > 0:  # the paper's drift term keeps the critic's scores near 0
            out["drift"] = c.drift * (self.critic(self.augment(x)) ** 2).mean()
        return out

    def training_step(self, batch: dict, step: int, optimizer: str = "d") -> dict:
        """As :meth:`GAN.training_step`, at the growth state of the batch: the D step reads it from ``seen`` and then
        counts the batch (when ``step >= 0`` and gradients are on); the G step on the same batch uses the same
        state. Logs ``stage`` and ``alpha``."""
        if optimizer == "d" or self._ctx is None or self._ctx[0] != step:
            stage, alpha = self.growth()
            self._ctx = (step, stage, alpha)
            if optimizer == "d" and step >= 0 and torch.is_grad_enabled():
                self.seen += len(batch["x"])
        _, stage, alpha = self._ctx
        x = self.real_at_stage(batch["x"], stage, alpha)
        self._active = (stage, alpha)
        try:
            out = super().training_step({**batch, "x": x}, step, optimizer)
        finally:
            self._active = None
            if optimizer == "g" or step < 0 or not torch.is_grad_enabled():
                self._ctx = None
        out["stage"] = torch.tensor(float(stage))
        out["alpha"] = torch.tensor(float(alpha))
        return out

    @torch.no_grad()
    def validation_step(self, batch: dict) -> dict:
        stage, alpha = self.growth()
        self._active = (stage, alpha)
        try:
            return super().validation_step({**batch, "x": self.real_at_stage(batch["x"], stage, alpha)})
        finally:
            self._active = None
