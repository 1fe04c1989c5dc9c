"""Tuned vs default config with ``genlab.tune``: held-out quality gain, and the wall time pruning saves.

Protocol (printed with the tables):

* cases: ``vae`` on ``mnist5k`` (5,000 real 28x28 MNIST digits), judged by the held-out IWAE NLL
  (``-test_iwae_k100``, nats, lower is better); ``dcgan`` on ``digits`` (1,797 8x8), judged by the held-out FID
  of the genlab digits feature net (``test_FID-digits`` of 1,000 samples against the test split, lower is
  better). Splits 80/10/10 with split seed 0; the search only sees the validation split.
* search: ``genlab.tune`` with the model's default search space (docs/tune.md), its default objective
  (``val/loss`` for the VAE, ``val/fid`` of ``trainer.fid_samples`` samples for DCGAN), TPE seeded 0, the median
  pruner, ``--trials`` trials of the case's epoch budget.
* comparison: the default config and the tuned config (``best.yaml``) each trained with ``--seeds`` seeds
  (``trainer.seed`` 0, 1, 2) and scored on the test split: mean and standard deviation, the difference.
* pruning: the same study (same base config, space, sampler seed and trials) without pruning: wall time, trials
  pruned, best validation value.

    .venv/bin/python bench/tune.py                                           # 20 trials, 3 seeds (long)
    .venv/bin/python bench/tune.py --trials 2 --epochs-scale 0.05 --seeds 1   # smoke run, not for the README
    .venv/bin/python bench/tune.py --only vae --trials 10
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch

import genlab
from genlab.tuning.search import final_scores

#: case -> (model, data, epochs at scale 1, base trainer config, the test score key, sign to make it "lower is better")
CASES = {
    "vae": ("vae", "mnist5k", 30, {"batch_size": 128, "fid_samples": 0}, "test_iwae_k100", -1.0),
    "dcgan": ("dcgan", "digits", 60, {"batch_size": 64, "fid_samples": 1000}, "test_FID-digits", 1.0),
}
SCORE_NAME = {"vae": "held-out IWAE NLL (nats)", "dcgan": "held-out FID-digits"}


def base_config(case: str, scale: float) -> dict:
    model, data, epochs, trainer, _, _ = CASES[case]
    return {"trainer": {**trainer, "epochs": max(1, round(epochs * scale))}, "data": {"name": data}}


def test_score(case: str, config: dict, seed: int, out: Path) -> tuple[float, float]:
    """(score, seconds) of ``config`` trained with ``trainer.seed = seed`` (lower is better)."""
    model, data, _, _, key, sign = CASES[case]
    cfg = json.loads(json.dumps(config))
    cfg.setdefault("trainer", {})["seed"] = seed
    t0 = time.perf_counter()
    run = genlab.train(model, data, out=out, config=cfg, overwrite=out.exists())
    scores = final_scores(run, seed=seed)
    return sign * scores[key], time.perf_counter() - t0


def study(case: str, base: dict, args, out: Path, pruner: str):
    model, data, *_ = CASES[case]
    t0 = time.perf_counter()
    res = genlab.tune(model, data, config=base, trials=args.trials, out=out, pruner=pruner, sampler="tpe",
                      seed=0, workers=args.workers, retrain=False, figures=False, keep=1)
    return res, time.perf_counter() - t0


def fmt(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs):.2f}" if len(xs) > 1 else f"{xs[0]:.2f}"


def bench_case(case: str, args, root: Path) -> dict:
    model, data, *_ = CASES[case]
    base = base_config(case, args.epochs_scale)
    print(f"\n== {model} on {data}: {base['trainer']['epochs']} epochs per run, {args.trials} trials, "
          f"{args.seeds} seeds", flush=True)
    pruned, t_pruned = study(case, base, args, root / f"{case}-pruned", "median")
    print(f"  study with the median pruner: {t_pruned:.0f} s, {pruned.counts}, best {pruned.objective} "
          f"{pruned.best_value:.4g} (trial {pruned.best_trial}: {pruned.best_values})", flush=True)
    row = {"case": case, "model": model, "data": data, "epochs": base["trainer"]["epochs"], "trials": args.trials,
           "pruned_seconds": t_pruned, "pruned_counts": pruned.counts, "pruned_best_val": pruned.best_value,
           "best_values": pruned.best_values}
    if not args.no_unpruned:
        plain, t_plain = study(case, base, args, root / f"{case}-plain", "none")
        print(f"  same study without pruning: {t_plain:.0f} s, best {plain.objective} {plain.best_value:.4g}",
              flush=True)
        row.update(plain_seconds=t_plain, plain_best_val=plain.best_value)
    seeds = list(range(args.seeds))
    default, tuned, secs = [], [], []
    for s in seeds:
        d, sd = test_score(case, base, s, root / f"{case}-default-{s}")
        t, st = test_score(case, pruned.best_config, s, root / f"{case}-tuned-{s}")
        default.append(d)
        tuned.append(t)
        secs.append((sd, st))
        print(f"  seed {s}: default {d:.3f}, tuned {t:.3f} ({sd:.0f} s / {st:.0f} s)", flush=True)
    row.update(default=default, tuned=tuned, seconds=secs)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="vae,dcgan", help="comma list of cases: vae, dcgan")
    ap.add_argument("--trials", type=int, default=20, help="trials per study (default 20)")
    ap.add_argument("--epochs-scale", type=float, default=1.0, help="multiply the epoch budgets (30 / 60)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds of the final retraining (default 3)")
    ap.add_argument("--workers", type=int, default=1, help="worker processes per study (default 1)")
    ap.add_argument("--no-unpruned", action="store_true", help="skip the study without pruning")
    ap.add_argument("--out", help="keep the studies and runs here (default: a temporary folder)")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"genlab {genlab.__version__}, optuna {optuna.__version__}, torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        root.mkdir(parents=True, exist_ok=True)
        rows = [bench_case(c.strip(), args, root) for c in args.only.split(",") if c.strip()]
    print("\n| model | data | score | default config | tuned config | difference |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        diff = [t - d for d, t in zip(r["default"], r["tuned"])]
        rel = 100 * statistics.mean(diff) / abs(statistics.mean(r["default"]))
        print(f"| {r['model']} | {r['data']} | {SCORE_NAME[r['case']]} ({len(r['default'])} seeds) | "
              f"{fmt(r['default'])} | {fmt(r['tuned'])} | {fmt(diff)} ({rel:+.1f}%) |")
    print("\n| model | data | trials x epochs | with median pruner | without pruning | pruned trials |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        plain = f"{r['plain_seconds']:.0f} s (best val {r['plain_best_val']:.4g})" if "plain_seconds" in r else "-"
        print(f"| {r['model']} | {r['data']} | {r['trials']} x {r['epochs']} | {r['pruned_seconds']:.0f} s (best val "
              f"{r['pruned_best_val']:.4g}) | {plain} | {r['pruned_counts']['pruned']} |")
    for r in rows:
        print(f"tuned {r['model']}: {r['best_values']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
