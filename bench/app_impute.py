"""Imputation figures: genlab's Imputer vs scikit-learn's imputers, and MNIST inpainting.

Tabular (scikit-learn's breast-cancer 569x30 and diabetes 442x10): entries removed completely at random
(each entry independently with probability 20 % or 50 %; 5 seeds, masks from ``numpy.random.default_rng``).
Every method is fitted on the data with its holes and fills those same holes (transductive, the same for all
methods). The baselines get the columns standardised by their observed mean and std (the genlab Imputer
standardises internally the same way), so KNN distances are not dominated by large-valued columns.
Score: RMSE over the missing entries, in units of each column's standard deviation over the complete data
(1.0 = as far off as one standard deviation; mean imputation scores about 1.0). Mean and std over the seeds.

* genlab ``Imputer(model="vae")`` and ``Imputer(model="ae")`` with their defaults (200 epochs, ``n_iter=2``,
  tabular defaults ``latent_dim = min(16, D // 2)`` and a learned per-column sigma for the VAE); the defaults
  were chosen on other data (scikit-learn's wine table and a synthetic 12-column table), not on these.
* ``SimpleImputer(strategy="mean")``, ``KNNImputer()`` (5 neighbours), ``IterativeImputer(max_iter=10)``
  (BayesianRidge, ``random_state`` = seed).

Inpainting (mnist5k, fixed split 80/20 with seed 0: 4,000 train / 1,000 test images): the bottom half (rows
14-27) of every test image is missing. PSNR in dB over the missing region only (per image, averaged).
* genlab inductive: ``Imputer(model="vae")`` fitted on the complete train images, then fills the test images;
* genlab transductive: fitted on the train images plus the test images with their holes (mask-aware, the
  hidden halves are never seen), then fills the test images;
* mean image of the train set, and ``KNNImputer`` (5 neighbours) fitted on the flattened train images.
The image VAE uses ``arch="mlp"`` (a conv VAE takes about ten times longer on one CPU core) and 30 epochs.

    OMP_NUM_THREADS=1 .venv/bin/python bench/app_impute.py [--quick]
"""
from __future__ import annotations

import argparse
import logging
import time
import warnings

import numpy as np
import torch

SEEDS = (0, 1, 2, 3, 4)
RATES = (0.2, 0.5)


def _tabular_sets() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_breast_cancer, load_diabetes
    return {"breast-cancer": load_breast_cancer().data, "diabetes": load_diabetes().data}


def _methods(quick: bool, seed: int) -> dict:
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (registers IterativeImputer)
    from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

    from genlab.apps import Imputer
    epochs = 20 if quick else 200
    trainer = {"precision": "fp32", "channels_last": False, "log_every": 1000}
    return {
        "genlab vae": (Imputer(model="vae", epochs=epochs, random_state=seed, trainer_config=trainer), False),
        "genlab ae": (Imputer(model="ae", epochs=epochs, random_state=seed, trainer_config=trainer), False),
        "mean": (SimpleImputer(strategy="mean"), True),
        "KNNImputer": (KNNImputer(), True),
        "IterativeImputer": (IterativeImputer(max_iter=10, random_state=seed), True),
    }


def tabular_rows(quick: bool = False) -> list[dict]:
    rows = []
    seeds = SEEDS[:1] if quick else SEEDS
    for name, X in _tabular_sets().items():
        sd = X.std(0)
        for rate in RATES:
            scores: dict[str, list[float]] = {}
            times: dict[str, float] = {}
            for seed in seeds:
                mask = np.random.default_rng(seed).random(X.shape) < rate
                Xm = np.where(mask, np.nan, X)
                mu, s = np.nanmean(Xm, 0), np.nanstd(Xm, 0)
                for method, (est, standardise) in _methods(quick, seed).items():
                    t0 = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # IterativeImputer's convergence warnings
                        out = est.fit_transform((Xm - mu) / s) * s + mu if standardise else est.fit_transform(Xm)
                    times[method] = times.get(method, 0.0) + time.perf_counter() - t0
                    scores.setdefault(method, []).append(float(np.sqrt((((out - X) / sd)[mask] ** 2).mean())))
            for method, v in scores.items():
                rows.append({"task": "tabular", "data": name, "missing": f"{rate:.0%}", "method": method,
                             "rmse": float(np.mean(v)), "rmse_std": float(np.std(v)), "seeds": len(v),
                             "seconds_per_fit": times[method] / len(v)})
                _echo(rows[-1])
    return rows


