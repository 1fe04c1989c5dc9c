"""A complete genlab model in one file: ``tiny-vae``, an MLP VAE with a Bernoulli decoder for images in [0, 1]."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab import register_model
from genlab.config import check
from genlab.errors import ConfigError
from genlab.models import GenerativeModel, OptimizerSpec

LOG_2PI = math.log(2 * math.pi)


@dataclass
class TinyVAEConfig:
    """Every field has a default; ``genlab train tiny-vae model.latent_dim=4`` overrides one."""

    latent_dim: int = 8
    hidden: int = 128
    lr: float = 1e-3

    def __post_init__(self):  # a bad value is a one-line ConfigError (exit 2 from the CLI)
        check(self.latent_dim >= 1, f"latent_dim must be >= 1, got {self.latent_dim}")
        check(self.hidden >= 1, f"hidden must be >= 1, got {self.hidden}")
        check(self.lr > 0, f"lr must be > 0, got {self.lr}")


@register_model("tiny-vae", TinyVAEConfig, "Tiny MLP VAE with a Bernoulli decoder (genlab_ext_demo)")
class TinyVAE(GenerativeModel):
    """``q(z|x) = N(mu(x), diag exp(logvar(x)))``, ``p(z) = N(0, I)``, ``p(x|z) = Bernoulli(sigmoid(logits(z)))``."""

    # What the model can do (genlab.models.CAPABILITIES); apps and commands read these, never guess.
    has_encoder = True
    has_decoder = True
    can_sample = True
    can_reconstruct = True
    has_likelihood = True
    input_kinds = ("image",)

    def __init__(self, config: TinyVAEConfig, data_info: dict):
        super().__init__(config, data_info)  # checks the data kind and shape; sets self.shape and self.dim
        self.latent_dim = config.latent_dim
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(self.dim, config.hidden), nn.ReLU(),
                                     nn.Linear(config.hidden, 2 * config.latent_dim))  # (B, 2L) = [mu, logvar]
        self.decoder = nn.Sequential(nn.Linear(config.latent_dim, config.hidden), nn.ReLU(),
                                     nn.Linear(config.hidden, self.dim), nn.Unflatten(1, self.shape))  # logits

    # -- training: the losses of one step, and the optimizer ---------------------------------------------------
    def training_step(self, batch: dict, step: int, optimizer: str = "main") -> dict:
        x = batch["x"]  # (B, *shape), already on the device
        mu, logvar = self.posterior(x)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)  # one reparameterised sample (the Trainer seeds it)
        rec = F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="none").flatten(1).sum(1)  # (B,)
        kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)  # analytic KL(q(z|x) || N(0, I)), (B,)
        return {"loss": (rec + kl).mean(), "rec": rec.mean().detach(), "kl": kl.mean().detach()}

    def configure_optimizers(self) -> dict[str, OptimizerSpec]:
        return {"main": OptimizerSpec(torch.optim.Adam(self.parameters(), lr=self.config.lr))}

    # -- inference (model space: images in [0, 1]); labels=None everywhere: the model is unconditional ---------
    def _no_labels(self, labels) -> None:
        if labels is not None:
            raise ConfigError("tiny-vae is unconditional and takes no labels; drop labels=")

    def posterior(self, x: torch.Tensor, labels=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of q(z|x), each ``(B, latent_dim)``."""
        self._no_labels(labels)
        mu, logvar = self.encoder(self.check_input(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def encode(self, x: torch.Tensor, labels=None) -> torch.Tensor:
        return self.posterior(x, labels)[0]  # the posterior mean, (B, latent_dim)

    def decode(self, z: torch.Tensor, labels=None) -> torch.Tensor:
        self._no_labels(labels)
        return torch.sigmoid(self.decoder(z.to(self.device)))  # Bernoulli means, (B, *shape)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels=None) -> torch.Tensor:
        return self.decode(self.encode(x, labels))

    @torch.no_grad()
    def sample(self, n: int, *, labels=None, generator: torch.Generator | None = None) -> torch.Tensor:
        self._no_labels(labels)
        return self.decode(self._randn((n, self.latent_dim), generator))

    def _randn(self, shape, generator: torch.Generator | None) -> torch.Tensor:
        dev = generator.device if generator is not None else self.device
        return torch.randn(shape, generator=generator, device=dev).to(self.device)

    def _log_weights(self, x: torch.Tensor, k: int, generator) -> torch.Tensor:
        """``log p(x|z) + log p(z) - log q(z|x)`` for ``k`` posterior samples per input -> ``(k, B)``."""
        x = self.check_input(x)
        mu, logvar = self.posterior(x)
        eps = self._randn((k, *mu.shape), generator)  # (k, B, L)
        z = mu + (0.5 * logvar).exp() * eps
        logits = self.decoder(z.flatten(0, 1)).view(k, len(x), *self.shape)
        log_px = -F.binary_cross_entropy_with_logits(logits, x.expand(k, *x.shape), reduction="none").flatten(2).sum(2)
        log_pz = -0.5 * (z ** 2 + LOG_2PI).sum(2)
        log_qz = -0.5 * (eps ** 2 + logvar + LOG_2PI).sum(2)
        return log_px + log_pz - log_qz

    @torch.no_grad()
    def elbo(self, x: torch.Tensor, labels=None, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """One-sample ELBO in nats per input, ``(B,)``."""
        self._no_labels(labels)
        return torch.cat([self._log_weights(xb, 1, generator)[0] for xb in x.split(256)])

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, k: int = 100, labels=None, *,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """IWAE estimate of ``log p(x)`` with ``k`` importance samples, in nats per input, ``(B,)``."""
        self._no_labels(labels)
        return torch.cat([torch.logsumexp(self._log_weights(xb, k, generator), 0) - math.log(k)
                          for xb in x.split(64)])
