"""``genlab latent-map``: a 2-D map (PCA or t-SNE) of a model's codes, coloured by label."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, DataError
from ._common import add_model_arguments, add_out_argument, claim_outputs, fitted_estimator, read_data, print_metrics, \
    write_outputs

if TYPE_CHECKING:  # annotations only: numpy is imported when the command runs
    import numpy as np

NAME = "latent-map"
HELP = "2-D map (PCA or t-SNE) of a model's latent codes, coloured by label, with a class-separation score."
EXAMPLE = ("example: genlab latent-map digits --out out/map --method tsne -n 2000\n"
           "example: genlab latent-map data.csv --run runs/vae --out out/map --method pca")


def add_arguments(p) -> None:
    p.add_argument("input", help="data: built-in name, images folder, .npz, .npy or .csv")
    add_out_argument(p, "output folder (latent_map.csv, latent_map.png, report.html)", required=True)
    p.add_argument("--method", default="pca", help="pca or tsne (default pca)")
    p.add_argument("-n", type=int, default=2000, help="map at most this many samples, drawn at random with "
                   "--seed (default 2000; the model trains on all of them)")
    p.add_argument("--k", type=int, default=5, help="neighbours of the kNN separation score (default 5)")
    p.add_argument("--pca-components", type=int, default=None, metavar="K",
                   help="tsne: map the first K principal components of the codes (standardised unless the model "
                   "keeps distances, as distance-ae does; 2..code width; default: all the codes)")
    p.add_argument("--shift-copies", action="store_true",
                   help="images: train the model on the images plus their four one-pixel shifts")
    add_model_arguments(p, "vae")


def _csv(coords: np.ndarray, y, path: Path) -> None:
    from ..io.atomic import write_bytes_atomic
    lines = ["x,y,label"]
    for i, (u, v) in enumerate(coords):
        lines.append(f"{u:.7g},{v:.7g},{'' if y is None else int(y[i])}")
    write_bytes_atomic(path, ("\n".join(lines) + "\n").encode())


def run(args) -> int:
    import numpy as np
    import torch
    from ..apps.latent import MAP_METHODS, LatentExplorer, knn_accuracy, plot_latent_map
    from ..models import require

    claim_outputs(folders=(("--out", args.out), ("--save", args.save)))

    # everything the user can get wrong is checked before any training
    if args.method not in MAP_METHODS:
        raise ConfigError(f"unknown --method {args.method!r}; use pca or tsne")
    if args.n < 2:
        raise ConfigError(f"-n must be >= 2 (points on the map), got {args.n}")
    if args.k < 1:
        raise ConfigError(f"--k must be >= 1, got {args.k}")
    if args.pca_components is not None and (args.method != "tsne" or args.pca_components < 2):
        raise ConfigError(f"--pca-components must be an integer >= 2 and goes with --method tsne, got "
                          f"{args.pca_components} with --method {args.method}")
    if not args.run:  # inputs are mapped to codes
        require(args.model, "has_decoder", "has_encoder", purpose="genlab latent-map")
    ds = read_data(args.input)
    if len(ds) < 2:
        raise DataError(f"{args.input}: has {len(ds)} sample; a map needs at least 2")
    n_map = min(len(ds), args.n)
    n_fit = n_map - -(-n_map // 5)  # the training part of each of knn_accuracy's 5 folds
    if ds.y is not None and args.k > n_fit:  # checked before training
        raise ConfigError(f"--k {args.k} is more neighbours than the {n_fit} samples each cross-validation fold fits "
                          f"on ({n_map} mapped); use a smaller --k or map more samples")
    est = fitted_estimator(LatentExplorer, args, ds, explicit={"shift_copies": True} if args.shift_copies else None)
    require(est.model_, "has_decoder", "has_encoder", purpose="genlab latent-map")
    sub = ds
    if len(ds) > args.n:
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(args.seed))[:args.n].sort().values
        sub = ds.subset(idx)
    y = None if sub.y is None else sub.y.numpy()
    coords = est.latent_map(sub, y, method=args.method, random_state=args.seed, pca_components=args.pca_components)
    metrics: dict = {"model": est.model_name_, "latent_dim": est.latent_dim_, "method": args.method,
                     "samples": len(sub), "pca_components": args.pca_components,
                     "shift_copies": bool(getattr(est, "shift_copies", False))}
    if y is not None and len(np.unique(y)) >= 2 and len(y) >= 10:
        codes = est.encode(sub, labels=y if est.conditional_ else None)
        metrics[f"knn{args.k}_accuracy_2d"] = knn_accuracy(coords, y, k=args.k, random_state=args.seed)
        metrics[f"knn{args.k}_accuracy_codes"] = knn_accuracy(codes, y, k=args.k, random_state=args.seed)
        metrics["chance_accuracy"] = float(np.bincount(y).max() / len(y))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _csv(coords, y, out / "latent_map.csv")
    title = f"{args.method.upper() if args.method == 'pca' else 't-SNE'} of {est.model_name_} codes"
    plot_latent_map(coords, y, out / "latent_map.png", class_names=sub.classes, title=title)
    report = write_outputs(out, title=f"genlab latent-map: {est.model_name_} on {args.input}", metrics=metrics,
                           figures={f"{title} ({len(sub)} samples), coloured by label": "latent_map.png"},
                           config={k: v for k, v in vars(args).items() if k != "func"})
    print_metrics(metrics, f"latent map ({est.model_name_}, {args.method})", report)
    return 0
