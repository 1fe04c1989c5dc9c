"""One registry: model name -> (model class, config class, one-line summary).

Models register themselves with :func:`register_model`; the CLI, :func:`genlab.load` and the Trainer
look names up here. There is no if/elif chain anywhere else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    cls: type
    config_cls: type
    summary: str


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, config_cls: type, summary: str | None = None) -> Callable[[type], type]:
    """Class decorator registering a model under ``name`` with its config dataclass."""

    def deco(cls: type) -> type:
        if name in _MODELS and _MODELS[name].cls is not cls:
            raise ValueError(f"model name {name!r} is already registered by {_MODELS[name].cls.__name__}")
        doc = summary or (cls.__doc__ or "").strip().splitlines()[0]
        _MODELS[name] = ModelEntry(name, cls, config_cls, doc)
        cls.registry_name = name
        cls.config_cls = config_cls
        return cls

    return deco


def _ensure_loaded() -> None:
    # Importing the model package runs every @register_model decorator.
    from . import models  # noqa: F401


def get_model_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    try:
        return _MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; valid names: {', '.join(sorted(_MODELS))}") from None


def list_models() -> list[tuple[str, str]]:
    """``(name, one-line summary)`` for every registered model, sorted by name."""
    _ensure_loaded()
    return [(n, _MODELS[n].summary) for n in sorted(_MODELS)]
