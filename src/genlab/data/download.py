"""Where built-in data sets live on disk, and verified, atomic downloads.

Files of the built-in data sets are looked up under ``<root>/<name>/`` where ``root`` is, in order,
the ``data_dir`` argument (``--data-dir``), the ``GENLAB_DATA`` environment variable, or
``~/.cache/genlab/data``. A missing file is downloaded only when allowed, verified against a
hard-coded SHA-256 and moved into place atomically (temporary file in the same folder, ``fsync``,
``os.replace``), so a failed or interrupted download never leaves a half-written file behind.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..errors import DataError, MissingFilesError
from ..io.paths import resolve_location

logger = logging.getLogger(__name__)

ENV_VAR = "GENLAB_DATA"
DEFAULT_ROOT = Path("~/.cache/genlab/data")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Remote:
    """One downloadable file: its name on disk, where to get it and its SHA-256 (hex)."""

    filename: str
    url: str
    sha256: str


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder that holds one sub-folder per built-in data set (see module docstring)."""
    return resolve_location(data_dir, ENV_VAR, DEFAULT_ROOT)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def download_file(url: str, dest: str | os.PathLike, sha256: str | None, *, timeout: float = 60.0,
                  opener: Callable = urllib.request.urlopen) -> Path:
    """Download ``url`` to ``dest``, verifying its SHA-256, atomically.

    The bytes go to a temporary file in ``dest``'s folder while being hashed; the file is flushed,
    ``fsync``-ed and renamed onto ``dest`` only when the hash matches. On any failure (network
    error, checksum mismatch, interruption) the temporary file is deleted and ``dest`` is left as
    it was.

    Parameters
    ----------
    url : str
        Any URL ``opener`` understands (``urllib`` handles ``http(s)://`` and ``file://``).
    dest : path
        Final location of the file; its folder is created if needed.
    sha256 : str or None
        Expected hex digest; ``None`` skips verification (only for tests and user-supplied URLs).
    timeout : float
        Seconds to wait for the connection and for each read.
    opener : callable
        ``opener(url, timeout=...)`` returning a file-like response; injectable for tests.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    OSError
        The download failed (``urllib.error.URLError`` is an ``OSError``); nothing was written.
    DataError
        The downloaded bytes do not have the expected SHA-256; nothing was written.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        n = 0
        with os.fdopen(fd, "wb") as out:
            with opener(url, timeout=timeout) as resp:
                for chunk in iter(lambda: resp.read(_CHUNK), b""):
                    h.update(chunk)
                    out.write(chunk)
                    n += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        got = h.hexdigest()
        if sha256 is not None and got != sha256.lower():
            raise DataError(f"{dest.name}: downloaded from {url} ({n} bytes) has SHA-256 {got}, expected "
                            f"{sha256}; the download was corrupted or the mirror changed: retry, or fetch "
                            f"the file by hand into {dest.parent}")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dest.parent)
    logger.info("downloaded %s (%d bytes, sha256 ok) to %s", url, n, dest)
    return dest


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable where the platform allows it (not on Windows)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def ensure_files(dataset: str, folder: Path, remotes: Sequence[Remote], *, download: bool | None,
                 present: Callable[[Remote], bool] | None = None,
                 downloader: Callable[..., Path] | None = None, hint: str = "") -> None:
    """Make sure every file of ``remotes`` is in ``folder``, downloading the missing ones if allowed.

    ``download=None`` or ``True`` downloads missing files; ``False`` never touches the network.
    ``present(remote)`` says whether a usable form of the file is already there (default: the file
    exists). ``downloader`` defaults to :func:`download_file` (looked up at call time so tests can
    replace it). When files are still missing, raises :class:`MissingFilesError` with one line
    naming the folder, the files and where to get them; ``hint`` is appended to it.
    """
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder} is a file, not the {dataset} folder; remove or rename it, or point --data-dir / "
                        f"{ENV_VAR} at another folder")
    present = present or (lambda r: (folder / r.filename).is_file())
    missing = [r for r in remotes if not present(r)]
    for r in missing:
        if (folder / r.filename).is_dir():
            raise DataError(f"{folder / r.filename} is a folder, not the {dataset} file {r.filename}; remove or "
                            "rename that folder so the file can be put there")
    if not missing:
        return
    reason = "download disabled"
    if download is None or download:
        downloader = downloader or download_file
        try:
            for r in missing:
                logger.info("%s: downloading %s to %s", dataset, r.url, folder)
                downloader(r.url, folder / r.filename, r.sha256)
            return
        except OSError as e:  # URLError, HTTPError, timeouts, disk full ...
            reason = f"download failed: {_one_line(e)}"
        missing = [r for r in remotes if not present(r)]
    names = ", ".join(r.filename for r in missing)
    urls = ", ".join(sorted({r.url.rsplit("/", 1)[0] + "/" for r in missing}))
    raise MissingFilesError(
        f"{dataset}: missing {names} in {folder} ({reason}); download {'it' if len(missing) == 1 else 'them'} "
        f"from {urls} into that folder, or point --data-dir / {ENV_VAR} at a folder holding {dataset}/"
        + (f"; {hint}" if hint else ""))


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
