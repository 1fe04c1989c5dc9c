"""Data sets from the user's files: image folders, ``.npz`` / ``.npy`` arrays and CSV tables.

Images become ``(N, C, H, W)`` float32 in [0, 1] with ``Normalization.pixels()``; tabular data
becomes ``(N, D)`` float32 stored as-is (missing entries as NaN) with ``Normalization(0, 1)``.
Per-column standardisation of tabular data is left to the model / application that uses it.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .dataset import Normalization, TensorDataset

logger = logging.getLogger(__name__)

IMAGE_EXTS = (".png", ".jpg", ".jpeg")
ARRAY_EXTS = (".npz", ".npy")
TABLE_EXTS = (".csv", ".tsv", ".txt")
NPZ_KEYS = (("x", "y"), ("images", "labels"), ("X", "y"), ("X", "Y"), ("data", "labels"))
LABEL_COLUMNS = ("label", "y")
NA_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none", "?", "-nan"})
_GREY_MODES = frozenset({"1", "L", "LA", "F"})
_WIDE_GREY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L"})


def tabular_norm() -> Normalization:
    return Normalization(torch.tensor(0.0), torch.tensor(1.0))


# ---------------------------------------------------------------------------- arrays -> dataset
def labels_from_array(y: np.ndarray, n: int, name: str) -> torch.Tensor:
    """``(N,)`` int64 labels from an integer (or integer-valued float) array."""
    y = np.asarray(y)
    if y.ndim != 1 and not (y.ndim == 2 and 1 in y.shape):
        raise DataError(f"{name}: labels must be a 1-D array, got shape {y.shape}; save one integer per sample")
    y = y.reshape(-1)
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise DataError(f"{name}: labels must be whole numbers (no NaN or fractions); "
                            "save them as integers 0..K-1")
    elif y.dtype.kind not in "iub":
        raise DataError(f"{name}: labels have dtype {y.dtype}, expected integers; save them as integers 0..K-1")
    if y.size and (float(y.max()) >= 2.0 ** 62 or float(y.min()) < 0):
        bad = y.max() if float(y.max()) >= 2.0 ** 62 else y.min()
        raise DataError(f"{name}: label value {bad} is outside 0..K-1; remap the labels to 0..K-1 "
                        "(e.g. numpy.unique(y, return_inverse=True)[1])")
    if len(y) != n:
        raise DataError(f"{name}: {n} samples but {len(y)} labels; give one label per sample")
    return torch.from_numpy(y.astype(np.int64))


def images_from_array(a: np.ndarray, name: str) -> torch.Tensor:
    """``(N, C, H, W)`` float32 in [0, 1] from ``(N, H, W)`` / ``(N, C, H, W)`` / ``(N, H, W, C)`` arrays.

    uint8 (and other integer arrays within 0..255) are divided by 255; float arrays are used as
    they are and must lie in [0, 1]. Channels-last arrays (last axis 1, 3 or 4 and second axis not)
    are transposed.
    """
    if a.ndim == 3:
        a = a[:, None]  # (N, 1, H, W)
    elif a.ndim == 4 and a.shape[-1] in (1, 3, 4) and a.shape[1] not in (1, 3, 4):
        logger.info("%s: channels-last array %s transposed to (N, C, H, W)", name, a.shape)
        a = a.transpose(0, 3, 1, 2)
    if a.ndim != 4:
        raise DataError(f"{name}: image arrays must be (N, H, W) or (N, C, H, W), got shape {a.shape}")
    if a.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(a)).to(torch.float32).div_(255.0)
    if a.dtype.kind in "iu":
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo < 0 or hi > 255:
            raise DataError(f"{name}: integer image values span {lo}..{hi}, expected 0..255; "
                            "save 8-bit pixels or floats in [0, 1]")
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).div_(255.0)
    if a.dtype.kind == "b":
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    if a.dtype.kind != "f":
        raise DataError(f"{name}: image array has dtype {a.dtype}; save uint8 pixels or floats in [0, 1]")
    x = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    if torch.isnan(x).any():
        raise DataError(f"{name}: image data contains NaN; clean or re-export the images "
                        "(NaN is only allowed in tabular data, for imputation)")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise DataError(f"{name}: float image values span [{lo:.4g}, {hi:.4g}], expected [0, 1]; "
                        "rescale them (e.g. divide 8-bit pixels by 255) or save uint8")
    return x


def dataset_from_arrays(x: np.ndarray, y: np.ndarray | None, name: str, columns=None) -> TensorDataset:
    """A :class:`TensorDataset` from a sample array (2-D tabular, 3-D/4-D images), labels and (tables) column
    names."""
    x = np.asarray(x)
    if x.dtype == object:
        raise DataError(f"{name}: object arrays are not supported; save a numeric array")
    if x.ndim >= 1 and x.shape[0] == 0:
        raise DataError(f"{name}: 0 samples (array of shape {x.shape}); save at least one sample")
    if x.ndim == 2:
        if x.dtype.kind not in "iufb":
            raise DataError(f"{name}: tabular array has dtype {x.dtype}; save numbers (NaN for missing)")
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if torch.isinf(xt).any():
            raise DataError(f"{name}: tabular data contains infinite values; replace them by NaN (missing) "
                            "or finite numbers")
        norm = tabular_norm()
    elif x.ndim in (3, 4):
        xt, norm = images_from_array(x, name), Normalization.pixels()
    else:
        raise DataError(f"{name}: arrays must be (N, D) tabular, (N, H, W) or (N, C, H, W) images; "
                        f"got shape {x.shape}")
    yt = None if y is None else labels_from_array(y, len(xt), name)
    return TensorDataset(xt, yt, norm=norm, name=name, columns=columns)


# ---------------------------------------------------------------------------- .npz / .npy
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members / an empty zip
#: deflate expands at most ~1032:1; a member declaring more than this ratio lies about its size
_DEFLATE_MAX_RATIO = 1100


def _resave(name: str) -> str:
    return ("the file is corrupt or not a plain-array .npy/.npz: re-save it with numpy.savez(path, x=samples, "
            "y=labels) or numpy.save(path, samples)")


def _check_npy_header(fp, available: int, name: str, what: str) -> None:
    """Read the ``.npy`` header at ``fp`` and refuse object dtypes and declared sizes beyond ``available``
    bytes, before numpy allocates the array."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(fp)
        else:
            shape, _, dtype = fmt.read_array_header_2_0(fp)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
        raise DataError(f"{name}: {what} has an unreadable array header ({' '.join(str(e).split())[:120]}); "
                        f"{_resave(name)}") from None
    if dtype.hasobject:
        raise DataError(f"{name}: {what} holds Python objects (dtype {dtype}), which genlab does not load (they "
                        "need pickle); save plain numeric arrays with numpy.save / numpy.savez")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > available:
        raise DataError(f"{name}: {what} declares shape {shape} of {dtype} ({nbytes:,} bytes) but the file holds "
                        f"only {available:,} bytes (truncated or a damaged header); {_resave(name)}")


