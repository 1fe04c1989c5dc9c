"""Selection of the tabular ``Imputer`` defaults on validation entries the bench's table never scores.

Protocol: for each data set (scikit-learn's breast-cancer, diabetes and wine tables) and missing rate (20 %,
50 %), an MCAR mask is drawn with *selection* seeds (100, 101: not the bench's 0-4); then 10 % of the entries
that mask leaves observed are hidden as well (the validation entries, carved from the data used for fitting).
Every candidate is fitted on the table with both sets of holes and scored on the validation entries only
(RMSE in column standard deviations of the observed values). The true values of the bench's missing entries
are never used, and the bench's masks (seeds 0-4) are not drawn here.

``--weights`` scores every candidate at several weights of the Gaussian component (``gaussian_weight``: the
fitted estimator is re-used, only the fill's blend changes), e.g. ``--weights 0,0.25,0.5,0.75,1``;
``EM`` and ``Iterative`` columns are the Gaussian component alone and scikit-learn's IterativeImputer.

    OMP_NUM_THREADS=1 .venv/bin/python bench/impute_select.py [--variants base,ens3,...] [--data ...] \
        [--weights 0,0.5,0.75,1]

``--images C:E[:L[:K]],...`` selects the image settings instead: mnist5k's *training* split of the inpainting
bench (4,000 images, split seed 0; its 1,000 test images are never loaded) is cut again (permutation seed 1)
into 3,200 fit images and 800 validation images whose bottom half is hidden; each candidate ``C`` (mask_copies)
``E`` (epochs) ``L`` (latent_dim, default 16) ``K`` (importance samples of the training bound, default 1) is
fitted on the 3,200 complete images (MLP VAE, as in the bench) and scored by PSNR on the hidden halves, with
KNNImputer fitted on the same 3,200 images for reference:

    OMP_NUM_THREADS=1 .venv/bin/python bench/impute_select.py --images 0:30,1:30,3:50
"""
from __future__ import annotations

import argparse
import logging
import time
import warnings

import numpy as np
import torch

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


def _fit_fill(kw: dict, n_ens: int, Xm: np.ndarray, seed: int, weights=(None,)) -> dict:
    """{weight: fill} for one candidate (``None``: the candidate's own ``gaussian_weight``)."""
    from genlab.apps import Imputer
    kw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in kw.items()}
    mc = kw.pop("model_config", {})
    if mc.get("latent_dim") == -1:
        mc["latent_dim"] = Xm.shape[1] - 1
    fills: dict = {}
    for s in range(n_ens):
        imp = Imputer(random_state=seed * 10 + s, trainer_config=TRAINER, verbose=False, model_config=mc or None,
                      **kw)
        if any(w is not None for w in weights):
            imp.set_params(gaussian_weight=0.5)  # fits the Gaussian component; the blend is set per weight below
        imp.fit(Xm)
        for w in weights:
            if w is not None:
                imp.set_params(gaussian_weight=w)
            fills.setdefault(w, []).append(imp.transform(Xm))
    return {w: np.mean(f, 0) for w, f in fills.items()}


def select_images(spec: str, n_samples: int = 1000) -> None:
    from sklearn.impute import KNNImputer

    from genlab import load_dataset
    from genlab.apps import Imputer
    tr, _, _ = load_dataset("mnist5k").split(val=0.0, test=0.2, seed=0)  # the bench's split; test never used
    x = tr.x.numpy()
    perm = np.random.default_rng(1).permutation(len(x))
    xf, xv = x[perm[:3200]], x[perm[3200:]]  # (3200 / 800, 1, 28, 28)
    hole = np.zeros_like(xv, dtype=bool)
    hole[:, :, 14:, :] = True
    xin = np.where(hole, np.nan, xv)

    def psnr(f):
        se = (((f - xv) ** 2) * hole).reshape(len(xv), -1).sum(1) / hole.reshape(len(xv), -1).sum(1)
        return float(np.mean(10 * np.log10(1 / np.maximum(se, 1e-12))))
    knn = KNNImputer().fit(xf.reshape(len(xf), -1))
    print(f"  KNNImputer: {psnr(knn.transform(xin.reshape(len(xin), -1)).reshape(xin.shape)):.3f} dB", flush=True)
    for cand in spec.split(","):
        parts = [int(v) for v in cand.split(":")]
        copies, epochs = parts[:2]
        latent = parts[2] if len(parts) > 2 else 16
        iw = parts[3] if len(parts) > 3 else 1
        t = time.process_time()
        imp = Imputer(model="vae", epochs=epochs, mask_copies=copies, n_samples=n_samples, trainer_config=TRAINER,
                      verbose=False, model_config={"arch": "mlp", "latent_dim": latent, "iw_samples": iw}).fit(xf)
        fit_s = time.process_time() - t
        r1 = psnr(imp.transform(xin))
        r2 = psnr(imp.set_params(method="iterative", n_iter=2).transform(xin))
        print(f"  mask_copies={copies} epochs={epochs} latent_dim={latent} iw_samples={iw}: importance fill "
              f"{r1:.3f} dB, iterative fill {r2:.3f} dB ({fit_s:.0f} s cpu fit)", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default="", help="image candidates C:E[:L[:K]] (mask_copies:epochs:latent:iw)")
    ap.add_argument("--n-samples", type=int, default=1000, help="importance samples of the image fills")
    ap.add_argument("--variants", default="base,ens3")
    ap.add_argument("--data", default="breast-cancer,diabetes,wine")
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    ap.add_argument("--rates", default="0.2,0.5")
    ap.add_argument("--weights", default="", help="comma list of gaussian_weight values to score each candidate at")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.images:
        return select_images(args.images, args.n_samples)
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (registers IterativeImputer)
    from sklearn.impute import IterativeImputer, KNNImputer

    from genlab.apps.impute import gaussian_conditional, gaussian_em
    weights = [float(w) for w in args.weights.split(",") if w] or [None]
    names = [v if w is None else f"{v}@{w:g}" for v in args.variants.split(",") for w in weights]
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
                m2, s2 = np.nanmean(Xm, 0), np.nanstd(Xm, 0)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    for b, est in (("KNN", KNNImputer()), ("Iterative", IterativeImputer(max_iter=10, random_state=seed))):
                        res.setdefault((dname, rate, b), []).append(score(est.fit_transform((Xm - m2) / s2) * s2 + m2))
                em = gaussian_conditional(torch.from_numpy((Xm - m2) / s2), *gaussian_em(torch.from_numpy((Xm - m2) / s2)))
                res.setdefault((dname, rate, "EM"), []).append(score(em[0].numpy() * s2 + m2))
                for v in args.variants.split(","):
                    kw, n = VARIANTS[v]
                    t = time.process_time()
                    fills = _fit_fill(kw, n, Xm, seed, weights)
                    for w, f in fills.items():
                        name = v if w is None else f"{v}@{w:g}"
                        r = score(f)
                        res.setdefault((dname, rate, name), []).append(r)
                        print(f"  {dname} {rate:.0%} seed {seed} {name}: {r:.4f} ({time.process_time() - t:.0f} s cpu)",
                              flush=True)
    names = ["EM"] + names
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
