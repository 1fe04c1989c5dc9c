"""Sequences: ``(N, C, T)`` data sets from files and built-in real series, and time-ordered windows.

Files. A ``.npy``/``.npz`` array with 3 dimensions is read as images and a CSV as a table unless the spec says
it holds series, with the ``series:`` prefix (``genlab train wavenet --data series:levels.csv``,
``load_dataset("series:rows:runs.npy")``):

* ``series:PATH`` (= ``series:columns:PATH``): CSV with one series per column, time running down the rows
  (a header row is optional; columns named ``date``, ``time``, ``year``, ``month``, ``day``, ``week``,
  ``timestamp``, ``index`` or ``t`` are dropped). Gives ``(N=columns, 1, T=rows)``;
* ``series:rows:PATH``: CSV with one series per row (``(N=rows, 1, T=columns)``), no time column;
* ``series:channels:PATH``: CSV whose columns are the channels of ONE multivariate series: ``(1, C, T)``;
* ``.npy`` / ``.npz`` (key ``x``, or the only array): ``(T,)`` is one series, ``(N, T)`` N univariate series,
  ``(N, C, T)`` as it is; the layout word is ignored for arrays (their shape says it).

Values are stored in their units (``Normalization(0, 1)``); every series of a file has the same length; missing or
non-finite values are refused (fill gaps, e.g. by interpolation, before loading).

Built-ins (offline, the data sets bundled inside the ``statsmodels`` wheel, the optional extra
``pip install 'genlab[series]'``; read as CSV without importing statsmodels): ``sunspots``, ``nile``, ``co2``,
``elnino`` (see :func:`genlab.data.list_datasets`).

Windows. :func:`split_windows` cuts each series in time: training, then validation, then test part (the last
steps), and windows of ``window`` steps inside each part only, so no held-out step is ever inside a training window.
"""
from __future__ import annotations

import csv
import importlib.util
import io
import logging
import math
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, MissingFilesError
from .builtins import _only_train, register_builtin
from .dataset import Normalization, TensorDataset
from .files import _is_number, _to_float, csv_delimiter

logger = logging.getLogger(__name__)

#: the prefix that marks a path as holding series, and its layout words
PREFIX = "series:"
LAYOUTS = ("columns", "rows", "channels")
#: header names of time columns, dropped from ``series:`` / ``series:channels:`` CSVs (compared in lower case)
TIME_COLUMNS = frozenset({"date", "time", "year", "month", "day", "week", "timestamp", "index", "t", "datetime"})


# ---------------------------------------------------------------------------- files
def is_series_spec(spec) -> bool:
    """Whether a data spec asks for series (``series:[layout:]PATH``)."""
    return isinstance(spec, str) and spec.strip().lower().startswith(PREFIX)


def parse_series_spec(spec: str) -> tuple[str, Path]:
    """``(layout, path)`` of ``series:[layout:]PATH``; layout defaults to ``columns``."""
    rest = spec.strip()[len(PREFIX):]
    head, sep, tail = rest.partition(":")
    layout = "columns"
    if sep and head.lower() in LAYOUTS:
        layout, rest = head.lower(), tail
    if not rest.strip():
        raise DataError(f"{spec!r}: no path after the prefix; write series:[{'|'.join(LAYOUTS)}:]PATH")
    return layout, Path(rest.strip()).expanduser()


def absolute_spec(spec: str) -> str:
    """A data spec with its path made absolute (``series:LAYOUT:/abs/path`` for series), as run folders record it."""
    if is_series_spec(spec):
        layout, path = parse_series_spec(spec)
        return f"{PREFIX}{layout}:{path.resolve()}"
    return str(Path(spec).expanduser().resolve())


def spec_exists(spec: str) -> bool:
    """Whether the file or folder a data spec points at exists (the path after ``series:[layout:]`` for series)."""
    try:
        return (parse_series_spec(spec)[1] if is_series_spec(spec) else Path(spec)).exists()
    except DataError:
        return False


