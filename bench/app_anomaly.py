"""Anomaly detection on real data: genlab's AE and VAE detectors vs scikit-learn's IsolationForest,
OneClassSVM and PCA reconstruction error, all on the same inputs.

One-class protocol on ``digits`` (8×8) and the offline MNIST subset ``mnist5k`` (28×28): a fixed split
(80 % train / 20 % test, ``TensorDataset.split(0.0, 0.2, seed=0)``); each class in turn is normal, every
detector is fitted on that class's training samples only, and all test samples (all classes) are scored;
ROC-AUC with the normal class as the positive class and ``score_samples`` (higher = more normal) as the
score. Breast cancer (scikit-learn): benign is normal; 80 % of the benign rows (seed 0) train, the other
20 % of benign and all malignant rows are scored.

Methods (same data: images flattened in [0, 1]; breast cancer standardised by the benign training rows):

* ``AE``: ``AnomalyDetector(model="ae")``, reconstruction score (conv nets for images, MLP for tabular);
* ``VAE-elbo`` / ``VAE-rec``: one ``vae`` per class scored by the ELBO (16 fixed posterior draws) and by the
  reconstruction error at the posterior mean;
* ``IForest``: ``IsolationForest(n_estimators=100, random_state=0)``;
* ``OCSVM``: ``OneClassSVM(kernel="rbf", gamma="scale", nu=0.1)``;
* ``PCA``: reconstruction error with as many components as the AE code (``latent_dim``).

Settings: code size 8 (digits, breast cancer) and 16 (mnist5k); conv nets on digits, MLP nets (widths
sized from the input) on mnist5k and breast cancer; Adam 1e-3, batch 32, fp32, 30 epochs on digits, 20
on mnist5k, 100 on breast cancer; 10 % of each training set is held out for the trainer's best-epoch
restore. The MLP on mnist5k is for run time: the conv AE/VAE took about 8x longer per class on one CPU
core (the only conv-vs-MLP comparison made, on mnist5k class 2: AE 0.881 conv vs 0.859 MLP).

    OMP_NUM_THREADS=1 .venv/bin/python bench/app_anomaly.py [--quick]
"""
from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

import genlab
from genlab.apps import AnomalyDetector
from genlab.data import load_dataset

METHODS = ("AE", "VAE-elbo", "VAE-rec", "IForest", "OCSVM", "PCA")
SETTINGS = {"digits": {"latent_dim": 8, "epochs": 30, "arch": "conv"},
            "mnist5k": {"latent_dim": 16, "epochs": 20, "arch": "mlp"},
            "breast-cancer": {"latent_dim": 8, "epochs": 100, "arch": "mlp"}}
TRAINER = {"precision": "fp32", "channels_last": False, "log_every": 1000}
COMMAND = "OMP_NUM_THREADS=1 .venv/bin/python bench/app_anomaly.py"


class _PCAError:
    """Minus the mean squared PCA reconstruction error (higher = more normal), like the AE score."""

    def __init__(self, k: int):
        self.pca = PCA(n_components=k, svd_solver="full")

    def fit(self, x):
        self.pca.fit(x)
        return self

    def score_samples(self, x):
        return -np.mean((self.pca.inverse_transform(self.pca.transform(x)) - x) ** 2, axis=1)


def _scores(x_train, x_test, xf_train, xf_test, latent: int, epochs: int, arch: str, seed: int = 0) -> dict:
    """``{method: (test scores, seconds to fit and score)}``; ``x_*`` in the estimator's input format, ``xf_*`` flat."""
    out = {}
    common = {"model_config": {"latent_dim": latent, "arch": arch}, "epochs": epochs, "batch_size": 32,
              "random_state": seed, "trainer_config": TRAINER}
    t = time.perf_counter()
    ae = AnomalyDetector(model="ae", **common).fit(x_train)
    out["AE"] = (ae.score_samples(x_test), time.perf_counter() - t)
    t = time.perf_counter()
    vae = AnomalyDetector(model="vae", scoring="elbo", n_samples=16, **common).fit(x_train)
    out["VAE-elbo"] = (vae.score_samples(x_test), time.perf_counter() - t)
    t = time.perf_counter()
    vrec = AnomalyDetector(model=vae.model_, scoring="reconstruction").fit(x_train)  # same VAE, no retraining
    out["VAE-rec"] = (vrec.score_samples(x_test), time.perf_counter() - t)
    for name, est in (("IForest", IsolationForest(n_estimators=100, random_state=seed)),
                      ("OCSVM", OneClassSVM(kernel="rbf", gamma="scale", nu=0.1)),
                      ("PCA", _PCAError(latent))):
        t = time.perf_counter()
        out[name] = (est.fit(xf_train).score_samples(xf_test), time.perf_counter() - t)
    return out


