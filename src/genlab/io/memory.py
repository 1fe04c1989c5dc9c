"""Whether an allocation a user's sizes ask for can fit: a one-line error before a hostile size (``-n 1e11``) is
allocated, instead of a hang, a kernel kill or an allocator traceback part-way through the work."""
from __future__ import annotations

import os
import re
from contextlib import contextmanager

from ..errors import ConfigError


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (``None`` where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def check_fits(nbytes: int | float, what: str, fix: str) -> None:
    """Refuse (one-line :class:`ConfigError`) ``nbytes`` that exceed this machine's physical memory: ``what`` names
    the thing asked for (``"1,000,000,000 samples of (1, 8, 8)"``), ``fix`` the option to lower."""
    total = physical_memory()
    if total is not None and nbytes > total:
        raise ConfigError(f"{what} need {nbytes / 2**30:,.1f} GiB, more than this machine's {total / 2**30:,.0f} GiB "
                          f"of memory; {fix}")


def first_line(exc: BaseException, empty: str = "not enough memory") -> str:
    """The first line of ``exc``'s message (``empty`` when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else empty


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocator's out-of-memory failure (numpy raises MemoryError; torch's CPU and CUDA
    allocators a RuntimeError whose first line says so)."""
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(k in first_line(exc, "") for k in (
        "can't allocate memory", "not enough memory", "CUDA out of memory", "Unable to allocate"))


def allocation_failure(exc: BaseException) -> str:
    """An out-of-memory failure in a few words: ``"tried to allocate 11,920.9 GiB"`` when the allocator says
    how much, else its first line."""
    msg = first_line(exc)
    asked = re.search(r"allocate (\d+) bytes", msg)
    return f"tried to allocate {int(asked.group(1)) / 2**30:,.1f} GiB" if asked else msg


@contextmanager
def refuse_out_of_memory(what: str, fix: str):
    """Turn an allocator's out-of-memory failure inside the block into one :class:`ConfigError` line naming
    ``what`` was being built and ``fix``; other errors pass unchanged."""
    try:
        yield
    except (MemoryError, RuntimeError) as e:
        if not is_out_of_memory(e):
            raise
        raise ConfigError(f"{what} does not fit in memory ({allocation_failure(e)}); {fix}") from None
