"""``genlab inpaint``: fill missing image regions (``context-encoder``; image mode, beside the tabular
``genlab impute``); filled .npz, PNG grid, PSNR/SSIM on the missing region vs biharmonic."""
from __future__ import annotations

from ._image2image import add_arguments as _add_common
from ._image2image import run_translation

NAME = "inpaint"
HELP = "Inpaint masked image regions (filled .npz, PNG grid, PSNR/SSIM on the hole vs scikit-image biharmonic)."
EXAMPLE = ("example: genlab inpaint mnist5k --degrade --mask box --epochs 5 --out out/inpaint\n"
           "example: genlab inpaint damaged.npz --mask-file holes.npz --run saved_inpainter/ --out out/inpaint")


def add_arguments(p) -> None:
    _add_common(p, "context-encoder", "images with missing regions")
    p.add_argument("--mask", default=None, choices=("box", "free"),
                   help="training masks: centre box (default) or free-form strokes; without --mask-file a box model "
                   "fills the centre box of INPUT; a --run estimator must match")
    p.add_argument("--mask-file", help="masks of INPUT (.npz/.npy or image folder; (N, 1, H, W) or (N, H, W), 1 or "
                   "255 = missing, 0 = known)")


def _read_mask(args, data, est):
    import torch

    from ..errors import DataError
    from ._common import read_data
    if not args.mask_file:
        return est.resolve_mask(data)[1]
    m = read_data(args.mask_file)  # uint8 0/255 -> 0/1; floats as they are
    if m.kind != "image":
        raise DataError(f"--mask-file holds {m.kind} data of shape {m.sample_shape}; give (N, 1, H, W) image masks")
    return torch.as_tensor(m.x)


def run(args) -> int:
    from ..apps.image2image import Inpainter
    from ..data.paired import check_mask
    from ._common import read_data
    if args.mask_file:  # checked before anything is trained
        data = read_data(args.input)
        check_mask(_read_mask(args, data, None), (len(data), 1, *data.sample_shape[1:]), name="--mask-file")
    return run_translation(args, Inpainter, NAME, params={"mask": args.mask}, read_mask=_read_mask)
