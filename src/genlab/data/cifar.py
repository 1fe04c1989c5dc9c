"""Reader for the *binary* version of CIFAR-10 (``cifar-10-binary.tar.gz``; no pickle).

Each ``data_batch_{1..5}.bin`` / ``test_batch.bin`` is a sequence of 3,073-byte records: one label
byte (0-9) followed by 3,072 pixel bytes, the red, green then blue 32x32 planes in row-major order,
i.e. exactly one ``(3, 32, 32)`` image in C order.
"""
from __future__ import annotations

import os
import tarfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

RECORD = 1 + 3 * 32 * 32
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
ARCHIVE = "cifar-10-binary.tar.gz"
EXTRACTED = "cifar-10-batches-bin"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def read_cifar_bin(source: str | os.PathLike | bytes, *, name: str | None = None,
                   num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Parse one CIFAR binary batch into ``(N, 3, 32, 32)`` uint8 images and ``(N,)`` int64 labels.

    Raises
    ------
    DataError
        Empty file, a length that is not a multiple of 3,073 bytes (truncated), or a label byte
        outside ``[0, num_classes)`` (not a CIFAR-10 batch); the message names the file.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw, name = bytes(source), name or "<bytes>"
    else:
        name = name or str(source)
        try:
            raw = Path(source).read_bytes()
        except OSError as e:
            raise DataError(f"{name}: cannot read ({e.strerror or e}); check the path and permissions") from e
    if len(raw) == 0 or len(raw) % RECORD:
        raise DataError(f"{name}: {len(raw)} bytes is not a whole number of {RECORD}-byte CIFAR records "
                        f"(truncated or not a CIFAR binary batch); delete it and download "
                        f"{ARCHIVE} again")
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD)  # (N, 3073)
    y = rec[:, 0].astype(np.int64)
    if y.max() >= num_classes:
        bad = int(np.argmax(y >= num_classes))
        raise DataError(f"{name}: record {bad} has label {int(y[bad])}, outside 0-{num_classes - 1} (corrupt, "
                        f"or the CIFAR-100 layout); delete it and download {ARCHIVE} again")
    x = rec[:, 1:].reshape(-1, 3, 32, 32)  # (N, 3, 32, 32), a view of raw
    return x, y


def _read_members_from_tar(archive: Path, wanted: tuple[str, ...]) -> dict[str, bytes]:
    """Bytes of the members of ``archive`` whose base names are in ``wanted`` (nothing is extracted)."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if base in wanted and member.isfile() and base not in found:
                    f = tar.extractfile(member)
                    found[base] = f.read() if f is not None else b""
                    if len(found) == len(wanted):
                        break
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{archive}: corrupt or truncated archive ({' '.join(str(e).split())}); delete it and "
                        f"download {ARCHIVE} again") from e
    missing = [w for w in wanted if w not in found]
    if missing:
        raise DataError(f"{archive}: archive lacks {', '.join(missing)} (incomplete or not the binary CIFAR-10 "
                        f"version); delete it and download {ARCHIVE} again")
    return found


def find_batches(folder: Path, split: str) -> dict[str, Path] | Path | None:
    """Where the batches of ``split`` are in ``folder``: a dict of extracted ``.bin`` paths (in
    ``folder`` or ``folder/cifar-10-batches-bin``), the archive path, or ``None``."""
    wanted = TRAIN_FILES if split == "train" else TEST_FILES
    for sub in (folder / EXTRACTED, folder):
        paths = {w: sub / w for w in wanted}
        if all(p.is_file() for p in paths.values()):
            return paths
    archive = folder / ARCHIVE
    return archive if archive.is_file() else None


def load_cifar10_arrays(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 3, 32, 32)`` uint8 images and ``(N,)`` labels of ``split`` from ``folder``.

    Reads the extracted ``.bin`` files when present, else straight from the ``.tar.gz``.
    """
    wanted = TRAIN_FILES if split == "train" else TEST_FILES
    where = find_batches(folder, split)
    if where is None:
        raise DataError(f"cifar10: no {ARCHIVE} or {', '.join(wanted)} in {folder}")
    if isinstance(where, dict):
        parts = [read_cifar_bin(where[w]) for w in wanted]
    else:
        blobs = _read_members_from_tar(where, wanted)
        parts = [read_cifar_bin(blobs[w], name=f"{where}:{w}") for w in wanted]
    x = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    y = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    return x, y
