"""Choose ``AnomalyDetector``'s default score on data the anomaly tables do not report.

Images (``digits``, ``mnist5k``): inside the TRAINING split of ``bench/app_anomaly.py`` only
(``split(0.0, 0.2, seed=0)``), cut again 75 / 25 (seed 1) into a fit part and a selection part; each class in turn
is normal, an AE with the benchmark's settings is fitted on the fit part's images of that class, and every
selection-part image (all classes) is scored; mean ROC-AUC over classes. The test split is never read.

Tabular: the breast-cancer table's anomalies (malignant rows) are all in its test set, so the tabular score is
chosen on another data set: scikit-learn's ``wine`` (178 rows, 13 columns, 3 cultivars), one-class protocol
(each cultivar in turn normal; 80 % of its rows (seed 0) fit, the other 20 % and all other cultivars scored),
with the breast-cancer settings of the benchmark (MLP, code 8, 100 epochs). Breast cancer itself is not read.

Every variant is computed from the same trained AE (no retraining per variant):

* ``mse``: ``-mean (x - r)^2``; ``rel``: ``-log mse + 0.5 log mean x^2`` (images);
* ``zmse`` (tabular): ``-mean_j ((x_j - r_j) / s_j)^2`` with ``s_j`` the RMS training residual of column ``j``;
* ``maha``: minus the Mahalanobis distance of the code ``encode(x)`` to a Gaussian fitted to the training codes
  (Ledoit-Wolf covariance); ``knn``: minus the mean distance to the 5 nearest training codes;
* ``A+B``: the sum of the two scores, each standardised by the mean and standard deviation of its values on the
  training samples (``A+0.5B``, ``A+2B``: B weighted by one half, by two).

    OMP_NUM_THREADS=1 .venv/bin/python bench/anomaly_select.py [--data digits,mnist5k,wine] [--seeds 1]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.covariance import LedoitWolf
from sklearn.datasets import load_wine
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from genlab.apps import AnomalyDetector
from genlab.data import load_dataset

SETTINGS = {"digits": {"latent_dim": 8, "epochs": 30, "arch": "conv"},
            "mnist5k": {"latent_dim": 16, "epochs": 20, "arch": "mlp"},
            "wine": {"latent_dim": 8, "epochs": 100, "arch": "mlp"}}
TRAINER = {"precision": "fp32", "channels_last": False, "log_every": 1000}


def _parts(det: AnomalyDetector, x) -> dict:
    xm = det._prepare(x).double()
    r = det._reconstruct(xm.float()).double()
    with torch.no_grad():
        z = det.model_.eval().encode(xm.float()).double()
    res = (xm - r).flatten(1)
    return {"res": res.numpy(), "ms": xm.flatten(1).pow(2).mean(1).numpy(), "z": z.numpy()}


def _variants(tr: dict, te: dict, image: bool) -> dict:
    def base(p):
        out = {"mse": -np.mean(p["res"] ** 2, 1)}
        if image:
            out["rel"] = -np.log(np.mean(p["res"] ** 2, 1) + 1e-12) + 0.5 * np.log(p["ms"] + 1e-12)
        s = np.sqrt(np.mean(tr["res"] ** 2, 0)) + 1e-3
        out["zmse"] = -np.mean((p["res"] / s) ** 2, 1)
        return out
    lw = LedoitWolf().fit(tr["z"])
    nn = NearestNeighbors(n_neighbors=6).fit(tr["z"])

    def latent(p, train):
        d, _ = nn.kneighbors(p["z"])
        d = d[:, 1:] if train else d[:, :5]  # a training sample is its own nearest neighbour
        return {"maha": -lw.mahalanobis(p["z"]), "knn": -d.mean(1)}
    s_tr, s_te = {**base(tr), **latent(tr, True)}, {**base(te), **latent(te, False)}
    out = dict(s_te)
    for a in (("rel",) if image else ()) + ("mse", "zmse"):
        for b in ("maha", "knn"):
            za = (s_te[a] - s_tr[a].mean()) / s_tr[a].std()
            zb = (s_te[b] - s_tr[b].mean()) / s_tr[b].std()
            out[f"{a}+{b}"] = za + zb
            out[f"{a}+0.5{b}"] = za + 0.5 * zb
            out[f"{a}+2{b}"] = za + 2 * zb
    return out


def _fit(x, name, seed):
    s = SETTINGS[name]
    return AnomalyDetector(model="ae", model_config={"latent_dim": s["latent_dim"], "arch": s["arch"]},
                           epochs=s["epochs"], batch_size=32, random_state=seed, trainer_config=TRAINER).fit(x)


def images(name: str, seeds: int) -> dict:
    tr, _, _ = load_dataset(name).split(0.0, 0.2, seed=0)  # the benchmark's training split only
    fit, _, sel = tr.split(0.0, 0.25, seed=1)
    xf, yf, xs, ys = fit.x.numpy(), fit.y.numpy(), sel.x.numpy(), sel.y.numpy()
    auc: dict = {}
    for c in np.unique(yf):
        ens = {}
        for seed in range(seeds):
            det = _fit(xf[yf == c], name, seed)
            v = _variants(_parts(det, xf[yf == c]), _parts(det, xs), True)
            for k, s in v.items():
                auc.setdefault(f"{k}@s{seed}", []).append(roc_auc_score(ys == c, s))
                ens.setdefault(k, []).append((s - s.mean()) / s.std())
        if seeds > 1:
            for k, ss in ens.items():
                auc.setdefault(f"{k}@ens{seeds}", []).append(roc_auc_score(ys == c, np.mean(ss, 0)))
        print(f"  {name} {c}: rel {auc['rel@s0'][-1]:.4f} rel+maha {auc['rel+maha@s0'][-1]:.4f}", flush=True)
    return {k: float(np.mean(v)) for k, v in auc.items()}


def wine(seeds: int) -> dict:
    X, y = load_wine(return_X_y=True)
    X = X.astype(np.float32)
    auc: dict = {}
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        perm = np.random.default_rng(0).permutation(idx)
        n = round(0.8 * len(idx))
        trn, tst = perm[:n], np.r_[perm[n:], np.flatnonzero(y != c)]
        ens = {}
        for seed in range(seeds):
            det = _fit(X[trn], "wine", seed)
            v = _variants(_parts(det, X[trn]), _parts(det, X[tst]), False)
            for k, s in v.items():
                auc.setdefault(f"{k}@s{seed}", []).append(roc_auc_score(y[tst] == c, s))
                ens.setdefault(k, []).append((s - s.mean()) / s.std())
        if seeds > 1:
            for k, ss in ens.items():
                auc.setdefault(f"{k}@ens{seeds}", []).append(roc_auc_score(y[tst] == c, np.mean(ss, 0)))
    return {k: float(np.mean(v)) for k, v in auc.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="digits,mnist5k,wine")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=0, help="override the benchmark's epochs (0: keep them)")
    args = ap.parse_args()
    if args.epochs:
        for s in SETTINGS.values():
            s["epochs"] = args.epochs
    torch.manual_seed(0)
    for name in args.data.split(","):
        t = time.process_time()
        res = wine(args.seeds) if name == "wine" else images(name, args.seeds)
        print(f"\n{name} (selection split; {time.process_time() - t:.0f} CPU s)")
        for k, v in sorted(res.items(), key=lambda kv: -kv[1]):
            print(f"  {k:16s} {v:.4f}")


if __name__ == "__main__":
    main()
