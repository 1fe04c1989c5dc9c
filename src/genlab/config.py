"""Config dataclasses <-> dicts/JSON/YAML, dotted overrides and validation.

Every config is a dataclass whose fields carry type hints. :func:`from_dict` rejects unknown keys
(listing the valid ones) and values of the wrong type, each with a one-line :class:`ConfigError`.
Range checks live in each dataclass's ``__post_init__``. A config class may list keys it no longer has in a
``MOVED_KEYS`` class variable (``{key: where it went}``): such a key (in an old saved config) is dropped with
a warning instead of refused.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import logging

import yaml

from .errors import ConfigError, GenlabError

log = logging.getLogger(__name__)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


#: ``dataclasses.field(metadata={ALLOW_INF: True})`` lets a float field hold +-inf (no field needs it today)
ALLOW_INF = "allow_inf"
_INT64 = 2 ** 63


class _RangeError(ConfigError):
    """A value of the right type but unusable size (non-finite float, int beyond 64 bits)."""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _coerce(value: Any, tp: Any, where: str, allow_inf: bool = False) -> Any:
    """Check ``value`` against type hint ``tp``; return it (ints widen to floats, lists to tuples).

    Floats must be finite (NaN never, +-inf only where ``allow_inf``); ints must fit in 64 bits.
    """
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        range_error = None
        for arg in get_args(tp):
            try:
                return _coerce(value, arg, where, allow_inf)
            except _RangeError as e:
                range_error = e
            except ConfigError:
                continue
        if range_error is not None:
            raise range_error
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {_short(value)}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(f"{where}: expected one of {_type_name(tp)}, got {_short(value)}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {_short(value)}")
        (arg,) = get_args(tp)[:1] or (Any,)
        items = [_coerce(v, arg, f"{where}[{i}]", allow_inf) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {_short(value)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if not -_INT64 <= value < _INT64:
                raise _RangeError(f"{where}: {str(value)[:20]}... is too large for an integer setting; "
                                  "give a value of a sensible size")
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                out = float(value)
            except OverflowError:
                out = math.inf if value > 0 else -math.inf
            if math.isnan(out) or (math.isinf(out) and not allow_inf):
                raise _RangeError(f"{where}: must be a finite number, got {out!r}; give a finite value")
            return out
    elif tp is str:
        if isinstance(value, str):
            return value
    elif dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    else:  # pragma: no cover - a config declared a type we do not handle
        raise TypeError(f"unsupported config type {tp!r} at {where}")
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {_short(value)} ({type(value).__name__})")


def from_dict(cls: type, data: dict | None, where: str = "config") -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    if data is None:
        data = {}
    if dataclasses.is_dataclass(data):
        data = to_dict(data)
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {_short(data)}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    moved = getattr(cls, "MOVED_KEYS", None) or {}
    if any(k in moved and k not in fields for k in data):
        for k in sorted(k for k in data if k in moved and k not in fields):
            log.warning("%s.%s is no longer a key here (%s); ignored", where, k, moved[k])
        data = {k: v for k, v in data.items() if not (k in moved and k not in fields)}
    unknown = sorted(set(data) - set(fields), key=str)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(fields))}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}", bool(fields[k].metadata.get(ALLOW_INF)))
              for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def from_saved(cls: type, data: dict | None, where: str = "config") -> Any:
    """:func:`from_dict` for a config read back from a file genlab wrote (a model or run folder, a checkpoint). A
    key such a file lacks was not a key when it was written; where a later genlab gave that key a default that
    changes what the model does, ``cls.SAVED_DEFAULTS`` holds the value that reproduces the old behaviour, and it
    is used instead of today's default (a ``dcgan`` saved before R1 existed resumes without R1)."""
    legacy = getattr(cls, "SAVED_DEFAULTS", None) or {}
    if isinstance(data, dict) and legacy:
        data = {**{k: v for k, v in legacy.items() if k not in data}, **data}
    return from_dict(cls, data, where)


