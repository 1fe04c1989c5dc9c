"""GAN losses as plain functions, picked by name from two tables (StudioGAN's ``utils/losses.py`` shape).

Scores: ``r = D(x_real)`` ``(B,)``, ``f = D(G(z))`` ``(B',)`` (logits, or unbounded critic values); every
loss is a batch mean.

============== ========================================== ================================
loss           discriminator (:data:`D_LOSSES`)            generator (:data:`G_LOSSES`)
============== ========================================== ================================
minimax        ``softplus(-r) + softplus(f)`` (BCE)        ``log(1 - sigmoid(f)) = -softplus(f)``
nonsaturating  same                                       ``softplus(-f) = -log sigmoid(f)``
lsgan          ``((r - 1)^2 + f^2) / 2``                   ``(f - 1)^2 / 2``
hinge          ``relu(1 - r) + relu(1 + f)``               ``-f``
wasserstein    ``f - r`` (+ ``lambda * GP`` for wgan-gp)   ``-f``
============== ========================================== ================================
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..errors import ConfigError

#: the losses a ``gan``/``dcgan``/``cgan``/``acgan`` config may name (critics use ``wasserstein``)
LOSSES = ("minimax", "nonsaturating", "lsgan", "hinge")


def _bce_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real).mean() + F.softplus(fake).mean()


#: discriminator losses ``(real scores, fake scores) -> scalar``
D_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "minimax": _bce_d,
    "nonsaturating": _bce_d,
    "lsgan": lambda real, fake: 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake ** 2).mean(),
    "hinge": lambda real, fake: F.relu(1 - real).mean() + F.relu(1 + fake).mean(),
    "wasserstein": lambda real, fake: fake.mean() - real.mean(),
}

#: generator losses ``(fake scores) -> scalar``
G_LOSSES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "minimax": lambda fake: -F.softplus(fake).mean(),  # log(1 - sigmoid(f)), the saturating loss of Goodfellow et al.
    "nonsaturating": lambda fake: F.softplus(-fake).mean(),
    "lsgan": lambda fake: 0.5 * ((fake - 1) ** 2).mean(),
    "hinge": lambda fake: -fake.mean(),
    "wasserstein": lambda fake: -fake.mean(),
}


def _pick(table: dict, kind: str):
    try:
        return table[kind]
    except KeyError:
        raise ConfigError(f"loss must be one of {', '.join(LOSSES)} or wasserstein, got {kind!r}") from None


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss ``kind`` of scores ``real`` ``(B,)`` and ``fake`` ``(B',)`` (see the module table)."""
    return _pick(D_LOSSES, kind)(real, fake)


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """Generator loss ``kind`` of the discriminator scores ``fake`` ``(B,)`` of generated samples."""
    return _pick(G_LOSSES, kind)(fake)


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


def grad_sq_penalty(critic, x: torch.Tensor) -> torch.Tensor:
    """``mean_i ||grad_x critic(x_i)||_2^2``: the R1 penalty at real samples, the R2 penalty at generated ones
    (Mescheder et al. 2018; StyleGAN2 weighs R1 by ``gamma / 2``). ``critic`` maps ``(B, *shape) -> (B,)``; the
    graph is kept so the penalty trains the critic; works under ``torch.no_grad()`` too."""
    with torch.enable_grad():
        xh = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(xh).sum(), xh, create_graph=True)
        return grad.flatten(1).pow(2).sum(1).mean()
