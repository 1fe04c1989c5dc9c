"""Search spaces for ``genlab tune``: a mapping of run-config keys to distributions, checked against the config
dataclasses before any trial runs, and turned into Optuna suggestions trial by trial.

A space is a YAML/JSON mapping (flat dotted keys, or nested by section)::

    model.lr:           {log_uniform: [1e-4, 3e-3]}
    model.latent_dim:   {choice: [4, 8, 16, 32]}
    trainer.batch_size: {choice: [32, 64, 128]}
    model.beta1:        {uniform: [0.0, 0.9]}
    model.width:        {int: [32, 128], step: 32}
    trainer.grad_clip:  {float: [0.5, 5.0], log: true}
    model.hidden:       {choice: [[256, 128], [512, 256]]}

Kinds: ``uniform`` / ``log_uniform`` (floats), ``float`` and ``int`` (``[low, high]`` inclusive, optional ``step``
or ``log: true``) and ``choice`` (any plain values; lists are offered to Optuna as their JSON text). Every key must
be a field of the model's config, the trainer config or ``data.standardize``; every bound and choice must be a
value that field accepts (checked by building the run config with it). The ``test`` section and the data keys
that decide the validation split cannot be searched: trials must be compared on the same held-out data.
"""
from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import set_dotted
from ..errors import ConfigError

#: distribution kinds of a space entry, and the extra keys each accepts
KINDS: dict[str, tuple[str, ...]] = {"uniform": (), "log_uniform": (), "float": ("step", "log"),
                                     "int": ("step", "log"), "choice": ()}
#: kinds whose values are floats
FLOAT_KINDS = ("uniform", "log_uniform", "float")
#: data keys a space may search (the others decide which samples the validation split holds)
SEARCHABLE_DATA = ("standardize",)


def _number(value: Any, where: str) -> float | int:
    """A bound as a number: ints and floats as they are, numeric strings (YAML 1.1 reads ``1e-4`` as a string)
    as floats; anything else is a one-line error."""
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{where}: bounds must be numbers, got {value!r}")
    if isinstance(value, (int, float)):
        out = value
    elif isinstance(value, str):
        try:
            out = float(value)
        except ValueError:
            raise ConfigError(f"{where}: bounds must be numbers, got {value!r}") from None
    else:
        raise ConfigError(f"{where}: bounds must be numbers, got {value!r}")
    if isinstance(out, float) and not math.isfinite(out):
        raise ConfigError(f"{where}: bounds must be finite numbers, got {value!r}")
    return out


