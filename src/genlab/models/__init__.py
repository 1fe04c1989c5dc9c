"""Registered models. Importing this package imports every module in it (discovered with ``pkgutil``, names
not starting with ``_``), which registers each model with :mod:`genlab.registry`: a new model module needs no
import line here. Models of other packages come through the ``genlab.models`` entry-point group (see
:mod:`genlab.registry` and docs/models/adding.md)."""
from ..registry import import_submodules
from .base import CAPABILITIES, GenerativeModel, OptimizerSpec, capabilities, models_with, require

#: the model modules found and imported (full names)
MODULES = import_submodules(__name__, __path__)

__all__ = ["GenerativeModel", "OptimizerSpec", "CAPABILITIES", "capabilities", "models_with", "require"]
