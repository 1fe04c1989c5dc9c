"""The GAN family: ``gan``, ``dcgan``, ``wgan``, ``wgan-gp``, ``cgan``, ``acgan``.

All share :class:`GAN`: a generator ``G(z[, y])`` from ``z ~ N(0, I)`` and a discriminator/critic
``D(x[, y])`` returning one score per sample (a logit, or an unbounded critic value). Training uses the
one Trainer with two optimizers ``{"d": OptimizerSpec(opt_d, steps=n_critic), "g": OptimizerSpec(opt_g)}``:
the Trainer runs ``n_critic`` discriminator steps, then one generator step, each on its own batch.
``training_step(batch, step, optimizer="d")`` returns the loss of the named player; the discriminator
step generates its fakes without gradients to G, the generator step back-propagates through D (whose
gradients the Trainer discards: it zero-grades all optimizers before each step and steps only one).

Spaces: images are generated in genlab's model space ``[0, 1]`` (MLP generator: sigmoid output;
DCGAN generator: Tanh output ``t`` mapped to ``(t + 1) / 2``, and the DCGAN discriminator reads
``2 x - 1``, so the conv nets themselves work in ``[-1, 1]``). Tabular generators are linear.

Losses (``r = D(x_real)``, ``f = D(G(z))``, batch means; :func:`d_loss`, :func:`g_loss`):

============== ========================================== ================================
loss           discriminator                              generator
============== ========================================== ================================
minimax        ``softplus(-r) + softplus(f)`` (BCE)        ``log(1 - sigmoid(f)) = -softplus(f)``
nonsaturating  same                                       ``softplus(-f) = -log sigmoid(f)``
lsgan          ``((r - 1)^2 + f^2) / 2``                   ``(f - 1)^2 / 2``
hinge          ``relu(1 - r) + relu(1 + f)``               ``-f``
wasserstein    ``f - r`` (+ ``lambda * GP`` for wgan-gp)   ``-f``
============== ========================================== ================================

Logged per step: ``loss`` (of the player that stepped), ``d_loss`` or ``g_loss``, ``d_real`` and
``d_fake`` (mean ``D(x)`` and ``D(G(z))``: probabilities ``sigmoid(logit)`` for the BCE losses, raw
scores otherwise), and for critics ``wasserstein`` (``mean r - mean f``) and ``gp``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check
from ..errors import ConfigError
from ..nn.gan_blocks import (DCGAN_SIZES, DIFFAUGMENT_OPS, DCGANFeatures, DCGANGenerator, MLPFeatures,
                             MLPGenerator, apply_spectral_norm, dcgan_plan, diff_augment, gan_hidden)
from ..registry import register_model
from .base import GenerativeModel, OptimizerSpec
from .networks import GAN_SLOTS, attach_networks
from .vae import check_labels

log = logging.getLogger(__name__)

LOSSES = ("minimax", "nonsaturating", "lsgan", "hinge")


# -- losses ------------------------------------------------------------------------------------------------
def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss of scores ``real`` ``(B,)`` and ``fake`` ``(B',)`` (see the module table)."""
    if kind in ("minimax", "nonsaturating"):
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "lsgan":
        return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake ** 2).mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "wasserstein":
        return fake.mean() - real.mean()
    raise ConfigError(f"loss must be one of {', '.join(LOSSES)} or wasserstein, got {kind!r}")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """Generator loss of the discriminator scores ``fake`` ``(B,)`` of generated samples."""
    if kind == "minimax":
        return -F.softplus(fake).mean()  # log(1 - sigmoid(f)), the saturating loss of Goodfellow et al.
    if kind == "nonsaturating":
        return F.softplus(-fake).mean()
    if kind == "lsgan":
        return 0.5 * ((fake - 1) ** 2).mean()
    if kind in ("hinge", "wasserstein"):
        return -fake.mean()
    raise ConfigError(f"loss must be one of {', '.join(LOSSES)} or wasserstein, got {kind!r}")


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP penalty ``mean_i (||grad_x critic(x_i)||_2 - 1)^2`` at ``x_i = a_i real_i + (1 - a_i) fake_i``,
    ``a_i ~ U(0, 1)`` per sample (Gulrajani et al. 2017). ``critic`` maps ``(B, *shape) -> (B,)``.

    The graph is kept (``create_graph=True``) so the penalty trains the critic; it works under
    ``torch.no_grad()`` too (validation).
    """
    dev = "cpu" if generator is None or generator.device.type == "cpu" else generator.device
    alpha = torch.rand(len(real), generator=generator, device=dev).to(real)
    alpha = alpha.view(-1, *([1] * (real.ndim - 1)))  # (B, 1, ...)
    with torch.enable_grad():
        xh = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
        out = critic(xh)
        (grad,) = torch.autograd.grad(out.sum(), xh, create_graph=True)
        return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


# -- configs -----------------------------------------------------------------------------------------------
@dataclass
class _GANBaseConfig:
    latent_dim: int = 64
    hidden: list[int] | None = None
    width: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    n_critic: int = 1
    spectral_norm: bool = False
    diffaugment: str = ""
    monitor_every: int = 100
    monitor_samples: int = 256
    collapse_threshold: float = 0.5
    collapse_warmup: int = 500
    fid_samples: int = 1000

    def __post_init__(self):
        ops = [o for o in self.diffaugment.split(",") if o.strip()]
        check(all(o.strip() in DIFFAUGMENT_OPS for o in ops),
              f"diffaugment must be a comma-separated subset of {','.join(DIFFAUGMENT_OPS)} (or empty), "
              f"got {self.diffaugment!r}")
        check(self.latent_dim >= 1, f"latent_dim must be >= 1, got {self.latent_dim}")
        check(self.hidden is None or all(w >= 1 for w in self.hidden), f"hidden widths must be >= 1, got {self.hidden}")
        check(self.width >= 1, f"width must be >= 1, got {self.width}")
        check(self.lr_g > 0, f"lr_g must be > 0, got {self.lr_g}")
        check(self.lr_d > 0, f"lr_d must be > 0, got {self.lr_d}")
        check(self.n_critic >= 1, f"n_critic must be >= 1, got {self.n_critic}")
        check(self.monitor_every >= 0, f"monitor_every must be >= 0 (0 = off), got {self.monitor_every}")
        check(self.monitor_samples >= 2, f"monitor_samples must be >= 2, got {self.monitor_samples}")
        check(self.collapse_warmup >= 0, f"collapse_warmup must be >= 0, got {self.collapse_warmup}")
        check(0 <= self.collapse_threshold <= 1, f"collapse_threshold must be in [0, 1], got {self.collapse_threshold}")
        check(self.fid_samples == 0 or self.fid_samples >= 2,
              f"fid_samples must be 0 (off) or >= 2, got {self.fid_samples}")


@dataclass
class _AdamMixin:
    beta1: float = 0.5
    beta2: float = 0.999

    def _check_betas(self):
        check(0 <= self.beta1 < 1, f"beta1 must be in [0, 1), got {self.beta1}")
        check(0 <= self.beta2 < 1, f"beta2 must be in [0, 1), got {self.beta2}")


@dataclass
class DCGANConfig(_GANBaseConfig, _AdamMixin):
    """``dcgan``: DCGAN networks (``width`` = base channels), Adam(``lr``, ``beta1``, ``beta2``), a GAN ``loss``.

    latent_dim: z size. hidden: MLP widths of D (G uses them reversed, with BatchNorm; ``null`` = [512, 256],
    [1024, 512] above 1,024 inputs).
    n_critic: discriminator steps per generator step. spectral_norm: on every D weight.
    monitor_every: every N training steps (0 = off) generate ``monitor_samples`` samples and log the
    diversity figures (``div_entropy``/``div_classes``, or ``div_ratio``); a warning is logged when
    ``div_entropy`` or ``div_ratio`` falls below ``collapse_threshold`` after ``collapse_warmup`` steps (a
    fresh generator always looks collapsed). fid_samples: samples for the FID
    computed at each validation (0 = off), which the best checkpoint follows.
    """

    loss: Literal["minimax", "nonsaturating", "lsgan", "hinge"] = "nonsaturating"
    latent_dim: int = 100

    def __post_init__(self):
        super().__post_init__()
        self._check_betas()
        check(self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")


@dataclass
class GANConfig(DCGANConfig):
    """``gan``: ``arch`` ``mlp`` (default) or ``dcgan`` (images of a DCGAN size)."""

    arch: Literal["mlp", "dcgan"] = "mlp"
    latent_dim: int = 64


@dataclass
class WGANConfig(_GANBaseConfig):
    """``wgan``: critic weights clipped to ``[-clip_value, clip_value]`` after every critic step; RMSprop.

    arch: ``auto`` = DCGAN networks for images of a DCGAN size, MLP otherwise.
    """

    arch: Literal["auto", "mlp", "dcgan"] = "auto"
    lr_g: float = 5e-5
    lr_d: float = 5e-5
    n_critic: int = 5
    clip_value: float = 0.01

    def __post_init__(self):
        super().__post_init__()
        check(self.clip_value > 0, f"clip_value must be > 0, got {self.clip_value}")


@dataclass
class WGANGPConfig(_GANBaseConfig, _AdamMixin):
    """``wgan-gp``: critic without BatchNorm, gradient penalty weight ``gp_weight``; Adam(1e-4, (0, 0.9))."""

    arch: Literal["auto", "mlp", "dcgan"] = "auto"
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    beta1: float = 0.0
    beta2: float = 0.9
    n_critic: int = 5
    gp_weight: float = 10.0

    def __post_init__(self):
        super().__post_init__()
        self._check_betas()
        check(self.gp_weight >= 0, f"gp_weight must be >= 0, got {self.gp_weight}")


@dataclass
class CGANConfig(DCGANConfig):
    """``cgan``: label embedding (``embed_dim``) concatenated to z in G; D conditioning ``d_cond``:
    ``projection`` (Miyato & Koyama 2018: ``head(phi(x)) + <embed(y), phi(x)>``) or ``concat`` (one-hot
    appended to D's input: extra constant channels for conv, extra columns for MLP)."""

    arch: Literal["auto", "mlp", "dcgan"] = "auto"
    embed_dim: int = 16
    d_cond: Literal["projection", "concat"] = "projection"

    def __post_init__(self):
        super().__post_init__()
        check(self.embed_dim >= 1, f"embed_dim must be >= 1, got {self.embed_dim}")


@dataclass
class ACGANConfig(DCGANConfig):
    """``acgan``: label embedding in G; D has an auxiliary classifier head trained with cross-entropy on
    real and fake samples (weight ``cls_weight``), and G is trained to make its samples classified as
    their labels. ``d_cls_fake=False`` trains D's classifier on real samples only (G's loss is unchanged):
    with the paper's loss D and G can agree on class cues that are not the real class shapes (measured on
    mnist5k, 15 epochs, 3 seeds: feature-net accuracy on requested labels 53 % with it, 93 % without;
    docs/models/gan.md)."""

    arch: Literal["auto", "mlp", "dcgan"] = "auto"
    embed_dim: int = 16
    cls_weight: float = 1.0
    d_cls_fake: bool = True

    def __post_init__(self):
        super().__post_init__()
        check(self.embed_dim >= 1, f"embed_dim must be >= 1, got {self.embed_dim}")
        check(self.cls_weight >= 0, f"cls_weight must be >= 0, got {self.cls_weight}")


# -- models ------------------------------------------------------------------------------------------------
class GAN(GenerativeModel):
    """Unconditional GAN with MLP (default) or DCGAN networks and a choice of loss."""

    can_reconstruct = False
    #: user-supplied networks (``networks={...}`` or :meth:`build_networks`): generator; discriminator (unconditional)
    network_slots = GAN_SLOTS
    has_decoder = True
    #: loss used when the config has no ``loss`` field (critics)
    loss_kind: str = "nonsaturating"
    default_arch: str = "mlp"
    d_batch_norm: bool = True

    def __init__(self, config, data_info: dict, *, networks: dict | None = None):
        super().__init__(config, data_info)
        c = config
        self.latent_dim = c.latent_dim
        self.loss_kind = getattr(c, "loss", type(self).loss_kind)
        self.num_classes = 0
        if self.conditional:
            k = data_info.get("num_classes")
            if not k:
                raise ConfigError(f"{self.registry_name} needs labelled data (num_classes >= 1 in the data), got "
                                  f"num_classes={k}; give labels or train an unconditional 'gan'")
            self.num_classes = int(k)
        self.arch = self._resolve_arch(getattr(c, "arch", self.default_arch))
        g_in = c.latent_dim + (c.embed_dim if self.conditional else 0)
        d_shape = self._d_input_shape()
        if self.arch == "dcgan":
            self.generator = DCGANGenerator(g_in, self.shape, c.width)
            self.features = DCGANFeatures(d_shape, c.width, batch_norm=self.d_batch_norm)
        else:
            hidden = gan_hidden(self.dim, c.hidden)
            self.generator = MLPGenerator(g_in, self.shape, hidden[::-1], sigmoid=self.kind == "image")
            self.features = MLPFeatures(int(torch.Size(d_shape).numel()), hidden)
        self.head = nn.Linear(self.features.out_dim, 1)
        attach_networks(self, networks)
        self.augment_ops = tuple(o.strip() for o in c.diffaugment.split(",") if o.strip())
        if self.augment_ops and self.kind != "image":
            raise ConfigError(f"{self.registry_name}: diffaugment={c.diffaugment!r} needs image data; set "
                              "diffaugment to an empty string for tabular data")
        self.build_conditioning()
        if c.spectral_norm:
            for m in self.discriminator_modules():
                apply_spectral_norm(m)

    # -- construction hooks -------------------------------------------------------------------------
    def _resolve_arch(self, arch: str) -> str:
        if arch == "auto":
            ok = self.kind == "image" and self.shape[1] == self.shape[2] and self.shape[1] in DCGAN_SIZES
            return "dcgan" if ok else "mlp"
        if arch == "dcgan":
            dcgan_plan(self.shape, self.registry_name)
        return arch

    def _d_input_shape(self) -> tuple[int, ...]:
        return self.shape

    def build_conditioning(self) -> None:
        """Extra modules of conditional models (label embeddings, heads)."""

    def discriminator_modules(self) -> list[nn.Module]:
        return [self.features, self.head]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.discriminator_modules() for p in m.parameters()]

    def generator_parameters(self) -> list[nn.Parameter]:
        ids = {id(p) for p in self.discriminator_parameters()}
        return [p for p in self.parameters() if id(p) not in ids]

    # -- networks -----------------------------------------------------------------------------------
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``G(z)`` ``(B, L) -> (B, *shape)`` in model space."""
        return self.generator(z)

    def discriminate(self, x: torch.Tensor, labels: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(scores (B,), class logits (B, K) or None)``."""
        return self.head(self.features(x)).squeeze(1), None

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """DiffAugment (``config.diffaugment``) in training mode; identity otherwise."""
        return diff_augment(x, self.augment_ops) if self.training and self.augment_ops else x

    def critic(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.discriminate(x, labels)[0]

    # -- monitoring ---------------------------------------------------------------------------------
    @property
    def feature_net(self):
        """The shipped genlab classifier for this image shape (digits 1x8x8, mnist 1x28x28) or ``None``.
        Loaded on first use and kept outside the module tree (never saved with the model)."""
        if "_feature_net" not in self.__dict__:
            from ..metrics.feature_nets import feature_net_for_shape, load_feature_net
            name = feature_net_for_shape(self.shape) if self.kind == "image" else None
            self.__dict__["_feature_net"] = load_feature_net(name) if name else None
        return self.__dict__["_feature_net"]

    @property
    def fid_features(self) -> str | None:
        """What the training-time FID is computed on: ``"digits"``/``"mnist"`` (feature net), ``"raw"``
        (tabular columns, standardised) or ``None`` (no cheap features: images of other shapes)."""
        if self.kind == "tabular":
            return "raw"
        from ..metrics.feature_nets import feature_net_for_shape
        return feature_net_for_shape(self.shape)

    @property
    def default_monitor(self) -> tuple[str, str] | None:
        """``("val/fid", "min")`` when a training-time FID exists, else ``None`` (the D loss says nothing about
        sample quality, so no best checkpoint is kept; the last weights are exported)."""
        return ("val/fid", "min") if self.config.fid_samples and self.fid_features else None

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(features (N, F), class logits (N, K) or None)`` of model-space samples, in float32."""
        net = self.feature_net
        if net is None:
            return x.float().flatten(1), None
        net.to(x.device)
        f, lg = net.extract(x.float().clamp(0, 1))
        return torch.from_numpy(f), torch.from_numpy(lg)

    @torch.no_grad()
    def _monitor_samples(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` samples in eval mode from a private generator (the training RNG is not touched), with the
        labels used (conditional models: ``0..K-1`` cycled)."""
        g = torch.Generator().manual_seed(seed)
        labels = torch.arange(n) % self.num_classes if self.conditional else None
        was_training = self.training
        self.eval()
        try:
            with torch.autocast(self.device.type, enabled=False):
                x = torch.cat([self.sample(len(lb), labels=None if labels is None else labels[lb], generator=g)
                               for lb in torch.arange(n).split(500)])
        finally:
            self.train(was_training)
        return x.float(), labels

    @torch.no_grad()
    def diversity(self, n: int = 256, *, real: torch.Tensor | None = None, seed: int = 0) -> dict[str, float]:
        """Diversity of ``n`` generated samples (see :mod:`genlab.metrics.diversity`).

        With a genlab feature net: ``div_entropy`` (normalised entropy of the predicted-class histogram,
        1 = uniform) and ``div_classes`` (classes holding more than a tenth of their uniform share).
        Otherwise, given ``real`` samples: ``div_ratio``, the mean pairwise distance of generated samples
        over that of ``real`` (raw model-space values).
        """
        from ..metrics.diversity import class_histogram, classes_covered, diversity_ratio, normalized_entropy
        fake, _ = self._monitor_samples(n, seed)
        with torch.autocast(self.device.type, enabled=False):
            feats, logits = self._features(fake)
            real_feats = self._features(real)[0] if real is not None and logits is None else None
        if logits is not None:
            counts = class_histogram(logits)
            return {"div_entropy": normalized_entropy(counts),
                    "div_classes": float(classes_covered(counts, 0.1 / len(counts)))}
        if real is None:
            return {}
        return {"div_ratio": diversity_ratio(feats, real_feats)}

    def _check_collapse(self, figures: dict[str, float], step: int) -> None:
        thr = self.config.collapse_threshold
        if step < self.config.collapse_warmup:
            return
        for key in ("div_entropy", "div_ratio"):
            if key in figures and figures[key] < thr:
                log.warning("%s: possible mode collapse at step %d: %s=%.3f < collapse_threshold=%.2f%s; "
                            "try a lower lr, spectral_norm=true, diffaugment or another loss",
                            self.registry_name, step, key, figures[key], thr,
                            f" ({int(figures['div_classes'])} classes)" if "div_classes" in figures else "")

    @torch.no_grad()
    def validation_epoch_metrics(self, data) -> dict:
        """``fid`` of ``fid_samples`` generated samples against the validation set (features: see
        :attr:`fid_features`; real statistics cached per data set), the diversity figures of those samples,
        and for conditional models ``cond_acc``: the feature-net accuracy on the requested labels."""
        from ..metrics.diversity import class_histogram, classes_covered, normalized_entropy
        from ..metrics.fid import fid
        from ..metrics.stats import FeatureStats
        n = self.config.fid_samples
        if not n or not self.fid_features or len(data) < 2:
            return {}
        with torch.autocast(self.device.type, enabled=False):
            key = (data.x.data_ptr(), tuple(data.x.shape))
            cache = self.__dict__.get("_real_stats")
            if cache is None or cache[0] != key:
                real_f = torch.cat([self._features(xb)[0] for xb in data.x.split(1000)])
                cache = (key, FeatureStats.from_features(real_f.double()))
                self.__dict__["_real_stats"] = cache
            fake, labels = self._monitor_samples(n, seed=12345)
            feats, logits = self._features(fake)
        out = {"fid": fid(FeatureStats.from_features(feats.double()), cache[1])}
        if logits is not None:
            counts = class_histogram(logits)
            out.update(div_entropy=normalized_entropy(counts), div_classes=float(classes_covered(counts, 0.1 / len(counts))))
            if labels is not None and logits.shape[1] == self.num_classes:
                out["cond_acc"] = float((logits.argmax(1) == labels).float().mean())
        return out

    # -- inference ----------------------------------------------------------------------------------
    def _randn(self, shape, generator: torch.Generator | None) -> torch.Tensor:
        dev = "cpu" if generator is None or generator.device.type == "cpu" else generator.device
        return torch.randn(shape, generator=generator, device=dev).to(self.device)

    def _sample_labels(self, labels, n: int, generator, what: str) -> torch.Tensor | None:
        if not self.conditional:
            if labels is not None:
                raise ConfigError(f"{self.registry_name}.{what}: labels given but the model is unconditional; "
                                  "train a 'cgan' or 'acgan' to condition on labels")
            return None
        if labels is None:
            dev = "cpu" if generator is None or generator.device.type == "cpu" else generator.device
            labels = torch.randint(self.num_classes, (n,), generator=generator, device=dev)
        return check_labels(labels, self.num_classes, n, f"{self.registry_name}.{what}").to(self.device)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The generator as a decoder: ``G(z[, labels])`` in model space."""
        y = self._sample_labels(labels, len(z), None, "decode")
        return self.generate(z.to(self.device), y)

    @torch.no_grad()
    def sample(self, n: int, *, labels: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``G(z)`` for ``n`` draws ``z ~ N(0, I)`` from ``generator``; conditional models take ``labels``
        ``(n,)`` in ``[0, K-1]`` (``None``: drawn uniformly from ``generator`` before z)."""
        if n < 1:
            raise ConfigError(f"number of samples must be >= 1, got {n}")
        y = self._sample_labels(labels, n, generator, "sample")
        return self.generate(self._randn((n, self.latent_dim), generator), y)

    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        raise ConfigError(f"model {self.registry_name!r} has no encoder and cannot reconstruct; use sample, "
                          "or train an 'ae' or 'vae' to reconstruct")

    # -- training -----------------------------------------------------------------------------------
    def _batch_labels(self, batch: dict) -> torch.Tensor | None:
        if not self.conditional:
            return None
        if batch.get("y") is None:
            raise ConfigError(f"{self.registry_name} needs labelled data: every batch needs 'y' with values in "
                              f"[0, {self.num_classes - 1}]")
        return check_labels(batch["y"], self.num_classes, len(batch["x"]),
                            f"{self.registry_name}.training_step").to(batch["x"].device)

    def _prob(self, s: torch.Tensor) -> torch.Tensor:
        """What ``d_real``/``d_fake`` log: probabilities for the BCE losses, raw scores otherwise."""
        s = s.detach().float()
        return torch.sigmoid(s).mean() if self.loss_kind in ("minimax", "nonsaturating") else s.mean()

    def d_extra(self, x, fake, y, real_cls, fake_cls) -> dict:
        """Additional discriminator loss terms ``{name: tensor}`` (gradient penalty, classification)."""
        return {}

    def g_extra(self, fake_cls, y) -> dict:
        return {}

    def _d_step(self, batch: dict) -> tuple[dict, torch.Tensor]:
        x = batch["x"]
        y = self._batch_labels(batch)
        z = torch.randn(len(x), self.latent_dim, device=x.device)
        with torch.no_grad():
            fake = self.generate(z, y)  # no gradients into G on the discriminator step
        real_s, real_cls = self.discriminate(self.augment(x), y)
        fake_s, fake_cls = self.discriminate(self.augment(fake), y)
        loss = d_loss(self.loss_kind, real_s, fake_s)
        extra = {"d_adv": loss.detach()}
        for k, v in self.d_extra(x, fake, y, real_cls, fake_cls).items():
            loss = loss + v
            extra[k] = v.detach()
        out = {"loss": loss, "d_loss": loss.detach(), **extra,
               "d_real": self._prob(real_s), "d_fake": self._prob(fake_s)}
        if self.loss_kind == "wasserstein":
            out["wasserstein"] = (real_s.mean() - fake_s.mean()).detach()
        if real_cls is not None:
            out["d_acc"] = (real_cls.argmax(1) == y).float().mean()
        return out, fake_s.detach()

    def training_step(self, batch: dict, step: int, optimizer: str = "d") -> dict:
        """Loss of the discriminator (``optimizer="d"``, the default) or generator (``"g"``) on ``batch``;
        every ``monitor_every`` steps also the diversity figures (see :meth:`diversity`)."""
        out = self._player_step(batch, optimizer)
        every = self.config.monitor_every
        if every and step >= 0 and step % every == 0:
            figures = self.diversity(self.config.monitor_samples, real=batch["x"], seed=step)
            self._check_collapse(figures, step)
            out.update({k: torch.tensor(v) for k, v in figures.items()})
        return out

    def _player_step(self, batch: dict, optimizer: str) -> dict:
        if optimizer == "d":
            return self._d_step(batch)[0]
        if optimizer != "g":
            raise ConfigError(f"{self.registry_name}: optimizer must be 'd' or 'g', got {optimizer!r}")
        x = batch["x"]
        y = self._batch_labels(batch)
        z = torch.randn(len(x), self.latent_dim, device=x.device)
        fake_s, fake_cls = self.discriminate(self.augment(self.generate(z, y)), y)
        loss = g_loss(self.loss_kind, fake_s)
        out = {"g_adv": loss.detach()}
        for k, v in self.g_extra(fake_cls, y).items():
            loss = loss + v
            out[k] = v.detach()
        return {"loss": loss, "g_loss": loss.detach(), **out, "d_fake": self._prob(fake_s)}

    @torch.no_grad()
    def validation_step(self, batch: dict) -> dict:
        """``loss`` = the discriminator loss with its extra terms, its parts, ``d_real``, ``d_fake``, and
        ``g_adv``, the generator's adversarial loss on the same fakes."""
        out, fake_s = self._d_step(batch)
        return {**{k: v.detach() for k, v in out.items()}, "g_adv": g_loss(self.loss_kind, fake_s)}

    def _adam(self, params, lr):
        c = self.config
        return torch.optim.Adam(params, lr=lr, betas=(c.beta1, c.beta2))

    def configure_optimizers(self) -> dict[str, OptimizerSpec]:
        c = self.config
        return {"d": OptimizerSpec(self._adam(self.discriminator_parameters(), c.lr_d), steps=c.n_critic),
                "g": OptimizerSpec(self._adam(self.generator_parameters(), c.lr_g))}


register_model("gan", GANConfig, "GAN (MLP or DCGAN nets; minimax, non-saturating, LSGAN or hinge loss)")(GAN)


@register_model("dcgan", DCGANConfig, "DCGAN (Radford et al.): strided conv G/D, batch norm, Adam(2e-4, 0.5)")
class DCGAN(GAN):
    """DCGAN on images of side 8, 16, 28, 32 or 64."""

    input_kinds = ("image",)
    default_arch = "dcgan"


@register_model("wgan", WGANConfig, "Wasserstein GAN: critic with weight clipping, n_critic=5, RMSprop(5e-5)")
class WGAN(GAN):
    """WGAN (Arjovsky et al. 2017). Clipping is an optimizer step hook on the critic optimizer
    (``register_step_post_hook``): every critic parameter is clamped to ``[-c, c]`` right after each
    critic step (and once at construction), so the critic is always inside the box."""

    loss_kind = "wasserstein"
    default_arch = "auto"

    def __init__(self, config: WGANConfig, data_info: dict, *, networks: dict | None = None):
        super().__init__(config, data_info, networks=networks)
        self.clip_weights()

    @torch.no_grad()
    def clip_weights(self) -> None:
        c = self.config.clip_value
        for p in self.discriminator_parameters():
            p.clamp_(-c, c)

    def configure_optimizers(self) -> dict[str, OptimizerSpec]:
        c = self.config
        opt_d = torch.optim.RMSprop(self.discriminator_parameters(), lr=c.lr_d)
        opt_d.register_step_post_hook(lambda *_: self.clip_weights())
        return {"d": OptimizerSpec(opt_d, steps=c.n_critic),
                "g": OptimizerSpec(torch.optim.RMSprop(self.generator_parameters(), lr=c.lr_g))}


@register_model("wgan-gp", WGANGPConfig, "WGAN-GP: critic with gradient penalty (lambda=10), Adam(1e-4, (0, 0.9))")
class WGANGP(GAN):
    """WGAN-GP (Gulrajani et al. 2017): no BatchNorm in the critic; ``gp`` = :func:`gradient_penalty`."""

    loss_kind = "wasserstein"
    default_arch = "auto"
    d_batch_norm = False

    def d_extra(self, x, fake, y, real_cls, fake_cls) -> dict:
        gp = gradient_penalty(lambda v: self.critic(v, y), x, fake)
        return {"gp": self.config.gp_weight * gp}


@register_model("cgan", CGANConfig, "Conditional GAN: label embedding into G, projection (or concat) discriminator")
class CGAN(GAN):
    """Conditional GAN; ``sample(n, labels=...)``."""

    conditional = True
    default_arch = "auto"

    def _d_input_shape(self) -> tuple[int, ...]:
        if self.config.d_cond == "concat":
            k = self.num_classes
            return (self.shape[0] + k, *self.shape[1:]) if self.kind == "image" else (self.shape[0] + k,)
        return self.shape

    def build_conditioning(self) -> None:
        self.g_embed = nn.Embedding(self.num_classes, self.config.embed_dim)
        if self.config.d_cond == "projection":
            self.d_embed = nn.Embedding(self.num_classes, self.features.out_dim)
            nn.init.normal_(self.d_embed.weight, 0.0, 0.02)

    def discriminator_modules(self) -> list[nn.Module]:
        return super().discriminator_modules() + ([self.d_embed] if self.config.d_cond == "projection" else [])

    def generate(self, z, labels=None):
        return self.generator(torch.cat([z, self.g_embed(labels)], 1))  # (B, L + E) -> (B, *shape)

    def discriminate(self, x, labels=None):
        if self.config.d_cond == "concat":
            oh = F.one_hot(labels, self.num_classes).to(x.dtype)  # (B, K)
            if self.kind == "image":
                x = torch.cat([x, oh[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)  # (B, C + K, H, W)
            else:
                x = torch.cat([x, oh], 1)
            return self.head(self.features(x)).squeeze(1), None
        h = self.features(x)  # (B, F)
        return self.head(h).squeeze(1) + (self.d_embed(labels) * h).sum(1), None


@register_model("acgan", ACGANConfig, "Auxiliary-classifier GAN: D predicts the class of real and fake samples")
class ACGAN(GAN):
    """AC-GAN (Odena et al. 2017); ``sample(n, labels=...)``. Logs ``d_cls``/``g_cls`` and ``d_acc``."""

    conditional = True
    default_arch = "auto"

    def build_conditioning(self) -> None:
        self.g_embed = nn.Embedding(self.num_classes, self.config.embed_dim)
        self.cls_head = nn.Linear(self.features.out_dim, self.num_classes)

    def discriminator_modules(self) -> list[nn.Module]:
        return super().discriminator_modules() + [self.cls_head]

    def generate(self, z, labels=None):
        return self.generator(torch.cat([z, self.g_embed(labels)], 1))

    def discriminate(self, x, labels=None):
        h = self.features(x)
        return self.head(h).squeeze(1), self.cls_head(h)

    def d_extra(self, x, fake, y, real_cls, fake_cls) -> dict:
        ce = F.cross_entropy(real_cls, y)
        if self.config.d_cls_fake:
            ce = ce + F.cross_entropy(fake_cls, y)
        return {"d_cls": self.config.cls_weight * ce}

    def g_extra(self, fake_cls, y) -> dict:
        return {"g_cls": self.config.cls_weight * F.cross_entropy(fake_cls, y)}
