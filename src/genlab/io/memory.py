"""Whether an allocation a user's sizes ask for can fit: a one-line error before a hostile size (``-n 1e11``) is
allocated, instead of a hang, a kernel kill or an allocator traceback part-way through the work."""
from __future__ import annotations

import os

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
