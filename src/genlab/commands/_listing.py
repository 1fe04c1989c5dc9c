"""``genlab models`` without importing torch: the registered models read statically.

Importing the model modules registers them (:mod:`genlab.registry`) but imports torch (about 2 s). The listing
reads the same facts from source instead: the ``@register_model(NAME, Config, SUMMARY)`` decorators (and the
``register_model(...)(Class)`` call form) of every module of ``genlab/models/`` that the registry would import,
with :mod:`ast`; and the ``genlab.models`` entry points from :mod:`importlib.metadata`, whose modules are found
on ``sys.path`` (not imported) and parsed the same way. The summary rule is the registry's: the third argument,
else the first line of the class docstring, else the class name.

Whenever the source does not say for sure (a name that is not a string literal, an entry point naming a
callable, a module that registers nothing visible), :func:`static_entries` returns ``None`` and the caller asks
the live registry. A test compares the two listings, so they cannot drift apart.
"""
from __future__ import annotations

import ast
import importlib.machinery
import importlib.metadata
import pkgutil
from dataclasses import dataclass
from pathlib import Path

ENTRY_POINT_GROUP = "genlab.models"  # genlab.registry.ENTRY_POINT_GROUP (kept equal by a test)


@dataclass(frozen=True)
class StaticEntry:
    """What ``genlab models`` shows of one model: name, one-line summary and where it comes from."""

    name: str
    summary: str
    source: str


class _Unsure(Exception):
    """The source does not say for sure; use the live registry."""


def _is_register(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id == "register_model") or \
        (isinstance(func, ast.Attribute) and func.attr == "register_model")


def _const_str(node: ast.expr | None) -> str | None:
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    raise _Unsure


def _registration(call: ast.Call) -> tuple[str, str | None]:
    """``(name, summary or None)`` of a ``register_model(...)`` call."""
    kw = {k.arg: k.value for k in call.keywords}
    name = call.args[0] if call.args else kw.get("name")
    summary = call.args[2] if len(call.args) > 2 else kw.get("summary")
    if name is None:
        raise _Unsure
    return _const_str(name), _const_str(summary)


def _doc_line(cls: ast.ClassDef | None, fallback: str) -> str:
    doc = ast.get_docstring(cls, clean=False) if cls is not None else None
    return ((doc or "").strip().splitlines() or [fallback])[0]


def registrations(source: str, filename: str = "<model module>") -> dict[str, tuple[str, str]]:
    """``{class name: (model name, summary)}`` of the models a module's source registers; raises ``_Unsure``
    when a registration cannot be read statically."""
    tree = ast.parse(source, filename)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    found: dict[str, tuple[str, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for d in node.decorator_list:
                if isinstance(d, ast.Call) and _is_register(d.func):
                    name, summary = _registration(d)
                    found[node.name] = (name, summary or _doc_line(node, node.name))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Call) and _is_register(node.func.func):
            name, summary = _registration(node.func)  # register_model("gan", GANConfig, "...")(GAN)
            target = node.args[0] if node.args else None
            cls_name = target.id if isinstance(target, ast.Name) else None
            if summary is None and cls_name not in classes:
                raise _Unsure
            found[cls_name or name] = (name, summary or _doc_line(classes.get(cls_name), cls_name or name))
    return found


def _builtin_entries() -> list[StaticEntry]:
    import genlab
    folder = Path(genlab.__file__).parent / "models"
    out = []
    for m in sorted(pkgutil.iter_modules([str(folder)]), key=lambda m: m.name):
        if m.name.startswith("_"):
            continue  # import_submodules skips these too
        path = folder / f"{m.name}.py"
        if not path.is_file():
            raise _Unsure
        out += [StaticEntry(n, s, "genlab") for n, s in registrations(path.read_text(encoding="utf-8"),
                                                                      str(path)).values()]
    return out


def _module_file(module: str) -> Path | None:
    """The source file of ``module`` found on ``sys.path`` without importing it (or its packages)."""
    parts = module.split(".")
    path = None
    for i in range(len(parts)):
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[:i + 1]), path)
        if spec is None:
            return None
        path = spec.submodule_search_locations
        if i == len(parts) - 1:
            return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    return None


def _entry_point_entries() -> list[StaticEntry]:
    out = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        d = ep.dist
        if d is None:
            raise _Unsure
        source = f"{d.metadata['Name'] or 'unknown distribution'} {d.version or '?'} (entry point)"
        module, _, attr = ep.value.partition(":")
        file = _module_file(module.strip())
        if file is None:
            raise _Unsure  # the live registry reports the failure
        regs = registrations(file.read_text(encoding="utf-8"), str(file))
        if attr:
            attr = attr.strip()
            if attr in regs:
                regs = {attr: regs[attr]}
            else:
                raise _Unsure  # a callable, or a class registered under the entry point's name
        if not regs:
            raise _Unsure  # registers through imports we do not follow, or is broken: ask the registry
        out += [StaticEntry(n, s, source) for n, s in regs.values()]
    return out


def static_entries() -> list[StaticEntry] | None:
    """Every model ``genlab models`` lists, sorted by name, read without importing any model module (or torch);
    ``None`` when the source does not say for sure (then ask :func:`genlab.registry.list_entries`)."""
    try:
        entries = _builtin_entries() + _entry_point_entries()
    except (_Unsure, OSError, SyntaxError, UnicodeDecodeError, ValueError, ImportError):
        return None
    by_name: dict[str, StaticEntry] = {}
    for e in entries:
        if e.name in by_name:
            return None  # a clash: the live registry decides (and says so)
        by_name[e.name] = e
    return [by_name[n] for n in sorted(by_name)]


def model_entries(*, live: bool = False) -> list[StaticEntry]:
    """The listing of ``genlab models``: static when possible, else (or with ``live``) the live registry."""
    if not live:
        static = static_entries()
        if static is not None:
            return static
    from ..registry import list_entries
    return [StaticEntry(e.name, e.summary, e.source) for e in list_entries()]
