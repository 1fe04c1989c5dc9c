"""Perceptual path length (Karras et al. 2019, StyleGAN) with a pluggable feature network."""
from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, DataError
from ..models.base import capabilities, require
from ._common import check_finite, check_positive_int

logger = logging.getLogger(__name__)


def _lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return a + (b - a) * t


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    # StyleGAN's slerp: on the unit sphere; the result has unit norm whatever |a|, |b|.
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    d = (a * b).sum(dim=-1, keepdim=True)
    p = t * torch.acos(d.clamp(-1.0, 1.0))
    c = b - d * a
    c = c / c.norm(dim=-1, keepdim=True)
    out = a * torch.cos(p) + c * torch.sin(p)
    return out / out.norm(dim=-1, keepdim=True)


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for p in model.parameters():
        return p.device, p.dtype
    return torch.device("cpu"), torch.float32


def perceptual_path_length(model: nn.Module, feature_fn: Callable[[torch.Tensor], torch.Tensor], *,
                           n: int = 10_000, epsilon: float = 1e-4, space: str = "z",
                           interpolation: str = "lerp", seed: int = 0, batch_size: int = 64,
                           labels: Any = None, return_distances: bool = False, sampling: str = "full",
                           crop: bool = False) -> float | tuple[float, np.ndarray]:
    """Perceptual path length: mean of ``||f(G(z(t))) - f(G(z(t+eps)))||^2 / eps^2``.

    Conventions that change the number:

    * sampling: one ``torch.Generator`` on the CPU seeded with ``seed`` draws, in this order,
      ``z0 ~ N(0, I)`` (n, latent_dim), ``z1 ~ N(0, I)`` (n, latent_dim) and ``t ~ U(0, 1)`` (n,)
      in float64; the points are ``interp(z0, z1, t)`` and ``interp(z0, z1, t + epsilon)``, cast to the
      model's parameter dtype (float32 models add rounding of order ``1e-7/eps``). ``sampling="end"``
      (StyleGAN's other choice) sets ``t = 0`` after the same draws: paths start at the end points ``z0``;
    * ``space="z"``: ``interpolation="lerp"`` (linear) or ``"slerp"`` (StyleGAN's spherical interpolation of
      the *normalised* latents, whose result has unit norm — StyleGAN's choice for Z);
      ``space="w"`` (models that declare ``has_w_space``, e.g. ``stylegan``): ``w0 = model.mapping(z0)``,
      ``w1 = model.mapping(z1)`` (no truncation, in the model's dtype), interpolated in float64 with ``lerp``
      (StyleGAN's choice for W), images from ``model.decode_w(w)`` (the same fixed noise for both ends);
      conditional models with a W space (``cstylegan``) map both ends with the same ``labels``;
    * images: ``model.decode(z)`` or ``model.decode(z, labels)`` when ``labels`` (n,) is given,
      in model space; no resizing (do that inside ``feature_fn`` if wanted); ``crop=True`` keeps StyleGAN's
      face window, rows ``[3c, 7c)`` and columns ``[2c, 6c)`` with ``c = H // 8``, before ``feature_fn``
      (StyleGAN crops FFHQ/CelebA-HQ faces this way; genlab's own numbers use no crop);
    * distance: ``feature_fn`` maps a batch of images to features (B, ...); the squared Euclidean
      distance of the flattened features divided by ``epsilon**2``. StyleGAN uses LPIPS (VGG16)
      here, which we cannot ship, so the feature network is a parameter and numbers are only
      comparable between runs that use the same ``feature_fn``;
    * reduction: values below ``np.percentile(d, 1, method="lower")`` or above
      ``np.percentile(d, 99, method="higher")`` are dropped (bounds kept), then the mean (StyleGAN /
      torch-fidelity). With n < 101 the bounds are the min and max, so nothing is dropped.

    Parameters
    ----------
    model : GenerativeModel
        A model that declares ``has_decoder`` (``decode(z, labels=None)`` of ``(B, latent_dim)`` codes; checked
        with :func:`genlab.models.require`): autoencoders, VAEs, GANs.
    feature_fn : callable
        ``images (B, C, H, W) -> features (B, ...)``.
    return_distances : bool
        Also return all n distances (before filtering).
    sampling : {"full", "end"}
        Where paths start: ``t ~ U(0, 1)`` (``"full"``) or ``t = 0`` (``"end"``); see the conventions above.
    crop : bool
        Keep StyleGAN's face window of the images before ``feature_fn`` (see the conventions above).

    Returns
    -------
    float, or (float, ndarray) with ``return_distances``.
    """
    n = check_positive_int(n, "n")
    batch_size = check_positive_int(batch_size, "batch_size")
    w_space = _check_space(model, space, interpolation)
    if interpolation not in ("lerp", "slerp"):
        raise ConfigError(f"interpolation must be 'lerp' or 'slerp', got {interpolation!r}")
    if sampling not in ("full", "end"):
        raise ConfigError(f"sampling must be 'full' (t ~ U(0, 1)) or 'end' (t = 0), got {sampling!r}")
    if not (isinstance(epsilon, (int, float)) and 0 < epsilon < 1):
        raise ConfigError(f"epsilon must be a small positive number (e.g. 1e-4), got {epsilon!r}")
    require(model, "has_decoder", purpose="perceptual_path_length")
    latent_dim = int(model.latent_dim)
    if labels is None and capabilities(model)["conditional"]:
        raise ConfigError(f"perceptual_path_length of a conditional model ({model.registry_name}) needs labels (n,): "
                          "both ends of each path take the same label; e.g. labels=torch.arange(n) % K")
    if labels is not None:
        labels = torch.as_tensor(labels)
        if labels.shape != (n,):
            raise DataError(f"labels must have shape ({n},) to match n, got {tuple(labels.shape)}")
    device, dtype = _model_device_dtype(model)
    gen = torch.Generator().manual_seed(seed)
    z0 = torch.randn(n, latent_dim, generator=gen, dtype=torch.float64)
    z1 = torch.randn(n, latent_dim, generator=gen, dtype=torch.float64)
    t = torch.rand(n, 1, generator=gen, dtype=torch.float64)
    if sampling == "end":
        t = torch.zeros_like(t)
    interp = _lerp if interpolation == "lerp" else _slerp
    if w_space:
        z0, z1 = _map_w(model, z0, device, dtype, labels), _map_w(model, z1, device, dtype, labels)
    za, zb = interp(z0, z1, t), interp(z0, z1, t + epsilon)
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for lo in range(0, n, batch_size):
                hi = min(lo + batch_size, n)
                z = torch.cat([za[lo:hi], zb[lo:hi]]).to(device=device, dtype=dtype)  # (2B, latent_dim)
                if w_space:
                    x = model.decode_w(z)
                elif labels is None:
                    x = model.decode(z)
                else:
                    lb = labels[lo:hi].to(device)
                    x = model.decode(z, torch.cat([lb, lb]))
                if crop:
                    c = x.shape[2] // 8
                    x = x[:, :, 3 * c:7 * c, 2 * c:6 * c]
                feats = feature_fn(x)
                feats = feats.reshape(feats.shape[0], -1).to(torch.float64)  # (2B, F)
                check_finite(feats, "perceptual_path_length features")
                fa, fb = feats[: hi - lo], feats[hi - lo:]
                out.append(((fa - fb) ** 2).sum(dim=1).cpu() / epsilon ** 2)
    finally:
        model.train(was_training)
    d = torch.cat(out).numpy()
    lo_v = np.percentile(d, 1, method="lower")
    hi_v = np.percentile(d, 99, method="higher")
    kept = d[(d >= lo_v) & (d <= hi_v)]
    value = float(kept.mean())
    logger.debug("PPL: kept %d of %d distances in [%g, %g]", kept.size, n, lo_v, hi_v)
    return (value, d) if return_distances else value


