"""What ``genlab upscale``, ``inpaint``, ``colorize`` and ``translate`` share: arguments, the two input modes,
outputs (``<name>.npz``, a source | output | target PNG grid, ``metrics.json``, ``report.html``) and the metric table.

Input modes (documented in docs/apps/image2image.md):

* ``--degrade``: INPUT holds TARGET images; the command makes their sources with the estimator's transform
  (``downsample:K``, ``mask:box|free``, ``grey``, ``edges``), translates them and reports PSNR/SSIM against INPUT
  (and the baseline's). With neither ``--run`` nor ``--train`` the model is trained on INPUT itself (a demo: the
  report says ``trained_on``).
* ``pairs:PATH`` as INPUT: folder pairs (``A/`` sources, ``B/`` targets): translated and scored against ``B/``.
* otherwise INPUT holds SOURCES, translated as they are (``--run`` or ``--train`` needed); ``--target PATH`` gives
  their targets for the metric table.

Everything is computed and checked before anything is written: a refusal (shape, mask, factor, colour into a grey
model, unmatched folder names) is one line, exit 2, and leaves no file behind. ``--out`` and ``--save`` must be new
or empty folders (:func:`~genlab.commands._common.claim_outputs`, checked first): nothing the user owns is replaced.
"""
from __future__ import annotations

import io
from pathlib import Path

from ._common import add_model_arguments, add_out_argument, build_estimator, check_run_options, claim_outputs, \
    fitted_estimator, print_metrics, read_data, write_outputs


def add_arguments(p, default_model: str, what: str) -> None:
    p.add_argument("input", help=f"{what}: built-in name, images folder, .npz/.npy, or pairs:PATH (folder pairs A/ "
                   "B/); with --degrade the TARGET images, whose sources are made here")
    add_out_argument(p, "output folder (<command>.npz, <command>.png, metrics.json, report.html)", required=True)
    p.add_argument("--degrade", action="store_true",
                   help="INPUT holds target images: make their sources with the transform, translate, report against "
                   "INPUT (trains on INPUT when neither --run nor --train is given)")
    p.add_argument("--target", help="target images for INPUT's sources (same order): report PSNR/SSIM")
    p.add_argument("--grid", type=int, default=16, help="images shown in the PNG grid (default 16)")
    add_model_arguments(p, default_model)


def _npz_bytes(**arrays) -> bytes:
    import numpy as np
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: v for k, v in arrays.items() if v is not None})
    return buf.getvalue()


def _display(img, shape):
    """Images resized (nearest) and expanded to ``shape`` ``(C, H, W)`` for the grid."""
    import torch
    import torch.nn.functional as F
    img = torch.as_tensor(img).float()
    if tuple(img.shape[2:]) != tuple(shape[1:]):
        img = F.interpolate(img, size=tuple(shape[1:]), mode="nearest")
    if img.shape[1] != shape[0]:
        img = img.expand(-1, shape[0], -1, -1) if img.shape[1] == 1 else img.mean(1, keepdim=True)
    return img


