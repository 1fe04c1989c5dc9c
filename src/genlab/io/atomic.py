"""Atomic writes: temp file/folder, fsync, rename. A crash leaves the previous version intact.

Temp files and folders get the permissions the user's umask gives a normally created file or folder
(``mkstemp``/``mkdtemp`` would leave 0600/0700). JSON is written strictly: non-finite floats become ``null``.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(path: str | Path, *, folder: bool = False) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would have under the current umask."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def json_safe(obj):
    """``obj`` with every NaN/inf float replaced by ``None`` (JSON has no NaN; strict parsers reject it)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def json_dumps(obj, **kw) -> str:
    """``json.dumps`` that writes ``null`` for non-finite floats (never a bare ``NaN``)."""
    return json.dumps(json_safe(obj), allow_nan=False, **kw)


def file_in_path(path: Path) -> Path | None:
    """The first existing non-folder among ``path``'s parents (a path that runs through a file), else ``None``."""
    return next((a for a in reversed(Path(path).parents) if a.exists() and not a.is_dir()), None)


def first_missing(path: Path) -> Path | None:
    """The outermost of ``path``'s folders (``path`` itself included) that does not exist yet: what ``mkdir -p``
    would create, and so what a writer that fails may remove again; ``None`` when ``path`` exists."""
    return next((a for a in (*reversed(Path(path).parents), Path(path)) if not a.exists()), None)


def make_parent(path: Path) -> None:
    """``mkdir -p`` of ``path``'s folder; a path that runs through a file is a one-line ``ConfigError``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        from ..errors import ConfigError
        blocker = file_in_path(path) or path.parent
        raise ConfigError(f"cannot write {path}: {blocker} is a file, not a folder; choose another path") from None


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync, then ``os.replace``."""
    path = Path(path)
    make_parent(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        follow_umask(tmp)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str | Path, obj) -> None:
    write_bytes_atomic(path, (json_dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def check_replaceable(path: Path, owned) -> None:
    """Refuse to replace ``path`` (and its ``<name>.old`` twin) unless each is absent or a folder holding only
    entries named in ``owned`` (exact names or ``fnmatch`` patterns): what the writer itself puts there. A file, or
    a folder with anything else in it (the user's files), is a one-line ``ConfigError`` and nothing is touched."""
    import fnmatch

    from ..errors import ConfigError
    for p in (path, path.with_name(path.name + ".old")):
        if not (p.exists() or p.is_symlink()):
            continue
        if p.is_symlink() or not p.is_dir():
            raise ConfigError(f"{p} exists and is not a folder genlab wrote; choose a new folder path")
        foreign = sorted(e.name for e in p.iterdir() if not any(fnmatch.fnmatchcase(e.name, o) for o in owned))
        if foreign:
            raise ConfigError(f"{p} already exists and holds files genlab did not write there ({foreign[0]}"
                              f"{', ...' if len(foreign) > 1 else ''}); choose a new folder or empty it")


@contextlib.contextmanager
def atomic_dir(path: str | Path, *, owned=None) -> Iterator[Path]:
    """Yield a temp folder beside ``path``; on success it replaces ``path`` (fsynced), on error it is removed.

    The swap renames the old folder to ``<name>.old`` first, renames the new one into place, then deletes
    the old one; :func:`resolve_dir` falls back to ``<name>.old`` if a crash hit between the two renames.
    ``owned`` (names or patterns of what the writer puts in the folder): an existing ``path`` is replaced only
    if it holds nothing else (:func:`check_replaceable`), so a user's folder is never emptied; ``None`` (the
    trainer's own ``checkpoints/last``) replaces whatever is there.
    """
    path = Path(path)
    if owned is not None:
        check_replaceable(path, owned)
    make_parent(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        follow_umask(tmp, folder=True)
        yield tmp
        for f in tmp.iterdir():
            if f.is_file():
                follow_umask(f)  # some writers (safetensors) create 0600 files
                fsync_path(f)
        old = path.with_name(path.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        if old.exists():
            shutil.rmtree(old)
        with contextlib.suppress(OSError):
            fsync_path(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def resolve_dir(path: str | Path) -> Path:
    """``path`` if it exists, else its ``.old`` twin left by an interrupted :func:`atomic_dir` swap."""
    path = Path(path)
    old = path.with_name(path.name + ".old")
    if not path.exists() and old.exists():
        return old
    return path
