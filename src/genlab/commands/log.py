"""``genlab log``: replay an existing run folder into TensorBoard or MLflow (for runs trained without tracking)."""
from __future__ import annotations

NAME = "log"
HELP = ("Replay a run folder (metrics.jsonl, per-epoch samples, config, final metrics) into TensorBoard or MLflow, "
        "for runs trained without trainer.log_to.")
EXAMPLE = ("example: genlab log runs/vae-digits --to tensorboard   (then: tensorboard --logdir runs/vae-digits/tensorboard)\n"
           "example: genlab log runs/vae-digits --to mlflow --logdir tracking   (a local store in tracking/mlruns)")


def add_arguments(p) -> None:
    p.add_argument("run", help="run folder written by genlab train")
    p.add_argument("--to", required=True, metavar="TRACKER", help="tensorboard or mlflow")
    p.add_argument("--logdir", help="tensorboard: folder for the event files (default RUN/tensorboard); mlflow: a "
                   "local store in LOGDIR/mlruns (default $MLFLOW_TRACKING_URI, else RUN/mlruns)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier genlab log of this run (the event "
                   "files it wrote, whose names end in .genlab-log-<id>; other files are never deleted), or the MLflow "
                   "runs tagged with this run folder; the old log goes only once the new one is complete")


def run(args) -> int:
    from rich.console import Console

    from ..training.tracking import replay

    where = replay(args.run, args.to, log_dir=args.logdir, overwrite=args.overwrite)
    view = (f"tensorboard --logdir {where}" if args.to == "tensorboard" else
            f"MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri {where}" if where.startswith("file:") else
            f"open {where}")
    Console().print(f"logged {args.run} to {args.to}: {where}\nview with: {view}", highlight=False, soft_wrap=True)
    return 0
