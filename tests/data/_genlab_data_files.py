"""Helpers that write small data files in the formats genlab.data reads (imported by the tests)."""
from __future__ import annotations

import gzip
import io
import struct
import tarfile
from pathlib import Path

import numpy as np

_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
          np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr)
    head = bytes([0, 0, _CODES[arr.dtype], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray, *, gz: bool | None = None) -> Path:
    data = idx_bytes(arr)
    if gz if gz is not None else path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def cifar_bytes(x: np.ndarray, y: np.ndarray) -> bytes:
    """Records of 1 label byte + 3072 pixel bytes from (N, 3, 32, 32) uint8 and (N,) labels."""
    rec = np.concatenate([np.asarray(y, np.uint8)[:, None], x.reshape(len(x), -1)], axis=1)
    return rec.astype(np.uint8).tobytes()


def make_cifar(n_per_batch: int = 4, seed: int = 0):
    """Six small batches: {file name: (x, y)} with distinct content per batch."""
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    return {nm: (rng.integers(0, 256, (n_per_batch, 3, 32, 32), dtype=np.uint8),
                 rng.integers(0, 10, n_per_batch)) for nm in names}


def write_cifar_tar(path: Path, batches: dict) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for nm, (x, y) in batches.items():
            data = cifar_bytes(x, y)
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{nm}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


