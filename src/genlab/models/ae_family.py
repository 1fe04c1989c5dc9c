"""Regularised autoencoders: ``sparse-ae``, ``denoising-ae``, ``contractive-ae`` and ``distance-ae``.

Each subclasses :class:`~genlab.models.autoencoder.AutoEncoder` (same encoder/decoder, same
reconstruction loss, conv for images and MLP for tabular data) and adds one regulariser in its
``training_step``. Conventions:

* penalties are means over the batch of per-sample sums over code units (``l1``, Jacobian norm) or a
  sum over code units of a batch statistic (KL sparsity); the reconstruction loss is the plain ``ae``'s.
* ``reconstruct(x)`` never corrupts or perturbs its input; it is ``decode(encode(x))``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..config import check
from ..registry import register_model
from .autoencoder import AEConfig, AutoEncoder
from .common import split_missing

_EPS = 1e-6


def _noise_device(x: torch.Tensor, generator: torch.Generator | None) -> torch.device:
    """Where to draw random numbers: the generator's device if one is given, else the data's."""
    return x.device if generator is None else generator.device


# ---------------------------------------------------------------------------------------------- sparse
@dataclass
class SparseAEConfig(AEConfig):
    """``l1``: weight of the L1 penalty ``mean_b sum_j |h_j|``. ``sparsity_weight``: weight of the KL
    sparsity penalty ``sum_j KL(rho || rho_hat_j)`` (``rho_hat_j`` = batch mean of code ``j``); when it is
    > 0 the codes pass through a sigmoid. ``rho``: target mean activation in (0, 1). ``k_sparse``: keep
    the k largest absolute code entries per sample and zero the rest (training and inference)."""

    l1: float = 0.0
    rho: float = 0.05
    sparsity_weight: float = 0.1
    k_sparse: int | None = None

    def __post_init__(self):
        super().__post_init__()
        check(self.l1 >= 0, f"l1 must be >= 0, got {self.l1}")
        check(0 < self.rho < 1, f"rho must be in (0, 1), got {self.rho}")
        check(self.sparsity_weight >= 0, f"sparsity_weight must be >= 0, got {self.sparsity_weight}")
        check(self.k_sparse is None or 1 <= self.k_sparse <= self.latent_dim,
              f"k_sparse must be null or in [1, latent_dim={self.latent_dim}], got {self.k_sparse}")


def kl_sparsity(rho: float, rho_hat: torch.Tensor) -> torch.Tensor:
    """``sum_j KL(Bernoulli(rho) || Bernoulli(rho_hat_j))`` in nats; ``rho_hat`` is clamped to [1e-6, 1 - 1e-6]."""
    rho_hat = rho_hat.clamp(_EPS, 1 - _EPS)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


@register_model("sparse-ae", SparseAEConfig,
                "Sparse autoencoder: L1 and/or KL sparsity (sigmoid codes, target rho), optional k-sparse codes")
class SparseAutoEncoder(AutoEncoder):
    """Autoencoder with sparse codes. ``mean_activation`` (mean of ``|h|`` over batch and units; for
    sigmoid codes the mean activation itself) is logged per step, per epoch and over the validation set."""

    def has_regulariser(self) -> bool:
        c = self.config
        return c.l1 > 0 or c.sparsity_weight > 0 or c.k_sparse is not None

    @property
    def sigmoid_codes(self) -> bool:
        return self.config.sparsity_weight > 0

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)  # (B, L)
        if self.sigmoid_codes:
            h = torch.sigmoid(h)
        k = self.config.k_sparse
        if k is not None and k < h.shape[1]:
            idx = h.abs().topk(k, dim=1).indices  # (B, k)
            h = h * torch.zeros_like(h).scatter_(1, idx, 1.0)
        return h

    def training_step(self, batch: dict, step: int, optimizer: str = "main") -> dict:
        x, observed = split_missing(batch["x"])  # missing entries: 0 into the encoder, left out of the loss
        h = self.encode(x)
        loss, mse = self.reconstruction_loss(self.decode_logits(h), x, observed)
        hf = h.float()
        out = {"mse": mse, "mean_activation": hf.detach().abs().mean()}
        if self.config.l1 > 0:
            l1 = hf.abs().sum(1).mean()
            loss = loss + self.config.l1 * l1
            out["l1_penalty"] = l1.detach()
        if self.config.sparsity_weight > 0:
            kl = kl_sparsity(self.config.rho, hf.mean(0))
            loss = loss + self.config.sparsity_weight * kl
            out["kl_sparsity"] = kl.detach()
        return {"loss": loss, **out}

    @torch.no_grad()
    def validation_epoch_metrics(self, data) -> dict:
        """``mean_activation`` over the whole set (mean of ``|h|``) and ``active_fraction`` (share of nonzero codes)."""
        total, nonzero, n = 0.0, 0.0, 0
        for batch in data.batches(512):
            h = self.encode(batch["x"].to(self.device)).float()
            total += float(h.abs().sum())
            nonzero += float((h != 0).sum())
            n += h.numel()
        return {"mean_activation": total / n, "active_fraction": nonzero / n} if n else {}


# ---------------------------------------------------------------------------------------------- denoising
@dataclass
class DenoisingAEConfig(AEConfig):
    """``noise``: ``gaussian`` (add N(0, level^2); images clamped to [0, 1]), ``salt_pepper`` (each entry
    with probability ``level`` set to the low or high end of the data range, half each) or ``mask`` (each
    entry with probability ``level`` set to 0). The corruption is drawn per batch during training."""

    noise: Literal["gaussian", "salt_pepper", "mask"] = "mask"
    level: float = 0.25

    def __post_init__(self):
        super().__post_init__()
        check(self.noise in ("gaussian", "salt_pepper", "mask"),
              f"noise must be gaussian, salt_pepper or mask, got {self.noise!r}")
        if self.noise == "gaussian":
            check(self.level >= 0, f"level (gaussian sigma) must be >= 0, got {self.level}")
        else:
            check(0 <= self.level < 1, f"level ({self.noise} probability) must be in [0, 1), got {self.level}")


def corrupt(x: torch.Tensor, noise: str, level: float, *, kind: str,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """A copy of the batch ``x`` (model space) corrupted by the ``denoising-ae`` noise ``noise`` at ``level``
    (see :class:`DenoisingAEConfig`), drawn from ``generator`` or the torch RNG; same shape, device, dtype.

    ``salt_pepper`` uses 0 and 1 for images (``kind="image"``) and, for tabular data, each column's min and
    max in ``x``.
    """
    if level == 0:
        return x.clone()
    dev = _noise_device(x, generator)
    if noise == "gaussian":
        out = x + level * torch.randn(x.shape, generator=generator, device=dev).to(x)
        return out.clamp(0.0, 1.0) if kind == "image" else out
    u = torch.rand(x.shape, generator=generator, device=dev).to(x.device)  # (B, ...)
    if noise == "mask":
        return x.masked_fill(u < level, 0.0)
    if kind == "image":
        low, high = torch.zeros((), dtype=x.dtype, device=x.device), torch.ones((), dtype=x.dtype, device=x.device)
    else:
        low, high = x.amin(0, keepdim=True), x.amax(0, keepdim=True)  # (1, D)
    out = torch.where(u < level / 2, low, x)
    return torch.where((u >= level / 2) & (u < level), high, out)


@register_model("denoising-ae", DenoisingAEConfig,
                "Denoising autoencoder: gaussian, salt-and-pepper or masking noise on the fly, clean targets")
class DenoisingAutoEncoder(AutoEncoder):
    """Autoencoder trained to reconstruct the clean ``x`` from ``corrupt(x)``; ``reconstruct`` denoises what it gets."""

    def has_regulariser(self) -> bool:
        return self.config.level > 0

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A corrupted copy of ``x`` (same shape, device and dtype), drawn from ``generator`` or the torch RNG
        (see :func:`corrupt`)."""
        return corrupt(x, self.config.noise, self.config.level, kind=self.kind, generator=generator)

    def training_step(self, batch: dict, step: int, optimizer: str = "main") -> dict:
        x, observed = split_missing(batch["x"])  # missing entries: 0 into the encoder, left out of the loss
        x_tilde = self.corrupt(x)
        loss, mse = self.reconstruction_loss(self.decode_logits(self.encode(x_tilde)), x, observed)
        return {"loss": loss, "mse": mse}