def inpainting_rows(quick: bool = False) -> list[dict]:
    from sklearn.impute import KNNImputer

    from genlab import load_dataset
    from genlab.apps import Imputer
    ds = load_dataset("mnist5k")
    tr, _, te = ds.split(val=0.0, test=0.2, seed=0)
    xtr, xte = tr.x.numpy(), te.x.numpy()  # (N, 1, 28, 28) in [0, 1]
    if quick:
        xtr, xte = xtr[:800], xte[:200]
    hole = np.zeros_like(xte, dtype=bool)
    hole[:, :, 14:, :] = True  # bottom half
    xin = np.where(hole, np.nan, xte)

    def region_psnr(filled: np.ndarray) -> float:
        se = (((filled - xte) ** 2) * hole).reshape(len(xte), -1).sum(1) / hole.reshape(len(xte), -1).sum(1)
        return float(np.mean(10 * np.log10(1.0 / np.maximum(se, 1e-12))))

    rows = []

    def add(method: str, filled: np.ndarray, seconds: float):
        assert np.array_equal(filled[~hole], xte[~hole])
        rows.append({"task": "inpainting", "data": "mnist5k", "missing": "bottom half", "method": method,
                     "psnr_region": region_psnr(filled), "seconds_per_fit": seconds})
        _echo(rows[-1])

    t0 = time.perf_counter()
    add("mean image", np.where(hole, xtr.mean(0, keepdims=True), xte), time.perf_counter() - t0)
    epochs = 3 if quick else 30
    trainer = {"precision": "fp32", "channels_last": False, "log_every": 1000}
    for proto, fit_x in (("inductive", xtr), ("transductive", np.concatenate([xtr, xin]))):
        t0 = time.perf_counter()
        imp = Imputer(model="vae", epochs=epochs, model_config={"arch": "mlp"}, trainer_config=trainer).fit(fit_x)
        secs = time.perf_counter() - t0
        for n_iter in (2, 10):
            imp.set_params(n_iter=n_iter)
            add(f"genlab vae, {proto}, n_iter={n_iter}", imp.transform(xin), secs)
    t0 = time.perf_counter()
    knn = KNNImputer().fit(xtr.reshape(len(xtr), -1))
    filled = knn.transform(xin.reshape(len(xin), -1)).reshape(xin.shape)
    add("KNNImputer (fit on train)", filled, time.perf_counter() - t0)
    return rows


def _echo(row: dict) -> None:
    print("  " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
          flush=True)


def run(quick: bool = False) -> list[dict]:
    """All rows: the tabular RMSE table, then the inpainting table."""
    return tabular_rows(quick) + inpainting_rows(quick)


def markdown(rows: list[dict]) -> str:
    tab = [r for r in rows if r["task"] == "tabular"]
    out = ["| data | missing | method | RMSE (mean ± std over seeds) | s / fit |", "|---|---|---|---|---|"]
    for r in tab:
        out.append(f"| {r['data']} | {r['missing']} | {r['method']} | {r['rmse']:.3f} ± {r['rmse_std']:.3f} | "
                   f"{r['seconds_per_fit']:.2f} |")
    inp = [r for r in rows if r["task"] == "inpainting"]
    if inp:
        out += ["", "| data | missing | method | PSNR on the missing region (dB) | s / fit |", "|---|---|---|---|---|"]
        for r in inp:
            out.append(f"| {r['data']} | {r['missing']} | {r['method']} | {r['psnr_region']:.2f} | "
                       f"{r['seconds_per_fit']:.1f} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one seed, 20 epochs, small inpainting subset")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import genlab
    print(f"genlab {genlab.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    t0 = time.perf_counter()
    rows = run(quick=args.quick)
    print(f"\ncommand: OMP_NUM_THREADS=1 .venv/bin/python bench/app_impute.py{' --quick' if args.quick else ''}"
          f"  ({time.perf_counter() - t0:.0f} s)\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
