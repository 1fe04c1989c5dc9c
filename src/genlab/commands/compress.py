"""``genlab compress``: samples -> a compact ``.glc`` file of quantised latent codes."""
from __future__ import annotations

from pathlib import Path

from ._common import add_model_arguments, add_out_argument, claim_outputs, fitted_estimator, metrics_table as _table, \
    read_data, write_outputs

NAME = "compress"
HELP = ("Compress samples to autoencoder codes entropy-coded under a learned prior (or fixed-length codes) in a "
        ".glc file (the estimator that decodes it is saved beside the file as FILE.compressor/).")
EXAMPLE = ("example: genlab compress digits -o digits.glc --lmbda 100 --set latent_dim=32 --epochs 60\n"
           "example: genlab compress digits -o digits.glc --bits 6 --set latent_dim=16   (fixed-length codes)\n"
           "example: genlab decompress digits.glc -o decoded.png   (finds digits.compressor/ beside the file)\n"
           "example: genlab compress new.npz -o new.glc --run digits.compressor   (reuse a fitted compressor)")


def estimator_dir(glc: str | Path) -> Path:
    """Where compress saves (and decompress looks for) the estimator of ``FILE.glc``: ``FILE.compressor/``."""
    p = Path(glc)
    return p.with_name(p.stem + ".compressor") if p.suffix else p.with_name(p.name + ".compressor")


def add_arguments(p) -> None:
    p.add_argument("input", help="data to compress: images folder, .npz, .npy, .csv or a built-in name")
    add_out_argument(p, "compressed .glc file (e.g. data.glc)", dest="output", required=True)
    p.add_argument("--coder", choices=("ans", "fixed"),
                   help="ans: codes entropy-coded under a learned prior (default); fixed: --bits bits per code "
                        "(the default when --bits is given)")
    p.add_argument("--lmbda", type=float, help="rate-distortion trade-off of the ans coder (default 30; larger: "
                   "bigger files, better quality)")
    p.add_argument("--rd-epochs", type=int, help="epochs of rate-distortion fine-tuning of the ans coder (default 20)")
    p.add_argument("--bits", type=int, help="bits per latent value of the fixed coder, 1..16 (default 8, or the "
                   "--run estimator's)")
    p.add_argument("--report", metavar="DIR", help="also write metrics.json, comparison.png and report.html to DIR")
    add_model_arguments(p, "ae")


def run(args) -> int:
    from rich.console import Console

    from ..apps._base import ESTIMATOR_FILE
    from ..apps.compress import Compressor, check_bits
    from ..errors import ConfigError
    from ..io.atomic import write_bytes_atomic

    out = Path(args.output)
    if out.is_dir():
        raise ConfigError(f"{out} is a folder; give a file path for -o, e.g. {out / 'data.glc'}")
    reuse = bool(args.run and (Path(args.run) / ESTIMATOR_FILE).is_file())
    save_to = None if reuse or args.save else estimator_dir(out)
    claim_outputs(files=(("-o", out),), folders=(("--save", args.save), ("the compressor folder beside -o", save_to),
                                                  ("--report", args.report)))
    if args.bits is not None:  # pure argument checks: before the data is read or anything trained
        check_bits(args.bits)
        if args.coder == "ans":
            raise ConfigError("--bits sets the fixed coder's precision, but --coder ans codes with the learned prior; "
                              "drop --bits (or use the fixed coder: --coder fixed)")
    ds = read_data(args.input)
    params = {k: v for k, v in (("bits", args.bits), ("lmbda", args.lmbda), ("rd_epochs", args.rd_epochs))
              if v is not None}
    coder = args.coder or ("fixed" if args.bits is not None else None)
    if coder == "fixed" and (args.lmbda is not None or args.rd_epochs is not None):
        given = [f for f, v in (("--lmbda", args.lmbda), ("--rd-epochs", args.rd_epochs)) if v is not None]
        raise ConfigError(f"{' and '.join(given)} only tune the ans coder's rate-distortion training, which the fixed "
                          f"coder does not have; drop {'them' if len(given) > 1 else 'it'} (or use --coder ans)")
    if coder is not None:
        params["coder"] = coder
    if reuse and (args.coder or args.lmbda is not None or args.rd_epochs is not None):
        raise ConfigError(f"{args.run} is a fitted estimator: its coder and prior are fixed, so --coder, --lmbda and "
                          "--rd-epochs do not apply; drop them (or compress without --run to fit anew)")
    est = fitted_estimator(Compressor, args, ds, **params)
    if args.bits is not None:
        if est.coder != "fixed":
            raise ConfigError(f"--bits sets the fixed coder's precision, but {args.run or 'this compressor'} codes "
                              f"with {est.coder!r}; drop --bits (or use the fixed coder: --coder fixed)")
        est.set_params(bits=args.bits)
    data = est.compress(ds)
    stats = est.evaluate(ds)
    if save_to is not None:
        est.save(save_to)
    write_bytes_atomic(out, data)
    est_dir = Path(args.run) if reuse else Path(args.save) if args.save else save_to
    metrics = {"input": args.input, "output": str(out), "estimator": str(est_dir), **stats}
    if args.report:
        _report(args.report, est, ds, metrics)
    rows = [("samples", stats["n"]), ("sample shape", tuple(ds.sample_shape)), ("latent dim", stats["latent_dim"]),
            ("coder", stats["coder"]), *([("bits", stats["bits"])] if stats["bits"] is not None else []),
            ("file bytes", stats["file_bytes"]),
            ("bytes / sample", round(stats["bytes_per_sample"], 3)),
            (f"raw {stats['raw_format']} bytes / sample", stats["raw_bytes_per_sample"]),
            ("compression ratio", round(stats["compression_ratio"], 2))]
    rows += [("PSNR (dB)", round(stats["psnr"], 3))] if "psnr" in stats else []
    rows += [("MSE (model space)", stats["mse"]), ("decoder shipped once (bytes)", stats["decoder_bytes"])]
    Console().print(_table(f"genlab compress {args.input}", rows))
    print(f"wrote {out} ({stats['file_bytes']} bytes); decode with: genlab decompress {out}"
          + ("" if est_dir == estimator_dir(out) else f" --run {est_dir}"))
    return 0


def _report(folder, est, ds, metrics: dict) -> None:
    import torch

    from ..io.images import save_grid
    figs = {}
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if est.kind_ == "image":
        x = ds.x[:16]
        rec = torch.from_numpy(est.decompress(est.compress(x)))
        save_grid(torch.cat([x, rec]), out / "comparison.png", nrow=len(x))
        figs["Inputs (top) and decoded (bottom)"] = "comparison.png"
    write_outputs(out, title="genlab compress", metrics=metrics, figures=figs, config=est.get_params())
