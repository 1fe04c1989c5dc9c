"""Conditional VAE (``cvae``): the :class:`~genlab.models.vae.VAE` with class labels fed, one-hot, to the
encoder (extra constant channels for conv, concatenated to the flattened input for MLP) and to the decoder
(concatenated to z). Everything else (likelihoods, KL schedules, free bits, capacity, IWAE) is the VAE's."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..nn.blocks import ConditionalDecoder, ConditionalEncoder, one_hot
from ..registry import register_model
from .networks import CVAE_SLOTS
from .vae import VAE, VAEConfig, check_labels


@dataclass
class CVAEConfig(VAEConfig):
    """Same fields as ``vae``; the number of classes comes from the data (``data_info["num_classes"]``)."""


@register_model("cvae", CVAEConfig, "Conditional VAE: labels one-hot into encoder and decoder; sample(n, labels=...)")
class CVAE(VAE):
    """``q(z|x, y)``, ``p(x|z, y)``, prior ``N(0, I)`` independent of ``y``; labels ``y`` in ``[0, K-1]``.

    Without labels: ``encode``/``reconstruct`` use the inferred label ``argmax_y [log p(x|mu_y, y) - KL_y]``
    (the per-class ELBO at the posterior mean, deterministic); ``elbo``/``log_likelihood`` marginalise the
    label under a uniform prior, ``log sum_y (1/K) exp(bound(x, y))``, so they estimate ``log p(x)`` like
    the ``vae``'s (K times the cost); ``decode`` needs labels; ``sample`` draws them uniformly.
    """

    conditional = True
    #: user-supplied networks take the one-hot labels as a second input
    network_slots = CVAE_SLOTS

    def _default_networks(self) -> None:
        self.num_classes = self.labelled_classes("a 'vae'")
        c = self.config
        self.encoder = ConditionalEncoder(self.shape, 2 * c.latent_dim, self.num_classes, arch=c.arch,
                                          hidden=c.hidden, channels=c.channels)
        self.decoder = ConditionalDecoder(c.latent_dim, self.shape, self.num_classes, arch=c.arch,
                                          hidden=c.hidden, channels=c.channels)

    def _valid_labels(self, labels, n: int | None, what: str) -> torch.Tensor:
        return check_labels(labels, self.num_classes, n, f"{self.registry_name}.{what}")

    def _labels_for(self, x: torch.Tensor, labels, what: str) -> torch.Tensor:
        return self.infer_labels(x) if labels is None else self._valid_labels(labels, len(x), what).to(x.device)

    def _onehot(self, labels: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return one_hot(labels.to(like.device), self.num_classes, like.dtype)  # (B, K)

    def _encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._posterior(self.encoder(x, self._onehot(y, x)))

    def _decode_raw(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.decoder(z, self._onehot(y, z))

    # -- inference -------------------------------------------------------------------------
    def decode_raw(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            raise ConfigError(f"cvae.decode needs labels: an int tensor of shape ({len(z)},) with values in "
                              f"[0, {self.num_classes - 1}]")
        return self._decode_raw(z, self._valid_labels(labels, len(z), "decode"))

    @torch.no_grad()
    def infer_labels(self, x: torch.Tensor) -> torch.Tensor:
        """``argmax_y [log p(x | z = mu(x, y), y) - KL(q(z|x, y) || N(0, I))]`` -> ``(B,)`` int64."""
        scores = []
        for c in range(self.num_classes):
            y = torch.full((len(x),), c, dtype=torch.long, device=x.device)
            mu, logvar = self._encode(x, y)
            scores.append(self.log_px_z(self._decode_raw(mu, y), x) - self.kl(mu, logvar))
        return torch.stack(scores).argmax(0)  # (B,)

    @torch.no_grad()
    def sample(self, n: int, *, labels: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means for ``n`` draws ``z ~ N(0, I)`` given ``labels`` ``(n,)`` ints in ``[0, K-1]``;
        ``labels=None`` draws them uniformly from ``generator`` (before z)."""
        if n < 1:
            raise ConfigError(f"number of samples must be >= 1, got {n}")
        if labels is None:
            dev = "cpu" if generator is None or generator.device.type == "cpu" else generator.device
            labels = torch.randint(self.num_classes, (n,), generator=generator, device=dev)
        y = self._valid_labels(labels, n, "sample").to(self.device)
        return self._mean(self._decode_raw(self._randn((n, self.latent_dim), generator), y))

    def _marginal(self, bound, xb: torch.Tensor) -> torch.Tensor:
        """``log sum_y (1/K) exp(bound(y))`` over all classes -> ``(B,)``."""
        per_class = [bound(torch.full((len(xb),), c, dtype=torch.long, device=xb.device)).double()
                     for c in range(self.num_classes)]
        return torch.logsumexp(torch.stack(per_class), 0) - math.log(self.num_classes)

    def _elbo_batch(self, xb, yb, generator) -> torch.Tensor:
        if yb is None:
            return self._marginal(lambda y: super(CVAE, self)._elbo_batch(xb, y, generator), xb).to(xb.dtype)
        return super()._elbo_batch(xb, yb, generator)

    def _iwae_batch(self, xb, yb, k, generator) -> torch.Tensor:
        if yb is None:
            return self._marginal(lambda y: super(CVAE, self)._iwae_batch(xb, y, k, generator), xb)
        return super()._iwae_batch(xb, yb, k, generator)

    # -- training ----------------------------------------------------------------------------
    def _batch_labels(self, batch: dict) -> torch.Tensor:
        if batch.get("y") is None:
            raise ConfigError("cvae needs labelled data: every batch needs 'y' with values in "
                              f"[0, {self.num_classes - 1}]")
        return self._valid_labels(batch["y"], len(batch["x"]), "training_step")
