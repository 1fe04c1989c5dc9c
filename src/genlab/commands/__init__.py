"""Application subcommands of the CLI (``genlab detect``, ``genlab denoise``, ...).

Each public module here defines ``NAME``, ``HELP``, ``EXAMPLE``, ``add_arguments(parser)`` and
``run(args) -> int``; :mod:`genlab.cli` discovers them, so adding a command needs no edit there. The
commands stay thin: they read files, call :mod:`genlab.apps`, write outputs and a short report.
"""
from __future__ import annotations

import importlib
import pkgutil


def command_modules() -> list:
    """The command modules, sorted by command name."""
    mods = [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)
            if not m.name.startswith("_")]
    return sorted(mods, key=lambda m: m.NAME)