@dataclass(frozen=True)
class Param:
    """One searched key: ``key`` (``section.name``), ``kind`` (see :data:`KINDS`), ``low``/``high`` (inclusive)
    with ``step``/``log`` for ranges, or ``choices``."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple = ()

    @classmethod
    def parse(cls, key: str, spec: Any) -> "Param":
        """A space entry ``{kind: [low, high], step: s, log: b}`` or ``{choice: [...]}``, checked for form
        (not yet against the config: :meth:`SearchSpace.check`)."""
        where = f"search space {key}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected a distribution such as {{choice: [...]}} or {{log_uniform: [low, "
                              f"high]}}, got {spec!r}; fixed values belong in the config or KEY=VALUE overrides")
        kinds = [k for k in spec if k in KINDS]
        if len(kinds) != 1:
            raise ConfigError(f"{where}: give exactly one of {', '.join(KINDS)}, got "
                              f"{', '.join(map(str, spec)) or 'nothing'}")
        kind = kinds[0]
        extra = sorted(set(spec) - {kind} - set(KINDS[kind]), key=str)
        if extra:
            allowed = ", ".join(KINDS[kind]) or "nothing"
            raise ConfigError(f"{where}: unknown option {extra[0]!r} for {kind} (it takes {allowed})")
        value = spec[kind]
        if kind == "choice":
            if not isinstance(value, list) or not value:
                raise ConfigError(f"{where}: choice needs a non-empty list of values, got {value!r}")
            texts = [json.dumps(v, sort_keys=True) for v in value]
            dup = next((v for v, t in zip(value, texts) if texts.count(t) > 1), None)
            if dup is not None:
                raise ConfigError(f"{where}: choice lists {dup!r} twice; give each value once")
            return cls(key, kind, choices=tuple(value))
        if not isinstance(value, list) or len(value) != 2:
            raise ConfigError(f"{where}: {kind} needs a list [low, high] of two numbers, got {value!r}")
        low, high = (_number(v, where) for v in value)
        log = spec.get("log", kind == "log_uniform")
        if not isinstance(log, bool):
            raise ConfigError(f"{where}: log must be true or false, got {log!r}")
        step = spec.get("step")
        if kind == "int":
            for name, v in (("low", low), ("high", high)):
                if isinstance(v, float) and not v.is_integer():
                    raise ConfigError(f"{where}: int bounds must be whole numbers, got {name} {v!r}")
            low, high = int(low), int(high)
        if not low < high:
            raise ConfigError(f"{where}: empty range [{low}, {high}] (low must be below high); fix the range, or set "
                              "one value in the config instead")
        if log and low <= 0:
            raise ConfigError(f"{where}: a log range needs low > 0, got [{low}, {high}]")
        if step is not None:
            step = _number(step, f"{where} step")
            if kind == "int" and (isinstance(step, float) and not step.is_integer()):
                raise ConfigError(f"{where}: an int step must be a whole number, got {step!r}")
            step = int(step) if kind == "int" else float(step)
            if step <= 0 or step > high - low:
                raise ConfigError(f"{where}: step must be > 0 and at most high - low = {high - low}, got {step}")
            if log:
                raise ConfigError(f"{where}: give step or log: true, not both (Optuna samples a log range "
                                  "without steps)")
        if kind in FLOAT_KINDS:
            low, high = float(low), float(high)
        return cls(key, kind, low=low, high=high, step=step, log=log)

    # -- values ------------------------------------------------------------------------------------------
    def candidates(self) -> list:
        """The extreme values this entry can give (bounds, or every choice): what :meth:`SearchSpace.check`
        builds the config with."""
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]

    def suggest(self, trial) -> Any:
        """This entry's value for an Optuna ``trial`` (lists in a choice are offered as their JSON text and
        returned as lists)."""
        if self.kind == "choice":
            labels = [self._label(v) for v in self.choices]
            picked = trial.suggest_categorical(self.key, labels)
            return self.choices[labels.index(picked)]
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    @staticmethod
    def _label(value):
        return json.dumps(value) if isinstance(value, (list, dict)) else value

    def to_dict(self) -> dict:
        """The space-file form of this entry."""
        if self.kind == "choice":
            return {"choice": list(self.choices)}
        out: dict = {self.kind: [self.low, self.high]}
        if self.step is not None:
            out["step"] = self.step
        if self.log and self.kind in ("int", "float"):
            out["log"] = True
        return out

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(json.dumps(v) for v in self.choices)
        name = {"log_uniform": "log-uniform", "uniform": "uniform", "int": "int", "float": "float"}[self.kind]
        extra = f" step {self.step:g}" if self.step is not None else (" log" if self.log and self.kind in
                                                                       ("int", "float") else "")
        return f"{name} [{self.low:g}, {self.high:g}]{extra}"


def _flatten(mapping: dict, prefix: str = "") -> dict:
    """Nested sections (``model: {lr: {...}}``) to dotted keys; a mapping naming a kind is a distribution."""
    out: dict = {}
    for k, v in mapping.items():
        if not isinstance(k, str) or not k.strip():
            raise ConfigError(f"search space: keys must be config keys such as model.latent_dim, got {k!r}")
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and not any(kind in v for kind in KINDS):
            out.update(_flatten(v, key + "."))
        else:
            if key in out:
                raise ConfigError(f"search space: {key} is given twice")
            out[key] = v
    return out


class SearchSpace:
    """An ordered set of :class:`Param` (one per config key)."""

    def __init__(self, params: list[Param]):
        self.params = list(params)

    @classmethod
    def from_mapping(cls, mapping: Any, where: str = "search space") -> "SearchSpace":
        """Parse a space mapping (see the module doc); form errors are one line."""
        if not isinstance(mapping, dict) or not mapping:
            raise ConfigError(f"{where} must be a non-empty mapping of config keys to distributions, e.g. "
                              "{model.latent_dim: {choice: [4, 8, 16]}}")
        return cls([Param.parse(k, v) for k, v in _flatten(mapping).items()])

    @classmethod
    def from_file(cls, path: str | Path) -> "SearchSpace":
        """Read a YAML/JSON space file (bounded reader, one-line errors)."""
        from ..config import read_config_file

        data = read_config_file(path)
        return cls.from_mapping(data, f"search space {str(path)!r}")

    def to_dict(self) -> dict:
        return {p.key: p.to_dict() for p in self.params}

    def __len__(self) -> int:
        return len(self.params)

    def __repr__(self) -> str:
        return f"SearchSpace({', '.join(f'{p.key}: {p.describe()}' for p in self.params)})"

    def keys(self) -> list[str]:
        return [p.key for p in self.params]

    def suggest(self, trial) -> dict:
        """``{key: value}`` for an Optuna trial."""
        return {p.key: p.suggest(trial) for p in self.params}

    def check(self, model: str, base: dict) -> None:
        """Refuse, with one line, a key that is not a searchable config field and any bound or choice the field
        does not accept (the run config is built with each value in turn, over ``base`` sections)."""
        from ..registry import get_model_entry
        from ..runs import DataConfig, RunSpec
        from ..training import TrainerConfig

        classes = {"model": get_model_entry(model).config_cls, "trainer": TrainerConfig, "data": DataConfig}
        for p in self.params:
            section, _, name = p.key.partition(".")
            if section == "test":
                raise ConfigError(f"search space {p.key}: the test section is not used while tuning (trials never "
                                  "touch the test split); set it in the config")
            if section not in classes or not name:
                raise ConfigError(f"search space: unknown key {p.key!r}; keys look like model.<field>, "
                                  "trainer.<field> or data.standardize")
            cls_ = classes[section]
            fields = [f.name for f in dataclasses.fields(cls_) if f.init]
            if name not in fields:
                shown = fields if section != "data" else list(SEARCHABLE_DATA)
                raise ConfigError(f"search space: unknown key {p.key!r}; valid {section} keys"
                                  f"{' for model ' + repr(model) if section == 'model' else ''}: {', '.join(shown)}")
            if section == "data" and name not in SEARCHABLE_DATA:
                raise ConfigError(f"search space {p.key}: the data keys that choose the samples cannot be searched "
                                  "(trials must be compared on one validation split); searchable: "
                                  f"{', '.join('data.' + k for k in SEARCHABLE_DATA)}")
            hint = typing.get_type_hints(cls_)[name]
            if p.kind in FLOAT_KINDS and not _accepts_float(hint):
                raise ConfigError(f"search space {p.key}: {p.kind} gives fractional numbers but {p.key} takes "
                                  f"{_hint_name(hint)}; use {{int: [low, high]}} or {{choice: [...]}}")
            for value in p.candidates():
                try:
                    RunSpec.from_sections(model, apply_values(base, {p.key: value}))
                except ConfigError as e:
                    why = str(e).splitlines()[0] if str(e) else type(e).__name__
                    raise ConfigError(f"search space {p.key}: the value {value!r} is refused ({why}); fix the "
                                      "range") from None


def _accepts_float(hint) -> bool:
    if hint is float:
        return True
    return float in typing.get_args(hint)


def _hint_name(hint) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return " or ".join(getattr(a, "__name__", str(a)) for a in args)


def apply_values(sections: dict, values: dict) -> dict:
    """A copy of the config ``sections`` with dotted ``values`` set (``{"model.latent_dim": 8}``)."""
    out = json.loads(json.dumps(sections))
    for key, value in values.items():
        set_dotted(out, key, value, what=f"search space key {key}")
    return out


def default_space(model: str) -> SearchSpace:
    """The space ``genlab tune`` searches when none is given, from the model's config fields and capabilities.

    * learning rates (``lr``; GANs ``lr_g`` and ``lr_d``): log-uniform from a tenth to three times the model's
      default (a VAE's 1e-3 gives [1e-4, 3e-3], DCGAN's 2e-4 gives [2e-5, 6e-4]);
    * ``latent_dim``: 4, 8, 16, 32 for models with an encoder (autoencoders, VAEs); 32, 64, 100, 128 for
      generators without one (GANs);
    * Adam's ``beta1`` where the model has it (GANs): 0.0 or 0.5;
    * ``trainer.batch_size``: 32, 64, 128.

    Knobs that change what the objective measures (a VAE's ``beta``, a sparse autoencoder's penalty weights, a
    GAN's loss) are left out: a smaller penalty always lowers ``val/loss``. Search them with a space file
    and an objective they do not enter.
    """
    from ..models.base import capabilities
    from ..registry import get_model_entry

    entry = get_model_entry(model)
    defaults = {f.name: f.default for f in dataclasses.fields(entry.config_cls)
                if f.init and f.default is not dataclasses.MISSING}
    spec: dict = {}
    for name in ("lr", "lr_g", "lr_d"):
        lr = defaults.get(name)
        if isinstance(lr, float) and lr > 0:
            spec[f"model.{name}"] = {"log_uniform": [float(f"{lr / 10:.3g}"), float(f"{lr * 3:.3g}")]}
    if isinstance(defaults.get("latent_dim"), int):
        spec["model.latent_dim"] = {"choice": [4, 8, 16, 32] if capabilities(entry.cls)["has_encoder"]
                                    else [32, 64, 100, 128]}
    if isinstance(defaults.get("beta1"), float):
        spec["model.beta1"] = {"choice": [0.0, 0.5]}
    spec["trainer.batch_size"] = {"choice": [32, 64, 128]}
    return SearchSpace.from_mapping(spec, f"default search space of {model!r}")


def as_space(space: "SearchSpace | dict | str | Path | None", model: str) -> SearchSpace:
    """A :class:`SearchSpace` from what :func:`genlab.tune` accepts: ``None`` (the model's default space), a
    mapping, a YAML/JSON file path or a space."""
    if space is None:
        return default_space(model)
    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, dict):
        return SearchSpace.from_mapping(space)
    if isinstance(space, (str, Path)):
        return SearchSpace.from_file(space)
    raise ConfigError(f"space must be a mapping, a YAML/JSON file path or a SearchSpace, got {type(space).__name__}")