def run_translation(args, cls, name: str, *, params: dict, read_mask=None) -> int:
    """The whole command: read, fit or load, translate, check, then write (see the module notes).

    ``read_mask(args, src_ds, est)``: the mask tensor of the inputs (inpainting), or ``None``."""
    import numpy as np
    import torch

    from ..apps._base import ESTIMATOR_FILE
    from ..data.paired import is_pairs_spec
    from ..errors import ConfigError, DataError
    from ..io.atomic import write_bytes_atomic
    from ..io.images import save_grid

    claim_outputs(folders=(("--out", args.out), ("--save", args.save)))
    check_run_options(args)  # a model folder below is used without fitted_estimator
    if args.grid < 1:
        raise ConfigError(f"--grid must be >= 1, got {args.grid}")
    if args.degrade and args.target:
        raise ConfigError("--degrade makes INPUT the targets; drop --target (or --degrade)")
    if args.degrade and is_pairs_spec(args.input):
        raise ConfigError("INPUT is folder pairs (sources and targets already); drop --degrade")
    data = read_data(args.input)
    paired = "src" in data.extras
    if paired and args.target:
        raise ConfigError("INPUT is folder pairs: its targets are B/ already; drop --target")
    if paired and params.get("pair") is not None:
        raise ConfigError(f"INPUT is folder pairs: its sources are A/, no transform makes them, so --pair "
                          f"{params['pair']} does not apply; drop --pair")
    if not (args.degrade or paired or args.run or args.train):
        raise ConfigError(f"INPUT holds sources: give --run (a saved {cls.__name__} or model) or --train (target "
                          "images to train on), or --degrade to treat INPUT as targets")
    target_ds = read_data(args.target) if args.target else None
    given = {k: v for k, v in params.items() if v is not None}  # options set on the command line
    params = given
    fit_data = data if (args.degrade or paired) else None
    if fit_data is None and not args.train and not (Path(args.run) / ESTIMATOR_FILE).is_file():
        est = build_estimator(cls, args, **params).fit(None)  # a saved model folder, used as it is
    else:
        est = fitted_estimator(cls, args, fit_data, **params)
    for k, v in given.items():  # a saved estimator / model must have been fitted for the options given
        have = getattr(est, "factor_", None) if k == "factor" else getattr(est, k, None)
        if have != v:
            raise DataError(f"--{k} {v} but the {cls.__name__} in use was fitted with {k}={have}; drop --{k} or "
                            f"use a model trained for {k}={v}")
    mask = None
    if args.degrade or paired:
        pairs = est.make_pairs(data)
        target, src = pairs.x, pairs.extras["src"]
        mask = pairs.extras.get("mask")
        src_in = src
    else:
        target = None if target_ds is None else target_ds.x
        src_in = data
        src = data.x
    if read_mask is not None and mask is None:
        mask = read_mask(args, data, est)
    out = torch.as_tensor(est.transform(src_in, mask) if mask is not None else est.transform(src_in))
    if out.ndim == 3:
        out = out[:, None]
    trained_on = ("--run" if args.run else "--train" if args.train else "input (targets)" if args.degrade
                  else "input (pairs)")
    metrics: dict = {"samples": len(out), "model": type(est.model_).registry_name, "trained_on": trained_on,
                     "source_shape": list(est.src_shape_), "output_shape": list(out.shape[1:])}
    metrics.update({k: getattr(est, k) for k in ("factor", "method", "mask", "pair") if hasattr(est, k)})
    if paired and "pair" in metrics:  # the sources came with the input, not from the estimator's transform
        metrics["pair"] = "given (folder pairs)"
    if target is not None:
        if tuple(target.shape) != tuple(out.shape):
            raise DataError(f"--target holds {tuple(target.shape)} but the outputs are {tuple(out.shape)}; give the "
                            "targets of the same images, in the same order")
        metrics.update(est.report(out, target, torch.as_tensor(src).float(), mask))
    n = min(args.grid, len(out))
    shape = tuple(out.shape[1:])
    rows = [_display(torch.as_tensor(src[:n]).float(), shape), out[:n]]
    if target is not None:
        rows.append(target[:n])
    grid = torch.cat(rows)
    payload = _npz_bytes(x=out.numpy(), src=np.asarray(torch.as_tensor(src).float().numpy()),
                         target=None if target is None else target.numpy(),
                         mask=None if mask is None else torch.as_tensor(mask).float().numpy(),
                         y=None if data.y is None else data.y.numpy())
    # everything is computed and checked: write
    outdir = Path(args.out)
    write_bytes_atomic(outdir / f"{name}.npz", payload)
    save_grid(grid, outdir / f"{name}.png", nrow=n)
    figures = {"rows: source, output" + (", target" if target is not None else ""): f"{name}.png"}
    write_outputs(outdir, title=f"genlab {name}: {args.input}", metrics=metrics, figures=figures,
                  config={"input": args.input, "target": args.target, "degrade": args.degrade,
                          "model": metrics["model"], **{k: metrics[k] for k in ("factor", "method", "mask", "pair")
                                                        if k in metrics}})
    print_metrics({k: v for k, v in metrics.items() if not isinstance(v, list)}, f"{name} -> {outdir}")
    return 0
