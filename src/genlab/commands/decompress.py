"""``genlab decompress``: a ``.glc`` file -> decoded samples (``.npz`` arrays or a PNG grid)."""
from __future__ import annotations

import io
from pathlib import Path

NAME = "decompress"
HELP = "Decode a .glc file written by genlab compress to an .npz (x, loadable as data) or a PNG grid."
EXAMPLE = ("example: genlab decompress digits.glc -o decoded.npz   (uses digits.compressor/ beside the file)\n"
           "example: genlab decompress data.glc --run my_compressor -o decoded.png --reference data.npz")


def add_arguments(p) -> None:
    from ._common import add_out_argument
    p.add_argument("file", help="compressed file written by genlab compress")
    add_out_argument(p, ".npz arrays (x, loadable as data) or .png image grid (more than 256 images: one grid per "
                     "256, NAME-000.png, ...)", dest="output", required=True)
    p.add_argument("--run", help="the saved Compressor (default: FILE.compressor/ beside the file)")
    p.add_argument("--reference", help="original data (folder, .npz, .csv or built-in name) to report PSNR/MSE")


def run(args) -> int:
    import numpy as np
    import torch
    from rich.console import Console

    from ..apps.compress import Compressor, parse_header
    from ..errors import ConfigError, DataError
    from ..io.atomic import write_bytes_atomic
    from ..io.images import GRID_PAGE, describe_paths, grid_paths, save_grids
    from ._common import claim_outputs, read_data
    from ._common import metrics_table as _table
    from .compress import estimator_dir

    src = Path(args.file)
    out = Path(args.output)
    claim_outputs(files=(("-o", out),))
    if out.suffix.lower() not in (".npz", ".png"):
        raise ConfigError(f"unsupported output {args.output!r}; use a .npz (arrays) or .png (image grid) path")
    est_dir = Path(args.run) if args.run else estimator_dir(src)
    if not args.run and not est_dir.is_dir():
        raise ConfigError(f"no --run given and {est_dir} (saved beside the file by genlab compress) does not "
                          "exist; pass --run DIR with the Compressor that wrote the file")
    try:
        data = src.read_bytes()
    except OSError as e:
        raise DataError(f"{src}: cannot read ({e.strerror or e}); check the path") from None
    est = Compressor.load(est_dir)
    x = est.decompress(data, name=str(src))
    head = parse_header(data, name=str(src))
    png = out.suffix.lower() == ".png"
    if png:
        if est.kind_ != "image":
            raise ConfigError(f"{args.output}: PNG output needs image data; use a .npz output for tabular data")
        claim_outputs(files=[("-o", p) for p in grid_paths(out, len(x), GRID_PAGE)])  # more grids: out-000.png ...
    rows = [("samples", head.n), ("sample shape", head.sample_shape), ("latent dim", head.latent_dim),
            ("coder", head.coder), *([("bits", head.bits)] if head.coder == "fixed" else []),
            ("bytes / sample", round(len(data) / head.n, 3))]
    if args.reference:  # checked and measured before anything is written
        from ..metrics.reconstruction import psnr
        ref = read_data(args.reference)
        if not bool(torch.isfinite(ref.x).all()):
            raise DataError(f"--reference {args.reference} holds NaN or inf values, so PSNR/MSE against it would be "
                            "NaN; give the finite data that was compressed (or drop --reference)")
        if len(ref) != head.n or ref.sample_shape != head.sample_shape:
            raise DataError(f"--reference has {len(ref)} samples of shape {ref.sample_shape} but the file holds "
                            f"{head.n} of {head.sample_shape}; give the data that was compressed")
        xr = torch.from_numpy(x)
        if est.kind_ == "image":
            rows.append(("PSNR (dB)", round(psnr(xr, ref.x), 3)))
            rows.append(("MSE", float(((xr - ref.x) ** 2).mean())))
        else:
            rows.append(("MSE (data units)", float(((xr - ref.norm.to_raw(ref.x)) ** 2).mean())))
    if png:
        written = describe_paths(save_grids(torch.from_numpy(x), out))
    else:
        written = str(out)
        buf = io.BytesIO()
        np.savez(buf, x=x.astype(np.float32))
        write_bytes_atomic(out, buf.getvalue())
    Console().print(_table(f"genlab decompress {src}", rows))
    print(f"wrote {head.n} decoded samples to {written}")
    return 0
