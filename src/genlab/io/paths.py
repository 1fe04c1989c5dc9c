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
