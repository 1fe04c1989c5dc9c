"""``genlab impute``: fill missing values (empty CSV cells, NaN, masked pixels) with a mask-aware VAE/AE."""
from __future__ import annotations

import argparse
import csv
import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from ._common import add_model_arguments, add_out_argument, check_run_options, claim_outputs, fitted_estimator, \
    read_data, print_metrics, write_outputs

if TYPE_CHECKING:  # annotations only: numpy and torch are imported when the command runs
    import numpy as np
    import torch

NAME = "impute"
HELP = "Fill missing values (CSV cells, NaN, masked pixels) with a mask-aware VAE or autoencoder."
EXAMPLE = ("example: genlab impute table.csv --out out/impute\n"
           "example: genlab impute images.npz --mask mask.npz --model vae --epochs 30 --out out/inpaint")

TABLE_EXTS = (".csv", ".tsv", ".txt")


def add_arguments(p) -> None:
    p.add_argument("input", help="data with missing values: .csv (empty/NA cells), .npz/.npy (NaN), images "
                   "folder or built-in name (with --mask)")
    add_out_argument(p, "output folder (imputed.csv or imputed.npz, metrics.json, report.html, inpaint.png for "
                     "images)", required=True)
    p.add_argument("--mask", help=".npz/.npy of booleans, True = missing, shaped like the samples array (or one "
                   "sample, applied to all); marks entries missing in addition to NaN")
    p.add_argument("--n-iter", type=int, default=None, help="reconstruct-and-replace rounds (default: the "
                   "Imputer's)")
    p.add_argument("--gaussian-weight", type=float, default=None, metavar="G",
                   help="tables: weight in [0, 1] of the EM Gaussian's conditional mean in the fill, the model's "
                   "fill weighs 1-G (default: the Imputer's, 0.75; 0 = the model alone)")
    p.add_argument("--mask-copies", type=int, default=None, metavar="K",
                   help="images: half-masked copies of each training image added in fit (default: the Imputer's, "
                   "1; 0 = none)")
    add_model_arguments(p, "vae")


# ---------------------------------------------------------------------------------------------- reading
def _load_npz_array(path: Path, keys: tuple[str, ...], what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """First array of ``keys`` (or the only array) in an .npz, or the .npy array; plus labels if present."""
    import numpy as np
    from ..data.files import NPZ_KEYS
    from ..errors import DataError
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: cannot read {what} ({' '.join(str(e).split())}); save plain numeric arrays with "
                        "numpy.savez") from None
    if isinstance(loaded, np.ndarray):
        return loaded, None
    with loaded as npz:
        files = list(npz.files)
        for kx, ky in [(k, None) for k in keys] + list(NPZ_KEYS):
            if kx in files:
                return npz[kx], (npz[ky] if ky in files else None)
        if len(files) == 1:
            return npz[files[0]], None
    raise DataError(f"{path}: no {what} array; found keys {files}, expected one of {list(keys) or ['x']}")


def _read_table_text(path: Path) -> tuple[list[str] | None, list[list[str]], str]:
    """Header (or None), data rows as cell strings and the delimiter, read like :func:`genlab.data.files.load_csv`."""
    from ..data.files import _is_number, csv_delimiter  # the very rules load_csv uses
    text = path.read_text(encoding="utf-8-sig")
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    delim = csv_delimiter(path, first)
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=delim) if r and any(c.strip() for c in r)]
    header = None
    if rows and not all(_is_number(c) for c in rows[0]):
        header, rows = rows[0], rows[1:]
    return header, rows, delim


def _read(spec: str) -> tuple[np.ndarray, torch.Tensor | np.ndarray | None]:
    """Samples (NaN kept, also in image arrays) and labels of a .npz/.npy file, a CSV, a folder or a built-in."""
    path = Path(spec)
    if path.is_file() and path.suffix.lower() in (".npz", ".npy"):
        return _load_npz_array(path, (), "samples")
    ds = read_data(spec)
    return ds.x.numpy(), ds.y


def _apply_mask(x: np.ndarray, spec: str) -> np.ndarray:
    import numpy as np
    from ..errors import DataError
    m, _ = _load_npz_array(Path(spec), ("mask",), "mask")
    if m.dtype.kind not in "biuf" or (m.dtype.kind != "b" and not np.isin(m, (0, 1)).all()):
        raise DataError(f"{spec}: the mask must hold booleans (or 0/1), True = missing")
    m = m.astype(bool)
    if m.shape != x.shape:
        if m.shape == x.shape[1:]:
            m = np.broadcast_to(m, x.shape)
        else:
            raise DataError(f"{spec}: mask shape {m.shape} does not match the data {x.shape} (or one sample "
                            f"{x.shape[1:]}); give a mask shaped like the data")
    if x.dtype == np.uint8 and x.ndim in (3, 4):
        x = x.astype(np.float32) / 255.0
    x = np.array(x, dtype=x.dtype if x.dtype.kind == "f" else np.float64, copy=True)
    x[m] = np.nan
    return x


