"""Imputation figures: genlab's Imputer vs scikit-learn's imputers, and MNIST inpainting.

Tabular (scikit-learn's breast-cancer 569x30 and diabetes 442x10): entries removed completely at random
(each entry independently with probability 20 % or 50 %; 5 seeds, masks from ``numpy.random.default_rng``).
Every method is fitted on the data with its holes and fills those same holes (transductive, the same for all
methods). The baselines get the columns standardised by their observed mean and std (the genlab Imputer
standardises internally the same way), so KNN distances are not dominated by large-valued columns.
Score: RMSE over the missing entries, in units of each column's standard deviation over the complete data
(1.0 = as far off as one standard deviation; mean imputation scores about 1.0). Mean and std over the seeds.

* genlab ``Imputer(model="vae")`` with its defaults: MIWAE (trained on the importance-weighted bound of
  ``log p(x_obs)`` with 20 samples, filled with self-normalised importance weights over 1,000 samples), 200
  epochs, tabular defaults ``latent_dim = min(16, D // 2)``, ``hidden=[128, 128]`` and a learned per-column
  sigma, blended with a Gaussian fitted by EM (``gaussian_weight=0.75``: fill = 0.75 x the Gaussian's
  conditional mean + 0.25 x MIWAE's); and
  ``Imputer(model="ae")`` (iterative filling, ``n_iter=2``, also blended with the Gaussian). The defaults were
  chosen on validation entries carved from the observed ones under other masks (bench/impute_select.py) and
  on other data (scikit-learn's wine table and a synthetic 12-column table), never on the scored entries.
* ``SimpleImputer(strategy="mean")``, ``KNNImputer()`` (5 neighbours), ``IterativeImputer(max_iter=10)``
  (BayesianRidge, ``random_state`` = seed).

Inpainting (mnist5k, fixed split 80/20 with seed 0: 4,000 train / 1,000 test images): the bottom half (rows
14-27) of every test image is missing. PSNR in dB over the missing region only (per image, averaged).
* genlab inductive: ``Imputer(model="vae")`` fitted on the complete train images (with the default
  ``mask_copies=1``: plus one copy of each with a random half missing), then fills the test images
  (default importance-weighted fill, and the iterative fill with ``n_iter=2`` for comparison);
* genlab transductive: fitted on the train images plus the test images with their holes (mask-aware, the
  hidden halves are never seen), then fills the test images;
* mean image of the train set, and ``KNNImputer`` (5 neighbours) fitted on the flattened train images.
The image VAE uses ``arch="mlp"`` (a conv VAE takes about ten times longer on one CPU core) and 100 epochs
(30 before the half-masked copies; 100 chosen on a validation split of the training images,
bench/impute_select.py --images).

    OMP_NUM_THREADS=1 .venv/bin/python bench/app_impute.py [--quick] [--part tabular] [--seeds 0,1] [--image-seeds 1,2]
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


def _methods(quick: bool, seed: int, skip: tuple[str, ...] = ()) -> dict:
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (registers IterativeImputer)
    from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

    from genlab.apps import Imputer
    epochs = 20 if quick else 200
    trainer = {"precision": "fp32", "channels_last": False, "log_every": 1000}
    out = {
        "genlab vae": (Imputer(model="vae", epochs=epochs, random_state=seed, trainer_config=trainer), False),
        "genlab ae": (Imputer(model="ae", epochs=epochs, random_state=seed, trainer_config=trainer), False),
        "mean": (SimpleImputer(strategy="mean"), True),
        "KNNImputer": (KNNImputer(), True),
        "IterativeImputer": (IterativeImputer(max_iter=10, random_state=seed), True),
    }
    return {k: v for k, v in out.items() if k not in skip}


def tabular_rows(quick: bool = False, skip: tuple[str, ...] = (), seeds: tuple[int, ...] | None = None) -> list[dict]:
    rows = []
    seeds = seeds if seeds is not None else (SEEDS[:1] if quick else SEEDS)
    for name, X in _tabular_sets().items():
        sd = X.std(0)
        for rate in RATES:
            scores: dict[str, list[float]] = {}
            times: dict[str, float] = {}
            for seed in seeds:
                mask = np.random.default_rng(seed).random(X.shape) < rate
                Xm = np.where(mask, np.nan, X)
                mu, s = np.nanmean(Xm, 0), np.nanstd(Xm, 0)
                for method, (est, standardise) in _methods(quick, seed, skip).items():
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


def inpainting_rows(quick: bool = False, extra_seeds: tuple[int, ...] = ()) -> list[dict]:
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
    epochs = 3 if quick else 100
    trainer = {"precision": "fp32", "channels_last": False, "log_every": 1000}
    for proto, fit_x in (("inductive", xtr), ("transductive", np.concatenate([xtr, xin]))):
        t0 = time.perf_counter()
        imp = Imputer(model="vae", epochs=epochs, model_config={"arch": "mlp"}, trainer_config=trainer).fit(fit_x)
        secs = time.perf_counter() - t0
        t0 = time.perf_counter()
        filled = imp.transform(xin)
        add(f"genlab vae, {proto}, importance fill (K={imp.n_samples})", filled, secs + time.perf_counter() - t0)
        imp.set_params(method="iterative", n_iter=2)
        add(f"genlab vae, {proto}, iterative fill (n_iter=2)", imp.transform(xin), secs)
    for seed in extra_seeds:  # training seeds other than 0: the inductive importance fill only (spread over seeds)
        t0 = time.perf_counter()
        imp = Imputer(model="vae", epochs=epochs, random_state=seed, model_config={"arch": "mlp"},
                      trainer_config=trainer).fit(xtr)
        add(f"genlab vae, inductive, importance fill (K={imp.n_samples}), training seed {seed}", imp.transform(xin),
            time.perf_counter() - t0)
    t0 = time.perf_counter()
    knn = KNNImputer().fit(xtr.reshape(len(xtr), -1))
    filled = knn.transform(xin.reshape(len(xin), -1)).reshape(xin.shape)
    add("KNNImputer (fit on train)", filled, time.perf_counter() - t0)
    return rows


def _echo(row: dict) -> None:
    print("  " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
          flush=True)


def run(quick: bool = False, part: str = "all", skip: tuple[str, ...] = (), seeds=None,
        image_seeds: tuple[int, ...] = ()) -> list[dict]:
    """All rows: the tabular RMSE table, then the inpainting table (``part``: ``all``, ``tabular``, ``inpainting``;
    ``skip``: tabular method names left out; ``seeds``: tabular mask seeds, default 0-4; ``image_seeds``: further
    training seeds of the inductive inpainting row)."""
    return (tabular_rows(quick, skip, seeds) if part != "inpainting" else []) + \
        (inpainting_rows(quick, image_seeds) if part != "tabular" else [])


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
    ap.add_argument("--part", default="all", choices=("all", "tabular", "inpainting"))
    ap.add_argument("--skip", default="", help="comma list of tabular methods to leave out, e.g. 'genlab ae'")
    ap.add_argument("--seeds", default="", help="comma list of tabular mask seeds (default 0,1,2,3,4)")
    ap.add_argument("--image-seeds", default="", help="comma list of further training seeds of the inductive "
                    "inpainting row (importance fill only), e.g. 1,2")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import genlab
    print(f"genlab {genlab.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    t0 = time.perf_counter()
    skip = tuple(m for m in args.skip.split(",") if m)
    seeds = tuple(int(v) for v in args.seeds.split(",") if v) or None
    image_seeds = tuple(int(v) for v in args.image_seeds.split(",") if v)
    rows = run(quick=args.quick, part=args.part, skip=skip, seeds=seeds, image_seeds=image_seeds)
    extra = (" --quick" if args.quick else "") + (f" --part {args.part}" if args.part != "all" else "") + \
        (f" --skip '{args.skip}'" if skip else "") + (f" --seeds {args.seeds}" if seeds else "") + \
        (f" --image-seeds {args.image_seeds}" if image_seeds else "")
    print(f"\ncommand: OMP_NUM_THREADS=1 .venv/bin/python bench/app_impute.py{extra}"
          f"  ({time.perf_counter() - t0:.0f} s)\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
