"""Run folders as genlab owns them: a marker that says genlab wrote the folder, an exclusive lock while a
process writes it, the list of what genlab puts there, and clean-up of interrupted temp writes.

Rules this module enforces (and the tests check):

* only a folder holding the marker :data:`MARKER` counts as a genlab run; ``--overwrite`` removes only the
  entries of :data:`KNOWN_ENTRIES` from it and keeps anything else a user put there;
* one writer at a time: :class:`RunLock` takes an exclusive ``flock`` on ``<run>/.genlab.lock`` and writes its
  pid there; a second writer gets a one-line error naming the holder. The kernel drops the lock when the
  holder dies (even by ``kill -9``), so a lock file left by a dead process never blocks;
* temp entries of interrupted atomic writes (``.<name>.<random>.tmp``) are removed when a writer starts
  (it holds the lock, so they cannot belong to a live writer).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import time
from pathlib import Path

from ..errors import ConfigError, GenlabError

log = logging.getLogger(__name__)

MARKER = ".genlab-run"
LOCK_NAME = ".genlab.lock"
#: What genlab writes into a run folder (files and folders); ``--overwrite`` removes these and nothing else.
KNOWN_ENTRIES = ("config.json", "metrics.jsonl", "checkpoints", "model", "samples", "final_metrics.json",
                 "report.html", "reconstructions.png", "samples.png", "interpolation.png", "loss_curves.png",
                 "style_mixing.png", "translations.png",  # io/report.py: stylegan runs, image-to-image runs
                 "tensorboard", "mlruns", MARKER)
_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]+\.tmp$")  # atomic.py: mkstemp/mkdtemp(prefix=".<name>.", suffix=".tmp")


class RunLocked(GenlabError):
    """Another live process holds the run folder's lock."""


def is_genlab_run(path: str | Path) -> bool:
    return (Path(path) / MARKER).is_file()


def write_marker(path: str | Path) -> None:
    from .. import __version__
    from .atomic import write_json_atomic
    write_json_atomic(Path(path) / MARKER, {"genlab_version": __version__,
                                            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def check_out_dir(path: str | Path, *, overwrite: bool) -> None:
    """Refuse an output folder genlab may not write into: a file, a non-empty folder (unless ``overwrite`` and it
    holds a genlab run). Raises :class:`ConfigError` with the fix; writes nothing."""
    from .atomic import file_in_path
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output path {path} is a file, not a folder; give a new folder path with --out")
    blocker = file_in_path(path)
    if blocker is not None:
        raise ConfigError(f"output path {path}: {blocker} is a file, not a folder; give a new folder path with --out")
    if not path.is_dir() or not any(e.name != LOCK_NAME for e in path.iterdir()):
        return
    if not is_genlab_run(path):
        raise ConfigError(f"output folder {path} already exists and holds files genlab did not write (no {MARKER} "
                          "marker), so it is never overwritten; choose another --out")
    if not overwrite:
        raise ConfigError(f"output folder {path} already exists and holds a genlab run; choose another --out, "
                          "resume it with --resume, or replace it with --overwrite")


def clear_run(path: str | Path) -> list[str]:
    """Remove genlab's own entries (:data:`KNOWN_ENTRIES`, temp entries) from a run folder; return the names of
    the entries that were kept (a user's own files). The lock file stays (the caller holds it)."""
    path = Path(path)
    kept = []
    for entry in sorted(path.iterdir()):
        if entry.name == LOCK_NAME:
            continue
        if entry.name in KNOWN_ENTRIES or _TEMP.match(entry.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        else:
            kept.append(entry.name)
    if kept:
        log.warning("%s: kept %d file(s) genlab did not write: %s", path, len(kept), ", ".join(kept[:5]))
    return kept


def remove_stale_temps(path: str | Path) -> int:
    """Delete temp entries left by interrupted atomic writes in the run folder and its own subfolders."""
    path = Path(path)
    n = 0
    for folder in (path, path / "checkpoints", path / "samples"):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            # <name>.old beside a complete <name>: a swap of atomic_dir() that crashed after its second rename
            if _TEMP.match(entry.name) or entry.name.endswith(".old") and (folder / entry.name[:-4]).is_dir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                n += 1
    if n:
        log.info("%s: removed %d temp entries of interrupted writes", path, n)
    return n


class RunLock:
    """Exclusive lock on a run folder for the life of a ``with`` block (creates the folder if needed).

    The lock is an advisory ``flock`` on ``<run>/.genlab.lock``; the file holds the holder's pid, host and start
    time so that the refusal can name it.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.file = self.path / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> "RunLock":
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
            except (ValueError, UnicodeDecodeError):
                holder = {}
            os.close(fd)
            who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('since', '?')}"
            raise RunLocked(f"run folder {self.path} is in use by another genlab process ({who}); wait for it to "
                            "finish or stop it, then retry") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "since": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        import fcntl

        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            os.ftruncate(fd, 0)  # the file stays (unlinking a locked file races with a waiting opener)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
