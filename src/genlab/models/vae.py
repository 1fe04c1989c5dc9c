"""Variational autoencoder (``vae``): MLP or conv, Bernoulli or Gaussian decoder, beta weight, IWAE NLL."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ..config import check
from ..errors import ConfigError
from ..nn import make_decoder, make_encoder
from ..registry import register_model
from .base import GenerativeModel, OptimizerSpec
from .common import LOG_2PI, NetConfig, bernoulli_log_prob, check_unit_interval, gaussian_log_prob


@dataclass
class VAEConfig(NetConfig):
    """``likelihood``: ``bernoulli`` (BCE; images in [0, 1]) or ``gaussian`` (MSE-like, fixed ``sigma``);
    ``auto`` picks bernoulli for images, gaussian for tabular. ``beta`` weights the KL term."""

    likelihood: Literal["auto", "bernoulli", "gaussian"] = "auto"
    sigma: float = 1.0
    beta: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        check(self.beta >= 0, f"beta must be >= 0, got {self.beta}")
        check(self.sigma > 0, f"sigma must be > 0, got {self.sigma}")


@register_model("vae", VAEConfig, "Variational autoencoder (beta weight, Bernoulli/Gaussian decoder, IWAE NLL)")
class VAE(GenerativeModel):
    """VAE with a diagonal Gaussian posterior, N(0, I) prior and analytic KL.

    Per-sample loss (nats): ``-log p(x|z) + beta * KL(q(z|x) || N(0, I))`` with one reparameterised
    sample ``z = mu + exp(logvar / 2) * eps``; the batch loss is its mean over the batch.
    """

    def __init__(self, config: VAEConfig, data_info: dict):
        super().__init__(config, data_info)
        c = config
        self.likelihood = c.likelihood if c.likelihood != "auto" else (
            "bernoulli" if self.kind == "image" else "gaussian")
        if self.likelihood == "bernoulli":
            check_unit_interval("vae", "likelihood='bernoulli'", self.kind)
        self.latent_dim = c.latent_dim
        self.encoder = make_encoder(self.shape, 2 * c.latent_dim, arch=c.arch, hidden=c.hidden, channels=c.channels)
        self.decoder = make_decoder(c.latent_dim, self.shape, arch=c.arch, hidden=c.hidden, channels=c.channels)
        # Images: Gaussian means pass through a sigmoid so they stay in [0, 1].
        self.sigmoid_mean = self.kind == "image"

    # -- inference -------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters ``(mu, logvar)``, each ``(B, L)``."""
        h = self.encoder(x)
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder output before the mean link: logits (bernoulli) or pre-sigmoid/identity means."""
        return self.decoder(z)

    def _mean(self, raw: torch.Tensor) -> torch.Tensor:
        if self.likelihood == "bernoulli" or self.sigmoid_mean:
            return torch.sigmoid(raw)
        return raw

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Mean of p(x|z) in model space."""
        return self._mean(self.decode_raw(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder mean at the posterior mean ``z = mu(x)`` (deterministic)."""
        x = self.check_input(x)
        return self.decode(self.encode(x)[0])

    @torch.no_grad()
    def sample(self, n: int, *, labels: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means for ``n`` draws ``z ~ N(0, I)``."""
        if n < 1:
            raise ConfigError(f"number of samples must be >= 1, got {n}")
        z = torch.randn(n, self.latent_dim, generator=generator, device="cpu" if generator is None
                        or generator.device.type == "cpu" else generator.device).to(self.device)
        return self.decode(z)

    def log_px_z(self, raw: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``log p(x|z)`` per sample -> ``(B,)``."""
        if self.likelihood == "bernoulli":
            return bernoulli_log_prob(raw, x)
        return gaussian_log_prob(self._mean(raw), x, math.log(self.config.sigma))

    @staticmethod
    def kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Analytic ``KL(N(mu, exp(logvar)) || N(0, I))`` per sample -> ``(B,)``."""
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)

    @torch.no_grad()
    def elbo(self, x: torch.Tensor, *, batch_size: int = 512, generator: torch.Generator | None = None
             ) -> torch.Tensor:
        """Per-sample ELBO in nats, ``E_q[log p(x|z)] - KL`` with one posterior sample (beta = 1)."""
        x = self.check_input(x)
        out = []
        for xb in x.split(batch_size):
            mu, logvar = self.encode(xb)
            eps = torch.randn(mu.shape, generator=generator, device=mu.device if generator is None
                              else generator.device).to(mu)
            z = mu + (0.5 * logvar).exp() * eps
            out.append(self.log_px_z(self.decode_raw(z), xb) - self.kl(mu, logvar))
        return torch.cat(out)

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, k: int = 100, *, batch_size: int = 256,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """Importance-weighted estimate of ``log p(x)`` in nats per sample (IWAE bound, Burda et al. 2016).

        ``log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x)`` with ``z_i ~ q(z|x)``; the log weights are
        accumulated in float64 and combined with ``logsumexp``. It is a lower bound on ``log p(x)``
        that tightens as ``k`` grows (``k=1`` is the ELBO in expectation).
        """
        if k < 1:
            raise ConfigError(f"k (importance samples) must be >= 1, got {k}")
        x = self.check_input(x)
        results = []
        for xb in x.split(batch_size):
            mu, logvar = self.encode(xb)
            std = (0.5 * logvar).exp()
            b = len(xb)
            k_chunk = max(1, 4096 // b)
            logw = []
            for start in range(0, k, k_chunk):
                kk = min(k_chunk, k - start)
                eps = torch.randn((kk, b, self.latent_dim), generator=generator,
                                  device=mu.device if generator is None else generator.device).to(mu)
                z = mu + std * eps  # (kk, B, L)
                raw = self.decode_raw(z.reshape(kk * b, -1))
                xr = xb.unsqueeze(0).expand(kk, *xb.shape).reshape(kk * b, *xb.shape[1:])
                lpx = self.log_px_z(raw, xr).view(kk, b).double()
                lpz = (-0.5 * (z.pow(2) + LOG_2PI)).sum(-1).double()
                lqz = (-0.5 * (eps.pow(2) + LOG_2PI + logvar)).sum(-1).double()
                logw.append(lpx + lpz - lqz)
            logw_all = torch.cat(logw, 0)  # (k, B) float64
            results.append(torch.logsumexp(logw_all, 0) - math.log(k))
        return torch.cat(results)

    # -- training ----------------------------------------------------------------------------
    def training_step(self, batch: dict, step: int, optimizer: str = "main") -> dict:
        x = batch["x"]
        mu, logvar = self.encode(x)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        raw = self.decode_raw(z)
        rec = -self.log_px_z(raw.float(), x)  # (B,)
        kl = self.kl(mu.float(), logvar.float())
        loss = (rec + self.config.beta * kl).mean()
        mse = F.mse_loss(self._mean(raw.detach().float()), x)
        return {"loss": loss, "rec": rec.mean().detach(), "kl": kl.mean().detach(), "mse": mse}

    def configure_optimizers(self) -> dict[str, OptimizerSpec]:
        opt = torch.optim.Adam(self.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)
        return {"main": OptimizerSpec(opt)}
