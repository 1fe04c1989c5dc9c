"""User-supplied networks: the slots a model family offers and the one function that fills them.

A model built with ``networks={"encoder": enc, "decoder": dec}`` (``genlab.train(..., networks=...)``,
``Model(config, data_info, networks=...)``) uses those modules instead of the ones it builds. Each family
declares its slots (``network_slots``: name -> :class:`NetworkSlot`) with the convention the module must follow;
:func:`attach_networks` checks every supplied module with a dry run on a 2-sample batch of zeros (eval mode, no
gradients) and refuses, in one line, a module of the wrong type, a wrong output shape or one that fails.

Two routes, and how each saves:

* ``networks=`` modules given at run time: genlab saves their weights but cannot rebuild the modules from JSON;
  ``config.json`` lists them under ``"user_networks"`` and ``genlab.load(path, networks={...})`` (fresh instances
  built as for training) reloads the model. The CLI refuses such a folder with that fix.
* subclass a model and override :meth:`build_networks` (return ``{slot: module}`` built from ``self.config`` and
  ``self.data_info``), then register the subclass: the class rebuilds its own networks, so the saved model and
  its run folder reload anywhere the class can be imported (see docs/models/adding.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class NetworkSlot:
    """A network a model family lets users supply.

    Parameters
    ----------
    attr : str
        Model attribute that holds the module.
    convention : str
        What the module must compute (shown in errors and docs).
    inputs : callable
        ``(model, batch) -> tuple of tensors``: the dry-run inputs (zeros of the right shapes).
    outputs : callable
        ``(model, batch) -> list of shapes``: the accepted output shapes.
    conditional : bool
        Whether conditional models of the family take this slot (a conditional GAN conditions its
        discriminator inside the model).
    replaces : dict
        Other attributes set alongside: attribute -> factory of a parameter-free module.
    """

    attr: str
    convention: str
    inputs: Callable
    outputs: Callable
    conditional: bool = True
    replaces: dict = field(default_factory=dict)


class ScoreColumn(nn.Module):
    """``(B,)``, ``(B, 1)`` or ``(B, 1, 1, 1)`` scores -> ``(B, 1)``: the GAN head when the discriminator is a user
    module that already returns one score per sample."""

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return s.reshape(len(s), 1)


def _x(model, b: int) -> torch.Tensor:
    return torch.zeros(b, *model.shape)  # (B, *shape)


def _z(model, b: int) -> torch.Tensor:
    return torch.zeros(b, model.latent_dim)  # (B, L)


def _onehot(model, b: int) -> torch.Tensor:
    return torch.zeros(b, model.num_classes)  # (B, K)


#: ``ae`` and its family: deterministic codes
AE_SLOTS = {
    "encoder": NetworkSlot("encoder", "(B, *shape) -> (B, latent_dim) codes",
                           lambda m, b: (_x(m, b),), lambda m, b: [(b, m.latent_dim)]),
    "decoder": NetworkSlot("decoder", "(B, latent_dim) -> (B, *shape): logits for images (a sigmoid follows), "
                           "values for tabular data", lambda m, b: (_z(m, b),), lambda m, b: [(b, *m.shape)]),
}

#: ``vae``: the encoder returns the posterior parameters concatenated, ``[mu, logvar]``
VAE_SLOTS = {
    "encoder": NetworkSlot("encoder", "(B, *shape) -> (B, 2*latent_dim) = [mu, logvar] concatenated along dim 1 "
                           "(wrap a module returning a (mu, logvar) tuple in genlab.nn.ConcatOutputs)",
                           lambda m, b: (_x(m, b),), lambda m, b: [(b, 2 * m.latent_dim)]),
    "decoder": NetworkSlot("decoder", "(B, latent_dim) -> (B, *shape): logits for a bernoulli likelihood, means for "
                           "a gaussian one (images: before the sigmoid)", lambda m, b: (_z(m, b),),
                           lambda m, b: [(b, *m.shape)]),
}

#: ``cvae``: as the VAE's, with the one-hot labels as a second input
CVAE_SLOTS = {
    "encoder": NetworkSlot("encoder", "(x (B, *shape), onehot (B, K)) -> (B, 2*latent_dim) = [mu, logvar]",
                           lambda m, b: (_x(m, b), _onehot(m, b)), lambda m, b: [(b, 2 * m.latent_dim)]),
    "decoder": NetworkSlot("decoder", "(z (B, latent_dim), onehot (B, K)) -> (B, *shape): logits (bernoulli) or "
                           "means (gaussian)", lambda m, b: (_z(m, b), _onehot(m, b)), lambda m, b: [(b, *m.shape)]),
}


def _g_in(model) -> int:
    return model.latent_dim + (model.config.embed_dim if model.conditional else 0)


#: the GAN family: G in model space, D one score per sample (unconditional GANs only)
GAN_SLOTS = {
    "generator": NetworkSlot("generator", "(B, latent_dim) -> (B, *shape) in model space (images in [0, 1]); "
                             "conditional GANs: (B, latent_dim + embed_dim), z then the label embedding",
                             lambda m, b: (torch.zeros(b, _g_in(m)),), lambda m, b: [(b, *m.shape)]),
    "discriminator": NetworkSlot("features", "(B, *shape) model-space samples -> one score per sample, (B,) or "
                                 "(B, 1): a logit, or a critic value for wgan/wgan-gp",
                                 lambda m, b: (_x(m, b),), lambda m, b: [(b,), (b, 1)], conditional=False,
                                 replaces={"head": ScoreColumn}),
}


def _shape(t) -> str:
    return str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__


def _dry_run(model, key: str, slot: NetworkSlot, module: nn.Module) -> None:
    name = model.registry_name
    ref = next(iter(module.parameters()), None)
    ref = ref if ref is not None else next(iter(module.buffers()), None)
    dev = ref.device if ref is not None else torch.device("cpu")
    inputs = tuple(t.to(dev) for t in slot.inputs(model, 2))
    was = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(*inputs)
    except Exception as e:  # noqa: BLE001 - whatever the user's module raises becomes the one-line error
        msg = str(e).splitlines()[0] if str(e) else ""
        raise ConfigError(f"{name}: networks[{key!r}] failed on input {', '.join(_shape(t) for t in inputs)} "
                          f"({type(e).__name__}: {msg[:160]}); it must map {slot.convention}") from None
    finally:
        module.train(was)
    if not isinstance(out, torch.Tensor):
        raise ConfigError(f"{name}: networks[{key!r}] returned a {type(out).__name__}, not a tensor; it must map "
                          f"{slot.convention}")
    ok = slot.outputs(model, 2)
    if tuple(out.shape) not in [tuple(s) for s in ok]:
        raise ConfigError(f"{name}: networks[{key!r}] returned shape {tuple(out.shape)} for a batch of 2, expected "
                          f"{' or '.join(str(tuple(s)) for s in ok)}; it must map {slot.convention}")
    if not out.is_floating_point():
        raise ConfigError(f"{name}: networks[{key!r}] returned {out.dtype} values; it must return floats")


def _checked(model, networks, what: str) -> dict[str, nn.Module]:
    name = model.registry_name
    slots = type(model).network_slots
    if not isinstance(networks, dict):
        raise ConfigError(f"{name}: {what} must be a dict of slot name -> torch.nn.Module, got "
                          f"{type(networks).__name__}")
    if networks and not slots:
        raise ConfigError(f"model {name!r} takes no user-supplied networks; the ae, vae and gan families do "
                          "(docs/models/adding.md)")
    for key, module in networks.items():
        slot = slots.get(key)
        if slot is None:
            raise ConfigError(f"{name}: unknown network {key!r} in {what}; it takes {', '.join(slots)}")
        if model.conditional and not slot.conditional:
            ok = [k for k, s in slots.items() if s.conditional]
            raise ConfigError(f"{name} conditions its {key} on the labels inside the model, so it cannot be "
                              f"replaced; supply {', '.join(ok) or 'none'}, or use an unconditional model")
        if not isinstance(module, nn.Module):
            raise ConfigError(f"{name}: networks[{key!r}] must be a torch.nn.Module, got {type(module).__name__}")
    return dict(networks)


def attach_networks(model, networks: dict | None = None) -> None:
    """Put the networks of ``model.build_networks()`` (the subclass hook) and then ``networks`` (given at run time)
    in their slots, replacing the ones the model built; check each with a dry run (see the module docstring).
    ``model.user_networks`` becomes the sorted names of ``networks`` (what ``config.json`` lists: genlab cannot
    rebuild them). Called by each family's constructor once its own networks exist."""
    own = _checked(model, model.build_networks(), "build_networks()")
    given = _checked(model, {} if networks is None else networks, "networks")
    merged = {**own, **given}
    for key, module in merged.items():
        slot = type(model).network_slots[key]
        setattr(model, slot.attr, module)
        for attr, factory in slot.replaces.items():
            setattr(model, attr, factory())
    for key, module in merged.items():
        _dry_run(model, key, type(model).network_slots[key], module)
    model.user_networks = tuple(sorted(given))


def networks_kwargs(cls: type, networks: dict | None) -> dict:
    """Constructor keyword arguments passing ``networks`` to model class ``cls``: ``{}`` when none are given, a
    one-line ConfigError when ``cls`` offers no network slots (it would not know what to do with them)."""
    if networks is None:
        return {}
    if not cls.network_slots:
        raise ConfigError(f"model {cls.registry_name!r} takes no user-supplied networks; the ae, vae and gan "
                          "families do (docs/models/adding.md)")
    return {"networks": networks}
