"""``genlab upscale``: super-resolution by an integer factor (``srgan``); upscaled .npz, PNG grid, PSNR/SSIM vs
bicubic."""
from __future__ import annotations

from ._image2image import add_arguments as _add_common
from ._image2image import run_translation

NAME = "upscale"
HELP = "Upscale images x2/x4 with a super-resolution model (upscaled .npz, PNG grid, PSNR/SSIM vs bicubic)."
EXAMPLE = ("example: genlab upscale mnist5k --degrade --factor 2 --epochs 5 --out out/upscale\n"
           "example: genlab upscale small.npz --run saved_upscaler/ --target large.npz --out out/upscale")


def add_arguments(p) -> None:
    _add_common(p, "srgan", "low-resolution images to upscale")
    p.add_argument("--factor", type=int, default=None, help="upscale factor (2, 3, 4, 8; default 2 when training); "
                   "a --run model must be trained for it")
    p.add_argument("--method", default=None, choices=("area", "bicubic"),
                   help="how training sources are shrunk: block means (area, default) or antialiased bicubic")


def run(args) -> int:
    from ..apps.image2image import Upscaler
    from ..errors import ConfigError
    if args.factor is not None and args.factor < 2:  # before a --run model is compared with it
        raise ConfigError(f"--factor must be an integer >= 2 (the upscale factor), got {args.factor}; e.g. --factor 2")
    return run_translation(args, Upscaler, NAME, params={"factor": args.factor, "method": args.method})
