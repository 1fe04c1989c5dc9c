"""Registered models. Importing this package registers every model with :mod:`genlab.registry`."""
from . import autoencoder, vae  # noqa: F401  (registration side effects)
from .base import GenerativeModel, OptimizerSpec

__all__ = ["GenerativeModel", "OptimizerSpec"]
