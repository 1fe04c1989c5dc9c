"""One registry: model name -> (model class, config class, one-line summary, where it comes from).

Models register themselves with :func:`register_model`; the CLI, :func:`genlab.load` and the Trainer look
names up here. There is no if/elif chain anywhere else. The registry fills itself the first time it is
consulted, from three sources:

* **genlab's own models**: every module of :mod:`genlab.models` is imported (discovered with ``pkgutil``; a
  new module needs no import line anywhere);
* **other packages**, through the entry-point group :data:`ENTRY_POINT_GROUP` (``genlab.models``). An entry
  point names a module (importing it runs its ``@register_model`` decorators), a registered model class, or a
  callable taking no arguments that registers models. One that fails to load is logged as a one-line warning
  (entry point, distribution, error) and the other models still work; asking for a model it would have
  provided is a one-line :class:`~genlab.errors.ConfigError` naming it and the fix;
* **user code** calling :func:`register_model` at run time.

Saved models record where their class lives (:func:`model_location`: ``"module:QualName"`` and the providing
distribution); :func:`entry_for_record` imports that module when the name is not registered yet, so runs of
external models open in any process that can import them. Only modules are imported, nothing is unpickled.
"""
from __future__ import annotations

import contextvars
import dataclasses
import importlib
import importlib.metadata
import logging
import pkgutil
import re
import types
from dataclasses import dataclass
from typing import Callable, Iterable

from .errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

#: entry-point group other packages use to add models
ENTRY_POINT_GROUP = "genlab.models"


@dataclass(frozen=True)
class ModelEntry:
    """A registered model. ``dist``: ``(name, version)`` of the distribution that provides it (``genlab`` for the
    built-in models, the package of an entry point), or ``None`` for a model registered by user code."""

    name: str
    cls: type
    config_cls: type
    summary: str
    dist: tuple[str, str] | None = None

    @property
    def location(self) -> str:
        """``"module:QualName"`` of the model class (what a saved model records)."""
        return f"{self.cls.__module__}:{self.cls.__qualname__}"

    @property
    def source(self) -> str:
        """Where the model comes from, for listings: ``genlab``, ``<dist> <version> (entry point)`` or
        ``user code (<module>)``."""
        if self.dist is None:
            return f"user code ({self.cls.__module__})"
        if self.dist[0] == "genlab":
            return "genlab"
        return f"{self.dist[0]} {self.dist[1]} (entry point)"

    def build(self, cfg, data_info: dict, networks: dict | None = None):
        """The model with fresh weights for config ``cfg`` (an instance of ``config_cls``) and ``data_info``;
        ``networks``: user-supplied networks. Sizes too large for this machine's memory (``latent_dim=1e11``)
        are one :class:`ConfigError` naming the sizes that differ from the defaults, not an allocator trace."""
        from .io.memory import refuse_out_of_memory
        from .models.networks import networks_kwargs

        kwargs = networks_kwargs(self.cls, networks)
        with refuse_out_of_memory(f"model {self.name!r}{_sizes(cfg)}", "lower the model's sizes (the model.* "
                                  "options: latent_dim, layer widths)"):
            return self.cls(cfg, data_info, **kwargs)


def _sizes(cfg) -> str:
    """`` with model.latent_dim=100000000000, ...``: the config's numeric fields that differ from their defaults
    (empty when none does or ``cfg`` is not a dataclass)."""
    if not dataclasses.is_dataclass(cfg):
        return ""
    changed = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        if isinstance(value, (list, tuple)):
            value, default = list(value), list(default) if isinstance(default, (list, tuple)) else default
            numeric = bool(value) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        else:
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if numeric and value != default:
            changed.append(f"model.{f.name}={value}")
    return f" with {', '.join(changed)}" if changed else ""


@dataclass(frozen=True)
class EntryPointFailure:
    """An entry point of :data:`ENTRY_POINT_GROUP` that failed to load."""

    name: str
    value: str
    dist: str
    error: str

    def describe(self) -> str:
        return f"entry point {self.name!r} ({self.value}) of {self.dist} failed to load ({self.error})"


_MODELS: dict[str, ModelEntry] = {}
_FAILED: dict[str, EntryPointFailure] = {}
_WARNED: set[str] = set()
_LOADED = False
#: distribution whose entry point is being loaded (registrations made meanwhile are credited to it)
_LOADING_DIST: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("genlab_loading_dist",
                                                                                        default=None)
_LOCATION = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def _genlab_dist() -> tuple[str, str]:
    from . import __version__
    return ("genlab", __version__)