# ---------------------------------------------------------------------------------------------- contractive
@dataclass
class ContractiveAEConfig(AEConfig):
    """``lam``: weight of the penalty ``mean_b ||dh/dx||_F^2``. ``encoder_activation``: ``sigmoid`` puts a
    sigmoid on the codes (with ``arch=mlp`` and ``hidden=[]`` the penalty is then exact, in closed form).
    ``n_projections``: Rademacher projections per sample for the unbiased estimate used otherwise."""

    lam: float = 0.1
    encoder_activation: Literal["none", "sigmoid"] = "none"
    n_projections: int = 1

    def __post_init__(self):
        super().__post_init__()
        check(self.lam >= 0, f"lam must be >= 0, got {self.lam}")
        check(self.encoder_activation in ("none", "sigmoid"),
              f"encoder_activation must be none or sigmoid, got {self.encoder_activation!r}")
        check(self.n_projections >= 1, f"n_projections must be >= 1, got {self.n_projections}")


@register_model("contractive-ae", ContractiveAEConfig,
                "Contractive autoencoder: lam * ||dh/dx||_F^2 (closed form for one sigmoid layer, else estimated)")
class ContractiveAutoEncoder(AutoEncoder):
    """Autoencoder with the contractive penalty ``lam * ||dh/dx||_F^2`` on the encoder.

    ``closed_form`` is true for a single sigmoid layer ``h = sigmoid(Wx + b)``, where
    ``||J||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ji^2`` exactly. Otherwise the penalty is the unbiased
    Hutchinson estimate ``mean_k ||J^T v_k||^2`` with ``n_projections`` Rademacher vectors ``v_k`` per
    sample (``E[v v^T] = I`` so ``E ||J^T v||^2 = tr(J J^T) = ||J||_F^2``), computed with vector-Jacobian
    products that keep the graph (``create_graph=True``) so the penalty is trained through.
    """

    double_backward = True  # the estimated penalty differentiates J^T v (create_graph=True)

    def __init__(self, config: ContractiveAEConfig, data_info: dict, *, networks: dict | None = None):
        super().__init__(config, data_info, networks=networks)
        layers = [m for m in self.encoder.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
        self.closed_form = (config.encoder_activation == "sigmoid" and len(layers) == 1
                            and isinstance(layers[0], nn.Linear))
        self._linear = layers[0] if self.closed_form else None

    def has_regulariser(self) -> bool:
        return self.config.lam > 0

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)  # (B, L)
        return torch.sigmoid(h) if self.config.encoder_activation == "sigmoid" else h

    def _closed_form_norm(self, h: torch.Tensor) -> torch.Tensor:
        w_sq = self._linear.weight.pow(2).sum(1)  # (L,)
        return (h * (1 - h)).pow(2) @ w_sq.to(h.dtype)  # (B,)

    def _estimated_norm(self, x: torch.Tensor, h: torch.Tensor, n_projections: int,
                        generator: torch.Generator | None) -> torch.Tensor:
        total = torch.zeros(x.shape[0], dtype=h.dtype, device=h.device)
        dev = _noise_device(h, generator)
        for _ in range(n_projections):
            v = (torch.randint(0, 2, h.shape, generator=generator, device=dev) * 2 - 1).to(h)  # Rademacher (B, L)
            # Samples do not interact in the encoder, so one VJP of sum_b v_b.h_b gives every J_b^T v_b.
            (g,) = torch.autograd.grad(h, x, grad_outputs=v, create_graph=True)  # (B, *shape)
            total = total + g.flatten(1).pow(2).sum(1)
        return total / n_projections

    def codes_and_jacobian_norm(self, x: torch.Tensor, *, n_projections: int | None = None,
                                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes ``h`` ``(B, L)`` and per-sample ``||dh/dx||_F^2`` ``(B,)`` (exact or estimated, see class doc)."""
        if self.closed_form:
            h = self.encode(x)
            return h, self._closed_form_norm(h)
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            h = self.encode(x)
            norm = self._estimated_norm(x, h, n_projections or self.config.n_projections, generator)
        return h, norm

    def jacobian_norm(self, x: torch.Tensor, *, n_projections: int | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-sample squared Frobenius norm ``||dh/dx||_F^2`` -> ``(B,)`` (differentiable)."""
        return self.codes_and_jacobian_norm(x, n_projections=n_projections, generator=generator)[1]

    def training_step(self, batch: dict, step: int, optimizer: str = "main") -> dict:
        x, observed = split_missing(batch["x"])  # missing entries: 0 into the encoder, left out of the loss
        h, jn = self.codes_and_jacobian_norm(x)
        loss, mse = self.reconstruction_loss(self.decode_logits(h), x, observed)
        jn = jn.float().mean()
        return {"loss": loss + self.config.lam * jn, "mse": mse, "jacobian_norm": jn.detach()}

    @torch.no_grad()
    def validation_step(self, batch: dict) -> dict:
        with torch.enable_grad():  # the estimate needs autograd even when validating
            out = self.training_step(batch, step=-1)
        return {k: v.detach() for k, v in out.items()}


# ---------------------------------------------------------------------------------------------- distance
def input_distances(x: torch.Tensor, observed: torch.Tensor | None = None) -> torch.Tensor:
    """Euclidean distances ``(B, B)`` between the flattened rows of ``x`` (float64 inside, ``x``'s dtype out).

    With an ``observed`` mask (True where an entry is present; missing entries of ``x`` hold any finite value) each
    pair is measured on the entries both rows observe and scaled by ``D / shared`` (``D`` entries per row), the
    usual rescaling of a partial squared distance; pairs that share no entry get NaN.
    """
    xf = x.detach().flatten(1).double()  # (B, D)
    if observed is None:
        return torch.cdist(xf, xf).to(x.dtype)
    o = observed.flatten(1).double()  # (B, D)
    xo = xf * o
    sq = (xo * xo) @ o.T  # sum over shared entries of x_i^2: (B, B)
    d2 = sq + sq.T - 2.0 * xo @ xo.T
    shared = o @ o.T  # (B, B)
    d2 = d2.clamp_min(0.0) * (xf.shape[1] / shared.clamp_min(1.0))
    return d2.sqrt().masked_fill(shared == 0, float("nan")).to(x.dtype)


def distance_stress(z: torch.Tensor, dx: torch.Tensor, *, log: bool = False) -> torch.Tensor:
    """Normalised stress between code distances and input distances ``dx`` ``(B, B)`` over the pairs ``i != j``
    where ``dx`` is finite: ``mean((d_z / mean d_z - d_x / mean d_x)^2)`` (scale-free: codes at any scale that keep
    the inputs' distance ratios cost 0), or with ``log=True`` ``mean((log(d_z / mean d_z + eps) - log(d_x / mean d_x
    + eps))^2)``, ``eps = 1e-6`` (relative errors, so small distances count as much as large ones). A scalar (0 with
    fewer than 2 rows)."""
    b = z.shape[0]
    keep = ~torch.eye(b, dtype=torch.bool, device=z.device) & torch.isfinite(dx)
    if b < 2 or not bool(keep.any()):
        return z.sum() * 0.0
    dz = torch.cdist(z.float(), z.float())[keep]  # (P,)
    dz = dz / dz.mean().clamp_min(_EPS)
    d = dx[keep].float()
    d = d / d.mean().clamp_min(_EPS)
    if log:
        return ((torch.log(dz + _EPS) - torch.log(d + _EPS)) ** 2).mean()
    return ((dz - d) ** 2).mean()


@dataclass
class DistanceAEConfig(AEConfig):
    """``distance_weight``: weight of the normalised stress between the code distances and the input distances of
    each training batch (metric MDS on the batch; 0 is the plain ``ae``). ``distance``: ``linear`` (stress on the
    distances over their batch means) or ``log`` (on their logarithms)."""

    distance_weight: float = 0.1
    distance: Literal["linear", "log"] = "linear"

    def __post_init__(self):
        super().__post_init__()
        check(self.distance_weight >= 0, f"distance_weight must be >= 0, got {self.distance_weight}")


@register_model("distance-ae", DistanceAEConfig,
                "Distance-preserving autoencoder: reconstruction + weight * stress between code and input distances")
class DistanceAutoEncoder(AutoEncoder):
    """Autoencoder whose codes also keep the inputs' pairwise distances: the loss adds ``distance_weight`` times
    the normalised stress (:func:`distance_stress`) between the Euclidean distances of the codes of a training batch
    and those of its inputs (as the model sees them: pixels in [0, 1], standardised columns). Reconstruction alone
    keeps what the decoder needs and may bend the neighbourhoods of the input; the stress term keeps them, which is
    what a map of the codes (t-SNE, kNN) reads. The identity map keeps distances exactly, so an overcomplete code
    still warns. ``distance_preserving`` (true when ``distance_weight > 0``) tells
    :meth:`~genlab.apps.LatentExplorer.latent_map` to map the codes as they are (standardising them would re-weight
    the dimensions whose distances were trained)."""

    @property
    def distance_preserving(self) -> bool:
        return self.config.distance_weight > 0

    def training_step(self, batch: dict, step: int, optimizer: str = "main") -> dict:
        x, observed = split_missing(batch["x"])  # missing entries: 0 into the encoder, left out of both terms
        z = self.encode(x)
        loss, mse = self.reconstruction_loss(self.decode_logits(z), x, observed)
        stress = distance_stress(z, input_distances(x, observed), log=self.config.distance == "log")
        return {"loss": loss + self.config.distance_weight * stress, "mse": mse, "stress": stress.detach()}