# -- W space (models that declare has_w_space: stylegan) -------------------------------------------------------
def _check_space(model: nn.Module, space: str, interpolation: str) -> bool:
    """Whether PPL runs in W; one-line errors for a space the model lacks."""
    if space == "z":
        return False
    if space != "w":
        raise ConfigError(f"perceptual_path_length: space must be 'z' or 'w', got {space!r}")
    if not getattr(type(model), "has_w_space", False):
        raise ConfigError(f"perceptual_path_length: space='w' needs a model with a W space (stylegan); "
                          f"{getattr(model, 'registry_name', type(model).__name__)!r} has only Z, use space='z'")
    if interpolation != "lerp":
        raise ConfigError("perceptual_path_length: space='w' interpolates linearly; use interpolation='lerp'")
    return True


def _map_w(model: nn.Module, z: torch.Tensor, device, dtype, labels: torch.Tensor | None = None) -> torch.Tensor:
    """``model.mapping(z)`` (no truncation; ``labels`` for conditional models) in the model's dtype, returned as
    float64 on the CPU."""
    was = model.training
    model.eval()
    kw = {} if labels is None else {"labels": labels.to(device)}
    try:
        with torch.no_grad():
            return model.mapping(z.to(device=device, dtype=dtype), **kw).to("cpu", torch.float64)
    finally:
        model.train(was)
