"""Write generated samples to a PNG grid or an ``.npz`` of arrays, in bounded memory.

Large ``.npz`` outputs are streamed: samples are drawn in chunks and written straight into the zip entries
(``x``: model space, ``raw``: the data's own units), so memory stays at one chunk whatever ``n`` is. The
output is refused up front if it would not fit on the disk; the file appears only when complete.
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from .atomic import follow_umask

#: Most images a PNG output may hold (written as grids of 256, see :func:`genlab.io.images.save_grids`); more
#: go to an ``.npz``.
MAX_GRID = 10_000
#: Largest ``.npz`` output (bytes) one call writes.
MAX_NPZ_BYTES = 16 * 2**30
#: Samples drawn per call of ``model.sample`` when streaming.
CHUNK = 4096


def _labels(wanted: list[int] | None, start: int, stop: int) -> torch.Tensor | None:
    if not wanted:
        return None
    w = torch.tensor(wanted)
    return w[torch.arange(start, stop) % len(w)]


def sample_chunks(model, n: int, *, labels: list[int] | None = None, seed: int = 0, chunk: int = CHUNK,
                  psi: float | None = None):
    """Yield ``(start, samples)`` for ``n`` samples in chunks of at most ``chunk``; labels are cycled.
    One generator seeded by ``seed`` feeds every chunk (``n <= chunk``: exactly ``model.sample(n, ...)``).
    ``psi``: the truncation of style-based generators (``model.sample(..., psi=psi)``; None: not passed)."""
    g = torch.Generator().manual_seed(seed)
    kw = {} if psi is None else {"psi": psi}
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        with torch.no_grad():
            yield start, model.sample(stop - start, labels=_labels(labels, start, stop), generator=g, **kw).cpu()


def check_sample_count(model, n: int, output: str | Path) -> None:
    """Refuse a sample count the output cannot hold (one line with the fix); writes nothing."""
    out = Path(output)
    suffix = out.suffix.lower()
    if n < 1:
        raise ConfigError(f"-n must be >= 1, got {n}")
    if suffix not in (".png", ".npz"):
        raise ConfigError(f"unsupported output {str(output)!r}; use a .png (image grid) or .npz file")
    if out.is_dir():
        raise ConfigError(f"output {out} is a folder; give a file path ending in .png or .npz")
    if suffix == ".png":
        if model.kind != "image":
            raise ConfigError(f"{output}: PNG output needs an image model; use a .npz output for tabular data")
        if n > MAX_GRID:
            raise ConfigError(f"a PNG output holds at most {MAX_GRID:,} images (grids of 256), asked for {n:,}; "
                              "write an .npz instead (-o samples.npz)")
        return
    need = 2 * n * math.prod(model.shape) * 4 + (1 << 20)  # x and raw as float32, plus headers
    if need > MAX_NPZ_BYTES:
        raise ConfigError(f"{n:,} samples need {need / 2**30:.1f} GiB, more than the {MAX_NPZ_BYTES / 2**30:.0f} GiB "
                          "one .npz may hold; ask for fewer samples (-n) and write several files with other --seed")
    parent = out.parent if str(out.parent) else Path(".")
    free = shutil.disk_usage(parent if parent.exists() else Path(".")).free
    if need > 0.9 * free:
        raise ConfigError(f"{n:,} samples need {need / 2**30:.1f} GiB in {out.name} but {parent} has "
                          f"{free / 2**30:.1f} GiB free; ask for fewer samples (-n) or write elsewhere")


def _write_npy_header(f, shape: tuple[int, ...]) -> None:
    np.lib.format.write_array_header_2_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})


def write_samples(model, n: int, output: str | Path, *, labels: list[int] | None = None, seed: int = 0,
                  chunk: int = CHUNK, progress: bool | None = None, psi: float | None = None) -> Path:
    """Draw ``n`` samples and write them to ``output`` (``.png`` grid or ``.npz`` with ``x`` and ``raw``).

    A ``.png`` output of more than 256 images is split into grids of 256 (``NAME-000.png``, ...:
    :func:`genlab.io.images.save_grids`; :func:`genlab.io.images.grid_paths` names them). ``progress`` is the
    switch of :func:`genlab.training.progress.progress_enabled` (a bar over the samples drawn)."""
    from ..data import Normalization
    from ..training.progress import progress_bar
    from .images import save_grids

    check_sample_count(model, n, output)
    out = Path(output)
    if out.suffix.lower() == ".png":
        parts = []
        with progress_bar("sampling", n, progress=progress) as bar:
            for _, s in sample_chunks(model, n, labels=labels, seed=seed, chunk=chunk, psi=psi):
                parts.append(s)
                bar.advance(len(s))
        save_grids(torch.cat(parts), out)
        return out
    norm = Normalization.from_dict(model.data_info["norm"])
    shape = (n, *model.shape)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    raw_fd, raw_tmp = tempfile.mkstemp(prefix=f".{out.name}.raw.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(raw_fd, "w+b") as raw_f, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED,
                                                                 allowZip64=True) as zf:
            _write_npy_header(raw_f, shape)
            with zf.open("x.npy", "w", force_zip64=True) as xf:
                _write_npy_header(xf, shape)
                with progress_bar("sampling", n, progress=progress) as bar:
                    for _, s in sample_chunks(model, n, labels=labels, seed=seed, chunk=chunk, psi=psi):
                        xf.write(s.float().numpy().astype("<f4").tobytes())
                        raw_f.write(norm.to_raw(s.float()).numpy().astype("<f4").tobytes())
                        bar.advance(len(s))
            raw_f.flush()
            raw_f.seek(0)
            with zf.open("raw.npy", "w", force_zip64=True) as rf:
                shutil.copyfileobj(raw_f, rf, 1 << 22)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        follow_umask(tmp)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(raw_tmp)
    return out
