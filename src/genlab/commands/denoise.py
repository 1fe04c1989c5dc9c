"""``genlab denoise``: remove noise with a denoising autoencoder; denoised arrays, PNG grid and PSNR/SSIM report."""
from __future__ import annotations

import io
from pathlib import Path

from ._common import add_model_arguments, add_out_argument, claim_outputs, fitted_estimator, read_data, print_metrics, \
    write_outputs

NAME = "denoise"
HELP = "Denoise images or tabular rows with a denoising autoencoder (denoised .npz, PNG grid, PSNR/SSIM)."
EXAMPLE = ("example: genlab denoise digits --add-noise --noise gaussian --level 0.3 --out out/denoise\n"
           "example: genlab denoise noisy.npz --run saved_denoiser/ --clean clean.npz --out out/denoise")


def add_arguments(p) -> None:
    p.add_argument("input", help="data to denoise: built-in name, images folder, .npz/.npy or .csv")
    add_out_argument(p, "output folder (denoised.npz, denoise.png, metrics.json, report.html)", required=True)
    p.add_argument("--noise", default=None, help="gaussian, salt_pepper (alias salt-and-pepper) or mask "
                   "(default gaussian; a saved --run estimator keeps its own)")
    p.add_argument("--level", type=float, default=None,
                   help="gaussian sigma (> 0) or corruption probability in (0, 1) (default 0.2; a saved --run "
                   "estimator keeps its own)")
    p.add_argument("--clean", help="clean reference for INPUT (same samples, same order): report PSNR/SSIM")
    p.add_argument("--add-noise", action="store_true",
                   help="INPUT is clean: corrupt it with --noise/--level first and report against it (demo)")
    p.add_argument("--grid", type=int, default=None, help="images: samples shown in the PNG grid (default 16)")
    add_model_arguments(p, "denoising-ae")


def _npz_bytes(**arrays) -> bytes:
    import numpy as np
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: v for k, v in arrays.items() if v is not None})
    return buf.getvalue()


def run(args) -> int:
    import torch
    from ..apps.denoise import Denoiser, check_noise, noise_name
    from ..errors import ConfigError
    from ..io.atomic import write_bytes_atomic
    from ..io.images import save_grid

    claim_outputs(folders=(("--out", args.out), ("--save", args.save)))

    explicit = {k: v for k, v in (("noise", args.noise), ("level", args.level)) if v is not None}
    if "noise" in explicit:
        explicit["noise"] = noise_name(explicit["noise"])  # salt-and-pepper -> salt_pepper
    check_noise(explicit.get("noise", "gaussian"), explicit.get("level", 0.2))
    if args.add_noise and args.clean:
        raise ConfigError("--add-noise makes INPUT the clean reference; drop --clean (or --add-noise)")
    if args.grid is not None and args.grid < 1:
        raise ConfigError(f"--grid must be >= 1, got {args.grid}")
    data = read_data(args.input)
    if args.grid is not None and data.kind != "image":
        raise ConfigError(f"--grid sets the images of denoise.png, and {args.input} holds {data.kind} data (no grid "
                          "is drawn); drop --grid")
    grid_n = 16 if args.grid is None else args.grid
    clean = read_data(args.clean) if args.clean else None
    if clean is not None and (len(clean) != len(data) or clean.sample_shape != data.sample_shape):
        raise ConfigError(f"--clean holds {len(clean)} x {clean.sample_shape} but INPUT holds {len(data)} x "
                          f"{data.sample_shape}; give the clean version of the same samples")
    est = fitted_estimator(Denoiser, args, data, explicit=explicit)  # a saved --run refuses --noise / --level
    if args.add_noise:
        clean, noisy = data, est.add_noise(data, random_state=args.seed)
    else:
        noisy = data.x.numpy() if est.kind_ == "image" else data.norm.to_raw(data.x).numpy()
    denoised = est.transform(noisy)
    trained_on = "--run" if args.run else ("--train" if args.train else "input (clean)" if args.add_noise
                                            else "input (noisy)")
    metrics: dict = {"samples": len(data), "kind": est.kind_, "noise": est.noise, "level": float(est.level),
                     "model": type(est.model_).registry_name, "trained_on": trained_on}
    if clean is not None:
        metrics.update(est.score_report(clean, noisy))
    figures: dict[str, str] = {}
    out = Path(args.out)
    payload = _npz_bytes(x=denoised, noisy=noisy, y=None if data.y is None else data.y.numpy())
    grid = None
    if est.kind_ == "image":
        n = min(grid_n, len(data))
        rows = [torch.as_tensor(noisy[:n]), torch.as_tensor(denoised[:n])]
        if clean is not None:
            rows.append(clean.x[:n])
        grid = torch.cat(rows)
    # everything is computed: write
    write_bytes_atomic(out / "denoised.npz", payload)
    if grid is not None:
        save_grid(grid, out / "denoise.png", nrow=min(grid_n, len(data)))
        figures["rows: noisy, denoised" + (", clean" if clean is not None else "")] = "denoise.png"
    write_outputs(out, title=f"genlab denoise: {args.input}", metrics=metrics, figures=figures,
                  config={"noise": est.noise, "level": est.level, "model": metrics["model"], "input": args.input,
                          "clean": args.clean, "add_noise": args.add_noise})
    print_metrics(metrics, f"denoise -> {out}")
    return 0