def _check_array_file(path: Path, name: str) -> None:
    """Check the headers of a ``.npy`` or every member of an ``.npz`` before numpy reads the data."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
            if head.startswith(_NPY_MAGIC):
                f.seek(0)
                _check_npy_header(f, os.fstat(f.fileno()).st_size, name, "the array")
                return
    except OSError as e:
        raise DataError(f"{name}: cannot read ({e.strerror or e}); check the path and permissions") from None
    if not head.startswith(_ZIP_MAGICS):
        raise DataError(f"{name}: not a NumPy array file (starts with bytes {head.hex() or 'nothing'}); "
                        f"{_resave(name)}")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if not infos:
                raise DataError(f"{name}: the .npz holds no arrays; save the samples with "
                                f"numpy.savez({path.name!r}, x=samples, y=labels)")
            for info in infos:
                what = f"array {info.filename!r}"
                if not info.filename.endswith(".npy"):
                    raise DataError(f"{name}: member {info.filename!r} is not a .npy array; {_resave(name)}")
                if info.compress_type != zipfile.ZIP_STORED and \
                        info.file_size > _DEFLATE_MAX_RATIO * info.compress_size + 4096:
                    raise DataError(f"{name}: {what} claims {info.file_size:,} bytes from {info.compress_size:,} "
                                    f"compressed (a damaged file or a zip bomb); {_resave(name)}")
                with zf.open(info) as fp:
                    _check_npy_header(fp, info.file_size, name, what)
    except DataError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError, ValueError) as e:
        raise DataError(f"{name}: corrupt or truncated .npz ({' '.join(str(e).split())[:120]}); "
                        f"{_resave(name)}") from None


def load_array_file(path: Path) -> TensorDataset:
    """``.npy`` (samples only) or ``.npz`` (``x``/``y``, ``images``/``labels`` or ``X``/``y``).

    Headers are checked first (object arrays, which need pickle, and sizes beyond what the file holds are
    refused before anything is allocated); every problem is one :class:`DataError` line.
    """
    name = str(path)
    _check_array_file(path, name)
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{name}: cannot read ({' '.join(str(e).split())[:120]}); {_resave(name)}") from None
    if isinstance(loaded, np.ndarray):
        return dataset_from_arrays(loaded, None, name)
    with loaded as npz:
        keys = list(npz.files)

        def read(key: str) -> np.ndarray:
            try:
                return npz[key]
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
                raise DataError(f"{name}: cannot read array {key!r} ({' '.join(str(e).split())[:120]}); "
                                f"{_resave(name)}") from None

        for kx, ky in NPZ_KEYS:
            if kx in keys:
                return dataset_from_arrays(read(kx), read(ky) if ky in keys else None, name)
        if len(keys) == 1:
            return dataset_from_arrays(read(keys[0]), None, name)
    raise DataError(f"{name}: no samples array; found keys {keys[:10]}, expected 'x' (and optional 'y'), "
                    "'images'/'labels' or 'X'/'y'")


# ---------------------------------------------------------------------------- CSV
def _to_float(cell: str) -> float:
    s = cell.strip()
    if s.lower() in NA_TOKENS:
        return math.nan
    return float(s)


def _is_number(cell: str) -> bool:
    try:
        _to_float(cell)
        return True
    except ValueError:
        return False


def csv_delimiter(path: Path, first_line: str) -> str:
    """The delimiter of a CSV file: tab for ``.tsv``; else ``;`` or tab when the first line has them and no
    comma; else a comma."""
    if path.suffix.lower() == ".tsv":
        return "\t"
    if "," not in first_line and ";" in first_line:
        return ";"
    if "," not in first_line and "\t" in first_line:
        return "\t"
    return ","


def load_csv(path: Path) -> TensorDataset:
    """A CSV of numbers as ``(N, D)`` tabular data (float32, stored as-is).

    A header row is detected when any cell of the first row is not a number. Empty cells and
    ``nan`` / ``NA`` / ``N/A`` / ``null`` / ``?`` are kept as NaN (for imputation later). With a
    header, a column named ``label`` or ``y`` (any case) becomes the integer labels and the other names the data
    set's ``columns``. Delimiter:
    tab for ``.tsv``, else ``;`` or tab when the first line has those and no comma, else comma.
    Per-column standardisation is left to the model or application.
    """
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{name}: cannot read as UTF-8 text ({' '.join(str(e).split())}); "
                        "save the table as a UTF-8 CSV") from e
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), None)
    if first is None:
        raise DataError(f"{name}: the file is empty; write one row of numbers per sample")
    delim = csv_delimiter(path, first)
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=delim) if r and any(c.strip() for c in r)]
    header = None
    if not all(_is_number(c) for c in rows[0]):
        header = [c.strip() for c in rows[0]]
        rows = rows[1:]
    if not rows:
        raise DataError(f"{name}: no data rows after the header; write one row of numbers per sample")
    width = len(header) if header is not None else len(rows[0])
    body_start = 2 if header is not None else 1
    data = None
    # fast path: numpy's C parser handles plain numbers and 'nan'
    try:
        data = np.loadtxt(io.StringIO(text), delimiter=delim, dtype=np.float64, ndmin=2,
                          skiprows=1 if header is not None else 0, comments=None)
        if data.shape[1] != width:
            data = None
    except ValueError:
        data = None
    if data is None or len(data) != len(rows):
        data = np.empty((len(rows), width), dtype=np.float64)
        for i, row in enumerate(rows):
            if len(row) != width:
                raise DataError(f"{name}: row {i + body_start} has {len(row)} columns, expected {width}; "
                                "give every row the same number of cells (leave missing ones empty)")
            for j, cell in enumerate(row):
                try:
                    data[i, j] = _to_float(cell)
                except ValueError:
                    col = header[j] if header is not None else str(j + 1)
                    raise DataError(f"{name}: row {i + body_start}, column {col!r} holds {cell.strip()!r}, "
                                    "not a number; use numbers only (empty, NA or nan for missing)") from None
    y = None
    if header is not None:
        lab = [j for j, h in enumerate(header) if h.lower() in LABEL_COLUMNS]
        if len(lab) > 1:
            raise DataError(f"{name}: several label columns {[header[j] for j in lab]}; keep one "
                            f"column named 'label' or 'y'")
        if lab:
            j = lab[0]
            col = data[:, j]
            if np.isnan(col).any():
                raise DataError(f"{name}: label column {header[j]!r} has missing values; give every row a label")
            y = col
            data = np.delete(data, j, axis=1)
            if data.shape[1] == 0:
                raise DataError(f"{name}: only a label column; add feature columns")
    logger.info("%s: %d rows x %d columns%s, %d missing values", name, data.shape[0], data.shape[1],
                " + labels" if y is not None else "", int(np.isnan(data).sum()))
    # the header's names (the label column left out): the estimators check later tables against them
    columns = None if header is None else [h for j, h in enumerate(header) if not (y is not None and j == lab[0])]
    return dataset_from_arrays(data.astype(np.float32), y, name, columns=columns)


# ---------------------------------------------------------------------------- image folders
def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in IMAGE_EXTS and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def load_image_folder(folder: Path) -> TensorDataset:
    """Images (PNG/JPEG) from ``folder``; each sub-folder holding images is a class.

    With class sub-folders the labels follow the sorted sub-folder names (``classes``), and images
    lying directly in ``folder`` are an error. All images must have one size. When every image is
    grey (modes 1/L/LA/I/F) the data has one channel, else three (RGB; alpha is dropped, palettes
    are expanded). 16-bit grey is scaled to 8 bits (divided by 257), so pixels are always stored
    with ``Normalization.pixels()``.
    """
    from PIL import Image, UnidentifiedImageError

    subdirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    class_files = [(d.name, _image_files(d)) for d in subdirs]
    class_files = [(c, fs) for c, fs in class_files if fs]
    top = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if class_files and top:
        raise DataError(f"{folder}: has both images ({top[0].name}, ...) and class sub-folders; move the "
                        "loose images into a class sub-folder or remove the sub-folders")
    if class_files:
        classes = [c for c, _ in class_files]
        files = [f for _, fs in class_files for f in fs]
        labels = np.concatenate([np.full(len(fs), k, dtype=np.int64) for k, (_, fs) in enumerate(class_files)])
    else:
        classes, files, labels = None, top, None
    if not files:
        raise DataError(f"{folder}: no .png/.jpg/.jpeg images found (directly or in class sub-folders)")

    images: list = []
    size = None
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                if size is None:
                    size, first = im.size, f
                elif im.size != size:
                    raise DataError(f"{f}: size {im.size[0]}x{im.size[1]} differs from {size[0]}x{size[1]} "
                                    f"of {first.name}; resize all images to one size")
                if im.mode in _WIDE_GREY_MODES:  # 16-bit grey: 0..65535 -> 0..255 (Pillow would clip)
                    images.append(np.clip(np.rint(np.asarray(im, dtype=np.float64) / 257.0), 0, 255)
                                  .astype(np.uint8))
                else:
                    grey = im.mode in _GREY_MODES
                    images.append(np.asarray(im.convert("L" if grey else "RGB")))  # (H, W) or (H, W, 3)
        except DataError:
            raise
        except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as e:
            raise DataError(f"{f}: corrupt, truncated or unreadable image ({' '.join(str(e).split())}); "
                            "delete or replace the file") from e
    channels = 1 if all(a.ndim == 2 for a in images) else 3
    w, h = size
    out = np.empty((len(images), h, w, channels), dtype=np.uint8)  # (N, H, W, C)
    for i, a in enumerate(images):
        out[i] = a[..., None] if a.ndim == 2 else a  # grey broadcasts to RGB in mixed folders
    x = torch.from_numpy(out).permute(0, 3, 1, 2).to(torch.float32).div_(255.0)  # (N, C, H, W)
    y = None if labels is None else torch.from_numpy(labels)
    logger.info("%s: %d images %dx%dx%d%s", folder, len(files), channels, h, w,
                f", {len(classes)} classes" if classes else "")
    return TensorDataset(x, y, norm=Normalization.pixels(), name=str(folder), classes=classes)


# ---------------------------------------------------------------------------- dispatch
def load_path(path: str | os.PathLike) -> TensorDataset:
    """Load a folder of images, an ``.npz``/``.npy`` array or a CSV table, by what ``path`` is."""
    p = Path(path).expanduser()
    if p.is_dir():
        if p.suffix.lower() in ARRAY_EXTS + TABLE_EXTS:
            raise DataError(f"{p} is a folder, not a {p.suffix} file; point at the file itself (or rename the "
                            "folder if it holds images)")
        return load_image_folder(p)
    if not p.is_file():
        raise DataError(f"{p}: no such file or folder; check the path")
    ext = p.suffix.lower()
    if ext in ARRAY_EXTS:
        return load_array_file(p)
    if ext in TABLE_EXTS:
        return load_csv(p)
    if ext in IMAGE_EXTS:
        raise DataError(f"{p}: a single image is not a data set; point at the folder that holds the images")
    raise DataError(f"{p}: unsupported file type {ext or '(none)'}; use a folder of PNG/JPEG images, "
                    ".npz/.npy arrays or a .csv of numbers")
