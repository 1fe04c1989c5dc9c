"""Reader for the IDX format of MNIST and Fashion-MNIST (``*-idx3-ubyte[.gz]``, ``*-idx1-ubyte[.gz]``).

Layout: two zero bytes, a dtype code, the number of dimensions ``d``, then ``d`` big-endian uint32
sizes and the data in C order, big-endian. gzip-compressed files are recognised by their magic
bytes, not their name.
"""
from __future__ import annotations

import math
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

# IDX type code -> big-endian numpy dtype
_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"
#: longest IDX header: magic + up to 255 uint32 dims
_MAX_HEADER = 4 + 4 * 255
#: deflate expands at most ~1032:1; a header declaring more data than the compressed file could hold lies
_DEFLATE_MAX_RATIO = 1100


def _gunzip(raw: bytes, name: str, limit: int, *, partial: bool = False) -> bytes:
    """Decompress gzip ``raw`` (one or more members) into at most ``limit`` bytes.

    With ``partial`` the first ``limit`` bytes are returned (to read a header); otherwise more than ``limit``
    bytes raise :class:`DataError`, so a gzip bomb never allocates more than ``limit``.
    """
    out = bytearray()
    data = raw
    try:
        while data[:2] == _GZIP_MAGIC:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += d.decompress(data, limit + 1 - len(out))
            if len(out) > limit:
                if partial:
                    return bytes(out[:limit])
                raise DataError(f"{name}: the gzip data expands to more than {limit:,} bytes, more than its header "
                                f"declares (a corrupt file or a decompression bomb); {_fix(name)}")
            if not d.eof:  # the input ran out (the output limit was not reached): a truncated stream
                if partial:
                    return bytes(out)
                raise EOFError("compressed stream ended before the end-of-stream marker")
            data = d.unused_data
    except zlib.error as e:
        raise DataError(f"{name}: corrupt or truncated gzip data ({' '.join(str(e).split())}); {_fix(name)}") from e
    except EOFError as e:
        raise DataError(f"{name}: corrupt or truncated gzip data ({e}); {_fix(name)}") from e
    if data.strip(b"\x00"):
        raise DataError(f"{name}: corrupt gzip data (trailing garbage after the compressed stream); {_fix(name)}")
    return bytes(out)


def _fix(name: str) -> str:
    return f"delete {name} and download it again" if name != "<bytes>" else "re-create the data"


def _read_source(source: str | os.PathLike | bytes, name: str | None) -> tuple[bytes, str, bool]:
    """``(raw bytes, name, is_gzip)`` of a path or bytes; a ``.gz`` name that is not gzip data is an error."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw, name = bytes(source), name or "<bytes>"
        is_gz_name = False
    else:
        path = Path(source)
        name = name or str(path)
        if path.is_dir():
            raise DataError(f"{name} is a folder, not a file; remove or rename that folder and {_fix(name)}")
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise DataError(f"{name}: cannot read ({e.strerror or e}); check the path and permissions") from e
        is_gz_name = path.suffix == ".gz"
    if raw[:2] == _GZIP_MAGIC:
        return raw, name, True
    if is_gz_name:
        raise DataError(f"{name}: not gzip data although the name ends in .gz (truncated or an HTML error "
                        f"page?); {_fix(name)}")
    return raw, name, False


def read_bytes_maybe_gzip(source: str | os.PathLike | bytes, name: str | None = None, *,
                          max_bytes: int = 2 ** 31) -> tuple[bytes, str]:
    """Raw bytes of ``source`` (a path or bytes), gunzipped when they start with the gzip magic.

    Returns ``(data, name)`` where ``name`` is the file name used in error messages. A file whose
    name ends in ``.gz`` but is not gzip data, whose gzip stream is broken or truncated, or that expands
    to more than ``max_bytes``, raises :class:`DataError`.
    """
    raw, name, gz = _read_source(source, name)
    return (_gunzip(raw, name, max_bytes) if gz else raw), name


def read_idx(source: str | os.PathLike | bytes, *, name: str | None = None) -> np.ndarray:
    """Parse an IDX file (path or bytes, gzip or plain) into a native-endian numpy array.

    Raises
    ------
    DataError
        Bad magic number, unknown type code, zero dimensions, or a length that does not match
        the header (truncated or padded file); the message names the file and says to re-download.
    """
    packed, name, gz = _read_source(source, name)
    raw = _gunzip(packed, name, _MAX_HEADER, partial=True) if gz else packed  # the header only, when gzip
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES or raw[3] == 0:
        raise DataError(f"{name}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'}); {_fix(name)}")
    dtype, ndim = _DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: truncated IDX header ({len(raw)} bytes); {_fix(name)}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + math.prod(dims) * dtype.itemsize  # Python ints: no overflow
    if gz:
        if expected > _DEFLATE_MAX_RATIO * len(packed) + _MAX_HEADER:
            raise DataError(f"{name}: IDX header says {'x'.join(map(str, dims))} ({expected:,} bytes) but the "
                            f"gzip file of {len(packed):,} bytes cannot hold that much (corrupt header); {_fix(name)}")
        raw = _gunzip(packed, name, expected + 1)  # one byte more: "too long" is reported below
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
