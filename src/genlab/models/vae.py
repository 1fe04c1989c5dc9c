"""Variational autoencoder (``vae``): MLP or conv, Bernoulli or Gaussian (fixed or learned sigma) decoder,
beta / capacity-controlled KL, KL warm-up (linear, cyclical), free bits, IWAE NLL, active-unit monitor."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check
from ..errors import ConfigError, DataError
from ..nn import make_decoder, make_encoder
from ..registry import register_model
from .base import GenerativeModel, OptimizerSpec
from .common import (
    LOG_2PI,
    NetConfig,
    bernoulli_log_prob,
    check_unit_interval,
    gaussian_log_prob,
    masked_mean,
    split_missing,
)
from .networks import VAE_SLOTS, attach_networks

#: learned log-sigma is clamped to [log 1e-3, log 10] so the Gaussian likelihood cannot run off to +inf
LOG_SIGMA_MIN, LOG_SIGMA_MAX = math.log(1e-3), math.log(10.0)


@dataclass
class VAEConfig(NetConfig):
    """VAE settings; the defaults are the plain VAE (``loss = rec + beta * KL``).

    ``likelihood``: ``bernoulli`` (BCE; images in [0, 1]) or ``gaussian`` with a fixed ``sigma`` or, with
    ``learn_sigma``, one learned log-sigma per output dimension (initialised at ``log(sigma)``, clamped to
    [log 1e-3, log 10]); ``auto`` picks bernoulli for images, gaussian for tabular.

    KL weight at optimizer step ``t`` (0-based): ``kl_schedule="constant"``: ``beta``; ``"linear"``:
    ``beta * min(1, t / kl_warmup_steps)``; ``"cyclical"`` (Fu et al. 2019): ``kl_total_steps`` split into
    ``kl_cycles`` periods of ``P = kl_total_steps / kl_cycles`` steps; with ``tau = (t mod P) / P`` the weight
    is ``beta * min(1, tau / kl_ramp)``, and ``beta`` from ``t >= kl_total_steps`` on.

    ``capacity_max`` (Burgess et al. 2018; off when null): ``loss = rec + gamma * |KL - C(t)|`` with
    ``C(t) = capacity_start + (capacity_max - capacity_start) * min(1, t / capacity_steps)`` nats; it
    replaces ``beta`` and the KL schedule.

    ``free_bits`` (Kingma et al. 2016): KL term ``sum_j max(free_bits, mean_batch KL_j)`` in nats per
    latent dimension (each dimension's KL is averaged over the batch before the floor).

    Validation (``step < 0``) uses the end-of-schedule values: weight ``beta``, ``C = capacity_max``.
    """

    likelihood: Literal["auto", "bernoulli", "gaussian"] = "auto"
    sigma: float = 1.0
    learn_sigma: bool = False
    beta: float = 1.0
    kl_schedule: Literal["constant", "linear", "cyclical"] = "constant"
    kl_warmup_steps: int = 0
    kl_cycles: int = 4
    kl_ramp: float = 0.5
    kl_total_steps: int = 0
    free_bits: float = 0.0
    capacity_max: float | None = None
    capacity_start: float = 0.0
    capacity_steps: int = 10_000
    gamma: float = 1000.0
    #: importance samples of the training bound: 1 = the ELBO; k > 1 = the IWAE bound (Burda et al. 2016), on
    #: data with NaN the MIWAE bound on ``log p(x_obs)`` (Mattei & Frellsen 2019); needs the plain KL settings
    iw_samples: int = 1

    def __post_init__(self):
        super().__post_init__()
        check(self.iw_samples >= 1, f"iw_samples must be >= 1, got {self.iw_samples}")
        check(self.iw_samples == 1 or (self.beta == 1 and self.kl_schedule == "constant" and self.free_bits == 0
                                       and self.capacity_max is None),
              "iw_samples > 1 trains the IWAE bound, which has no KL weight: leave beta=1, kl_schedule='constant', "
              "free_bits=0 and capacity_max unset")
        check(self.beta >= 0, f"beta must be >= 0, got {self.beta}")
        check(self.sigma > 0, f"sigma must be > 0, got {self.sigma}")
        check(not (self.learn_sigma and self.likelihood == "bernoulli"),
              "learn_sigma needs likelihood='gaussian' (a Bernoulli decoder has no sigma), got likelihood='bernoulli'")
        check(self.kl_warmup_steps >= 0, f"kl_warmup_steps must be >= 0, got {self.kl_warmup_steps}")
        check(self.kl_schedule != "linear" or self.kl_warmup_steps >= 1,
              f"kl_warmup_steps must be >= 1 with kl_schedule='linear', got {self.kl_warmup_steps}")
        check(self.kl_cycles >= 1, f"kl_cycles must be >= 1, got {self.kl_cycles}")
        check(0 < self.kl_ramp <= 1, f"kl_ramp must be in (0, 1], got {self.kl_ramp}")
        check(self.kl_total_steps >= 0, f"kl_total_steps must be >= 0, got {self.kl_total_steps}")
        check(self.kl_schedule != "cyclical" or self.kl_total_steps >= self.kl_cycles,
              f"kl_total_steps must be >= kl_cycles ({self.kl_cycles}) with kl_schedule='cyclical', "
              f"got {self.kl_total_steps}")
        check(self.free_bits >= 0, f"free_bits must be >= 0 (nats per latent dimension), got {self.free_bits}")
        check(self.gamma >= 0, f"gamma must be >= 0, got {self.gamma}")
        check(self.capacity_start >= 0, f"capacity_start must be >= 0 (nats), got {self.capacity_start}")
        check(self.capacity_steps >= 0, f"capacity_steps must be >= 0, got {self.capacity_steps}")
        if self.capacity_max is not None:
            check(self.capacity_max >= self.capacity_start,
                  f"capacity_max must be >= capacity_start ({self.capacity_start}) and >= 0, got {self.capacity_max}")
            check(self.kl_schedule == "constant", "kl_schedule must be 'constant' when capacity_max is set (the "
                  f"capacity schedule replaces the KL weight), got {self.kl_schedule!r}")

    # -- schedules (pure functions of the optimizer step) -----------------------------------------
    def kl_weight(self, step: int) -> float:
        """Weight of the KL term at optimizer step ``step`` (``step < 0``: validation, full ``beta``)."""
        if step < 0 or self.kl_schedule == "constant":
            return self.beta
        if self.kl_schedule == "linear":
            return self.beta * min(1.0, step / self.kl_warmup_steps)
        if step >= self.kl_total_steps:
            return self.beta
        period = self.kl_total_steps / self.kl_cycles
        tau = (step % period) / period
        return self.beta * min(1.0, tau / self.kl_ramp)

    def capacity(self, step: int) -> float | None:
        """Target KL ``C`` in nats at ``step`` (None when capacity control is off; ``step < 0``: ``capacity_max``)."""
        if self.capacity_max is None:
            return None
        if step < 0 or self.capacity_steps == 0:
            return self.capacity_max
        frac = min(1.0, step / self.capacity_steps)
        return self.capacity_start + (self.capacity_max - self.capacity_start) * frac


def check_labels(labels, num_classes: int, n: int | None, what: str) -> torch.Tensor:
    """``labels`` as an ``(n,)`` int64 tensor with values in ``[0, num_classes - 1]``, else a ConfigError."""
    labels = torch.as_tensor(labels)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        raise ConfigError(f"{what}: labels must be integers in [0, {num_classes - 1}], got dtype {labels.dtype}")
    labels = labels.long().reshape(-1) if labels.ndim == 0 else labels.long()
    if labels.ndim != 1 or (n is not None and len(labels) != n):
        raise ConfigError(f"{what}: labels must have shape ({n if n is not None else 'N'},), got {tuple(labels.shape)}")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
        raise ConfigError(f"{what}: labels must be in [0, {num_classes - 1}], got {bad}")
    return labels


@register_model("vae", VAEConfig, "Variational autoencoder (beta/capacity KL, warm-up, free bits, IWAE NLL)")
class VAE(GenerativeModel):
    """VAE with a diagonal Gaussian posterior, N(0, I) prior and analytic KL.

    Per-sample loss (nats): ``-log p(x|z) + w(t) * KL(q(z|x) || N(0, I))`` with one reparameterised
    sample ``z = mu + exp(logvar / 2) * eps``; the batch loss is its mean over the batch (see
    :class:`VAEConfig` for the weight ``w(t)``, free bits and capacity control).
    """

    has_encoder = True
    has_decoder = True
    has_likelihood = True
    supports_missing = True
    #: user-supplied networks (``networks={...}`` or :meth:`build_networks`): encoder ``[mu, logvar]``, decoder
    network_slots = VAE_SLOTS

    def __init__(self, config: VAEConfig, data_info: dict, *, networks: dict | None = None):
        super().__init__(config, data_info)
        c = config
        self.likelihood = c.likelihood if c.likelihood != "auto" else (
            "bernoulli" if self.kind == "image" else "gaussian")
        if self.likelihood == "bernoulli":
            check_unit_interval(self.registry_name, "likelihood='bernoulli'", self.kind)
            if c.learn_sigma:
                raise ConfigError("learn_sigma needs likelihood='gaussian' (images default to bernoulli); "
                                  "set likelihood=gaussian")
        self.latent_dim = c.latent_dim
        self._default_networks()
        attach_networks(self, networks)
        # One learned log-sigma per output dimension (shape of a sample), only with learn_sigma.
        self.log_sigma = nn.Parameter(torch.full(self.shape, math.log(c.sigma))) if c.learn_sigma else None
        # Images: Gaussian means pass through a sigmoid so they stay in [0, 1].
        self.sigmoid_mean = self.kind == "image"

    def _default_networks(self) -> None:
        c = self.config
        self.encoder = make_encoder(self.shape, 2 * c.latent_dim, arch=c.arch, hidden=c.hidden, channels=c.channels)
        self.decoder = make_decoder(c.latent_dim, self.shape, arch=c.arch, hidden=c.hidden, channels=c.channels)

    def _no_labels(self, labels) -> None:
        if labels is not None:
            raise ConfigError(f"model {self.registry_name!r} is unconditional and takes no labels; "
                              "train a 'cvae' to condition on labels")

    # -- inference -------------------------------------------------------------------------
    @staticmethod
    def _posterior(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def _encode(self, x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        return self._posterior(self.encoder(x))  # y: checked labels (conditional models) or None

    def _decode_raw(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.decoder(z)

    def _labels_for(self, x: torch.Tensor, labels, what: str) -> torch.Tensor | None:
        """Checked labels for ``x`` (conditional models infer them when ``labels`` is None)."""
        self._no_labels(labels)
        return None

    def _valid_labels(self, labels, n: int | None, what: str) -> torch.Tensor:
        """Checked ``(n,)`` int64 labels; unconditional models reject any labels."""
        self._no_labels(labels)
        return labels

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The code of ``x``: the posterior mean ``mu(x)`` ``(B, L)`` (the latent interface every model with an
        encoder shares; the distribution is :meth:`posterior`)."""
        return self._encode(x, self._labels_for(x, labels, "encode"))[0]

    def posterior(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters ``(mu, logvar)`` of the diagonal Gaussian ``q(z|x)``, each ``(B, L)`` (``logvar`` clamped to
        [-30, 20])."""
        return self._encode(x, self._labels_for(x, labels, "posterior"))

    def decode_raw(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder output before the mean link: logits (bernoulli) or pre-sigmoid/identity means."""
        self._no_labels(labels)
        return self._decode_raw(z, None)

    def _mean(self, raw: torch.Tensor) -> torch.Tensor:
        if self.likelihood == "bernoulli" or self.sigmoid_mean:
            return torch.sigmoid(raw)
        return raw

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Mean of p(x|z) in model space."""
        return self._mean(self.decode_raw(z, labels))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder mean at the posterior mean ``z = mu(x)`` (deterministic); missing entries (NaN) enter the
        encoder as 0."""
        x, _ = split_missing(self.check_input(x))
        y = self._labels_for(x, labels, "reconstruct")
        return self._mean(self._decode_raw(self._encode(x, y)[0], y))

    def _randn(self, shape, generator: torch.Generator | None) -> torch.Tensor:
        dev = "cpu" if generator is None or generator.device.type == "cpu" else generator.device
        return torch.randn(shape, generator=generator, device=dev).to(self.device)

    @torch.no_grad()
    def sample(self, n: int, *, labels: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means for ``n`` draws ``z ~ N(0, I)``."""
        if n < 1:
            raise ConfigError(f"number of samples must be >= 1, got {n}")
        self._no_labels(labels)
        return self.decode(self._randn((n, self.latent_dim), generator))

    def log_sigma_value(self) -> torch.Tensor | float:
        """log sigma of the Gaussian decoder: the clamped learned tensor (shape of a sample) or ``log(sigma)``."""
        if self.log_sigma is None:
            return math.log(self.config.sigma)
        return self.log_sigma.clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)

    def log_px_z(self, raw: torch.Tensor, x: torch.Tensor, observed: torch.Tensor | None = None) -> torch.Tensor:
        """``log p(x|z)`` per sample -> ``(B,)``; with an ``observed`` mask, ``log p(x_obs|z)`` (the sum over
        the observed entries only: the decoder factorises over entries, so the missing ones marginalise out)."""
        if self.likelihood == "bernoulli":
            return bernoulli_log_prob(raw, x, observed)
        return gaussian_log_prob(self._mean(raw), x, self.log_sigma_value(), observed)

    @staticmethod
    def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Analytic ``KL(N(mu, exp(logvar)) || N(0, 1))`` per sample and latent dimension -> ``(B, L)``."""
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)

    @staticmethod
    def kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Analytic ``KL(N(mu, exp(logvar)) || N(0, I))`` per sample -> ``(B,)``."""
        return VAE.kl_per_dim(mu, logvar).sum(1)

    def _split_labels(self, x: torch.Tensor, labels, batch_size: int, what: str) -> list:
        """Per-batch label chunks aligned with ``x.split(batch_size)`` (``None`` chunks when no labels)."""
        n_batches = math.ceil(len(x) / batch_size)
        if labels is None:
            return [None] * n_batches
        return list(self._valid_labels(labels, len(x), what).to(x.device).split(batch_size))

    def _elbo_batch(self, xb: torch.Tensor, yb: torch.Tensor | None, generator) -> torch.Tensor:
        xb, observed = split_missing(xb)
        mu, logvar = self._encode(xb, yb)
        z = mu + (0.5 * logvar).exp() * self._randn(mu.shape, generator).to(mu)
        return self.log_px_z(self._decode_raw(z, yb), xb, observed) - self.kl(mu, logvar)

    @torch.no_grad()
    def elbo(self, x: torch.Tensor, labels: torch.Tensor | None = None, *, batch_size: int = 512,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-sample ELBO in nats, ``E_q[log p(x|z)] - KL`` with one posterior sample (beta = 1)."""
        x = self.check_input(x)
        ys = self._split_labels(x, labels, batch_size, "elbo")
        return torch.cat([self._elbo_batch(xb, yb, generator) for xb, yb in zip(x.split(batch_size), ys)])

    def _iwae_batch(self, xb: torch.Tensor, yb: torch.Tensor | None, k: int, generator) -> torch.Tensor:
        xb, observed = split_missing(xb)
        mu, logvar = self._encode(xb, yb)
        std = (0.5 * logvar).exp()
        b = len(xb)
        k_chunk = max(1, 4096 // b)
        logw = []
        for start in range(0, k, k_chunk):
            kk = min(k_chunk, k - start)
            eps = self._randn((kk, b, self.latent_dim), generator).to(mu)
            z = mu + std * eps  # (kk, B, L)
            yr = None if yb is None else yb.repeat(kk)
            raw = self._decode_raw(z.reshape(kk * b, -1), yr)
            xr = xb.unsqueeze(0).expand(kk, *xb.shape).reshape(kk * b, *xb.shape[1:])
            obs = None if observed is None else observed.unsqueeze(0).expand(kk, *xb.shape).reshape(xr.shape)
            lpx = self.log_px_z(raw, xr, obs).view(kk, b).double()
            lpz = (-0.5 * (z.pow(2) + LOG_2PI)).sum(-1).double()
            lqz = (-0.5 * (eps.pow(2) + LOG_2PI + logvar)).sum(-1).double()
            logw.append(lpx + lpz - lqz)
        logw_all = torch.cat(logw, 0)  # (k, B) float64
        return torch.logsumexp(logw_all, 0) - math.log(k)

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, k: int = 100, labels: torch.Tensor | None = None, *,
                       batch_size: int = 256, generator: torch.Generator | None = None) -> torch.Tensor:
        """Importance-weighted estimate of ``log p(x)`` in nats per sample (IWAE bound, Burda et al. 2016).

        ``log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x)`` with ``z_i ~ q(z|x)``; the log weights are
        accumulated in float64 and combined with ``logsumexp``. It is a lower bound on ``log p(x)``
        that tightens as ``k`` grows (``k=1`` is the ELBO in expectation).
        """
        k = self.check_importance_samples(k)
        x = self.check_input(x)
        ys = self._split_labels(x, labels, batch_size, "log_likelihood")
        return torch.cat([self._iwae_batch(xb, yb, k, generator) for xb, yb in zip(x.split(batch_size), ys)])

    @torch.no_grad()
    def posterior_means(self, x: torch.Tensor, labels: torch.Tensor | None = None, *,
                        batch_size: int = 512) -> torch.Tensor:
        """``E_q[z|x]`` for every sample -> ``(N, L)`` float32."""
        x = self.check_input(x)
        ys = self._split_labels(x, labels, batch_size, "active_units")
        return torch.cat([self.encode(split_missing(xb)[0], yb).float()  # missing entries enter as 0
                          for xb, yb in zip(x.split(batch_size), ys)])

    @torch.no_grad()
    def active_units(self, x: torch.Tensor, threshold: float = 0.01, labels: torch.Tensor | None = None, *,
                     batch_size: int = 512) -> int:
        """Number of active latent units (Burda et al. 2016): dimensions ``j`` with
        ``Var_x(E_q[z_j|x]) > threshold`` (strict; unbiased N-1 variance over the samples of ``x``)."""
        if not threshold >= 0:
            raise ConfigError(f"threshold must be >= 0, got {threshold}")
        if len(x) < 2:
            raise DataError(f"active_units needs at least 2 samples to estimate a variance, got {len(x)}")
        mu = self.posterior_means(x, labels, batch_size=batch_size).double()
        return int((mu.var(0, unbiased=True) > threshold).sum())

    @torch.no_grad()
    def validation_epoch_metrics(self, data) -> dict:
        """``{"active_units": n}`` over the whole validation set (threshold 0.01)."""
        if len(data) < 2:
            return {}
        labels = data.y if self.conditional else None
        return {"active_units": self.active_units(data.x, 0.01, labels)}

    # -- training ----------------------------------------------------------------------------
    def _batch_labels(self, batch: dict) -> torch.Tensor | None:
        return None

    def importance_log_weights(self, x: torch.Tensor, k: int, *, y: torch.Tensor | None = None,
                               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Log importance weights ``log p(x_obs|z_i) + log p(z_i) - log q(z_i|x)`` with ``z_i ~ q(z|x)`` (missing
        entries, NaN, enter the encoder as 0 and are left out of ``p(x_obs|z)``) -> ``(logw (k, B), raw (k, B,
        ...))``, ``raw`` the decoder outputs before the mean link. Differentiable (the MIWAE training bound
        is ``logsumexp(logw, 0) - log k``; self-normalised weights ``softmax(logw, 0)`` impute)."""
        x, observed = split_missing(x)  # y: checked labels (conditional models) or None
        mu, logvar = self._encode(x, y)  # (B, L)
        eps = torch.randn((k, *mu.shape), device=mu.device, dtype=mu.dtype) if generator is None \
            else self._randn((k, *mu.shape), generator).to(mu)
        z = mu + (0.5 * logvar).exp() * eps  # (k, B, L)
        raw = self._decode_raw(z.reshape(k * len(x), -1), None if y is None else y.repeat(k)).float()
        xr = x.unsqueeze(0).expand(k, *x.shape).reshape(raw.shape)
        obs = None if observed is None else observed.unsqueeze(0).expand(k, *x.shape).reshape(raw.shape)
        lpx = self.log_px_z(raw, xr, obs).view(k, len(x))
        lpz = (-0.5 * (z.float().pow(2) + LOG_2PI)).sum(-1)
        lqz = (-0.5 * (eps.float().pow(2) + LOG_2PI + logvar.float())).sum(-1)
        return lpx + lpz - lqz, raw.view(k, len(x), *x.shape[1:])

    def _iwae_training_step(self, batch: dict) -> dict:
        k = self.config.iw_samples
        logw, _ = self.importance_log_weights(batch["x"], k, y=self._batch_labels(batch))
        bound = torch.logsumexp(logw, 0) - math.log(k)  # (B,) IWAE / MIWAE bound
        return {"loss": -bound.mean(), "iwae_bound": bound.mean().detach()}

    def training_step(self, batch: dict, step: int, optimizer: str = "main") -> dict:
        c = self.config
        if c.iw_samples > 1:
            return self._iwae_training_step(batch)
        x, observed = split_missing(batch["x"])  # missing entries: 0 into the encoder, left out of log p(x|z)
        y = self._batch_labels(batch)
        mu, logvar = self._encode(x, y)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        raw = self._decode_raw(z, y)
        rec = -self.log_px_z(raw.float(), x, observed)  # (B,)
        kl_dims = self.kl_per_dim(mu.float(), logvar.float())  # (B, L)
        kl = kl_dims.sum(1)  # (B,)
        # free bits: sum_j max(lambda, mean_b KL_bj) (the batch-mean KL when free_bits = 0)
        kl_term = kl_dims.mean(0).clamp(min=c.free_bits).sum() if c.free_bits > 0 else kl.mean()
        out: dict = {}
        cap = c.capacity(step)
        if cap is not None:
            loss = rec.mean() + c.gamma * (kl_term - cap).abs()
            out["capacity"] = torch.tensor(cap, device=x.device)
        else:
            w = c.kl_weight(step)
            loss = rec.mean() + w * kl_term if c.free_bits > 0 else (rec + w * kl).mean()
            out["kl_weight"] = torch.tensor(w, device=x.device)
        mean = self._mean(raw.detach().float())
        mse = F.mse_loss(mean, x) if observed is None else masked_mean((mean - x) ** 2, observed)
        out = {"loss": loss, "rec": rec.mean().detach(), "kl": kl.mean().detach(), "mse": mse, **out}
        if self.log_sigma is not None:
            out["sigma"] = self.log_sigma_value().detach().exp().mean()
        return out

    def configure_optimizers(self) -> dict[str, OptimizerSpec]:
        opt = torch.optim.Adam(self.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)
        return {"main": OptimizerSpec(opt)}
