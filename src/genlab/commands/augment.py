"""``genlab augment``: train a conditional generator on labelled data and write N new samples per class."""
from __future__ import annotations

from pathlib import Path

from ._common import add_model_arguments, add_out_argument, claim_outputs, fitted_estimator, read_data, write_outputs

NAME = "augment"
HELP = ("Generate N labelled samples per class from a conditional VAE/GAN; writes OUT/generated/ (class "
        "sub-folders of PNGs) or OUT/generated.npz, a sample grid and a report.")
EXAMPLE = ("example: genlab augment mnist5k --out aug -n 100 --epochs 100\n"
           "example: genlab augment my_images/ --out aug -n 50 --model acgan --format npz --include-real\n"
           "example: genlab augment mnist5k --out aug -n 100 --filter classifier --oversample 4   (keep the samples "
           "a classifier trained on the real ones is surest of)")


def add_arguments(p) -> None:
    p.add_argument("input", help="labelled data: images folder with class sub-folders, .npz with y, .csv with a "
                   "label column, or a built-in name")
    add_out_argument(p, "output folder (generated/ or generated.npz, samples.png, metrics.json, report.html)",
                     required=True)
    p.add_argument("-n", type=int, default=None, help="samples to generate per class (default 100)")
    p.add_argument("--balance", action="store_true", help="instead of -n, top every class up to the largest one")
    p.add_argument("--classes", help="comma-separated labels to generate (default all)")
    p.add_argument("--format", choices=("folder", "npz"), default="folder",
                   help="folder: OUT/generated/<class>/*.png (images only); npz: OUT/generated.npz (default folder)")
    p.add_argument("--include-real", action="store_true", help="write the real samples too (real + generated)")
    p.add_argument("--filter", choices=("none", "classifier"),
                   help="classifier: draw --oversample x as many and keep those a logistic regression trained on the "
                        "real samples is surest belong to their class (default none)")
    p.add_argument("--oversample", type=float, help="draws per kept sample with --filter classifier (default 4)")
    p.add_argument("--sampling", choices=("auto", "neighbourhood", "prior"),
                   help="neighbourhood: decode perturbed posteriors of the real samples (cvae); prior: z ~ N(0, I); "
                        "auto: neighbourhood for a cvae (default auto)")
    p.add_argument("--shift-copies", type=_copies, metavar="N|auto",
                   help="also train the generator on N copies of each image shifted by up to --max-shift px; auto: "
                        "every such shift (8) for a cvae on images, 0 otherwise (default auto; 0: real images only)")
    p.add_argument("--max-shift", type=int, help="largest shift in pixels of --shift-copies (default 1)")
    add_model_arguments(p, "cvae")


def _copies(text: str):
    """``--shift-copies``: ``auto`` or an integer."""
    import argparse
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {text!r}") from None


def run(args) -> int:
    import numpy as np
    import torch
    from rich.console import Console
    from ..apps.augment import Augmenter
    from ..errors import ConfigError, DataError
    from ..io.images import save_grid
    from ._common import metrics_table as _table

    claim_outputs(folders=(("--out", args.out), ("--save", args.save)))

    if args.balance and args.n is not None:
        raise ConfigError("--balance tops every class up to the largest one instead of -n; give one of them")
    if args.n is not None and args.n < 0:
        raise ConfigError(f"-n must be >= 0, got {args.n}")
    if args.oversample is not None and args.filter != "classifier":
        raise ConfigError("--oversample sets the draws per kept sample of --filter classifier; add --filter classifier "
                          "(or drop --oversample)")
    if args.max_shift is not None and args.shift_copies == 0:
        raise ConfigError("--max-shift sets the shifts of --shift-copies, and --shift-copies 0 makes none; drop one of "
                          "them")
    ds = read_data(args.input)
    if ds.y is None:
        raise DataError(f"{args.input}: no class labels; give class sub-folders, an .npz with 'y' or a CSV "
                        "'label' column")
    if args.format == "folder" and ds.kind != "image":
        raise ConfigError("--format folder writes PNG images; use --format npz for tabular data")
    n = "balance" if args.balance else 100 if args.n is None else args.n
    extra = {}
    if args.filter is not None:
        extra["filter"] = None if args.filter == "none" else args.filter
    if args.oversample is not None:
        extra["oversample"] = args.oversample
    if args.sampling is not None:
        extra["sampling"] = args.sampling
    if args.shift_copies is not None:
        extra["shift_copies"] = args.shift_copies
    if args.max_shift is not None:
        extra["max_shift"] = args.max_shift
    est = fitted_estimator(Augmenter, args, ds, explicit=extra, n_per_class=n)
    est._check_shape(ds)  # a saved estimator (--run) and the input (--include-real, the classes) must agree
    classes = None
    if args.classes:
        names = [c.strip() for c in args.classes.split(",") if c.strip()]
        try:
            classes = [int(c) for c in names] if est.classes_.dtype.kind in "iu" else names
        except ValueError:
            raise ConfigError(f"--classes must be comma-separated integer labels, got {args.classes!r}") from None
        if not classes or len(set(classes)) < len(classes):
            raise ConfigError(f"--classes must name each class once, got {args.classes!r}; e.g. --classes 1,7")
    x_new, y_new = est.generate(n, classes=classes, random_state=args.seed)
    if args.include_real:
        real = ds.x.numpy() if ds.kind == "image" else ds.norm.to_raw(ds.x).numpy()
        y_real = ds.y.numpy()  # integer labels: the same values as classes_
        x_all, y_all = np.concatenate([real, x_new]), np.concatenate([y_real, y_new])
    else:
        x_all, y_all = x_new, y_new
    out = Path(args.out)
    target = out / ("generated.npz" if args.format == "npz" else "generated")
    est.write(target, x_all, y_all, overwrite=True)
    figs = {}
    if ds.kind == "image" and len(x_new):
        per = min(10, max(1, len(x_new) // max(1, len(np.unique(y_new)))))
        pick = np.concatenate([np.flatnonzero(y_new == c)[:per] for c in np.unique(y_new)])
        save_grid(torch.from_numpy(x_new[pick]), out / "samples.png", nrow=per)
        figs["Generated samples (one row per class)"] = "samples.png"
    counts = {str(c): int((y_new == c).sum()) for c in np.unique(y_new)}
    metrics = {"input": args.input, "output": str(target), "model": est.model_.registry_name,
               "generated": len(x_new), "real_included": int(len(x_all) - len(x_new)),
               "classes": [str(c) for c in est.classes_], "generated_per_class": counts,
               "filter": est.filter, "oversample": est.oversample if est.filter else None,
               "sampling": est.sampling_, "shift_copies": est.shift_copies_, "max_shift": est.max_shift}
    write_outputs(out, title="genlab augment", metrics=metrics, figures=figs, config=est.get_params())
    rows = [("model", metrics["model"]), ("classes", len(est.classes_)), ("generated", metrics["generated"]),
            ("filter", f"classifier, {est.oversample:g}x draws" if est.filter else "none"),
            ("sampling", est.sampling_ + (f", trained with {est.shift_copies_} copies per image shifted by up to "
                                          f"{est.max_shift} px" if est.shift_copies_ else "")),
            ("real included", metrics["real_included"]), ("written to", str(target))]
    Console().print(_table(f"genlab augment {args.input}", rows))
    print(f"report: {(out / 'report.html').resolve()}")
    return 0
