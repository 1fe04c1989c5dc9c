"""``genlab interpolate``: decode the path between the codes of two inputs (and traverse each latent dim)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, DataError
from ._common import add_model_arguments, add_out_argument, claim_outputs, fitted_estimator, read_data, \
    print_metrics, write_outputs

if TYPE_CHECKING:  # annotations only: numpy is imported when the command runs
    import numpy as np

NAME = "interpolate"
HELP = "Interpolate between two inputs in a model's latent space (linear or spherical); --traverse each latent dim."
EXAMPLE = ("example: genlab interpolate digits --out out/interp --a 0 --b 7 --method spherical --traverse\n"
           "example: genlab interpolate data.npz --run runs/vae --out out/interp --steps 10")

#: at most this many dimensions in the default traversal figure
MAX_DIMS = 16


def add_arguments(p) -> None:
    p.add_argument("input", help="data: built-in name, images folder, .npz, .npy or .csv")
    add_out_argument(p, "output folder (PNG, .npz, metrics.json, report.html)", required=True)
    p.add_argument("--a", type=int, default=None, help="index of the first input (default 0)")
    p.add_argument("--b", type=int, default=None, help="index of the second input (default: the first sample "
                   "whose label differs from a's, else 1)")
    p.add_argument("--steps", type=int, default=8, help="points on the path, endpoints included (default 8)")
    p.add_argument("--method", default="linear", help="linear or spherical (default linear)")
    p.add_argument("--traverse", action="store_true", help="also write a traversal of each latent dimension "
                   "around the code of input a")
    p.add_argument("--span", type=float, default=None, help="with --traverse: offsets from -span to +span, in prior "
                   "std units (VAEs, GANs) or training-code std units (AEs) (default 3)")
    p.add_argument("--traverse-steps", type=int, default=None, help="with --traverse: offsets per dimension "
                   "(default 7)")
    p.add_argument("--dims", help=f"with --traverse: comma-separated latent dimensions to traverse (default all, or "
                   f"the {MAX_DIMS} whose codes vary most on the input)")
    p.add_argument("--label", type=int, default=None, help="class to encode/decode with (conditional models; "
                   "default: the class inferred for input a, or 0 for conditional GANs)")
    add_model_arguments(p, "vae")


def _index(v: int | None, n: int, flag: str, spec: str) -> None:
    if v is not None and not 0 <= v < n:
        raise ConfigError(f"{flag} {v} is out of range: {spec} has {n} samples; give an index in 0..{n - 1}")


def _dims(spec: str | None) -> list[int] | None:
    if not spec:
        return None
    try:
        return [int(d) for d in spec.split(",") if d.strip()]
    except ValueError:
        raise ConfigError(f"--dims must be comma-separated integers, got {spec!r}") from None


def _npz(path: Path, **arrays) -> None:
    import numpy as np
    from ..io.atomic import write_bytes_atomic
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes_atomic(path, buf.getvalue())


def _caller_units(ds) -> np.ndarray:
    """Samples as the explorer returns them: images in [0, 1], tabular rows in raw units."""
    return (ds.x if ds.kind == "image" else ds.norm.to_raw(ds.x)).numpy()


def run(args) -> int:
    import numpy as np
    import torch

    from ..apps.latent import LatentExplorer, plot_interpolation, plot_traversal
    from ..latent import check_span, check_steps, interpolator
    from ..models import capabilities, require

    codes_of_inputs = "genlab interpolate --a/--b (inputs mapped to codes; drop --a/--b to interpolate between two "\
                      "random codes z)"

    # everything the user can get wrong is checked before any training
    claim_outputs(folders=(("--out", args.out), ("--save", args.save)))
    interpolator(args.method)
    check_steps(args.steps)
    traversal = {"--span": args.span, "--traverse-steps": args.traverse_steps, "--dims": args.dims}
    if not args.traverse and any(v is not None for v in traversal.values()):
        flags = ", ".join(k for k, v in traversal.items() if v is not None)
        raise ConfigError(f"{flags} set{'s' if ',' not in flags else ''} the traversal; add --traverse (or drop "
                          f"{flags})")
    args.span = 3.0 if args.span is None else args.span
    args.traverse_steps = 7 if args.traverse_steps is None else args.traverse_steps
    if args.traverse:
        check_steps(args.traverse_steps, "--traverse-steps")
        check_span(args.span, "--span")
    dims = _dims(args.dims)
    if args.dims is not None and not dims:
        raise ConfigError("--dims names no dimension; give comma-separated latent dimensions, e.g. --dims 0,1,2 "
                          "(or drop --dims for the default)")
    if not args.run:
        require(args.model, "has_decoder", purpose="genlab interpolate")
        if args.a is not None or args.b is not None:
            require(args.model, "has_encoder", purpose=codes_of_inputs)
    ds = read_data(args.input)
    n = len(ds)
    if n < 2 and (args.a is None or args.b is None):
        raise DataError(f"{args.input}: has {n} sample; interpolation needs two inputs")
    _index(args.a, n, "--a", args.input)
    _index(args.b, n, "--b", args.input)
    a = 0 if args.a is None else args.a
    if args.b is not None and args.b == a:
        raise ConfigError(f"--a and --b are both input {a}: the path would stay at one code; give two different "
                          "indices")
    if args.b is not None:
        b = args.b
    else:
        other = [] if ds.y is None else (ds.y != ds.y[a]).nonzero().flatten().tolist()
        b = other[0] if other else (1 if a != 1 else 0)

    est = fitted_estimator(LatentExplorer, args, ds)
    label = args.label
    metrics: dict = {"model": est.model_name_, "latent_dim": est.latent_dim_, "method": args.method,
                     "steps": args.steps}
    encoder = capabilities(est.model_)["has_encoder"]
    if encoder:
        xa, xb = ds.subset([a]), ds.subset([b])
        if est.conditional_ and label is None:
            label = int(est.infer_labels(xa)[0])
        frames, codes = est.interpolate(xa, xb, steps=args.steps, method=args.method, labels=label,
                                        return_codes=True)
        metrics.update({"a": a, "b": b})
        if ds.y is not None:
            metrics.update({"label_a": int(ds.y[a]), "label_b": int(ds.y[b])})
        ra, rb = (_caller_units(d)[0] for d in (xa, xb))
        metrics["endpoint_mse_a"] = float(np.mean((frames[0] - ra) ** 2))  # reconstruction error of a
        metrics["endpoint_mse_b"] = float(np.mean((frames[-1] - rb) ** 2))
        source = f"codes of inputs {a} and {b}"
    else:
        if args.a is not None or args.b is not None:
            require(est.model_, "has_encoder", purpose=codes_of_inputs)
        g = torch.Generator().manual_seed(args.seed)
        za, zb = torch.randn(2, est.latent_dim_, generator=g)
        if est.conditional_ and label is None:
            label = 0
        frames, codes = est.interpolate_codes(za, zb, steps=args.steps, method=args.method, labels=label,
                                              return_codes=True)
        source = f"two random codes z (seed {args.seed})"
    if label is not None:
        metrics["label"] = label
    za, zb = codes[0].astype(np.float64), codes[-1].astype(np.float64)
    metrics["code_distance"] = float(np.linalg.norm(zb - za))
    na, nb = np.linalg.norm(za), np.linalg.norm(zb)
    if na > 0 and nb > 0:
        metrics["code_angle_deg"] = float(np.degrees(np.arccos(np.clip(za @ zb / (na * nb), -1, 1))))

    trav = None
    if args.traverse:
        if dims is None and est.latent_dim_ > MAX_DIMS:
            if encoder:  # the dims whose codes spread most over the input
                sub = ds.subset(torch.arange(min(n, 2000)))
                spread = est.encode(sub, labels=sub.y if est.conditional_ else None).std(0) / est.code_scale_
                dims = sorted(np.argsort(-spread)[:MAX_DIMS].tolist())
            else:
                dims = list(range(MAX_DIMS))
        kw = {"x": ds.subset([a])} if encoder else {}
        trav, tcodes = est.traverse(**kw, dims=dims, span=args.span, steps=args.traverse_steps, labels=label,
                                    return_codes=True)
        dims = dims if dims is not None else list(range(est.latent_dim_))
        metrics.update({"traversal_dims": ",".join(map(str, dims)), "traversal_span": args.span})

    # all computed: write the outputs
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figs = {}
    plot_interpolation(frames, out / "interpolation.png", feature_scale=est.feature_scale())
    figs[f"{args.method.capitalize()} interpolation between the {source}"] = "interpolation.png"
    _npz(out / "interpolation.npz", x=frames, z=codes, t=np.linspace(0, 1, args.steps))
    if trav is not None:
        plot_traversal(trav, out / "traversal.png", dims=dims, feature_scale=est.feature_scale(),
                       offsets=np.linspace(-args.span, args.span, args.traverse_steps))
        figs[f"Traversal: one row per latent dimension {dims}, offsets -{args.span}..+{args.span} std"] = \
            "traversal.png"
        _npz(out / "traversal.npz", x=trav, z=tcodes, dims=np.asarray(dims),
             offsets=np.linspace(-args.span, args.span, args.traverse_steps))
    report = write_outputs(out, title=f"genlab interpolate: {est.model_name_} on {args.input}", metrics=metrics,
                           figures=figs, config={k: v for k, v in vars(args).items() if k != "func"})
    print_metrics(metrics, f"interpolation ({est.model_name_})", report)
    return 0
