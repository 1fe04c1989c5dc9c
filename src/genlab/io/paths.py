"""Where things live on disk: an explicit path, else an environment variable, else a default."""
from __future__ import annotations

import os
from pathlib import Path


def resolve_location(path: str | os.PathLike | None, env_var: str, default: str | os.PathLike) -> Path:
    """``path`` if given, else ``$env_var`` if set and non-empty, else ``default`` (``~`` expanded)."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(env_var)
    return Path(env).expanduser() if env else Path(default).expanduser()


def require_file(path: str | os.PathLike, error: type[Exception], missing: str) -> Path:
    """``path`` when it is a regular file; else ``error`` with ``missing`` (a one-line message for an absent
    file) or, when a folder stands where the file should be, a message saying so."""
    p = Path(path)
    if p.is_dir():
        raise error(f"{p} is a folder, not a file; remove or rename that folder, or point at the file itself")
    if not p.is_file():
        raise error(missing)
    return p
