"""Reader for the IDX format of MNIST and Fashion-MNIST (``*-idx3-ubyte[.gz]``, ``*-idx1-ubyte[.gz]``).

Layout: two zero bytes, a dtype code, the number of dimensions ``d``, then ``d`` big-endian uint32
sizes and the data in C order, big-endian. gzip-compressed files are recognised by their magic
bytes, not their name.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

# IDX type code -> big-endian numpy dtype
_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"


def _fix(name: str) -> str:
    return f"delete {name} and download it again" if name != "<bytes>" else "re-create the data"


def read_bytes_maybe_gzip(source: str | os.PathLike | bytes, name: str | None = None) -> tuple[bytes, str]:
    """Raw bytes of ``source`` (a path or bytes), gunzipped when they start with the gzip magic.

    Returns ``(data, name)`` where ``name`` is the file name used in error messages. A file whose
    name ends in ``.gz`` but is not gzip data, or whose gzip stream is broken or truncated, raises
    :class:`DataError`.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw, name = bytes(source), name or "<bytes>"
        is_gz_name = False
    else:
        path = Path(source)
        name = name or str(path)
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise DataError(f"{name}: cannot read ({e.strerror or e}); check the path and permissions") from e
        is_gz_name = path.suffix == ".gz"
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{name}: corrupt or truncated gzip data ({' '.join(str(e).split())}); "
                            f"{_fix(name)}") from e
    elif is_gz_name:
        raise DataError(f"{name}: not gzip data although the name ends in .gz (truncated or an HTML error "
                        f"page?); {_fix(name)}")
    return raw, name


def read_idx(source: str | os.PathLike | bytes, *, name: str | None = None) -> np.ndarray:
    """Parse an IDX file (path or bytes, gzip or plain) into a native-endian numpy array.

    Raises
    ------
    DataError
        Bad magic number, unknown type code, zero dimensions, or a length that does not match
        the header (truncated or padded file); the message names the file and says to re-download.
    """
    raw, name = read_bytes_maybe_gzip(source, name)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES or raw[3] == 0:
        raise DataError(f"{name}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'}); {_fix(name)}")
    dtype, ndim = _DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: truncated IDX header ({len(raw)} bytes); {_fix(name)}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "too long"
        raise DataError(f"{name}: IDX file {what}: header says {'x'.join(map(str, dims))} "
                        f"({expected} bytes) but it has {len(raw)} bytes; {_fix(name)}")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=False) if dtype.itemsize > 1 else arr


def read_idx_pair(images: str | os.PathLike | bytes,
                  labels: str | os.PathLike | bytes) -> tuple[np.ndarray, np.ndarray]:
    """Read an IDX image file ``(N, H, W)`` and its label file ``(N,)``, checking they agree.

    Returns uint8 images and int64 labels.
    """
    x = read_idx(images)
    y = read_idx(labels)
    xname = str(images) if not isinstance(images, (bytes, bytearray, memoryview)) else "<bytes>"
    yname = str(labels) if not isinstance(labels, (bytes, bytearray, memoryview)) else "<bytes>"
    if x.ndim != 3 or x.dtype != np.uint8:
        raise DataError(f"{xname}: expected uint8 images of shape (N, H, W), got {x.dtype} {x.shape}; "
                        f"check it is an images file (idx3-ubyte), or {_fix(xname)}")
    if y.ndim != 1:
        raise DataError(f"{yname}: expected a 1-D labels file (idx1-ubyte), got shape {y.shape}; "
                        f"check the file names, or {_fix(yname)}")
    if len(y) != len(x):
        raise DataError(f"{yname}: {len(y)} labels for {len(x)} images in {Path(xname).name}; "
                        f"the two files do not belong together: {_fix(yname)}")
    return x, y.astype(np.int64)
