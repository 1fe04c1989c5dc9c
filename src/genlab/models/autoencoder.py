"""Plain autoencoder (``ae``): MLP for tabular/flat data, conv for images, MSE or BCE reconstruction.

The regularised members of the family (``sparse-ae``, ``denoising-ae``, ``contractive-ae``) subclass
:class:`AutoEncoder` in :mod:`genlab.models.ae_family` and reuse its networks and reconstruction loss.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ..config import check
from ..errors import ConfigError, ConfigWarning
from ..nn import make_decoder, make_encoder
from ..registry import register_model
from .base import GenerativeModel, OptimizerSpec
from .common import NetConfig, check_unit_interval, masked_mean, split_missing
from .networks import AE_SLOTS, attach_networks


@dataclass
class AEConfig(NetConfig):
    """``loss``: ``mse`` or ``bce`` (``bce`` needs image data in [0, 1]); ``auto`` picks bce for images."""

    loss: Literal["auto", "mse", "bce"] = "auto"

    def __post_init__(self):
        super().__post_init__()
        check(self.loss in ("auto", "mse", "bce"), f"loss must be auto, mse or bce, got {self.loss!r}")


@register_model("ae", AEConfig, "Autoencoder (MLP for tabular, conv for images), MSE or BCE reconstruction")
class AutoEncoder(GenerativeModel):
    """Autoencoder: deterministic encoder to ``latent_dim`` codes and a decoder back."""

    can_sample = False
    has_encoder = True
    has_decoder = True
    supports_missing = True
    #: user-supplied networks (``networks={...}`` or :meth:`build_networks`): encoder, decoder
    network_slots = AE_SLOTS

    def __init__(self, config: AEConfig, data_info: dict, *, networks: dict | None = None):
        super().__init__(config, data_info)
        c = config
        self.loss_kind = c.loss if c.loss != "auto" else ("bce" if self.kind == "image" else "mse")
        if self.loss_kind == "bce":
            check_unit_interval("ae", "loss='bce'", self.kind)
        # Images live in [0, 1]: the decoder emits logits and outputs pass through a sigmoid.
        self.sigmoid_output = self.kind == "image"
        self.latent_dim = c.latent_dim
        self.encoder = make_encoder(self.shape, c.latent_dim, arch=c.arch, hidden=c.hidden, channels=c.channels)
        self.decoder = make_decoder(c.latent_dim, self.shape, arch=c.arch, hidden=c.hidden, channels=c.channels)
        attach_networks(self, networks)
        if c.latent_dim >= self.dim and not self.has_regulariser():
            warnings.warn(f"{self.registry_name}: latent_dim={c.latent_dim} >= input dimension {self.dim} (overcomplete) "
                          "with no regulariser and no noise can learn the identity map; use sparse-ae, denoising-ae "
                          "or contractive-ae, or a smaller latent_dim", ConfigWarning, stacklevel=2)

    def has_regulariser(self) -> bool:
        """Whether the configuration keeps the codes from copying the input (none for the plain ``ae``)."""
        return False

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The code of ``x`` ``(B, L)`` (the latent interface every model with an encoder shares). Autoencoders are
        unconditional: ``labels`` must be None."""
        if labels is not None:
            raise ConfigError(f"model {self.registry_name!r} is unconditional and takes no labels; drop labels=")
        return self._encode(x)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's code ``(B, L)``; the members of the family override this, not :meth:`encode`."""
        return self.encoder(x)  # (B, L)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, *shape)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        out = self.decoder(z)
        return torch.sigmoid(out) if self.sigmoid_output else out

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x))``; missing entries (NaN) enter the encoder as 0."""
        x, _ = split_missing(self.check_input(x))
        return self.decode(self.encode(x))

    def reconstruction_loss(self, out: torch.Tensor, x: torch.Tensor, observed: torch.Tensor | None = None
                            ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, mse)`` of decoder output ``out`` (logits for images) against the target ``x``: means over
        all entries of the batch, or over the ``observed`` entries only when a mask is given."""
        recon = torch.sigmoid(out) if self.sigmoid_output else out
        if observed is None:
            mse = F.mse_loss(recon.float(), x)
            loss = F.binary_cross_entropy_with_logits(out.float(), x) if self.loss_kind == "bce" else mse
            return loss, mse.detach()
        mse = masked_mean((recon.float() - x) ** 2, observed)
        loss = masked_mean(F.binary_cross_entropy_with_logits(out.float(), x, reduction="none"), observed) \
            if self.loss_kind == "bce" else mse
        return loss, mse.detach()

    def training_step(self, batch: dict, step: int, optimizer: str = "main") -> dict:
        x, observed = split_missing(batch["x"])  # missing entries: 0 into the encoder, left out of the loss
        loss, mse = self.reconstruction_loss(self.decode_logits(self.encode(x)), x, observed)
        return {"loss": loss, "mse": mse}

    def configure_optimizers(self) -> dict[str, OptimizerSpec]:
        opt = torch.optim.Adam(self.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)
        return {"main": OptimizerSpec(opt)}
