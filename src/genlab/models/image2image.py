"""Image-to-image models: ``pix2pix``, ``srgan``, ``context-encoder``, ``colorizer``.

All share :class:`ImageToImageModel`: a generator ``G`` maps a source image (``batch["src"]``, with
``batch["mask"]`` for inpainting) to the target (``batch["x"]``), trained with

``loss_G = rec_weight * rec(G(src), x) + adv_weight * g_loss(D(cond, G(src)))``

where ``rec`` is the L1 (default) or MSE reconstruction loss and ``D`` a PatchGAN (:class:`~genlab.nn.i2i_blocks.
PatchDiscriminator`) that sees the image concatenated with the condition (the source resized to the target size;
for inpainting also the mask). ``adv_weight = 0`` or ``l1_only = true`` is the pure regression baseline: no
discriminator is built and ``configure_optimizers`` returns ``{"g"}`` only. With the adversarial term it returns
``{"d": ..., "g": ...}`` and, as in the GAN family, D steps first on every batch, then G on the same batch, reusing
the D step's generator output.

Data: a paired :class:`~genlab.data.TensorDataset` (``genlab.data.paired.make_pairs`` or ``data.pair=...``): ``x``
the target ``(N, C, H, W)``, ``extras["src"]`` the source ``(N, Cs, Hs, Ws)``, ``extras["mask"]`` ``(N, 1, H, W)``
(1 = missing) for inpainting; the networks are sized from ``data_info["extras"]``.

Inference: ``translate(src, mask=None, *, batch_size=256)`` -> ``(B, C, H, W)`` in [0, 1]. No ``sample``,
``encode`` or ``reconstruct`` (capabilities: ``translates`` only).

Validation logs ``val/l1`` (mean absolute error of the translated images, the default monitor), ``val/mse``,
``val/psnr`` (mean over images of ``10 log10(1 / MSE)``, images in [0, 1]) and, for inpainting, ``val/l1_missing``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check
from ..errors import ConfigError, DataError
from ..nn.i2i_blocks import (NORMS, PatchDiscriminator, SRResNet, UNetGenerator, chroma_to_rgb_in_gamut,
                             patch_layers, patch_output_side, upscale_stages)
from ..registry import register_model
from .base import GenerativeModel, OptimizerSpec
from .gan import _PendingFakes
from .gan_losses import LOSSES, d_loss, g_loss

log = logging.getLogger(__name__)


# -- configs -----------------------------------------------------------------------------------------------
@dataclass
class ImageToImageConfig:
    """Options every image-to-image model takes.

    adv_weight: weight of the adversarial term (0: the pure regression baseline, no discriminator).
    l1_only: the same as ``adv_weight=0`` (whatever ``adv_weight`` says). rec_loss: ``l1`` or ``mse``.
    rec_weight: weight of the reconstruction term (100 as in Isola et al.). gan_loss: the GAN loss
    (``genlab.models.gan_losses``). width: the generator's base channels; d_width: the PatchGAN's;
    d_layers: the PatchGAN's stride-2 layers (null: 3 from 64 pixels, 2 from 16, else 1). norm: ``batch``,
    ``instance`` or ``none`` in both networks. Adam(``lr_g``/``lr_d``, ``(beta1, beta2)``).
    """

    adv_weight: float = 1.0
    l1_only: bool = False
    rec_loss: Literal["l1", "mse"] = "l1"
    rec_weight: float = 100.0
    gan_loss: Literal["minimax", "nonsaturating", "lsgan", "hinge"] = "nonsaturating"
    width: int = 32
    d_width: int = 32
    d_layers: int | None = None
    norm: Literal["batch", "instance", "none"] = "batch"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999

    def __post_init__(self):
        check(self.adv_weight >= 0, f"adv_weight must be >= 0 (0 = no adversarial term), got {self.adv_weight}")
        check(self.rec_loss in ("l1", "mse"), f"rec_loss must be l1 or mse, got {self.rec_loss!r}")
        check(self.rec_weight >= 0, f"rec_weight must be >= 0, got {self.rec_weight}")
        check(self.gan_loss in LOSSES, f"gan_loss must be one of {', '.join(LOSSES)}, got {self.gan_loss!r}")
        check(self.width >= 1, f"width must be >= 1, got {self.width}")
        check(self.d_width >= 1, f"d_width must be >= 1, got {self.d_width}")
        check(self.d_layers is None or 1 <= self.d_layers <= 6, f"d_layers must be null or 1..6, got {self.d_layers}")
        check(self.norm in NORMS, f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        check(self.lr_g > 0, f"lr_g must be > 0, got {self.lr_g}")
        check(self.lr_d > 0, f"lr_d must be > 0, got {self.lr_d}")
        check(0 <= self.beta1 < 1, f"beta1 must be in [0, 1), got {self.beta1}")
        check(0 <= self.beta2 < 1, f"beta2 must be in [0, 1), got {self.beta2}")
        check(self.adv_weight > 0 or self.l1_only or self.rec_weight > 0,
              "rec_weight and adv_weight are both 0: nothing to train; set one > 0")

    @property
    def adversarial(self) -> bool:
        """Whether the model has a discriminator (``adv_weight > 0`` and not ``l1_only``)."""
        return self.adv_weight > 0 and not self.l1_only


@dataclass
class Pix2PixConfig(ImageToImageConfig):
    """``pix2pix``: U-Net generator (``depth`` stride-2 stages, null: from the image size; ``dropout`` in the
    decoder) and a PatchGAN conditioned on the source."""

    depth: int | None = None
    dropout: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        check(self.depth is None or 1 <= self.depth <= 8, f"depth must be null or 1..8, got {self.depth}")
        check(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")


@dataclass
class SRGANConfig(ImageToImageConfig):
    """``srgan``: residual generator (``n_blocks`` blocks of ``width`` channels) with pixel-shuffle upsampling by
    the factor of the data (target size / source size), added to a bicubic upscale. ``feature_weight``: weight of
    a perceptual loss, the MSE between genlab feature-net features of output and target (a shipped net for the
    target shape: 1x28x28 ``mnist``, 1x8x8 ``digits``; refused for other shapes). ``rec_weight`` defaults to 1 and
    ``adv_weight`` to 1e-3 as in Ledig et al."""

    width: int = 32
    n_blocks: int = 6
    rec_weight: float = 1.0
    adv_weight: float = 1e-3
    feature_weight: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        check(self.n_blocks >= 0, f"n_blocks must be >= 0, got {self.n_blocks}")
        check(self.feature_weight >= 0, f"feature_weight must be >= 0, got {self.feature_weight}")


@dataclass
class ContextEncoderConfig(Pix2PixConfig):
    """``context-encoder``: U-Net on the masked image plus its mask channel; the reconstruction loss is over the
    missing pixels only and the output keeps the known pixels exactly. ``rec_weight`` 0.999 / ``adv_weight``
    0.001 as in Pathak et al. (their lambdas)."""

    rec_weight: float = 0.999
    adv_weight: float = 0.001


@dataclass
class ColorizerConfig(Pix2PixConfig):
    """``colorizer``: U-Net from the grey image (BT.601 luma) to the two chroma channels (Cb, Cr)."""


# -- the shared base ---------------------------------------------------------------------------------------
def _shape_text(shape) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


class ImageToImageModel(GenerativeModel):
    """Base of the image-to-image models: paired data, ``translate``, the G/D step, validation figures.

    A subclass sets ``uses_mask`` (``"required"``, ``"optional"``: when the data has one, or ``"never"``), builds
    ``self.generator`` in :meth:`build_generator` and maps ``(src, mask)`` to the output image in
    :meth:`generate`; :meth:`condition` is what the discriminator sees beside the image.
    """

    translates = True
    can_sample = False
    can_reconstruct = False
    has_encoder = False
    has_decoder = False
    input_kinds = ("image",)
    default_monitor = ("val/l1", "min")
    uses_mask: str = "optional"

    def __init__(self, config: ImageToImageConfig, data_info: dict):
        super().__init__(config, data_info)
        extras = data_info.get("extras") or {}
        if "src" not in extras:
            raise ConfigError(f"{self.registry_name} needs paired data: give data.pair=... (downsample:K, grey, "
                              "mask:box, mask:free, edges) or a paired data set (extras 'src')")
        self.src_shape = tuple(int(s) for s in extras["src"])
        if len(self.src_shape) != 3:
            raise DataError(f"{self.registry_name}: the source images must be (C, H, W), got "
                            f"{_shape_text(self.src_shape)}")
        has_mask = "mask" in extras
        if self.uses_mask == "required" and not has_mask:
            raise ConfigError(f"{self.registry_name} needs masks: give data.pair=mask:box or mask:free (or a paired "
                              "data set with extras 'mask')")
        self.with_mask = has_mask and self.uses_mask != "never"
        if self.with_mask:
            want = (1, *self.shape[1:])
            if tuple(extras["mask"]) != want:
                raise DataError(f"{self.registry_name}: masks of shape {_shape_text(extras['mask'])} but the "
                                f"targets need {_shape_text(want)}")
        self.check_pair()
        self._pending = _PendingFakes()
        self.generator = self.build_generator()
        self.adversarial = config.adversarial
        if self.adversarial:
            h, w = self.shape[1:]
            n = config.d_layers if config.d_layers is not None else patch_layers(h, w)
            if patch_output_side(min(h, w), n) < 1:
                raise ConfigError(f"{self.registry_name}: d_layers={n} is too deep for {h}x{w} images; lower "
                                  "d_layers")
            c_in = self.condition_channels() + self.shape[0]
            self.discriminator = PatchDiscriminator(c_in, width=config.d_width, n_layers=n, norm=config.norm)

    # -- construction hooks ------------------------------------------------------------------------------
    def check_pair(self) -> None:
        """Refuse source/target shapes this model cannot map (one line naming both)."""

    def build_generator(self) -> nn.Module:  # pragma: no cover
        raise NotImplementedError

    def condition_channels(self) -> int:
        return self.src_shape[0] + (1 if self.with_mask else 0)

    # -- the networks ----------------------------------------------------------------------------------------
    def resize_src(self, src: torch.Tensor) -> torch.Tensor:
        """``src`` resized to the target's ``H x W`` (bilinear; identity when the sizes agree)."""
        if tuple(src.shape[2:]) == tuple(self.shape[1:]):
            return src
        return F.interpolate(src, size=self.shape[1:], mode="bilinear", align_corners=False)

    def condition(self, src: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """What D sees beside the image: the source at the target size (and the mask), ``(B, Cc, H, W)``."""
        s = self.resize_src(src)
        return torch.cat([s, mask], 1) if self.with_mask else s

    def generate(self, src: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:  # pragma: no cover
        """``G``: the output image ``(B, C, H, W)`` (training: may leave [0, 1] slightly; see :meth:`finish`)."""
        raise NotImplementedError

    def finish(self, out: torch.Tensor) -> torch.Tensor:
        """The output as :meth:`translate` returns it: clamped to [0, 1]."""
        return out.clamp(0, 1)

    def discriminate(self, cond: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        return self.discriminator(torch.cat([cond, img], 1))  # (B, 1, H', W') patch logits

    def rec(self, out: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The reconstruction loss (``rec_loss``), a mean over every target value."""
        return F.l1_loss(out, x) if self.config.rec_loss == "l1" else F.mse_loss(out, x)

    def extra_g_terms(self, out: torch.Tensor, x: torch.Tensor) -> dict:
        """Further generator loss terms ``{name: weighted tensor}`` (srgan's feature loss)."""
        return {}

    # -- inference -----------------------------------------------------------------------------------------
    def _check_src(self, src, mask, who: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not isinstance(src, torch.Tensor):
            src = torch.as_tensor(src)
        if src.ndim == 3:
            src = src[None]
        got = tuple(src.shape[1:])
        if src.ndim != 4:
            raise DataError(f"{who}: src must be a batch of images (B, C, H, W), got shape {tuple(src.shape)}")
        if got != self.src_shape:
            if self.src_shape[0] == 1 and got[0] == 3 and got[1:] == self.src_shape[1:]:
                raise DataError(f"{who}: a greyscale model given colour input: src of shape {_shape_text(got)} but "
                                f"the model was trained on {_shape_text(self.src_shape)}; convert the images to grey")
            if self.src_shape[0] == 3 and got[0] == 1 and got[1:] == self.src_shape[1:]:
                raise DataError(f"{who}: a colour model given greyscale input: src of shape {_shape_text(got)} but "
                                f"the model was trained on {_shape_text(self.src_shape)}")
            raise DataError(f"{who}: src of shape {_shape_text(got)} but the model was trained on "
                            f"{_shape_text(self.src_shape)}; give sources of that shape (or train on these)")
        if not src.is_floating_point():
            raise DataError(f"{who}: src must be float images in [0, 1], got dtype {src.dtype}; divide 8-bit pixels "
                            "by 255")
        if len(src) and not bool(torch.isfinite(src).all()):
            raise DataError(f"{who}: src holds NaN or infinite values; give images in [0, 1]")
        if not self.with_mask:
            if mask is not None:
                raise DataError(f"{who}: {self.registry_name} was trained without masks; drop mask= (or train on "
                                "data.pair=mask:box|mask:free)")
            return src.to(self.device, torch.float32), None
        if mask is None:
            raise DataError(f"{who}: {self.registry_name} needs mask= (B, 1, H, W), 1 = missing, with the source")
        if not isinstance(mask, torch.Tensor):
            mask = torch.as_tensor(mask)
        if mask.ndim == 3:
            mask = mask[None]
        want = (len(src), 1, *self.shape[1:])
        if tuple(mask.shape) != want:
            raise DataError(f"{who}: mask of shape {tuple(mask.shape)} but the source needs {want} (1 = missing)")
        mask = mask.to(self.device, torch.float32)
        if len(mask) and not bool(((mask == 0) | (mask == 1)).all()):
            raise DataError(f"{who}: the mask must be binary (1 = missing, 0 = known), got values in "
                            f"[{float(mask.min()):.3g}, {float(mask.max()):.3g}]; threshold it")
        return src.to(self.device, torch.float32), mask

    @torch.no_grad()
    def translate(self, src: torch.Tensor, mask: torch.Tensor | None = None, *, batch_size: int = 256
                  ) -> torch.Tensor:
        """Map source images to targets.

        Parameters
        ----------
        src : Tensor
            ``(B, Cs, Hs, Ws)`` (or one ``(Cs, Hs, Ws)`` image) in [0, 1], the shape the model was trained on.
        mask : Tensor, optional
            ``(B, 1, H, W)`` binary, 1 = missing: needed by models trained on masked pairs (inpainting), refused
            by the others.
        batch_size : int
            Images per forward pass.

        Returns
        -------
        Tensor
            ``(B, C, H, W)`` in [0, 1] on the model's device (eval mode: BatchNorm uses its running statistics).
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        src, mask = self._check_src(src, mask, f"{self.registry_name}.translate")
        was = self.training
        self.eval()
        try:
            outs = [self.finish(self.generate(s, None if mask is None else mask[i:i + batch_size]))
                    for i, s in zip(range(0, len(src), batch_size), src.split(batch_size))]
        finally:
            self.train(was)
        return torch.cat(outs) if outs else torch.zeros(0, *self.shape, device=self.device)

    def sample(self, n: int, *, labels=None, generator=None) -> torch.Tensor:
        raise ConfigError(f"model {self.registry_name!r} maps a source image to a target and has no prior to sample "
                          "from; use translate(src) (genlab upscale / colorize / inpaint / translate --run FOLDER)")

    def reconstruct(self, x: torch.Tensor, labels=None) -> torch.Tensor:
        raise ConfigError(f"model {self.registry_name!r} cannot reconstruct; use translate(src) to map a source "
                          "image to its target (genlab upscale / colorize / inpaint / translate --run FOLDER)")

    # -- training --------------------------------------------------------------------------------------------
    def _batch(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        x = batch["x"]
        if "src" not in batch:
            raise DataError(f"{self.registry_name} needs paired batches with 'src' (the source images); give a "
                            "paired data set or data.pair=...")
        src = batch["src"]
        mask = batch.get("mask") if self.with_mask else None
        if self.with_mask and mask is None:
            raise DataError(f"{self.registry_name} needs batches with 'mask' (1 = missing)")
        return x, src, mask

    def _g_terms(self, out, x, mask, cond) -> dict:
        c = self.config
        rec = self.rec(out, x, mask)
        loss = c.rec_weight * rec
        parts = {"rec": rec.detach()}
        for k, v in self.extra_g_terms(out, x).items():
            loss = loss + v
            parts[k] = v.detach()
        if self.adversarial:
            adv = g_loss(c.gan_loss, self.discriminate(cond, out))
            loss = loss + c.adv_weight * adv
            parts["g_adv"] = adv.detach()
        return {"loss": loss, "g_loss": loss.detach(), **parts}

    def training_step(self, batch: dict, step: int, optimizer: str | None = None) -> dict:
        """The loss of ``optimizer``: ``"d"`` (the discriminator; the default of adversarial models) or ``"g"``
        (the generator; the only one without the adversarial term). On a training batch the D step keeps its
        generator output (with its graph) for the G step on the same batch, as in the GAN family."""
        optimizer = optimizer or ("d" if self.adversarial else "g")
        x, src, mask = self._batch(batch)
        if optimizer == "g":
            out = self._pending.take(step) if step >= 0 else None
            if out is None:
                out = self.generate(src, mask)
            return self._g_terms(out, x, mask, self.condition(src, mask) if self.adversarial else None)
        if optimizer != "d" or not self.adversarial:
            raise ConfigError(f"{self.registry_name}: optimizer must be "
                              f"{'d or g' if self.adversarial else 'g (no discriminator: adv_weight=0)'}, "
                              f"got {optimizer!r}")
        if step >= 0 and torch.is_grad_enabled():
            out_g = self.generate(src, mask)
            self._pending.put(step, out_g)
            fake = out_g.detach()
        else:
            with torch.no_grad():
                fake = self.generate(src, mask)
        cond = self.condition(src, mask)
        real_s, fake_s = self.discriminate(cond, x), self.discriminate(cond, fake)
        loss = d_loss(self.config.gan_loss, real_s, fake_s)
        prob = (lambda s: torch.sigmoid(s.detach()).mean()) if self.config.gan_loss in ("minimax", "nonsaturating") \
            else (lambda s: s.detach().mean())
        return {"loss": loss, "d_loss": loss.detach(), "d_real": prob(real_s), "d_fake": prob(fake_s)}

    @torch.no_grad()
    def validation_step(self, batch: dict) -> dict:
        """``loss`` (the generator's reconstruction objective, ``rec_weight * rec``), ``l1``, ``mse`` and ``psnr``
        of the translated images (as :meth:`translate` returns them), and ``l1_missing`` for masked data."""
        x, src, mask = self._batch(batch)
        out = self.generate(src, mask)
        rec = self.rec(out, x, mask)
        img = self.finish(out)
        err = (img - x).flatten(1)  # (B, C*H*W)
        mse_i = (err ** 2).mean(1)  # (B,)
        res = {"loss": self.config.rec_weight * rec, "rec": rec, "l1": err.abs().mean(), "mse": mse_i.mean(),
               "psnr": (10 * torch.log10(1.0 / mse_i.clamp_min(1e-10))).mean()}
        if mask is not None:
            m = mask.expand_as(x)
            res["l1_missing"] = ((img - x).abs() * m).sum() / m.sum().clamp_min(1)
        return res

    def configure_optimizers(self) -> dict[str, OptimizerSpec]:
        c = self.config
        betas = (c.beta1, c.beta2)
        g = OptimizerSpec(torch.optim.Adam(self.generator.parameters(), lr=c.lr_g, betas=betas))
        if not self.adversarial:
            return {"g": g}
        return {"d": OptimizerSpec(torch.optim.Adam(self.discriminator.parameters(), lr=c.lr_d, betas=betas)),
                "g": g}


# -- the models --------------------------------------------------------------------------------------------
@register_model("pix2pix", Pix2PixConfig, "pix2pix (Isola et al.): U-Net generator + PatchGAN on the source, adversarial + 100 L1")
class Pix2Pix(ImageToImageModel):
    """pix2pix on any pair: the source (resized bilinearly to the target size when they differ; with the mask as an
    extra channel when the data has masks) through a U-Net, sigmoid output."""

    uses_mask = "optional"

    def build_generator(self) -> nn.Module:
        c = self.config
        return UNetGenerator(self.condition_channels(), self.shape[0], self.shape[1:], width=c.width, depth=c.depth,
                             norm=c.norm, dropout=c.dropout)

    def generate(self, src, mask):
        return torch.sigmoid(self.generator(self.condition(src, mask)))  # (B, C, H, W)


@register_model("srgan", SRGANConfig, "SRGAN-style super-resolution: residual generator, pixel-shuffle upsampling, L1/MSE + adversarial")
class SRGAN(ImageToImageModel):
    """Super-resolution by the integer factor ``H / Hs`` of the data (2, 3, 4, 8): ``bicubic(src) + R(src)`` with
    ``R`` an :class:`~genlab.nn.i2i_blocks.SRResNet`. Source and target have the same channels."""

    uses_mask = "never"

    def check_pair(self) -> None:
        (cs, hs, ws), (c, h, w) = self.src_shape, self.shape
        if cs != c:
            raise DataError(f"srgan: source of shape {_shape_text(self.src_shape)} and target of shape "
                            f"{_shape_text(self.shape)} differ in channels; super-resolution keeps the channels")
        if h % hs or w % ws or h // hs != w // ws or h // hs < 2:
            raise DataError(f"srgan: source of shape {_shape_text(self.src_shape)} and target of shape "
                            f"{_shape_text(self.shape)} are not an integer upscale (x2, x3, x4, x8) of each other; "
                            "pair them with data.pair=downsample:K")
        self.factor = h // hs
        upscale_stages(self.factor)
        self._features = None
        if self.config.feature_weight > 0:
            self._feature_net_name()

    def _feature_net_name(self) -> str:
        from ..metrics.feature_nets import FEATURE_NETS, feature_net_for_shape  # only when the feature loss is on
        name = feature_net_for_shape(self.shape)
        if name is None:
            have = ", ".join(f"{n} {_shape_text(s.input_shape)}" for n, s in FEATURE_NETS.items())
            raise ConfigError(f"srgan: feature_weight > 0 needs a genlab feature net for {_shape_text(self.shape)} "
                              f"targets, but the shipped ones take {have}; set feature_weight=0")
        return name

    def feature_net(self) -> nn.Module:
        """The frozen genlab feature net of the feature loss (not part of the model's state; loaded once)."""
        if self._features is None:
            from ..metrics.feature_nets import load_feature_net
            object.__setattr__(self, "_features", load_feature_net(self._feature_net_name()))
        net = self._features
        if next(net.parameters()).device != self.device:
            net.to(self.device)
        return net

    def build_generator(self) -> nn.Module:
        c = self.config
        return SRResNet(self.shape[0], self.factor, width=c.width, n_blocks=c.n_blocks, norm=c.norm)

    def bicubic(self, src: torch.Tensor) -> torch.Tensor:
        """The bicubic upscale (``F.interpolate``, ``align_corners=False``), clamped to [0, 1]."""
        return F.interpolate(src, scale_factor=self.factor, mode="bicubic", align_corners=False).clamp(0, 1)

    def condition(self, src, mask):
        return self.bicubic(src)

    def generate(self, src, mask):
        return self.bicubic(src) + self.generator(src)  # (B, C, H, W)

    def extra_g_terms(self, out, x) -> dict:
        if self.config.feature_weight <= 0:
            return {}
        net = self.feature_net()
        f_out = net.features(out.clamp(0, 1))
        with torch.no_grad():
            f_x = net.features(x)
        return {"feat": self.config.feature_weight * F.mse_loss(f_out, f_x)}


@register_model("context-encoder", ContextEncoderConfig, "Context-encoder inpainting: U-Net on masked image + mask, loss on the missing region, known pixels kept")
class ContextEncoder(ImageToImageModel):
    """Inpainting: ``G`` (a U-Net) sees the masked image and the mask; the output is ``src * (1 - mask) + G * mask``,
    so known pixels are returned exactly and the reconstruction loss covers the missing pixels only (a mean over
    them). D sees the composited image beside the masked source and the mask."""

    uses_mask = "required"

    def check_pair(self) -> None:
        if self.src_shape != self.shape:
            raise DataError(f"context-encoder: source of shape {_shape_text(self.src_shape)} but targets of shape "
                            f"{_shape_text(self.shape)}; inpainting pairs have equal shapes (data.pair=mask:box)")

    def build_generator(self) -> nn.Module:
        c = self.config
        return UNetGenerator(self.shape[0] + 1, self.shape[0], self.shape[1:], width=c.width, depth=c.depth,
                             norm=c.norm, dropout=c.dropout)

    def generate(self, src, mask):
        g = torch.sigmoid(self.generator(torch.cat([src * (1 - mask), mask], 1)))  # (B, C, H, W)
        return src * (1 - mask) + g * mask  # known pixels exactly the source's

    def rec(self, out, x, mask):
        m = mask.expand_as(x)
        diff = (out - x).abs() if self.config.rec_loss == "l1" else (out - x) ** 2
        return (diff * m).sum() / m.sum().clamp_min(1)


@register_model("colorizer", ColorizerConfig, "Colourisation: U-Net from BT.601 luma to chroma (Cb, Cr); the output keeps the input's luma")
class Colorizer(ImageToImageModel):
    """Grey ``(1, H, W)`` -> colour ``(3, H, W)``. The U-Net predicts the chroma ``(Cb, Cr)`` (sigmoid, full-range
    BT.601 YCbCr); the output is ``Y + t * d(Cb, Cr)`` (:func:`~genlab.nn.i2i_blocks.chroma_to_rgb_in_gamut`): the
    RGB offsets ``d`` have zero luma and ``t <= 1`` desaturates a pixel only as far as needed to stay in [0, 1], so
    the output's luma ``0.299 R + 0.587 G + 0.114 B`` equals the input grey exactly (to float rounding)."""

    uses_mask = "never"

    def check_pair(self) -> None:
        (cs, hs, ws), (c, h, w) = self.src_shape, self.shape
        if cs != 1 or c != 3 or (hs, ws) != (h, w):
            raise DataError(f"colorizer: source of shape {_shape_text(self.src_shape)} and target of shape "
                            f"{_shape_text(self.shape)}; it maps grey (1, H, W) to colour (3, H, W) of the same size "
                            "(data.pair=grey on colour images)")

    def build_generator(self) -> nn.Module:
        c = self.config
        return UNetGenerator(1, 2, self.shape[1:], width=c.width, depth=c.depth, norm=c.norm, dropout=c.dropout)

    def generate(self, src, mask):
        cbcr = torch.sigmoid(self.generator(src))  # (B, 2, H, W)
        return chroma_to_rgb_in_gamut(src, cbcr)  # (B, 3, H, W), luma == src


# -- held-out figures ----------------------------------------------------------------------------------------
@torch.no_grad()
def translation_metrics(model: ImageToImageModel, data, *, batch_size: int = 256) -> dict:
    """``test_l1`` (mean absolute error) and ``test_psnr`` (mean over images of ``10 log10(1 / MSE)``, images in
    [0, 1]) of ``model.translate`` on a paired data set ``data`` (targets ``x``, extras ``src``[/``mask``]); with
    masks also ``test_l1_missing`` (over the missing pixels). Empty when ``data`` has no sources."""
    if not len(data) or "src" not in data.extras:
        return {}
    mask = data.extras.get("mask") if model.with_mask else None
    out = model.translate(data.extras["src"], mask, batch_size=batch_size).cpu()
    x = data.x.cpu().float()
    err = (out - x).flatten(1)
    mse = (err ** 2).mean(1).clamp_min(1e-10)
    res = {"test_l1": float(err.abs().mean()), "test_psnr": float((10 * torch.log10(1.0 / mse)).mean())}
    if mask is not None:
        m = mask.cpu().expand_as(x)
        res["test_l1_missing"] = float(((out - x).abs() * m).sum() / m.sum().clamp_min(1))
    return res
