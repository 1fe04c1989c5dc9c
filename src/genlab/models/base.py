"""The model contract every registered model follows.

A model is a plain ``nn.Module`` built from ``(config, data_info)``:

* ``training_step(batch, step, optimizer="main") -> dict``: the losses for one optimisation step of
  the named optimizer. The dict holds ``"loss"`` (the scalar the Trainer back-propagates) and any
  other scalars to log. ``batch`` is ``{"x": (B, ...), "y": (B,)}`` already on the device.
* ``configure_optimizers() -> dict[str, OptimizerSpec]``: named optimizers, in update order, each
  with the batches it steps on (``every``). One Trainer step is one batch: on it every optimizer that is
  due steps, in this order. A VAE returns ``{"main": OptimizerSpec(adam)}``; a GAN returns
  ``{"d": OptimizerSpec(opt_d), "g": OptimizerSpec(opt_g, every=n_critic)}``: D updates on every batch
  and G after every ``n_critic``-th D update, on the same batch (``n_critic=1``: the textbook loop).
* ``validation_step(batch) -> dict`` of per-batch mean scalars (no gradients).
* inference: ``encode``, ``decode``, ``reconstruct``, ``sample(n, labels=None, generator=None)``,
  ``log_likelihood`` where it exists. Inputs/outputs are in model space (see ``data_info["norm"]``).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, DataError


@dataclass
class OptimizerSpec:
    """An optimizer, an optional LR scheduler stepped once per update of that optimizer, and ``every``: the
    optimizer steps on every ``every``-th batch (batches ``every - 1, 2 * every - 1, ...`` counted from 0 over
    the whole run), after the optimizers listed before it that are due on the same batch."""

    optimizer: torch.optim.Optimizer
    scheduler: Any = None
    every: int = 1

    def __post_init__(self):
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ConfigError(f"OptimizerSpec.every (steps on every N-th batch) must be an int >= 1, "
                              f"got {self.every!r}")

    def due(self, step: int) -> bool:
        """Whether this optimizer steps on batch ``step`` (0-based count of batches)."""
        return (step + 1) % self.every == 0


#: The capabilities a model class declares (class attributes of :class:`GenerativeModel`), with what each means.
#: Code outside ``models/`` asks :func:`require` / :func:`capabilities`, never ``hasattr``.
CAPABILITIES: dict[str, str] = {
    "conditional": "takes class labels: sample(n, labels=...), and encode/decode/reconstruct take labels",
    "has_encoder": "encode(x[, labels]) -> (B, latent_dim) codes",
    "has_decoder": "decode(z[, labels]) maps (B, latent_dim) latents to data (autoencoders, VAEs, GANs)",
    "can_sample": "sample(n) draws new data from a prior",
    "can_reconstruct": "reconstruct(x[, labels]) -> x_hat",
    "has_likelihood": "log_likelihood(x) / elbo(x) in nats (and, with an encoder, posterior(x) -> (mu, logvar))",
    "supports_missing": "trains on and reconstructs data with NaN entries (mask-aware)",
    "translates": "translate(src[, mask]) maps a source image to its target (image-to-image models)",
}


class GenerativeModel(nn.Module):
    """Base class: stores config and data description, checks data shape, offers shared helpers.

    Capabilities are declared as class attributes (see :data:`CAPABILITIES`); a subclass sets the ones that
    differ from these defaults. ``input_kinds`` lists the data kinds the model accepts.
    """

    registry_name: str = "?"
    config_cls: type = object
    #: takes class labels (``cvae``, ``cgan``, ``acgan``)
    conditional: bool = False
    #: ``encode(x[, labels])`` returns a ``(B, latent_dim)`` tensor
    has_encoder: bool = False
    #: ``decode(z[, labels])`` maps latents to data
    has_decoder: bool = False
    #: whether ``sample`` draws new data (plain autoencoders have no prior and cannot)
    can_sample: bool = True
    #: whether ``reconstruct`` exists (GANs have no encoder and set False)
    can_reconstruct: bool = True
    #: ``log_likelihood``/``elbo``/``posterior`` exist (the VAE family)
    has_likelihood: bool = False
    #: whether ``training_step`` takes batches with missing entries (NaN): they enter the encoder as 0 and are
    #: left out of the loss (mask-aware training; the ``ae`` and ``vae`` families)
    supports_missing: bool = False
    #: ``translate(src[, mask])`` maps a source image to its target (paired image-to-image models)
    translates: bool = False
    #: whether training keeps the inputs' pairwise distances in the codes (``distance-ae``); 2-D maps of such codes
    #: use them as they are (``LatentExplorer.latent_map(standardize="auto")``)
    distance_preserving: bool = False
    #: data kinds the model accepts
    input_kinds: tuple[str, ...] = ("image", "tabular")
    #: whether ``training_step`` differentiates through a gradient (``autograd.grad(create_graph=True)``: gradient
    #: penalties, contractive penalties); ``trainer.compile`` leaves such models eager (torch.compile's
    #: aot_autograd has no double backward); a property where it depends on the config (the GANs: R1 / R2)
    double_backward: bool = False
    #: ``(decay, rampup)`` of the weights' EMA used when ``trainer.ema_decay`` is ``"auto"`` (the default);
    #: ``None``: no EMA (``rampup`` ``None``: none; see :class:`~genlab.training.ema.EMA`)
    default_ema: tuple[float, float | None] | None = None
    #: ``(trainer monitor, mode)`` used when ``trainer.monitor`` is null; ``None``: keep no best checkpoint
    default_monitor: tuple[str, str] | None = ("val/loss", "min")
    #: networks a user may supply (``networks={name: module}``), name -> :class:`~genlab.models.networks.NetworkSlot`
    network_slots: dict = {}
    #: names of the user-supplied networks this instance was built with (set by ``attach_networks``)
    user_networks: tuple[str, ...] = ()

    def __init__(self, config: Any, data_info: dict):
        super().__init__()
        self.config = config
        self.data_info = dict(data_info)
        kind = data_info.get("kind")
        shape = tuple(data_info.get("shape", ()))
        if kind not in self.input_kinds:
            raise DataError(f"model {self.registry_name!r} does not take {kind} data; it takes "
                            f"{' or '.join(self.input_kinds)} data")
        if kind == "image" and (len(shape) != 3 or min(shape) < 1 or min(shape[1:]) < 4):
            raise DataError(f"model {self.registry_name!r} needs images of shape (C, H, W) with H, W >= 4, "
                            f"got {shape}; resize the images")
        if kind == "sequence" and (len(shape) != 2 or min(shape) < 1):
            raise DataError(f"model {self.registry_name!r} needs sequences of shape (C, T), got {shape}")
        if kind == "tabular" and (len(shape) != 1 or shape[0] < 1):
            raise DataError(f"model {self.registry_name!r} needs tabular rows of shape (D,), got {shape}")
        self.shape = shape
        self.kind = kind

    # -- helpers ------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dim(self) -> int:
        """Number of scalars per sample."""
        n = 1
        for s in self.shape:
            n *= s
        return n

    def labelled_classes(self, unconditional: str) -> int:
        """The class count of the training data (``data_info["num_classes"]``) that a conditional model needs; a
        one-line ConfigError when the data has no labels, naming the model to train instead (``unconditional``,
        e.g. ``"a 'vae'"``)."""
        k = self.data_info.get("num_classes")
        if not k:
            raise ConfigError(f"{self.registry_name} needs labelled data (num_classes >= 1 in the data), got "
                              f"num_classes={k}; give labels or train {unconditional}")
        return int(k)

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Validate a batch against the fitted data shape; returns it on the model's device/dtype."""
        if tuple(x.shape[1:]) != self.shape:
            raise DataError(f"input has sample shape {tuple(x.shape[1:])} but the model was built for "
                            f"{self.shape}; give data of the training shape")
        return x.to(self.device, torch.float32)

    def check_importance_samples(self, k, *, exact: bool = False) -> int | None:
        """``log_likelihood``'s ``k`` checked: an integer >= 1, or ``None`` for a model whose likelihood is
        ``exact`` (which ignores ``k``). A tensor there is a label batch given by position (``log_likelihood(x,
        y)``): refused, since it would be taken for ``k`` and the labels dropped."""
        if k is None and exact:
            return None
        if isinstance(k, torch.Tensor):
            raise ConfigError(f"{self.registry_name}.log_likelihood: k (importance samples) got a tensor; pass the "
                              "labels by keyword: log_likelihood(x, labels=y)")
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ConfigError(f"{self.registry_name}.log_likelihood: k (importance samples) must be an integer >= 1"
                              f"{' or None (the likelihood is exact; k is not used)' if exact else ''}, got {k!r}")
        return int(k)

    def training_step(self, batch: dict, step: int, optimizer: str = "main") -> dict:  # pragma: no cover
        raise NotImplementedError

    def configure_optimizers(self) -> dict[str, OptimizerSpec]:  # pragma: no cover
        raise NotImplementedError

    def build_networks(self) -> dict[str, nn.Module]:
        """Hook: networks to use instead of the ones the model builds, ``{slot: module}`` (slots and their output
        conventions: :attr:`network_slots`). Override in a registered subclass to run your own networks; they are
        built from ``self.config``/``self.data_info`` so saved models reload. Default: none (keep genlab's)."""
        return {}

    @torch.no_grad()
    def validation_step(self, batch: dict) -> dict:
        out = self.training_step(batch, step=-1)
        return {k: v for k, v in out.items()}

    @torch.no_grad()
    def validation_epoch_metrics(self, data) -> dict:
        """Figures over the whole validation set (called once per validation, after the batches, in eval
        mode, under the EMA weights when EMA is on); logged as ``val/<key>``. Default: none."""
        return {}

    def sample(self, n: int, *, labels: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        raise DataError(f"model {self.registry_name!r} has no prior and cannot sample; train a 'vae' to sample")


def capabilities(model_or_cls) -> dict:
    """The declared capabilities of a model (instance or class): ``{name: bool, ..., "input_kinds": (...)}``."""
    cls = model_or_cls if isinstance(model_or_cls, type) else type(model_or_cls)
    if not (isinstance(cls, type) and issubclass(cls, GenerativeModel)):
        raise ConfigError(f"{cls.__name__} is not a genlab model (subclass genlab.models.GenerativeModel and "
                          "declare its capabilities)")
    out = {k: bool(getattr(cls, k)) for k in CAPABILITIES}
    out["input_kinds"] = tuple(cls.input_kinds)
    return out


def models_with(*caps: str, forbid: tuple[str, ...] = ()) -> list[str]:
    """Registered model names that have every capability in ``caps`` and none in ``forbid``."""
    from ..registry import _MODELS, _ensure_loaded
    _ensure_loaded()
    return sorted(n for n, e in _MODELS.items()
                  if all(getattr(e.cls, c, False) for c in caps) and not any(getattr(e.cls, c, False) for c in forbid))


def require(model_or_cls, *caps: str, forbid: tuple[str, ...] = (), kind: str | None = None,
            purpose: str = "this") -> None:
    """Refuse, with one line naming the missing capability and the registered models that have it, a model
    (instance, class or registered name) that lacks a capability in ``caps``, has one in ``forbid``, or does not
    take data of ``kind``. ``purpose`` names what needs it (``"genlab compress"``, ``"Imputer"``)."""
    if isinstance(model_or_cls, str):
        from ..registry import get_model_entry
        model_or_cls = get_model_entry(model_or_cls).cls
    have = capabilities(model_or_cls)
    name = getattr(model_or_cls, "registry_name", "?")
    for c in (*caps, *forbid):
        if c not in CAPABILITIES:
            raise ValueError(f"unknown capability {c!r}; known: {', '.join(CAPABILITIES)}")
    for c in caps:
        if not have[c]:
            ok = models_with(*caps, forbid=forbid)
            raise ConfigError(f"model {name!r} lacks the capability {c!r} ({CAPABILITIES[c]}) that {purpose} needs; "
                              f"use one of: {', '.join(ok) if ok else 'none registered'}")
    for c in forbid:
        if have[c]:
            ok = models_with(*caps, forbid=forbid)
            raise ConfigError(f"{purpose} does not support {c} models such as {name!r}; use one of: "
                              f"{', '.join(ok) if ok else 'none registered'}")
    if kind is not None and kind not in have["input_kinds"]:
        raise ConfigError(f"model {name!r} does not take {kind} data (it takes {' or '.join(have['input_kinds'])});"
                          f" use another model for {purpose}")