def register_model(name: str, config_cls: type, summary: str | None = None) -> Callable[[type], type]:
    """Class decorator registering a model under ``name`` with its config dataclass.

    Parameters
    ----------
    name : str
        The name users give (``genlab train NAME``, ``genlab.train(NAME, ...)``); one registration per name.
    config_cls : type
        The model's config dataclass (every field with a default).
    summary : str, optional
        One-line description for ``genlab models`` (default: the first line of the class docstring).

    Re-registering the same class (same module and qualified name, e.g. after ``importlib.reload``) replaces
    the entry; a different class under a taken name is a ``ValueError``.
    """

    def deco(cls: type) -> type:
        old = _MODELS.get(name)
        if old is not None and old.cls is not cls and \
                (old.cls.__module__, old.cls.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"model name {name!r} is already registered by {old.location}; choose another name")
        doc = summary or ((cls.__doc__ or "").strip().splitlines() or [cls.__name__])[0]
        if cls.__module__ == "genlab" or cls.__module__.startswith("genlab."):
            dist = _genlab_dist()
        else:
            dist = _LOADING_DIST.get() or (old.dist if old is not None else None)
        _MODELS[name] = ModelEntry(name, cls, config_cls, doc, dist)
        cls.registry_name = name
        cls.config_cls = config_cls
        return cls

    return deco


def import_submodules(package: str, path: Iterable[str]) -> list[str]:
    """Import every module of ``package`` (found with ``pkgutil`` in ``path``, names not starting with ``_``),
    in name order; returns their full names. :mod:`genlab.models` discovers its model modules with it."""
    names = sorted(m.name for m in pkgutil.iter_modules(list(path)) if not m.name.startswith("_"))
    for n in names:
        importlib.import_module(f"{package}.{n}")
    return [f"{package}.{n}" for n in names]


# -- entry points -------------------------------------------------------------------------------------------
def _dist_of(ep) -> tuple[str, str]:
    d = getattr(ep, "dist", None)
    if d is None:
        return ("unknown distribution", "?")
    return (d.metadata["Name"] or "unknown distribution", d.version or "?")


def _register_loaded(ep, obj) -> None:
    """What an entry point gave: a module (its decorators ran), a model class (registered by its decorator, or
    registered here under the entry point's name from its ``config_cls``), or a callable that registers."""
    from .models.base import GenerativeModel

    if isinstance(obj, types.ModuleType):
        return
    if isinstance(obj, type):
        if not issubclass(obj, GenerativeModel):
            raise TypeError(f"{obj.__qualname__} is not a genlab model (subclass genlab.models.GenerativeModel)")
        entry = _MODELS.get(getattr(obj, "registry_name", None))
        if entry is not None and entry.cls is obj:
            return
        if obj.config_cls is object:
            raise TypeError(f"{obj.__qualname__} is not registered and declares no config_cls; decorate it with "
                            "@genlab.register_model(name, ConfigClass)")
        register_model(ep.name, obj.config_cls)(obj)
        return
    if callable(obj):
        obj()
        return
    raise TypeError(f"it names a {type(obj).__name__}, not a module, model class or registering callable")


def load_entry_points(entry_points: Iterable | None = None) -> list[EntryPointFailure]:
    """Load the entry points of :data:`ENTRY_POINT_GROUP` (default: every installed one) and register their
    models. A failing entry point is recorded (see :func:`entry_point_failures`), not raised; the list of the
    failures of this call is returned."""
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    failures = []
    for ep in entry_points:
        dist = _dist_of(ep)
        before = dict(_MODELS)
        token = _LOADING_DIST.set(dist)
        try:
            _register_loaded(ep, ep.load())
        except Exception as e:  # noqa: BLE001 - any error of foreign code is reported, never fatal
            msg = str(e).splitlines()[0] if str(e) else ""
            f = EntryPointFailure(ep.name, ep.value, f"{dist[0]} {dist[1]}", f"{type(e).__name__}: {msg}"[:300])
            _FAILED[ep.name] = f
            failures.append(f)
            continue
        finally:
            _LOADING_DIST.reset(token)
        _FAILED.pop(ep.name, None)
        top = ep.value.split(":")[0].split(".")[0]
        for name, entry in list(_MODELS.items()):  # credit models the entry point's package registered earlier
            if entry.dist is None and (name not in before or entry.cls.__module__.split(".")[0] == top):
                _MODELS[name] = dataclasses.replace(entry, dist=dist)
    return failures


def entry_point_failures() -> list[EntryPointFailure]:
    """The entry points of :data:`ENTRY_POINT_GROUP` that failed to load in this process."""
    _ensure_loaded()
    return list(_FAILED.values())


def _warn_failures(skip: str | None = None) -> None:
    for name, f in _FAILED.items():
        if name != skip and name not in _WARNED:
            _WARNED.add(name)
            log.warning("%s; its models are unavailable: fix or reinstall %s", f.describe(), f.dist.split(" ")[0])


def _ensure_loaded() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True  # first, so registry calls made while the models import see no recursion
    try:
        from . import models  # noqa: F401  (discovers and imports every genlab model module)
    except BaseException:
        _LOADED = False  # a broken genlab module: raise now and again on the next lookup, never half-loaded
        raise
    load_entry_points()


