"""``genlab detect``: score inputs with an autoencoder/VAE anomaly detector and write a short report."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError, DataError
from ._common import add_model_arguments, add_out_argument, check_run_options, claim_outputs, fitted_estimator, \
    read_data, write_outputs

NAME = "detect"
HELP = "Flag anomalous inputs with an autoencoder or VAE trained on normal data (scores, threshold, report)."
EXAMPLE = ("example: genlab detect digits --normal-class 0 --epochs 30 --out runs/detect\n"
           "example: genlab detect test.npz --train normal.npz --contamination 0.05 --save runs/det --out runs/detect\n"
           "example: genlab detect new.npz --run runs/det --out runs/detect-new")

SCORES_FILE = "scores.csv"
HIST_FILE = "score_histogram.png"
GRID_FILE = "most_anomalous.png"


def add_arguments(p) -> None:
    p.add_argument("input", help="data to score: built-in name, images folder, .npz, .npy or .csv")
    add_out_argument(p, "output folder (scores.csv, metrics.json, PNGs, report.html)", required=True)
    p.add_argument("--contamination", type=float, default=None,
                   help="expected outlier fraction of the training data, in (0, 0.5] (default 0.1; with a "
                        "saved estimator: its own)")
    p.add_argument("--score", default=None, help="auto (default: relative_reconstruction for images; for tables "
                   "standardized_reconstruction plus 3x the Mahalanobis distance of the code; averaged over 3 models "
                   "trained with seeds --seed, +1, +2), reconstruction, "
                   "relative_reconstruction, standardized_reconstruction, elbo or iwae (VAEs), likelihood or "
                   "likelihood_ratio (pixelcnn); docs/apps/anomaly.md")
    p.add_argument("--n-samples", type=int, default=None,
                   help="posterior draws for --score elbo/iwae (default 16; refused with other scores)")
    p.add_argument("--normal-class", type=int, default=None, metavar="K",
                   help="labelled data: train only on class K and report ROC-AUC of class K vs the rest")
    p.add_argument("--top", type=int, default=None, help="images: how many of the most anomalous to show "
                   "(default 16)")
    add_model_arguments(p, "ae")


def run(args) -> int:
    import numpy as np

    from ..apps.anomaly import AnomalyDetector
    from ..io.plots import score_histogram_png
    from ..io.atomic import write_bytes_atomic
    from ..io.images import make_grid, save_png

    claim_outputs(folders=(("--out", args.out), ("--save", args.save)))
    saved = check_run_options(args)  # before --train is read here; whether --run is a fitted estimator
    out = Path(args.out)
    if args.contamination is not None:
        AnomalyDetector._check_contamination(args.contamination)
    if args.top is not None and args.top < 1:
        raise ConfigError(f"--top must be >= 1, got {args.top}")
    if args.n_samples is not None and args.score not in ("elbo", "iwae") and not saved:
        raise ConfigError(f"--n-samples sets the posterior draws of --score elbo/iwae, not of --score "
                          f"{args.score or 'auto'}; drop --n-samples (or use --score elbo/iwae with a vae)")
    data = read_data(args.input)
    if args.top is not None and data.kind != "image":
        raise ConfigError(f"--top sets the images of most_anomalous.png, and {args.input} holds {data.kind} data "
                          "(no images are drawn); drop --top")
    top_n = 16 if args.top is None else args.top
    k = args.normal_class
    if k is not None and data.y is None:
        raise ConfigError(f"--normal-class needs labelled input; {args.input} has no labels")

    fit_args = argparse.Namespace(**vars(args))
    train = data
    if args.train:
        train = read_data(args.train)
        fit_args.train = None
    if k is not None and not saved:
        if train.y is None:
            raise ConfigError(f"--normal-class needs labelled training data; {args.train} has no labels")
        idx = (train.y == k).nonzero().flatten()
        if len(idx) == 0:
            raise DataError(f"no training samples of class {k}; classes present: "
                            f"{sorted(set(train.y.tolist()))}")
        train = train.subset(idx)
    det = fitted_estimator(AnomalyDetector, fit_args, train, scoring=args.score or "auto",
                           contamination=0.1 if args.contamination is None else args.contamination,
                           explicit={} if args.n_samples is None else {"n_samples": args.n_samples})
    if args.score is not None and args.score != det.scoring:
        raise ConfigError(f"the saved estimator scores with {det.scoring!r}, not {args.score!r}; drop --score or "
                          "fit a new detector with --model")
    if args.contamination is not None and args.contamination != det.contamination \
            and det.threshold_source_ == "contamination":
        det.set_contamination(args.contamination)

    scores = det.score_samples(data)  # (N,) higher = more normal
    labels = np.where(scores - det.offset_ < 0, -1, 1)
    n_out = int((labels == -1).sum())
    metrics = {"n": len(scores), "n_outliers": n_out, "outlier_fraction": n_out / len(scores),
               "threshold": det.offset_, "threshold_source": det.threshold_source_, "score": det.scoring,
               "contamination": det.contamination, "model": det.model_.registry_name,
               "score_min": float(scores.min()), "score_median": float(np.median(scores)),
               "score_max": float(scores.max()), "n_train": len(det.train_scores_)}
    normal = None
    if k is not None:
        from sklearn.metrics import roc_auc_score
        normal = (data.y == k).numpy()
        metrics["normal_class"] = k
        if normal.all() or not normal.any():
            raise DataError(f"ROC-AUC needs class {k} and other classes in {args.input}; give mixed data")
        metrics["roc_auc"] = float(roc_auc_score(normal, scores))
        metrics["recall_outliers"] = float((labels[~normal] == -1).mean())
        metrics["false_alarm_rate"] = float((labels[normal] == -1).mean())

    # everything is computed before anything is written
    csv = "index,score,label\n" + "".join(f"{i},{s:.10g},{lab}\n" for i, (s, lab) in enumerate(zip(scores, labels)))
    figures = {"Score histogram (higher = more normal) and threshold": HIST_FILE}
    hist_png = score_histogram_png(scores, det.offset_, normal, k)
    grid = None
    from ..models import capabilities
    if det.kind_ == "image" and not capabilities(det.model_)["can_reconstruct"]:  # pixelcnn: the inputs only
        import torch
        top = np.argsort(scores, kind="stable")[:min(top_n, len(scores))]  # lowest score first
        grid = make_grid(data.subset(torch.as_tensor(top)).x, nrow=len(top))
        figures[f"The {len(top)} most anomalous inputs (lowest score first)"] = GRID_FILE
    elif det.kind_ == "image":
        import torch
        top = np.argsort(scores, kind="stable")[:min(top_n, len(scores))]  # lowest score first
        sub = data.subset(torch.as_tensor(top))
        x = sub.x  # (T, C, H, W) in [0, 1]
        rec = torch.as_tensor(det.reconstruct(sub))
        maps = torch.as_tensor(det.error_maps(sub)).float()  # (T, H, W)
        maps = (maps / maps.max().clamp(min=1e-12)).unsqueeze(1).expand(-1, x.shape[1], -1, -1)
        grid = make_grid(torch.cat([x, rec, maps]), nrow=len(top))
        figures[f"The {len(top)} most anomalous inputs (top), reconstructions, squared-error maps "
                "(bottom, scaled to the largest)"] = GRID_FILE

    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / SCORES_FILE, csv.encode())
    write_bytes_atomic(out / HIST_FILE, hist_png)
    if grid is not None:
        save_png(grid, out / GRID_FILE)
    config = {"input": args.input, "train": args.train, "run": args.run, "params": {
        k_: v for k_, v in det.get_params().items() if isinstance(v, (str, int, float, bool, dict, type(None)))}}
    report = write_outputs(out, title=f"genlab detect: {args.input}", metrics=metrics, figures=figures,
                           config=config)

    from rich.console import Console
    from rich.table import Table
    t = Table(title=f"anomaly detection ({det.scoring} score, {metrics['model']})")
    for h in ("n", "n outliers", "threshold", *(["ROC-AUC"] if "roc_auc" in metrics else [])):
        t.add_column(h)
    t.add_row(str(metrics["n"]), f"{n_out} ({100 * n_out / len(scores):.1f}%)", f"{det.offset_:.6g}",
              *([f"{metrics['roc_auc']:.4f}"] if "roc_auc" in metrics else []))
    Console().print(t)
    print(f"scores: {out / SCORES_FILE}")
    print(f"report: {report.resolve()}")
    return 0
