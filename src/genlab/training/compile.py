"""``trainer.compile``: ``torch.compile`` of a model's trained networks, with a graceful fallback.

Each direct child module of the model that holds trainable parameters (the encoder and decoder of a VAE, the
generator and discriminator of a GAN, ...) is compiled in place (``nn.Module.compile``): its ``state_dict`` keys
do not change, so checkpoints, EMA and saved models are the same as without compilation. A graph that fails to
compile runs eagerly (``torch._dynamo.config.suppress_errors``) and a compiler that cannot start at all is one
warning line; training goes on without it. The modules are returned to eager mode when training ends.

Models that declare ``double_backward`` (gradient and contractive penalties) stay eager: torch.compile's
aot_autograd cannot differentiate through a gradient (seen on ``wgan-gp``: "does not currently support double
backward"), one warning line says so.

Settings: ``false`` (default), ``true``, ``auto``. ``auto`` is off: measured by ``bench/gpu.py`` on one H200
(batch 512, bf16), compiled training was slower than eager for every built-in model it could compile (vae 79,374
vs 86,036 images/s, dcgan 52,398 vs 63,733), and on the CPU the compile time (tens of seconds) is not repaid at the
sizes genlab trains. ``auto`` stays a separate value so that a later measurement can turn it on where it wins.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)


def wants_compile(setting, device: torch.device, *, deterministic: bool = False) -> bool:
    """Whether ``trainer.compile=setting`` compiles on ``device`` (never with ``trainer.deterministic``)."""
    if deterministic or setting is False or setting is None:
        return False
    return setting is True  # "auto": off everywhere for now (see the module docstring for the measurements)


def compile_model(model: nn.Module, setting, device: torch.device, *, deterministic: bool = False) -> list[nn.Module]:
    """Compile ``model``'s trainable child modules in place; returns the compiled ones (``[]`` when off or when
    ``torch.compile`` is not available here, with one warning line)."""
    if not wants_compile(setting, device, deterministic=deterministic):
        return []
    if model.double_backward:
        log.warning("trainer.compile=%s: %s differentiates through a gradient (double backward), which "
                    "torch.compile cannot train; training without it", setting, type(model).__name__)
        return []
    done = []
    try:
        import torch._dynamo
        torch._dynamo.config.suppress_errors = True  # a graph that fails to compile falls back to eager
        for _, child in model.named_children():
            if any(p.requires_grad for p in child.parameters()):
                child.compile()
                done.append(child)
    except Exception as e:  # noqa: BLE001 - any failure to set up the compiler means: train eagerly
        log.warning("trainer.compile=%s: torch.compile is not available here (%s: %s); training without it",
                    setting, type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        uncompile(done)
        return []
    log.info("trainer.compile: compiled %d modules of %s", len(done), type(model).__name__)
    return done


def uncompile(modules: list[nn.Module]) -> None:
    """Return modules compiled by :func:`compile_model` to eager mode."""
    for m in modules:
        m._compiled_call_impl = None
