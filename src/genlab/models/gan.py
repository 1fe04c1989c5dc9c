"""The GAN family: ``gan``, ``dcgan``, ``wgan``, ``wgan-gp``, ``cgan``, ``acgan``.

All share :class:`GAN`: a generator ``G(z[, y])`` from ``z ~ N(0, I)`` and a discriminator/critic
``D(x[, y])`` returning one score per sample (a logit, or an unbounded critic value). Training uses the
one Trainer with two optimizers ``{"d": OptimizerSpec(opt_d), "g": OptimizerSpec(opt_g, every=n_critic)}``:
on every batch D updates, and on every ``n_critic``-th batch G updates after it, on the same batch
(``n_critic = 1`` is the textbook loop of pytorch/examples' DCGAN). ``training_step(batch, step,
optimizer="d")`` returns the loss of the named player. The D step generates its fakes without gradients
to G; the G step that follows on the same batch reuses those fakes (the same ``z``, generated once, as in
the textbook loop) and back-propagates through the just-updated D, whose gradients the Trainer discards
(it zero-grads every optimizer before each update and steps only the named one).

Spaces: images are generated in genlab's model space ``[0, 1]`` (MLP generator: sigmoid output;
DCGAN generator: Tanh output ``t`` mapped to ``(t + 1) / 2``, and the DCGAN discriminator reads
``2 x - 1``, so the conv nets themselves work in ``[-1, 1]``). Tabular generators are linear.

Losses: :mod:`genlab.models.gan_losses` (``d_loss``, ``g_loss``, ``gradient_penalty``, the tables).

Logged per step (one record per batch, both players): ``d_loss`` and its parts (``d_adv``, ``gp``,
``d_cls``), ``d_real`` and ``d_fake`` (mean ``D(x)`` and ``D(G(z))`` before the D update: probabilities
``sigmoid(logit)`` for the BCE losses, raw scores otherwise), for critics ``wasserstein``
(``mean r - mean f``), and on batches where G stepped ``g_loss`` and its parts (``g_adv``, ``g_cls``).
Sample-quality figures (FID, class coverage, conditional accuracy) are Trainer callbacks
(:mod:`genlab.training.monitors`), not model code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

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
from .gan_losses import (LOSSES, d_loss, g_loss, grad_sq_penalty,  # noqa: F401 (gradient_penalty re-exported)
                         gradient_penalty)
from .vae import check_labels

#: model keys of genlab <= 0.x GAN configs that moved to the trainer section; old saved configs holding them load
#: (the keys are ignored with a warning)
MOVED_MONITOR_KEYS = {k: f"moved to trainer.{k} (sample-quality monitors are Trainer callbacks)"
                      for k in ("monitor_every", "monitor_samples", "collapse_threshold", "collapse_warmup",
                                "fid_samples")}


class _PendingFakes:
    """The fakes of a D step kept, with their graph, for the G update on the same batch; never copied."""

    def __init__(self):
        self.step, self.fake = None, None

    def put(self, step: int, fake: torch.Tensor) -> None:
        self.step, self.fake = step, fake

    def take(self, step: int) -> torch.Tensor | None:
        fake = self.fake if self.step == step else None
        self.step, self.fake = None, None
        return fake

    def __deepcopy__(self, memo):
        return _PendingFakes()


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
    r1_gamma: float = 0.0
    r1_every: int = 1
    r2_gamma: float = 0.0
    MOVED_KEYS: ClassVar[dict[str, str]] = MOVED_MONITOR_KEYS

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
        check(self.r1_gamma >= 0, f"r1_gamma must be >= 0, got {self.r1_gamma}")
        check(self.r1_every >= 1, f"r1_every must be >= 1, got {self.r1_every}")
        check(self.r2_gamma >= 0, f"r2_gamma must be >= 0, got {self.r2_gamma}")


@dataclass
class _AdamMixin:
    beta1: float = 0.5
    beta2: float = 0.999

    def _check_betas(self):
        check(0 <= self.beta1 < 1, f"beta1 must be in [0, 1), got {self.beta1}")
        check(0 <= self.beta2 < 1, f"beta2 must be in [0, 1), got {self.beta2}")


@dataclass
class _AdamGANConfig(_GANBaseConfig, _AdamMixin):
    """The keys of ``dcgan``, ``gan``, ``cgan``, ``acgan``: Adam(``lr``, ``beta1``, ``beta2``) and a GAN ``loss``.

    latent_dim: z size. width: DCGAN base channels. hidden: MLP widths of D (G uses them reversed, with BatchNorm;
    ``null`` = [512, 256], [1024, 512] above 1,024 inputs).
    n_critic: D updates per G update (D updates on every batch, G on every ``n_critic``-th, after D, on the
    same batch). spectral_norm: on every D weight. r1_gamma / r1_every: R1 penalty, lazy every ``r1_every`` D steps
    (0 = off). Sample-quality monitoring (FID, diversity, collapse
    warnings) is configured in the trainer section (``trainer.fid_samples``, ``trainer.monitor_every``, ...).
    """

    loss: Literal["minimax", "nonsaturating", "lsgan", "hinge"] = "nonsaturating"
    latent_dim: int = 100

    def __post_init__(self):
        super().__post_init__()
        self._check_betas()
        check(self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")


@dataclass
class _LazyR1On:
    """Lazy R1 on by default (``r1_gamma`` 1 every ``r1_every`` = 4 D steps), chosen per model on a 3,000/1,000 cut of
    mnist5k's train split that the README's tables do not use (bench/gan_select.py; docs/models/gan.md, "Training
    defaults"): ``dcgan`` (2026-12-04), ``gan``, ``cgan`` and ``acgan`` (2026-12-06). ``wgan``, ``wgan-gp`` and
    ``progan`` were worse with it and keep it off."""

    r1_gamma: float = 1.0
    r1_every: int = 4
    #: a model saved before R1 was its default trained without it (config.from_saved)
    SAVED_DEFAULTS: ClassVar[dict] = {"r1_gamma": 0.0}


@dataclass
class DCGANConfig(_LazyR1On, _AdamGANConfig):
    """``dcgan``: DCGAN networks (``width`` = base channels), Adam(``lr``, ``beta1``, ``beta2``), a GAN ``loss``, lazy R1
    (:class:`_LazyR1On`)."""


@dataclass
class GANConfig(_LazyR1On, _AdamGANConfig):
    """``gan``: ``arch`` ``mlp`` (default) or ``dcgan`` (images of a DCGAN size); lazy R1 (:class:`_LazyR1On`)."""

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
class CGANConfig(_LazyR1On, _AdamGANConfig):
    """``cgan``: label embedding (``embed_dim``) concatenated to z in G; D conditioning ``d_cond``:
    ``projection`` (Miyato & Koyama 2018: ``head(phi(x)) + <embed(y), phi(x)>``) or ``concat`` (one-hot
    appended to D's input: extra constant channels for conv, extra columns for MLP); lazy R1 (:class:`_LazyR1On`)."""

    arch: Literal["auto", "mlp", "dcgan"] = "auto"
    embed_dim: int = 16
    d_cond: Literal["projection", "concat"] = "projection"

    def __post_init__(self):
        super().__post_init__()
        check(self.embed_dim >= 1, f"embed_dim must be >= 1, got {self.embed_dim}")


@dataclass
class ACGANConfig(_LazyR1On, _AdamGANConfig):
    """``acgan``: label embedding in G; D has an auxiliary classifier head trained with cross-entropy on
    real and fake samples (weight ``cls_weight``), and G is trained to make its samples classified as
    their labels. ``d_cls_fake=False`` trains D's classifier on real samples only (G's loss is unchanged):
    with the paper's loss D and G can agree on class cues that are not the real class shapes
    (measurements in docs/models/gan.md). Lazy R1 (:class:`_LazyR1On`)."""

    arch: Literal["auto", "mlp", "dcgan"] = "auto"
    embed_dim: int = 16
    cls_weight: float = 1.0
    d_cls_fake: bool = True

    def __post_init__(self):
        super().__post_init__()
        check(self.embed_dim >= 1, f"embed_dim must be >= 1, got {self.embed_dim}")
        check(self.cls_weight >= 0, f"cls_weight must be >= 0, got {self.cls_weight}")


# -- models ------------------------------------------------------------------------------------------------
#: ``default_ema`` by registered name, chosen by measurement on a cut of mnist5k's train split
#: (docs/models/gan.md, "TTUR, R2 and EMA for every GAN"): an EMA of 0.999 with StyleGAN2-ADA's ramp-up 0.05 beat the
#: raw weights on both seeds for ``gan`` and ``cgan``; ``dcgan``, the critics and ``acgan`` (split seeds) keep none
MEASURED_EMA: dict[str, tuple[float, float | None]] = {"gan": (0.999, 0.05), "cgan": (0.999, 0.05)}


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
    #: the best checkpoint follows the FID that the Trainer's monitor logs at each validation (where there is
    #: one: a genlab feature net for the image shape, or tabular data); without it no best checkpoint is kept
    default_monitor = ("val/fid", "min")

    @property
    def default_ema(self) -> tuple[float, float | None] | None:
        """The EMA ``trainer.ema_decay='auto'`` keeps: :data:`MEASURED_EMA` for this model's registered name (a
        subclass registered under another name keeps none unless it sets its own)."""
        return MEASURED_EMA.get(self.registry_name)

    @property
    def double_backward(self) -> bool:
        """R1 / R2 (``r1_gamma`` / ``r2_gamma`` > 0) differentiate through D's input gradient; subclasses add their
        own penalties (``wgan-gp``'s gradient penalty, progan's, stylegan's path length)."""
        return self.config.r1_gamma > 0 or self.config.r2_gamma > 0

    def __init__(self, config, data_info: dict, *, networks: dict | None = None):
        super().__init__(config, data_info)
        c = config
        self._pending = _PendingFakes()
        self.latent_dim = c.latent_dim
        self.loss_kind = getattr(c, "loss", type(self).loss_kind)
        self.num_classes = 0
        if self.conditional:
            self.num_classes = self.labelled_classes("an unconditional 'gan'")
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

    def _init_own_networks(self, config, data_info: dict, networks: dict | None, loss_kind: str) -> None:
        """The GAN state of a subclass that builds its own networks (``progan``, ``stylegan``) instead of
        ``GAN.__init__``'s MLP/DCGAN nets; refuses user ``networks`` in one line."""
        GenerativeModel.__init__(self, config, data_info)
        if networks:
            raise ConfigError(f"{self.registry_name} builds its own networks; networks= is not supported (use 'dcgan' "
                              "or 'gan' to plug in your own)")
        self._pending = _PendingFakes()
        self.latent_dim, self.num_classes, self.arch, self.loss_kind = config.latent_dim, 0, self.registry_name, \
            loss_kind
        self.augment_ops = tuple(o.strip() for o in config.diffaugment.split(",") if o.strip())

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
        """The generator as a decoder: ``G(z[, labels])`` in model space. Conditional models need ``labels``
        (drawing them here would make the same ``z`` decode differently on every call)."""
        if self.conditional and labels is None:
            raise ConfigError(f"{self.registry_name}.decode needs labels (N,) in [0, {self.num_classes - 1}] for a "
                              "conditional model; e.g. decode(z, labels=torch.full((len(z),), 3))")
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

    def d_penalties(self, x, fake, y, step: int = -1) -> dict:
        """R1 / R2 (every GAN, ``r1_gamma``/``r2_gamma`` > 0): ``gamma / 2 * E ||grad_x D(x)||^2`` at the real batch
        (``r1``) / at the fakes (``r2``), through DiffAugment like the adversarial term. R2 on every D step; R1 on
        every D step when ``r1_every = 1``, else lazily (StyleGAN2) on training steps ``0, r1_every, 2 r1_every, ...``
        with the term multiplied by ``r1_every`` (and Adam's lr and betas adjusted, :meth:`_adam`)."""
        c, out = self.config, {}
        every = c.r1_every
        r1_due = every == 1 or (step >= 0 and step % every == 0 and torch.is_grad_enabled())
        for key, gamma, pts in (("r1", c.r1_gamma * every if r1_due else 0.0, x), ("r2", c.r2_gamma, fake)):
            if gamma > 0:
                out[key] = gamma / 2 * grad_sq_penalty(lambda v: self.critic(self.augment(v), y), pts)
        return out

    def _d_step(self, batch: dict, keep_for_g: int | None = None, step: int = -1) -> tuple[dict, torch.Tensor]:
        """D's loss on ``batch`` at training step ``step`` (-1: validation, probes). With ``keep_for_g`` (the step
        number) the fakes are generated with their graph and kept for the G update on the same batch; D itself
        always sees them detached."""
        x = batch["x"]
        y = self._batch_labels(batch)
        z = torch.randn(len(x), self.latent_dim, device=x.device)
        if keep_for_g is not None:
            fake_g = self.generate(z, y)  # (B, *shape), graph kept for the G update on this batch
            self._pending.put(keep_for_g, fake_g)
            fake = fake_g.detach()  # no gradients into G on the discriminator step
        else:
            with torch.no_grad():
                fake = self.generate(z, y)
        real_s, real_cls = self.discriminate(self.augment(x), y)
        fake_s, fake_cls = self.discriminate(self.augment(fake), y)
        loss = d_loss(self.loss_kind, real_s, fake_s)
        extra = {"d_adv": loss.detach()}
        for k, v in {**self.d_extra(x, fake, y, real_cls, fake_cls), **self.d_penalties(x, fake, y, step)}.items():
            loss = loss + v
            extra[k] = v.detach()
        out = {"loss": loss, "d_loss": loss.detach(), **extra,
               "d_real": self._prob(real_s), "d_fake": self._prob(fake_s)}
        if self.loss_kind == "wasserstein":
            out["wasserstein"] = (real_s.mean() - fake_s.mean()).detach()
        if real_cls is not None:
            out["d_acc"] = (real_cls.argmax(1) == y).float().mean()
        return out, fake_s.detach()

    def _g_step(self, batch: dict, step: int) -> dict:
        x = batch["x"]
        y = self._batch_labels(batch)
        fake = self._pending.take(step)  # the D step's fakes on this batch (the textbook loop), if it kept them
        if fake is None:
            fake = self.generate(torch.randn(len(x), self.latent_dim, device=x.device), y)
        fake_s, fake_cls = self.discriminate(self.augment(fake), y)
        loss = g_loss(self.loss_kind, fake_s)
        out = {"g_adv": loss.detach()}
        for k, v in self.g_extra(fake_cls, y).items():
            loss = loss + v
            out[k] = v.detach()
        return {"loss": loss, "g_loss": loss.detach(), **out, "d_fake_after": self._prob(fake_s)}

    def training_step(self, batch: dict, step: int, optimizer: str = "d") -> dict:
        """Loss of the discriminator (``optimizer="d"``, the default) or generator (``"g"``) on ``batch``.

        ``step`` is the Trainer's batch count: on a batch where G updates too (``(step + 1) % n_critic == 0``)
        the D step keeps its fakes and the G step reuses them. ``step < 0`` (probes, validation) keeps nothing:
        a G step then draws its own ``z``.
        """
        if optimizer == "d":
            keep = step if step >= 0 and torch.is_grad_enabled() and (step + 1) % self.config.n_critic == 0 \
                else None
            return self._d_step(batch, keep, step)[0]
        if optimizer == "g":
            return self._g_step(batch, step)
        raise ConfigError(f"{self.registry_name}: optimizer must be 'd' or 'g', got {optimizer!r}")

    @torch.no_grad()
    def validation_step(self, batch: dict) -> dict:
        """``loss`` = the discriminator loss with its extra terms, its parts, ``d_real``, ``d_fake``, and
        ``g_adv``, the generator's adversarial loss on the same fakes."""
        out, fake_s = self._d_step(batch)
        return {**{k: v.detach() for k, v in out.items()}, "g_adv": g_loss(self.loss_kind, fake_s)}

    def _adam(self, params, lr, lazy_every: int = 1):
        """Adam(``lr``, (``beta1``, ``beta2``)); for a player regularised lazily every ``k > 1`` steps, StyleGAN2's
        adjustment ``lr * r``, ``beta ** r`` with ``r = k / (k + 1)``."""
        c = self.config
        r = lazy_every / (lazy_every + 1) if lazy_every > 1 else 1.0
        return torch.optim.Adam(params, lr=lr * r, betas=(c.beta1 ** r, c.beta2 ** r))

    def _lazy_every(self) -> dict[str, int]:
        """Per player, the interval of its lazily applied regulariser, for :meth:`_adam` (1: none, or every step):
        D's R1 every ``r1_every`` D steps when on; subclasses add their own (stylegan's path length on G)."""
        c = self.config
        return {"d": c.r1_every if c.r1_gamma > 0 else 1, "g": 1}

    def configure_optimizers(self) -> dict[str, OptimizerSpec]:
        c, lazy = self.config, self._lazy_every()
        return {"d": OptimizerSpec(self._adam(self.discriminator_parameters(), c.lr_d, lazy["d"])),
                "g": OptimizerSpec(self._adam(self.generator_parameters(), c.lr_g, lazy["g"]), every=c.n_critic)}


register_model("gan", GANConfig, "GAN (MLP or DCGAN nets; minimax, non-saturating, LSGAN or hinge loss)")(GAN)


@register_model("dcgan", DCGANConfig, "DCGAN (Radford et al.): strided conv G/D, batch norm, Adam(2e-4, 0.5)")
class DCGAN(GAN):
    """DCGAN on images up to 64x64 (nets of side 8, 16, 28, 32 or 64: other sizes are cropped from the generator's
    output and padded back for the discriminator)."""

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
        return {"d": OptimizerSpec(opt_d),
                "g": OptimizerSpec(torch.optim.RMSprop(self.generator_parameters(), lr=c.lr_g), every=c.n_critic)}


@register_model("wgan-gp", WGANGPConfig, "WGAN-GP: critic with gradient penalty (lambda=10), Adam(1e-4, (0, 0.9))")
class WGANGP(GAN):
    """WGAN-GP (Gulrajani et al. 2017): no BatchNorm in the critic; ``gp`` = :func:`gradient_penalty`."""

    loss_kind = "wasserstein"
    default_arch = "auto"
    d_batch_norm = False
    double_backward = True  # the gradient penalty

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
