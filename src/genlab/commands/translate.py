"""``genlab translate``: general image-to-image translation (``pix2pix``), e.g. edges -> image or folder pairs."""
from __future__ import annotations

from ._image2image import add_arguments as _add_common
from ._image2image import run_translation

NAME = "translate"
HELP = "Translate images with pix2pix (edges -> image, folder pairs A/ -> B/; .npz, PNG grid, PSNR/SSIM)."
EXAMPLE = ("example: genlab translate mnist5k --degrade --pair edges --epochs 5 --out out/translate\n"
           "example: genlab translate pairs:facades/ --epochs 50 --out out/facades")


def add_arguments(p) -> None:
    _add_common(p, "pix2pix", "source images to translate")
    p.add_argument("--pair", default=None, help="how sources are made from targets: edges (default), "
                   "edges:canny, grey, downsample:K, mask:box, mask:free")


def run(args) -> int:
    from ..apps.image2image import Translator
    from ..data.paired import parse_spec
    if args.pair is not None:
        parse_spec(args.pair)
    return run_translation(args, Translator, NAME, params={"pair": args.pair})