def one_class(name: str, epochs: int, classes=None, log=print) -> list[dict]:
    ds = load_dataset(name)
    tr, _, te = ds.split(0.0, 0.2, seed=0)
    latent, arch = SETTINGS[name]["latent_dim"], SETTINGS[name]["arch"]
    rows = []
    for c in classes if classes is not None else range(ds.num_classes):
        xtr = tr.x[tr.y == c].numpy()  # (n_c, C, H, W) in [0, 1]
        xte, normal = te.x.numpy(), (te.y == c).numpy()
        res = _scores(xtr, xte, xtr.reshape(len(xtr), -1), xte.reshape(len(xte), -1), latent, epochs, arch)
        for m in METHODS:
            s, sec = res[m]
            rows.append({"data": name, "normal": str(c), "method": m, "roc_auc": float(roc_auc_score(normal, s)),
                         "n_train": len(xtr), "n_test": len(xte), "seconds": round(sec, 2)})
        log(f"  {name} class {c}: " + "  ".join(f"{r['method']} {r['roc_auc']:.3f}" for r in rows[-len(METHODS):]))
    return rows


def breast_cancer(epochs: int, log=print) -> list[dict]:
    X, y = load_breast_cancer(return_X_y=True)  # target 1 = benign, 0 = malignant
    benign, malignant = X[y == 1], X[y == 0]
    perm = np.random.default_rng(0).permutation(len(benign))
    n_tr = round(0.8 * len(benign))
    xtr = benign[perm[:n_tr]].astype(np.float32)
    xte = np.concatenate([benign[perm[n_tr:]], malignant]).astype(np.float32)
    normal = np.r_[np.ones(len(benign) - n_tr, bool), np.zeros(len(malignant), bool)]
    sc = StandardScaler().fit(xtr)  # the AE/VAE standardise internally by their own training statistics
    res = _scores(xtr, xte, sc.transform(xtr), sc.transform(xte), SETTINGS["breast-cancer"]["latent_dim"], epochs,
                  SETTINGS["breast-cancer"]["arch"])
    rows = [{"data": "breast-cancer", "normal": "benign", "method": m, "roc_auc": float(roc_auc_score(normal, s)),
             "n_train": len(xtr), "n_test": len(xte), "seconds": round(sec, 2)} for m, (s, sec) in res.items()]
    log("  breast-cancer: " + "  ".join(f"{r['method']} {r['roc_auc']:.3f}" for r in rows))
    return rows


def run(quick: bool = False) -> list[dict]:
    """One dict per (data set, normal class, method): ROC-AUC, sizes and seconds to fit and score. ``quick``: digits classes
    0-2 with 5 epochs and breast cancer with 10 epochs (a smoke run, not figures to quote)."""
    torch.manual_seed(0)
    if quick:
        return one_class("digits", 5, classes=[0, 1, 2]) + breast_cancer(10)
    rows = []
    for name in ("digits", "mnist5k"):
        rows += one_class(name, SETTINGS[name]["epochs"])
    return rows + breast_cancer(SETTINGS["breast-cancer"]["epochs"])


def tables(rows: list[dict]) -> str:
    datasets = list(dict.fromkeys(r["data"] for r in rows))
    lines = ["Mean ROC-AUC over normal classes (higher is better; best per row in bold)", "",
             "| data | " + " | ".join(METHODS) + " |", "|---" * (len(METHODS) + 1) + "|"]
    for d in datasets:
        means = {m: np.mean([r["roc_auc"] for r in rows if r["data"] == d and r["method"] == m]) for m in METHODS}
        best = max(round(v, 3) for v in means.values())
        cells = [f"**{v:.3f}**" if round(v, 3) == best else f"{v:.3f}" for v in means.values()]
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    lines += ["", "ROC-AUC per normal class", "", "| data | normal | " + " | ".join(METHODS) + " |",
              "|---" * (len(METHODS) + 2) + "|"]
    for d in datasets:
        for c in dict.fromkeys(r["normal"] for r in rows if r["data"] == d):
            v = {r["method"]: r["roc_auc"] for r in rows if r["data"] == d and r["normal"] == c}
            best = max(round(a, 3) for a in v.values())
            lines.append(f"| {d} | {c} | " + " | ".join(f"**{v[m]:.3f}**" if round(v[m], 3) == best else f"{v[m]:.3f}"
                                                         for m in METHODS) + " |")
    lines += ["", "Seconds to fit and score, summed over classes (VAE-rec reuses the VAE-elbo model: scoring only)",
              "", "| data | " + " | ".join(METHODS) + " |",
              "|---" * (len(METHODS) + 1) + "|"]
    for d in datasets:
        lines.append(f"| {d} | " + " | ".join(
            f"{sum(r['seconds'] for r in rows if r['data'] == d and r['method'] == m):.1f}" for m in METHODS) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 3 digit classes, few epochs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"genlab {genlab.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    t0 = time.perf_counter()
    rows = run(quick=args.quick)
    print(f"\ncommand: {COMMAND}{' --quick' if args.quick else ''}  ({time.perf_counter() - t0:.0f} s)\n")
    print(tables(rows))


if __name__ == "__main__":
    main()