def to_dict(cfg: Any) -> dict:
    """JSON-able dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def parse_value(text: str) -> Any:
    """Parse an override value with YAML rules (``3`` int, ``1e-3`` float, ``[32,64]`` list, ``null``)."""
    try:
        value = _yaml_load(text)
    except (yaml.YAMLError, RecursionError):
        return text
    except _Refused as e:
        raise ConfigError(f"override value {text[:40]!r}{'...' if len(text) > 40 else ''} is refused: {e}; "
                          "give a plain value (number, string, [list])") from None
    # YAML 1.1 reads "1e-3" as a string; accept it as the float users mean.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` overrides to a nested dict (returns a new dict)."""
    out = json.loads(json.dumps(data))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.sub=value (e.g. trainer.epochs=5)")
        key, text = item.split("=", 1)
        if not all(key.strip().split(".")):
            raise ConfigError(f"override {item!r} has an empty key part; use e.g. model.latent_dim=8")
        set_dotted(out, key.strip(), parse_value(text), what=f"override {item!r}")
    return out


def set_dotted(data: dict, key: str, value: Any, *, what: str) -> None:
    """Set the dotted ``key`` (``model.latent_dim``) of the nested dict ``data`` in place, creating sections as
    needed; a path through a plain value is a one-line ConfigError starting with ``what``."""
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{what}: {p!r} is a value, not a section")
        node = nxt
    node[parts[-1]] = value


#: largest seed genlab accepts anywhere (--seed, random_state, tune's sampler seed): what numpy's, optuna's and
#: torch's generators all take
SEED_MAX = 2**32 - 1


# ---------------------------------------------------------------------------- bounded JSON / YAML reading
#: deepest nesting of lists/mappings genlab accepts in a JSON or YAML file it reads (configs are ~3 deep)
MAX_DEPTH = 100
#: most YAML nodes a config may expand to, an alias counting as the full size of what it repeats
#: (a real run config has well under 1,000; this stops "billion laughs" files before anything walks them)
MAX_YAML_NODES = 100_000
#: largest JSON or YAML file genlab reads into memory as text
MAX_TEXT_BYTES = 64 * 1024 * 1024

# a JSON string, or an unterminated one running to the end: it always matches, so the scan stays linear
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_BRACKETS = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class _Refused(Exception):
    """A bound of the safe readers was hit; the caller turns it into its own GenlabError."""


class _Duplicate(_Refused):
    """A key written twice in one mapping / object (refused without the size limits' explanation)."""


def _json_depth_ok(text: str) -> None:
    """Refuse JSON nested deeper than :data:`MAX_DEPTH` before ``json.loads`` recurses into it (linear time,
    vectorised over 1 MiB chunks)."""
    import numpy as np

    data = np.frombuffer(_JSON_STRING.sub("", text).encode("utf-8", "surrogatepass"), np.uint8)
    steps = np.zeros(256, np.int8)
    for code, step in _BRACKETS.items():
        steps[code] = step
    depth = 0
    for start in range(0, len(data), 1 << 20):
        level = np.cumsum(steps[data[start:start + (1 << 20)]], dtype=np.int64) + depth
        if len(level):
            if int(level.max()) > MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep")
            depth = int(level[-1])


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that bounds nesting depth and the size the document expands to through aliases."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._total = 0
        self._sizes: dict[int, int] = {}

    def _count(self, n: int) -> None:
        self._total += n
        if self._total > MAX_YAML_NODES:
            raise _Refused(f"expands to more than {MAX_YAML_NODES:,} values (aliases repeat what they "
                           "point at; a \"billion laughs\" file?)")

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            anchor = self.peek_event().anchor
            node = super().compose_node(parent, index)
            if id(node) not in self._sizes:
                raise _Refused(f"alias *{anchor} refers to a value that contains it (a recursive structure)")
            self._count(self._sizes[id(node)])
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep")
        before = self._total
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._count(1)
        self._sizes[id(node)] = self._total - before
        return node

    def construct_mapping(self, node, deep=False):
        """A key written twice in one mapping is refused (YAML's loader keeps the last one silently; a merge key's
        entries may still be overridden, as YAML intends)."""
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            if key_node.value in seen:
                raise _Duplicate(f"key {key_node.value!r} appears twice in one mapping (line "
                                 f"{key_node.start_mark.line + 1}); keep one")
            seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _json_pairs(pairs: list) -> dict:
    """``object_pairs_hook`` refusing a key written twice in one JSON object (json keeps the last one silently)."""
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise _Duplicate(f"key {k!r} appears twice in one object; keep one")
        out[k] = v
    return out


def _yaml_load(text: str) -> Any:
    loader = _BoundedLoader(text)
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    _check_plain(data)
    return data