# ---------------------------------------------------------------------------------------------- command
def run(args) -> int:
    import numpy as np
    import torch
    from ..apps.impute import Imputer, missing_dataset
    from ..data.files import LABEL_COLUMNS
    from ..errors import ConfigError, DataError
    from ..io.atomic import write_bytes_atomic
    from ..io.images import save_grid

    claim_outputs(folders=(("--out", args.out), ("--save", args.save)))

    check_run_options(args)  # before --train is read here
    if args.n_iter is not None and args.n_iter < 1:
        raise ConfigError(f"--n-iter must be >= 1, got {args.n_iter}")
    path = Path(args.input)
    is_table = path.is_file() and path.suffix.lower() in TABLE_EXTS
    if is_table and args.mask:
        raise ConfigError("--mask is for arrays and images; mark missing CSV cells as empty or NA")
    x, y = _read(args.input)
    if args.mask:
        x = _apply_mask(x, args.mask)
    data = missing_dataset(x, y, name=str(args.input))
    fit_data = data
    if args.train:  # read here: --train data may hold NaN pixels too
        fit_data = missing_dataset(*_read(args.train), name=str(args.train))
    if data.kind == "image" and args.gaussian_weight is not None:
        raise ConfigError("--gaussian-weight weighs the Gaussian component of tabular imputation; images have none, "
                          "drop it")
    if data.kind != "image" and args.mask_copies is not None:
        raise ConfigError("--mask-copies adds half-masked copies of training images; drop it for tables")
    params = {k: v for k, v in (("n_iter", args.n_iter), ("gaussian_weight", args.gaussian_weight)) if v is not None}
    est = fitted_estimator(Imputer, argparse.Namespace(**{**vars(args), "train": None}), fit_data,
                           explicit={} if args.mask_copies is None else {"mask_copies": args.mask_copies}, **params)
    est.set_params(**params)  # read when filling: a saved estimator (--run) takes them too
    filled = est.transform(x)
    hole = np.isnan(x) if x.dtype.kind == "f" else np.zeros(x.shape, bool)  # (N, ...) in the input's layout
    n = len(filled)
    metrics = {"samples": n, "kind": est.kind_, "sample_shape": list(est.input_shape_),
               "missing_entries": int(hole.sum()), "filled_entries": int((hole & ~np.isnan(filled)).sum()),
               "missing_fraction": float(hole.mean()) if hole.size else 0.0,
               "samples_with_missing": int(hole.reshape(n, -1).any(1).sum()),
               "model": type(est.model_).registry_name, "n_iter": int(est.n_iter)}
    out = Path(args.out)
    figures: dict[str, str] = {}
    if is_table:
        header, rows, delim = _read_table_text(path)
        if len(rows) != n:
            raise DataError(f"{path}: read {len(rows)} text rows but {n} samples; re-save the table as plain CSV")
        label_cols = [j for j, h in enumerate(header or []) if h.strip().lower() in LABEL_COLUMNS]
        cols = [j for j in range(len(rows[0])) if j not in label_cols]  # feature j -> CSV column cols[j]
        for i, j in zip(*np.nonzero(hole)):
            rows[i][cols[j]] = format(float(filled[i, j]), ".9g")
        buf = io.StringIO()
        w = csv.writer(buf, delimiter=delim, lineterminator="\n")
        if header is not None:
            w.writerow(header)
        w.writerows(rows)
        files = {"imputed.csv": buf.getvalue().encode()}
    else:
        payload = io.BytesIO()
        extra = {} if y is None else {"y": np.asarray(y)}
        np.savez_compressed(payload, x=filled, mask=hole, **extra)
        files = {"imputed.npz": payload.getvalue()}
    grid = None
    if est.kind_ == "image":
        k = min(16, n)
        order = np.argsort(~hole.reshape(n, -1).any(1), kind="stable")[:k]  # samples with holes first
        shown = data.x[torch.as_tensor(order)]
        grid = torch.cat([shown.nan_to_num(0.5), missing_dataset(filled[order], name="filled").x])
    # everything is computed: write
    for name, blob in files.items():
        write_bytes_atomic(out / name, blob)
    if grid is not None:
        save_grid(grid, out / "inpaint.png", nrow=min(16, n))
        figures["rows: input (missing pixels grey), imputed"] = "inpaint.png"
    write_outputs(out, title=f"genlab impute: {args.input}", metrics=metrics, figures=figures,
                  config={"model": metrics["model"], "n_iter": metrics["n_iter"], "input": args.input,
                          "mask": args.mask, "output": next(iter(files))})
    print_metrics(metrics, f"impute -> {out / next(iter(files))}")
    return 0
