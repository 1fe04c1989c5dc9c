"""``genlab colorize``: grey -> colour (``colorizer``); colour .npz, PNG grid, PSNR/SSIM/colourfulness."""
from __future__ import annotations

from ._image2image import add_arguments as _add_common
from ._image2image import run_translation

NAME = "colorize"
HELP = "Colourise grey images (colour .npz, PNG grid, PSNR/SSIM and colourfulness vs the grey input)."
EXAMPLE = ("example: genlab colorize photos32 --degrade --epochs 5 --out out/colorize\n"
           "example: genlab colorize grey.npz --run saved_colorizer/ --out out/colorize")


def add_arguments(p) -> None:
    _add_common(p, "colorizer", "grey images (1 channel) to colourise")


def run(args) -> int:
    from ..apps.image2image import Colorizer
    return run_translation(args, Colorizer, NAME, params={})