def _check_plain(value: Any, at: str = "") -> None:
    """Refuse YAML values with no JSON meaning (dates, bytes, sets, non-string keys)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise _Refused(f"key {k!r}{' under ' + at if at else ''} is not a string; quote it")
            _check_plain(v, f"{at}.{k}" if at else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_plain(v, f"{at}[{i}]")
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise _Refused(f"{at or 'the document'} holds a YAML {type(value).__name__}, not a number, string, "
                       "list or mapping; quote it")


def parse_text(text: str, fmt: Literal["json", "yaml"], where: str, *, error: type[GenlabError] = ConfigError,
               fix: str = "fix or re-create the file") -> Any:
    """Parse JSON or YAML ``text`` with bounded depth (and, for YAML, bounded alias expansion).

    Every failure is ``error`` with one line: ``"<where> is not valid JSON (<why>); <fix>"``, or
    ``"<where> is refused: <why>; ..."`` past :data:`MAX_DEPTH` / :data:`MAX_YAML_NODES`. YAML values with no
    JSON meaning (dates, binary, sets, non-string keys) are refused too, so the result is plain JSON data.
    """
    try:
        if fmt == "json":
            _json_depth_ok(text)
            return json.loads(text, object_pairs_hook=_json_pairs)
        return _yaml_load(text)
    except _Duplicate as e:
        raise error(f"{where} is refused: {e}") from None
    except _Refused as e:
        limits = f"{MAX_DEPTH} nesting levels" + (f" and {MAX_YAML_NODES:,} values" if fmt == "yaml" else "")
        raise error(f"{where} is refused: {e}; genlab reads at most {limits} from a {fmt.upper()} file: "
                    f"{fix}") from None
    except yaml.YAMLError as e:
        why = " ".join(str(e).split())
    except RecursionError:
        why = "nested too deep"
    except ValueError as e:  # JSONDecodeError, and ints longer than Python's digit limit
        why = " ".join((e.msg if isinstance(e, json.JSONDecodeError) else str(e)).split())
    raise error(f"{where} is not valid {fmt.upper()} ({why[:200]}); {fix}")


def read_text(path: str | Path, *, error: type[GenlabError] = ConfigError, missing: str | None = None,
              fix: str = "fix or re-create the file") -> str:
    """The UTF-8 text of a file of at most :data:`MAX_TEXT_BYTES`, or ``error`` with one line."""
    from .io.paths import require_file

    path = require_file(path, error, missing or f"{path} does not exist; {fix}")
    try:
        size = path.stat().st_size
        if size > MAX_TEXT_BYTES:
            raise error(f"{path} is {size:,} bytes, more than the {MAX_TEXT_BYTES:,} genlab reads as text; "
                        f"it is not a genlab text file: {fix}")
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error(f"{path} is not UTF-8 text (byte {e.start} is 0x{e.object[e.start]:02x}; a binary file?); "
                    f"{fix}") from None
    except OSError as e:
        raise error(f"{path} cannot be read ({e.strerror or e}); check the path and permissions") from None


def read_json(path: str | Path, *, error: type[GenlabError] = ConfigError, missing: str | None = None,
              fix: str = "fix or re-create the file") -> Any:
    """Read a JSON file genlab wrote (or a user's JSON config) with the bounds of :func:`parse_text`."""
    return parse_text(read_text(path, error=error, missing=missing, fix=fix), "json", str(path), error=error,
                      fix=fix)


def read_config_file(path: str | Path) -> dict:
    """Read a YAML or JSON run config into a dict (bounded depth and alias expansion, one-line errors)."""
    path = Path(path)
    fix = "give the path of a .yaml or .json run config"
    text = read_text(path, error=ConfigError,
                     missing=f"config file {str(path)!r} does not exist; {fix}", fix=fix)
    fmt = "json" if path.suffix.lower() == ".json" else "yaml"
    data = parse_text(text, fmt, f"config file {str(path)!r}", error=ConfigError,
                      fix="fix the file (check indentation, quotes and brackets)")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping with sections model/trainer/data")
    return data


def check(cond: bool, message: str) -> None:
    """Raise a ConfigError with ``message`` unless ``cond``; for ``__post_init__`` range checks."""
    if not cond:
        raise ConfigError(message)


__all__ = ["from_dict", "to_dict", "apply_overrides", "parse_value", "read_config_file", "read_json", "read_text",
           "parse_text", "check", "typing"]