def load_series(spec: str) -> TensorDataset:
    """Load ``series:[layout:]PATH`` (see the module docstring) as a ``(N, C, T)`` :class:`TensorDataset`."""
    layout, path = parse_series_spec(spec)
    name = str(spec).strip()
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the path after {PREFIX!r}")
    ext = path.suffix.lower()
    if ext in (".npy", ".npz"):
        x = _array_to_series(_read_array(path), name)
    elif ext in (".csv", ".tsv", ".txt"):
        x = _read_csv_series(path, layout, name)
    else:
        raise DataError(f"{path}: unsupported file type {ext or '(none)'} for series; use .npy, .npz or .csv")
    return series_dataset(x, name)


def _read_array(path: Path) -> np.ndarray:
    """The samples array of a ``.npy`` / ``.npz`` (headers checked first, no pickle)."""
    from .files import _check_array_file, _resave
    name = str(path)
    _check_array_file(path, name)
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return loaded
        with loaded as npz:
            keys = list(npz.files)
            if "x" in keys:
                return npz["x"]
            if len(keys) == 1:
                return npz[keys[0]]
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{name}: cannot read ({' '.join(str(e).split())[:120]}); {_resave(name)}") from None
    raise DataError(f"{name}: no series array; found keys {keys[:10]}, expected 'x' or a single array")


