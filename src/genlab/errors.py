"""User-facing errors.

Every error a user can cause by bad input (unknown names, wrong shapes, corrupt files, missing
weights) is a :class:`GenlabError`. Its message is one line naming the problem and the fix; the CLI
prints it without a traceback and exits with status 2.
"""
from __future__ import annotations


class GenlabError(Exception):
    """Base class of errors caused by user input; the message is one line with the fix."""


class ConfigError(GenlabError, ValueError):
    """Unknown config key, wrong value type or value outside the valid range."""


class DataError(GenlabError, ValueError):
    """Unreadable, corrupt, missing or ill-shaped data."""


class CheckpointError(GenlabError):
    """A saved model or checkpoint folder that is missing files or is incompatible."""


class MissingFilesError(GenlabError, FileNotFoundError):
    """Data set files or weights that are not present locally (and could not be downloaded)."""


class ConfigWarning(UserWarning):
    """Advice on a model's configuration (e.g. an overcomplete code with no regulariser), given when the model is
    built to be trained. Rebuilding a saved model (``genlab.load``) does not repeat it: the configuration is what
    was trained, and the advice cannot be acted on any more."""
