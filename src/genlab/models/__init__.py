"""Registered models. Importing this package registers every model with :mod:`genlab.registry`."""
from . import autoencoder, vae  # noqa: F401  (registration side effects)
from . import cvae  # noqa: F401
from . import ae_family  # noqa: F401  (sparse-ae, denoising-ae, contractive-ae)
from . import gan  # noqa: F401  (gan, dcgan, wgan, wgan-gp, cgan, acgan)
from .base import CAPABILITIES, GenerativeModel, OptimizerSpec, capabilities, models_with, require

__all__ = ["GenerativeModel", "OptimizerSpec", "CAPABILITIES", "capabilities", "models_with", "require"]