# -- lookup -------------------------------------------------------------------------------------------------
def _failed_error(f: EntryPointFailure) -> ConfigError:
    return ConfigError(f"model {f.name!r} is unavailable: its {f.describe()}; fix or reinstall "
                       f"{f.dist.split(' ')[0]} (pip install --force-reinstall {f.dist.split(' ')[0]})")


def _unknown(name: str) -> ConfigError:
    hint = ""
    if _FAILED:
        hint = "; entry points that failed to load: " + ", ".join(f"{f.name} ({f.dist})" for f in _FAILED.values())
    return ConfigError(f"unknown model {name!r}; valid names: {', '.join(sorted(_MODELS))}{hint} "
                       "(genlab models lists them)")


def get_model_entry(name: str) -> ModelEntry:
    """The registry entry of model ``name``; a one-line ConfigError names the valid names (and any entry point
    that failed to load) when it is unknown."""
    _ensure_loaded()
    entry = _MODELS.get(name)
    if entry is None:
        if name in _FAILED:
            _WARNED.add(name)  # the error says it all
            raise _failed_error(_FAILED[name])
        raise _unknown(name)
    _warn_failures()
    return entry


def list_entries() -> list[ModelEntry]:
    """Every registered model's entry, sorted by name (external models included)."""
    _ensure_loaded()
    _warn_failures()
    return [_MODELS[n] for n in sorted(_MODELS)]


def list_models() -> list[tuple[str, str]]:
    """``(name, one-line summary)`` for every registered model, sorted by name."""
    return [(e.name, e.summary) for e in list_entries()]


# -- where a saved model's class lives ----------------------------------------------------------------------
def model_location(model_or_cls) -> dict:
    """``{"class": "module:QualName", "distribution": {"name", "version"} or None}`` of a model (instance or
    class): what ``config.json`` records so another process can import the class."""
    cls = model_or_cls if isinstance(model_or_cls, type) else type(model_or_cls)
    entry = _MODELS.get(getattr(cls, "registry_name", None))
    dist = entry.dist if entry is not None and entry.cls is cls else None
    if dist is None and (cls.__module__ == "genlab" or cls.__module__.startswith("genlab.")):
        dist = _genlab_dist()
    return {"class": f"{cls.__module__}:{cls.__qualname__}",
            "distribution": None if dist is None else {"name": dist[0], "version": dist[1]}}


def _recorded_dist(record: dict) -> str:
    d = record.get("distribution")
    if isinstance(d, dict) and isinstance(d.get("name"), str) and d["name"][:80]:
        ver = d.get("version")
        return f"{d['name'][:80]}" + (f"=={str(ver)[:30]}" if isinstance(ver, str) and ver not in ("", "?") else "")
    return ""


def entry_for_record(name: str, record: dict | None, *, where: str) -> ModelEntry:
    """The registry entry of a saved model named ``name`` whose ``config.json`` is ``record``.

    When ``name`` is not registered, the module recorded in ``record["class"]`` is imported (it registers the
    model, as an entry point would). Records without the key (written before genlab recorded it) resolve by
    name only. Every failure is a one-line :class:`~genlab.errors.CheckpointError` naming the model, the
    recorded class and the fix; ``where`` names the file.
    """
    _ensure_loaded()
    loc = record.get("class") if isinstance(record, dict) else None
    if name in _MODELS:
        _warn_failures()
        entry = _MODELS[name]
        if isinstance(loc, str) and _LOCATION.match(loc) and loc.split(".")[0].split(":")[0] != \
                entry.cls.__module__.split(".")[0]:
            log.warning("%s records the class %s for model %r, but %r is registered by %s (%s); loading it with "
                        "that class", where, loc, name, name, entry.location, entry.source)
        return entry
    if name in _FAILED:
        _WARNED.add(name)
        raise CheckpointError(f"{where}: {_failed_error(_FAILED[name])}")
    if loc is None:
        raise CheckpointError(f"{where}: {_unknown(name)}; install the package that provides {name!r}")
    if not isinstance(loc, str) or len(loc) > 300 or not _LOCATION.match(loc):
        raise CheckpointError(f"{where}: 'class' must be 'module:QualName', got {str(loc)[:60]!r}; the file is "
                              "corrupt, re-save or re-train the model")
    module = loc.split(":")[0]
    dist = _recorded_dist(record)
    provider = f" ({dist})" if dist else ""
    if module == "__main__":
        raise CheckpointError(f"{where}: model {name!r} was defined in a script ({loc}); register it before loading "
                              "(run the code that defines it) or move the class into an importable module")
    try:
        importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - any import failure of foreign code is the same one-line error
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{where}: model {name!r} is not registered and its recorded class {loc} cannot be "
                              f"imported ({type(e).__name__}: {msg[:200]}); install the package that provides "
                              f"it{provider}") from None
    if name not in _MODELS:
        raise CheckpointError(f"{where}: unknown model {name!r}: importing its recorded class {loc} registered no "
                              f"model of that name (valid names: {', '.join(sorted(_MODELS))}); install the version "
                              f"of the package that provides it{provider}")
    return _MODELS[name]
