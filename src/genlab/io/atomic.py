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


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temp folder beside ``path``; on success it replaces ``path`` (fsynced), on error it is removed.

    The swap renames the old folder to ``<name>.old`` first, renames the new one into place, then deletes
    the old one; :func:`resolve_dir` falls back to ``<name>.old`` if a crash hit between the two renames.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
