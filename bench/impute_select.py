"""Selection of the tabular ``Imputer`` defaults on validation entries the bench's table never scores.

Protocol: for each data set (scikit-learn's breast-cancer, diabetes and wine tables) and missing rate (20 %,
50 %), an MCAR mask is drawn with *selection* seeds (100, 101: not the bench's 0-4); then 10 % of the entries
that mask leaves observed are hidden as well (the validation entries, carved from the data used for fitting).
Every candidate is fitted on the table with both sets of holes and scored on the validation entries only
(RMSE in column standard deviations of the observed values). The true values of the bench's missing entries
are never used, and the bench's masks (seeds 0-4) are not drawn here.

    OMP_NUM_THREADS=1 .venv/bin/python bench/impute_select.py [--variants base,ens3,...] [--data ...]
"""
from __future__ import annotations

import argparse
import logging
import time
import warnings

import numpy as np

TRAINER = {"precision": "fp32", "channels_last": False, "log_every": 1000}
SEEDS = (100, 101)
RATES = (0.2, 0.5)

#: candidate -> (Imputer keyword arguments, number of seeds averaged)
VARIANTS = {
    "base": ({}, 1),
    "ens3": ({}, 3),
    "ens5": ({}, 5),
    "h128": ({"model_config": {"hidden": [128, 128]}}, 1),
    "ep500": ({"epochs": 500}, 1),
    "iw50": ({"model_config": {"iw_samples": 50}}, 1),
    "val0": ({"validation_fraction": 0.0}, 1),
    "wd1e-4": ({"model_config": {"weight_decay": 1e-4}}, 1),
    "lat-full": ({"model_config": {"latent_dim": -1}}, 1),  # -1: D - 1
    "lr3e-3": ({"model_config": {"lr": 3e-3}}, 1),
    "bs32": ({"batch_size": 32}, 1),
    "linear": ({"model_config": {"hidden": []}}, 1),
    "linear-full": ({"model_config": {"hidden": [], "latent_dim": -1}}, 1),
    "h1-64": ({"model_config": {"hidden": [64]}}, 1),
    "linear-full-bs32": ({"model_config": {"hidden": [], "latent_dim": -1}, "batch_size": 32}, 1),
    "h128-bs32": ({"model_config": {"hidden": [128, 128]}, "batch_size": 32}, 1),
    "bs32-ep500": ({"batch_size": 32, "epochs": 500}, 1),
}


def _sets(names):
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
    all_ = {"breast-cancer": load_breast_cancer, "diabetes": load_diabetes, "wine": load_wine}
    return {n: all_[n]().data for n in names}


def _fit_fill(kw: dict, n_ens: int, Xm: np.ndarray, seed: int) -> np.ndarray:
    from genlab.apps import Imputer
    kw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in kw.items()}
    mc = kw.pop("model_config", {})
    if mc.get("latent_dim") == -1:
        mc["latent_dim"] = Xm.shape[1] - 1
    fills = []
    for s in range(n_ens):
        imp = Imputer(random_state=seed * 10 + s, trainer_config=TRAINER, verbose=False, model_config=mc or None,
                      **kw)
        fills.append(imp.fit_transform(Xm))
    return np.mean(fills, 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="base,ens3")
    ap.add_argument("--data", default="breast-cancer,diabetes,wine")
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    ap.add_argument("--rates", default="0.2,0.5")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (registers IterativeImputer)
    from sklearn.impute import IterativeImputer, KNNImputer
    names = args.variants.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    rates = [float(r) for r in args.rates.split(",")]
    res: dict = {}
    for dname, X in _sets(args.data.split(",")).items():
        for rate in rates:
            for seed in seeds:
                g = np.random.default_rng(seed)
                miss = g.random(X.shape) < rate
                val = (g.random(X.shape) < 0.1) & ~miss
                Xm = np.where(miss | val, np.nan, X)
                sd = np.nanstd(np.where(miss, np.nan, X), 0)  # of the values the mask leaves observed

                def score(out):
                    return float(np.sqrt((((out - X) / sd)[val] ** 2).mean()))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    for b, est in (("KNN", KNNImputer()), ("Iterative", IterativeImputer(max_iter=10, random_state=seed))):
                        m2, s2 = np.nanmean(Xm, 0), np.nanstd(Xm, 0)
                        res.setdefault((dname, rate, b), []).append(score(est.fit_transform((Xm - m2) / s2) * s2 + m2))
                for v in names:
                    kw, n = VARIANTS[v]
                    t = time.process_time()
                    r = score(_fit_fill(kw, n, Xm, seed))
                    res.setdefault((dname, rate, v), []).append(r)
                    print(f"  {dname} {rate:.0%} seed {seed} {v}: {r:.4f} ({time.process_time() - t:.0f} s cpu)",
                          flush=True)
    print("\n| data | missing | " + " | ".join(["KNN", "Iterative"] + names) + " |")
    print("|---|---|" + "---|" * (len(names) + 2))
    tot: dict = {}
    for dname in args.data.split(","):
        for rate in rates:
            cells = []
            for v in ["KNN", "Iterative"] + names:
                m = float(np.mean(res[(dname, rate, v)]))
                tot.setdefault(v, []).append(m)
                cells.append(f"{m:.4f}")
            print(f"| {dname} | {rate:.0%} | " + " | ".join(cells) + " |")
    print("| mean | | " + " | ".join(f"{np.mean(tot[v]):.4f}" for v in ["KNN", "Iterative"] + names) + " |")


if __name__ == "__main__":
    main()