def _array_to_series(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "iufb":
        raise DataError(f"{name}: series array has dtype {a.dtype}; save numbers")
    if a.ndim == 1:
        a = a[None, None, :]
    elif a.ndim == 2:
        a = a[:, None, :]
    elif a.ndim != 3:
        raise DataError(f"{name}: series arrays must be (T,), (N, T) or (N, C, T), got shape {a.shape}")
    return a.astype(np.float64)


def _read_csv_series(path: Path, layout: str, name: str) -> np.ndarray:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{name}: cannot read as UTF-8 text ({' '.join(str(e).split())}); save a UTF-8 CSV") from e
    first = next((ln for ln in text.splitlines() if ln.strip()), None)
    if first is None:
        raise DataError(f"{name}: the file is empty; write the series as numbers")
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=csv_delimiter(path, first))
            if r and any(c.strip() for c in r)]
    header = None
    if not all(_is_number(c) for c in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    if not rows:
        raise DataError(f"{name}: no data rows after the header")
    width = len(rows[0])
    keep = list(range(width))
    if header is not None and layout != "rows":
        keep = [j for j in range(len(header)) if header[j].lower() not in TIME_COLUMNS]
        if not keep:
            raise DataError(f"{name}: only time columns ({', '.join(header)}); add the series' value columns")
    data = np.empty((len(rows), len(keep)), dtype=np.float64)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise DataError(f"{name}: row {i + 1 + (header is not None)} has {len(row)} cells, expected {width}; "
                            "give every series the same length (fill gaps first)")
        for jj, j in enumerate(keep):
            try:
                data[i, jj] = _to_float(row[j])
            except ValueError:
                col = header[j] if header is not None else str(j + 1)
                raise DataError(f"{name}: row {i + 1 + (header is not None)}, column {col!r} holds "
                                f"{row[j].strip()!r}, not a number; keep numbers only (time columns may be named "
                                f"{', '.join(sorted(TIME_COLUMNS))})") from None
    if layout == "rows":
        return data[:, None, :]          # (N, 1, T)
    if layout == "channels":
        return data.T[None, :, :]        # (1, C, T)
    return data.T[:, None, :]            # (N, 1, T)


def series_dataset(x: np.ndarray, name: str) -> TensorDataset:
    """A sequence :class:`TensorDataset` from a ``(N, C, T)`` array in raw units (missing/non-finite refused)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or 0 in x.shape:
        raise DataError(f"{name}: series must be a non-empty (N, C, T) array, got shape {x.shape}")
    bad = ~np.isfinite(x)
    if bad.any():
        n, c, t = (int(i[0]) for i in np.nonzero(bad))
        raise DataError(f"{name}: series {n}, channel {c} has a missing or non-finite value at step {t}; fill the "
                        "gaps (e.g. interpolate) before loading")
    if np.abs(x).max() > 1e30:
        raise DataError(f"{name}: values up to {np.abs(x).max():.3g} do not fit float32; rescale the series")
    return TensorDataset(torch.from_numpy(x.astype(np.float32)), norm=Normalization(torch.tensor(0.0),
                                                                                      torch.tensor(1.0)), name=name)


# ---------------------------------------------------------------------------- windows
def split_windows(ds: TensorDataset, *, window: int, stride: int | None = None, val: float = 0.1,
                  test: float = 0.1) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
    """Train / validation / test windows of sequence data, split in time (no leakage).

    Each series of ``T`` steps is cut into a training part, then a validation part of
    ``n_val = max(ceil(val * T), window)`` steps (none when ``val == 0``), then a test part (the last steps) of
    ``n_test = max(ceil(test * T), window)`` steps (none when ``test == 0``): a held-out part holds at least one
    window. Training windows start every ``stride`` steps inside the training part; validation and test windows
    are cut inside their parts every ``window`` steps (they do not overlap, each held-out step is scored at most
    once), the last one ending at the part's end. No window crosses a part boundary, so no validation or test step
    is ever seen in training.

    Parameters
    ----------
    ds : TensorDataset
        ``(N, C, T)`` sequences.
    window : int
        Steps per window (``>= 2``).
    stride : int, optional
        Steps between training windows; default ``max(1, window // 4)``.
    val, test : float
        Fractions of each series' steps for the validation and test parts, in ``[0, 1)``.

    Returns
    -------
    (train, val, test) : TensorDataset
        ``(N_w, C, window)`` windows (empty held-out sets when their fraction is 0), the data set's normalisation
        and name kept; labels, if any, follow their series.

    Raises
    ------
    DataError
        Not sequence data, a window longer than the series or than a part, a bad stride or fraction.
    """
    if ds.kind != "sequence":
        raise DataError(f"{ds.name}: data.window cuts sequences (N, C, T) into windows, but this is {ds.kind} data "
                        f"of shape {ds.sample_shape}; drop data.window (or load the file as series:PATH)")
    if isinstance(window, bool) or not isinstance(window, int) or window < 2:
        raise DataError(f"data.window must be an integer >= 2 (steps per window), got {window!r}")
    if stride is None:
        stride = max(1, window // 4)
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise DataError(f"data.stride must be an integer >= 1 (steps between training windows), got {stride!r}")
    for nm, f in (("val", val), ("test", test)):
        if not 0.0 <= f < 1.0:
            raise DataError(f"data.{nm}={f} is outside [0, 1); use e.g. data.{nm}=0.1")
    T = ds.sample_shape[1]
    if window > T:
        raise DataError(f"{ds.name}: data.window={window} is longer than the series ({T} steps); use a window of "
                        f"at most {T} steps")
    n_val = max(math.ceil(val * T), window) if val > 0 else 0
    n_test = max(math.ceil(test * T), window) if test > 0 else 0
    n_train = T - n_val - n_test
    if n_train < window:
        raise DataError(f"{ds.name}: {T} steps leave {max(n_train, 0)} for training after the validation "
                        f"({n_val}) and test ({n_test}) parts (each at least one window of {window}), fewer than "
                        f"one window; use a smaller data.window, smaller data.val/data.test, or longer series")

    def cut(t0: int, t1: int, step: int) -> TensorDataset:
        starts = list(range(t0, t1 - window + 1, step))
        if starts and starts[-1] + window < t1 and step == window:
            starts.append(t1 - window)   # held-out parts: the last window ends at the part's end
        if not starts:
            return ds.subset(torch.zeros(0, dtype=torch.int64))
        idx = torch.tensor(starts)[:, None] + torch.arange(window)[None, :]     # (W, window)
        xw = ds.x[:, :, idx].permute(0, 2, 1, 3).reshape(-1, ds.x.shape[1], window)   # (N * W, C, window)
        yw = None if ds.y is None else ds.y.repeat_interleave(len(starts))
        return TensorDataset(xw, yw, norm=ds.norm, name=ds.name, classes=ds.classes, allow_empty=True)

    tr = cut(0, n_train, stride)
    va = cut(n_train, n_train + n_val, window)
    te = cut(n_train + n_val, T, window)
    logger.info("%s: %d series of %d steps -> train steps 0..%d (%d windows), val %d steps (%d), test %d steps (%d)",
                ds.name, len(ds), T, n_train, len(tr), n_val, len(va), n_test, len(te))
    return tr, va, te


def time_split(ds: TensorDataset, *, val: float = 0.1, test: float = 0.1, min_part: int = 1
               ) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
    """The whole train / validation / test parts of each series (the parts of :func:`split_windows` with
    ``window=min_part``), as ``(N, C, T_part)`` data sets (no windows): for scoring a held-out part with all the
    context before it, e.g. ``model.step_log_probs(full)[..., t0:]``."""
    T = ds.sample_shape[1]
    n_val = max(math.ceil(val * T), min_part) if val > 0 else 0
    n_test = max(math.ceil(test * T), min_part) if test > 0 else 0
    n_train = T - n_val - n_test
    if n_train < min_part:
        raise DataError(f"{ds.name}: {T} steps leave no training part after val/test; use smaller fractions")
    parts = ((0, n_train), (n_train, n_train + n_val), (n_train + n_val, T))
    return tuple(TensorDataset(ds.x[:, :, a:b] if b > a else ds.x[:0, :, :1], ds.y if b > a else None,
                               norm=ds.norm, name=ds.name, classes=ds.classes, allow_empty=True)
                 for a, b in parts)


# ---------------------------------------------------------------------------- built-in real series
def statsmodels_file(folder: str, filename: str) -> Path:
    """A CSV bundled inside the installed statsmodels wheel (``statsmodels/datasets/<folder>/<filename>``),
    found without importing statsmodels."""
    spec = importlib.util.find_spec("statsmodels")
    if spec is None or not spec.submodule_search_locations:
        raise MissingFilesError(f"{folder}: this real series ships inside statsmodels, which is not installed; "
                                "run `pip install 'genlab[series]'`")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "datasets" / folder / filename
        if p.is_file():
            return p
    raise MissingFilesError(f"{folder}: statsmodels is installed but lacks datasets/{folder}/{filename}; reinstall "
                            "it with `pip install --force-reinstall 'genlab[series]'`")


def _table(path: Path) -> tuple[list[str], np.ndarray]:
    """Header and float rows of a bundled CSV (empty cells -> NaN; the first column may be text dates)."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    header, body = [h.strip() for h in rows[0]], [r for r in rows[1:] if r]
    out = np.full((len(body), len(header)), np.nan)
    for i, r in enumerate(body):
        for j, c in enumerate(r[:len(header)]):
            try:
                out[i, j] = _to_float(c)
            except ValueError:
                pass
    return header, out


def _builtin(name: str, values: np.ndarray) -> TensorDataset:
    x = np.asarray(values, dtype=np.float64)[None, None, :]  # (1, 1, T)
    return series_dataset(x, name)


@register_builtin("sunspots", "yearly sunspot numbers 1700-2008, 1 series x 309 steps, statsmodels", offline=True)
def load_sunspots(data_dir=None, download=None, split: str = "train") -> TensorDataset:
    _only_train("sunspots", split)
    _, t = _table(statsmodels_file("sunspots", "sunspots.csv"))
    return _builtin("sunspots", t[:, 1])


@register_builtin("nile", "yearly Nile flow at Aswan 1871-1970 (1e8 m^3), 1 series x 100 steps, statsmodels",
                  offline=True)
def load_nile(data_dir=None, download=None, split: str = "train") -> TensorDataset:
    _only_train("nile", split)
    _, t = _table(statsmodels_file("nile", "nile.csv"))
    return _builtin("nile", t[:, 1])


@register_builtin("co2", "weekly Mauna Loa CO2 (ppmv) 1958-2001, 1 series x 2284 steps (59 gaps interpolated), "
                  "statsmodels", offline=True)
def load_co2(data_dir=None, download=None, split: str = "train") -> TensorDataset:
    """The 59 missing weeks are filled by linear interpolation between their neighbours (documented)."""
    _only_train("co2", split)
    _, t = _table(statsmodels_file("co2", "co2.csv"))
    v = t[:, 1]
    ok = np.isfinite(v)
    v = np.interp(np.arange(len(v)), np.nonzero(ok)[0], v[ok])
    return _builtin("co2", v)


@register_builtin("elnino", "monthly El Nino sea surface temperature (deg C) 1950-2010, 1 series x 732 steps, "
                  "statsmodels", offline=True)
def load_elnino(data_dir=None, download=None, split: str = "train") -> TensorDataset:
    _only_train("elnino", split)
    _, t = _table(statsmodels_file("elnino", "elnino.csv"))
    return _builtin("elnino", t[:, 1:13].reshape(-1))  # rows are years, columns JAN..DEC: time order
