"""Choose ``AnomalyDetector``'s default score on data the anomaly tables do not report.

Images (``digits``, ``mnist5k``): inside the TRAINING split of ``bench/app_anomaly.py`` only
(``split(0.0, 0.2, seed=0)``), cut again 75 / 25 (seed 1) into a fit part and a selection part; each class in turn
is normal, an AE with the benchmark's settings is fitted on the fit part's images of that class, and every
selection-part image (all classes) is scored; mean ROC-AUC over classes. The test split is never read.

Tabular: the breast-cancer table's anomalies (malignant rows) are all in its test set, so the tabular score is
chosen on other data sets: scikit-learn's ``wine`` (178 rows, 13 columns, 3 cultivars) and ``iris`` (150 rows,
4 columns, 3 species), one-class protocol (each class in turn normal; 80 % of its rows (seed 0) fit, the other
20 % and all other classes scored), with the breast-cancer settings of the benchmark (MLP, code 8, 100 epochs).
Breast cancer itself is not read. ``digits-tab``: the digits TRAINING split of the image protocol (cut 75 / 25, seed 1,
as for images) read as a 64-column table of pixel counts 0-16, with the tabular settings: a wider table like breast
cancer's 30 columns. Round 11 added four sets with the wine / iris protocol: ``autompg`` (mlxtend's Auto MPG, 392 cars,
6 measurements and mpg, the class is the origin: USA / Europe / Japan) and three UCR time-series problems read as
tables, one column per time step (``italypower``: ItalyPowerDemand, 1,096 x 24, 2 classes; ``gunpoint``: GunPoint,
200 x 150, 2 classes; ``arrowhead``: ArrowHead, 211 x 251, 3 classes; TRAIN and TEST files together, from the data
files of aeon's wheel: ``.venv/bin/pip install --no-deps aeon==1.6.0``). Every tabular set also prints the
classical tools of ``bench/app_anomaly.py`` on columns standardised by the fit rows: ``OCSVM (reference)``
(``OneClassSVM(gamma="scale", nu=0.1)``, the baseline that wins the breast-cancer table), ``IForest (reference)``,
``PCA (reference)`` (as many components as the code) and ``best classical (reference)``, the best of the three
tools' means on that set.

Every variant is computed from the same trained AE (no retraining per variant):

* ``mse``: ``-mean (x - r)^2``; ``rel``: ``-log mse + 0.5 log mean x^2`` (images);
* ``zmse`` (tabular): ``-mean_j ((x_j - r_j) / s_j)^2`` with ``s_j`` the RMS training residual of column ``j``;
* ``rmaha`` (tabular): minus the squared Mahalanobis distance of the standardised residual vector ``(x - r) / s``
  to a Gaussian fitted to the training residuals (Ledoit-Wolf covariance): the residuals' correlations counted;
* ``maha``: minus the squared Mahalanobis distance of the code ``encode(x)`` to a Gaussian fitted to the training
  codes (Ledoit-Wolf covariance); ``knn``: minus the mean distance to the 5 nearest training codes;
* ``xmaha`` (tabular): minus the squared Mahalanobis distance of the model-space input itself to a Gaussian fitted to
  the training rows (Ledoit-Wolf; no network), alone and added to ``zmse+3maha``, ``mse+3maha`` and ``mse+4knn``
  (each standardised by its training scores) with weight 0.5, 1, 2 or 3 (``zmse+3maha+2xmaha``; round 7);
* ``xcv`` (tabular): as ``xmaha`` with the covariance shrinkage chosen by 5-fold cross-validated log-likelihood of
  the fit rows (``ShrunkCovariance``, 0 .. 1), alone and added as ``xmaha`` is (round 8);
* ``zsvm`` (tabular): ``OneClassSVM(gamma="scale", nu=0.1)``'s score of the code, fitted on the training codes
  standardised column by column (round 11: a kernel density of the codes in place of their Gaussian);
* ``xsvm`` (tabular): ``OneClassSVM(gamma="scale", nu=0.1)``'s score of the model-space input itself (the columns
  standardised by the AE's training rows, as the ``OCSVM (reference)`` does by the fit rows), alone and added to
  ``zmse+3maha`` as ``xmaha`` is, weights 0.5 .. 3 (round 12: the AE's score plus a kernel density of the inputs);
* ``A+B``: the sum of the two scores, each standardised by the mean and standard deviation of its values on the
  training samples (``A+0.5B``, ``A+2B``, ... ``A+8B``: B weighted by one half, two, three, four, six, eight).

With ``--seeds n`` (n > 1) every variant is also scored as an ensemble of the first ``k`` seeds, ``k`` = 3 and ``n``
(``@ensk``): the mean over the seeds of each seed's score standardised by the mean and standard deviation of that
seed's scores on its own training samples (what ``AnomalyDetector(n_ensemble=k)`` computes); ``@s<i>`` is seed
``i`` alone. ``--latents 8,16`` adds, per seed, AEs of each code size and the ensemble over sizes (``@sizes``).

    OMP_NUM_THREADS=1 .venv/bin/python bench/anomaly_select.py [--data digits,mnist5k,wine,iris] [--seeds 3]
    OMP_NUM_THREADS=1 .venv/bin/python bench/anomaly_select.py --data wine,iris --seeds 5   # issue 19, round 4
    OMP_NUM_THREADS=1 .venv/bin/python bench/anomaly_select.py --data digits-tab,wine,iris --seeds 3   # round 5
    OMP_NUM_THREADS=1 .venv/bin/python bench/anomaly_select.py --data wine,iris,digits-tab --seeds 3 \
        --transform yeo-johnson   # round 6: scikit-learn's PowerTransformer fitted on each fit part first
    OMP_NUM_THREADS=1 .venv/bin/python bench/anomaly_select.py --data wine,iris,digits-tab --seeds 3 \
        --latents 4,8,16 --top 100000   # round 9: code sizes, and ensembles over them (@sizes)
    OMP_NUM_THREADS=1 .venv/bin/python bench/anomaly_select.py --data wine,iris --seeds 3 --model-set "hidden=[]" \
        --epochs 1000   # round 9: a linear AE (--model-set KEY=VALUE: extra model config of every AE)
    OMP_NUM_THREADS=1 .venv/bin/python bench/anomaly_select.py --data wine,iris,digits-tab --seeds 3 \
        --model distance-ae   # round 10: codes that keep the rows' distances (--model: another registered AE)
    OMP_NUM_THREADS=1 .venv/bin/python bench/anomaly_select.py --data wine,iris,digits-tab,autompg,italypower,\
gunpoint,arrowhead --seeds 3 --latents 8,16 --top 100000   # round 11: seven selection sets; zsvm
    OMP_NUM_THREADS=1 .venv/bin/python bench/anomaly_select.py --data wine,iris,digits-tab,autompg,italypower,\
gunpoint,arrowhead --seeds 3 --top 100000   # round 12: xsvm, at the table's code size 8
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.covariance import LedoitWolf
from sklearn.datasets import load_iris, load_wine
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from genlab.apps import AnomalyDetector
from genlab.config import apply_overrides
from genlab.errors import ConfigError
from genlab.data import load_dataset

#: the benchmark's settings (bench/app_anomaly.py SETTINGS; breast cancer's for the tabular sets)
SETTINGS = {"digits": {"latent_dim": 8, "epochs": 200, "arch": "conv"},
            "mnist5k": {"latent_dim": 16, "epochs": 60, "arch": "mlp"},
            "wine": {"latent_dim": 8, "epochs": 100, "arch": "mlp"},
            "iris": {"latent_dim": 8, "epochs": 100, "arch": "mlp"},
            "digits-tab": {"latent_dim": 8, "epochs": 100, "arch": "mlp"},
            "autompg": {"latent_dim": 8, "epochs": 100, "arch": "mlp"},
            "italypower": {"latent_dim": 8, "epochs": 100, "arch": "mlp"},
            "gunpoint": {"latent_dim": 8, "epochs": 100, "arch": "mlp"},
            "arrowhead": {"latent_dim": 8, "epochs": 100, "arch": "mlp"}}
#: the tabular selection sets (round 11 added autompg and three UCR series sets read as tables)
TABULAR = ("wine", "iris", "digits-tab", "autompg", "italypower", "gunpoint", "arrowhead")
#: UCR problems read from the data files aeon's wheel ships (``pip install --no-deps aeon==1.6.0``)
UCR = {"italypower": "ItalyPowerDemand", "gunpoint": "GunPoint", "arrowhead": "ArrowHead"}
TRAINER = {"precision": "fp32", "channels_last": False, "log_every": 1000}


def _parts(det: AnomalyDetector, x) -> dict:
    xm = det._prepare(x).double()
    r = det._reconstruct(xm.float()).double()
    with torch.no_grad():
        z = det.model_.eval().encode(xm.float()).double()
    res = (xm - r).flatten(1)
    return {"res": res.numpy(), "ms": xm.flatten(1).pow(2).mean(1).numpy(), "z": z.numpy(),
            "x": xm.flatten(1).numpy()}


def _variants(tr: dict, te: dict, image: bool) -> tuple[dict, dict]:
    """``(training scores, selection scores)``, one array per variant."""
    def base(p):
        out = {"mse": -np.mean(p["res"] ** 2, 1)}
        if image:
            out["rel"] = -np.log(np.mean(p["res"] ** 2, 1) + 1e-12) + 0.5 * np.log(p["ms"] + 1e-12)
        s = np.sqrt(np.mean(tr["res"] ** 2, 0)) + 1e-3
        out["zmse"] = -np.mean((p["res"] / s) ** 2, 1)
        if not image:  # squared Mahalanobis distance of the standardised residual vector (Ledoit-Wolf)
            out["rmaha"] = -lw_res.mahalanobis(p["res"] / s)
        return out
    lw = LedoitWolf().fit(tr["z"])
    if not image:
        lw_res = LedoitWolf().fit(tr["res"] / (np.sqrt(np.mean(tr["res"] ** 2, 0)) + 1e-3))
    nn = NearestNeighbors(n_neighbors=6).fit(tr["z"])

    def latent(p, train):
        d, _ = nn.kneighbors(p["z"])
        d = d[:, 1:] if train else d[:, :5]  # a training sample is its own nearest neighbour
        out = {"maha": -lw.mahalanobis(p["z"]), "knn": -d.mean(1)}
        if not image:  # round 11: a one-class SVM of the standardised codes (a kernel density of the codes)
            out["zsvm"] = svm.score_samples((p["z"] - z_mu) / z_sd)
        return out
    if not image:
        from sklearn.svm import OneClassSVM
        z_mu, z_sd = tr["z"].mean(0), tr["z"].std(0) + 1e-12
        svm = OneClassSVM(kernel="rbf", gamma="scale", nu=0.1).fit((tr["z"] - z_mu) / z_sd)
    s_tr, s_te = {**base(tr), **latent(tr, True)}, {**base(te), **latent(te, False)}
    if not image:  # the input's own Gaussian (Ledoit-Wolf) in model space: no network involved
        lw_x = LedoitWolf().fit(tr["x"])
        s_tr["xmaha"], s_te["xmaha"] = -lw_x.mahalanobis(tr["x"]), -lw_x.mahalanobis(te["x"])
        cv_x = _cv_gaussian(tr["x"])  # round 8: the shrinkage chosen by held-out likelihood of the fit rows
        s_tr["xcv"], s_te["xcv"] = -cv_x.mahalanobis(tr["x"]), -cv_x.mahalanobis(te["x"])
        svm_x = OneClassSVM(kernel="rbf", gamma="scale", nu=0.1).fit(tr["x"])  # round 12: the inputs' kernel density
        s_tr["xsvm"], s_te["xsvm"] = svm_x.score_samples(tr["x"]), svm_x.score_samples(te["x"])
    out_tr, out_te = dict(s_tr), dict(s_te)
    for a in (("rel",) if image else ("rmaha",)) + ("mse", "zmse"):
        for b in ("maha", "knn") + (() if image else ("zsvm",)):
            for w, tag in ((1.0, ""), (0.5, "0.5"), (2.0, "2"), (3.0, "3"), (4.0, "4"), (6.0, "6"), (8.0, "8")):
                for src, dst in ((s_tr, out_tr), (s_te, out_te)):
                    za = (src[a] - s_tr[a].mean()) / s_tr[a].std()
                    zb = (src[b] - s_tr[b].mean()) / s_tr[b].std()
                    dst[f"{a}+{tag}{b}"] = za + w * zb
    if not image:  # the default score (and plain MSE's) plus the input Gaussian's term, weights 0.5 .. 3
        for base in ("zmse+3maha", "mse+3maha", "mse+4knn"):
            for w, tag in ((0.5, "0.5"), (1.0, ""), (2.0, "2"), (3.0, "3")):
                for out in (out_tr, out_te):
                    za = (out[base] - out_tr[base].mean()) / out_tr[base].std()
                    for term in ("xmaha", "xcv", "xsvm"):
                        zb = (out[term] - out_tr[term].mean()) / out_tr[term].std()
                        out[f"{base}+{tag}{term}"] = za + w * zb
    return out_tr, out_te


def _cv_gaussian(x):
    """A Gaussian of the rows ``x`` whose covariance shrinkage (scikit-learn's ``ShrunkCovariance``, 0 = the
    empirical covariance, 1 = its diagonal's mean times the identity) is chosen from 0, 1e-4 .. 1 by 5-fold
    cross-validated log-likelihood of the rows themselves: no labels, no anomalies."""
    from sklearn.covariance import ShrunkCovariance
    from sklearn.model_selection import GridSearchCV
    grid = {"shrinkage": np.r_[0.0, np.logspace(-4, 0, 17)]}
    return GridSearchCV(ShrunkCovariance(), grid, cv=5).fit(x).best_estimator_


#: extra model config of every AE (``--model-set KEY=VALUE``, e.g. ``hidden=[]`` for a linear AE)
MODEL_SET: dict = {}
#: the registered autoencoder trained (``--model``; the benchmark's ``ae`` by default)
MODEL = {"name": "ae"}


def _fit(x, name, seed, latent=None):
    s = SETTINGS[name]
    config = {"latent_dim": latent or s["latent_dim"], "arch": s["arch"], **MODEL_SET}
    return AnomalyDetector(model=MODEL["name"], model_config=config,
                           epochs=s["epochs"], batch_size=32, random_state=seed, trainer_config=TRAINER,
                           verbose=False).fit(x)


def _one_class(name, x_fit, x_sel, normal, seeds, latents, image, auc):
    """Fit every seed (and code size) on ``x_fit``, score ``x_sel``; append the ROC-AUC of every variant."""
    z_std = {}  # (label, variant) -> list of selection scores standardised by the training scores
    for seed in range(seeds):
        for lat in latents:
            det = _fit(x_fit, name, seed, lat)
            s_tr, s_te = _variants(_parts(det, x_fit), _parts(det, x_sel), image)
            tag = f"s{seed}" + ("" if lat is None else f"L{lat}")
            for k, s in s_te.items():
                auc.setdefault(f"{k}@{tag}", []).append(roc_auc_score(normal, s))
                z_std.setdefault((seed, lat, k), (s - s_tr[k].mean()) / s_tr[k].std())
    variants = {k for (_, _, k) in z_std}
    for k in variants:
        for n in sorted({min(3, seeds), seeds} - {1}):
            for lat in latents:
                mean = np.mean([z_std[(i, lat, k)] for i in range(n)], 0)
                auc.setdefault(f"{k}@ens{n}" + ("" if lat is None else f"L{lat}"), []).append(
                    roc_auc_score(normal, mean))
        if len(latents) > 1:
            for i in range(seeds):
                mean = np.mean([z_std[(i, lat, k)] for lat in latents], 0)
                auc.setdefault(f"{k}@sizes-s{i}", []).append(roc_auc_score(normal, mean))


def images(name: str, seeds: int, latents) -> dict:
    tr, _, _ = load_dataset(name).split(0.0, 0.2, seed=0)  # the benchmark's training split only
    fit, _, sel = tr.split(0.0, 0.25, seed=1)
    xf, yf, xs, ys = fit.x.numpy(), fit.y.numpy(), sel.x.numpy(), sel.y.numpy()
    auc: dict = {}
    for c in np.unique(yf):
        _one_class(name, xf[yf == c], xs, ys == c, seeds, latents, True, auc)
        print(f"  {name} {c}: " + " ".join(f"{k} {v[-1]:.4f}" for k, v in auc.items()
                                            if k.startswith("rel@") or k.startswith("rel+maha@")), flush=True)
    return {k: float(np.mean(v)) for k, v in auc.items()}


def _ocsvm(x_fit, x_sel, normal) -> float:
    """The ROC-AUC of the classical reference on the same rows: ``OneClassSVM(gamma="scale", nu=0.1)`` on columns
    standardised by the fit rows (as ``bench/app_anomaly.py`` scores breast cancer)."""
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import OneClassSVM
    sc = StandardScaler().fit(x_fit)
    est = OneClassSVM(kernel="rbf", gamma="scale", nu=0.1).fit(sc.transform(x_fit))
    return float(roc_auc_score(normal, est.score_samples(sc.transform(x_sel))))


def _classical(x_fit, x_sel, normal, latent: int) -> dict:
    """ROC-AUC of the classical tools ``bench/app_anomaly.py`` compares with, on the same rows (columns
    standardised by the fit rows): OneClassSVM, IsolationForest, PCA reconstruction error with ``latent``
    components (at most the fit rows' rank)."""
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest
    from sklearn.preprocessing import StandardScaler
    sc = StandardScaler().fit(x_fit)
    f, s = sc.transform(x_fit), sc.transform(x_sel)
    out = {"OCSVM (reference)": _ocsvm(x_fit, x_sel, normal),
           "IForest (reference)": float(roc_auc_score(
               normal, IsolationForest(n_estimators=100, random_state=0).fit(f).score_samples(s)))}
    pca = PCA(n_components=min(latent, f.shape[0] - 1, f.shape[1] - 1), svd_solver="full").fit(f)
    out["PCA (reference)"] = float(roc_auc_score(
        normal, -np.mean((s - pca.inverse_transform(pca.transform(s))) ** 2, 1)))
    return out


def _ucr(problem: str):
    """``(X, y)`` of a univariate, equal-length UCR problem (TRAIN and TEST files concatenated), read from the
    ``.ts`` files in aeon's installed package data without importing aeon (its wheel is installed with
    ``--no-deps`` for the files alone). Written here because the reader is 10 lines and aeon's own loader
    would pull numba and pin scikit-learn."""
    import importlib.util
    spec = importlib.util.find_spec("aeon")
    if spec is None:
        raise SystemExit(f"{problem}: install aeon's data files first: .venv/bin/pip install --no-deps aeon==1.6.0")
    root = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / problem
    return read_ts(*(root / f"{problem}_{part}.ts" for part in ("TRAIN", "TEST")))


def read_ts(*paths):
    """``(X (N, T) float32, y (N,) int)`` from univariate, equal-length ``.ts`` files (sktime / aeon format: header
    lines, then after ``@data`` one series per line, ``v1,v2,...,vT:label``), rows in file order; labels are
    numbered in sorted order of their text."""
    rows, labels = [], []
    for path in paths:
        data = False
        for n, line in enumerate(Path(path).read_text().splitlines(), 1):
            line = line.strip()
            if data and line:
                values, sep, label = line.rpartition(":")
                if not sep or ":" in values:
                    raise ValueError(f"{path}:{n}: expected one univariate series 'v1,...,vT:label'")
                rows.append([float(v) for v in values.split(",")])
                labels.append(label)
            data = data or line.lower() == "@data"
    if len({len(r) for r in rows}) > 1:
        raise ValueError(f"{', '.join(map(str, paths))}: series of different lengths")
    _, y = np.unique(labels, return_inverse=True)
    return np.asarray(rows, np.float32), y


def _transform(name: str):
    from sklearn.preprocessing import PowerTransformer, QuantileTransformer
    if name == "yeo-johnson":
        return PowerTransformer(method="yeo-johnson", standardize=True)
    if name == "quantile":
        return QuantileTransformer(n_quantiles=100, output_distribution="normal")
    raise SystemExit(f"--transform {name!r}: use yeo-johnson or quantile")


def tabular(name: str, seeds: int, latents, transform: str = "") -> dict:
    """``transform`` (``--transform``): a per-column transform fitted on each fit part ("": none)."""
    if name == "digits-tab":  # digits' benchmark TRAINING split as a 64-column table (pixel counts 0-16)
        tr, _, _ = load_dataset("digits").split(0.0, 0.2, seed=0)
        fit, _, sel = tr.split(0.0, 0.25, seed=1)
        xf, yf = (fit.x.flatten(1).numpy() * 16).astype(np.float32), fit.y.numpy()
        xs, ys = (sel.x.flatten(1).numpy() * 16).astype(np.float32), sel.y.numpy()
        parts = [(xf[yf == c], xs, ys == c) for c in np.unique(yf)]
    else:
        if name == "autompg":  # mlxtend's Auto MPG: 6 measurements + mpg; classes: origin (USA / Europe / Japan)
            from mlxtend.data import autompg_data
            X, mpg = autompg_data()
            X, y = np.c_[X[:, :6].astype(np.float64), mpg], X[:, 6].astype(int)
        elif name in UCR:
            X, y = _ucr(UCR[name])
        else:
            X, y = (load_wine if name == "wine" else load_iris)(return_X_y=True)
        X = X.astype(np.float32)
        parts = []
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            perm = np.random.default_rng(0).permutation(idx)
            n = round(0.8 * len(idx))
            trn, tst = perm[:n], np.r_[perm[n:], np.flatnonzero(y != c)]
            parts.append((X[trn], X[tst], y[tst] == c))
    auc: dict = {}
    for x_fit, x_sel, normal in parts:
        if transform:  # fitted on the fit rows, applied before the detector sees the data
            tf = _transform(transform).fit(x_fit)
            x_fit, x_sel = tf.transform(x_fit).astype(np.float32), tf.transform(x_sel).astype(np.float32)
        _one_class(name, x_fit, x_sel, normal, seeds, latents, False, auc)
        for k, v in _classical(x_fit, x_sel, normal, SETTINGS[name]["latent_dim"]).items():
            auc.setdefault(k, []).append(v)
    out = {k: float(np.mean(v)) for k, v in auc.items()}
    out["best classical (reference)"] = max(out[k] for k in ("OCSVM (reference)", "IForest (reference)",
                                                              "PCA (reference)"))  # the best tool's mean
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="digits,mnist5k,wine,iris")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--latents", default="", help="comma list of code sizes (default: the benchmark's)")
    ap.add_argument("--epochs", type=int, default=0, help="override the benchmark's epochs (0: keep them)")
    ap.add_argument("--top", type=int, default=400, help="print the best TOP variants")
    ap.add_argument("--transform", default="", help="tabular sets: yeo-johnson or quantile, fitted on the fit rows")
    ap.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra model config of every AE (the CLI's KEY=VALUE rules), e.g. hidden=[] (a linear AE) "
                         "or weight_decay=1e-4")
    ap.add_argument("--model", default="ae", help="the registered autoencoder to train (ae, distance-ae, ...)")
    args = ap.parse_args()
    MODEL["name"] = args.model
    try:
        MODEL_SET.update(apply_overrides({}, args.model_set))
    except ConfigError as e:
        ap.error(f"--model-set: {e}")
    if args.epochs:
        for s in SETTINGS.values():
            s["epochs"] = args.epochs
    latents = [int(v) for v in args.latents.split(",") if v] or [None]
    torch.manual_seed(0)
    for name in args.data.split(","):
        t = time.process_time()
        res = (tabular(name, args.seeds, latents, args.transform) if name in TABULAR else
               images(name, args.seeds, latents))
        print(f"\n{name} (selection split; {time.process_time() - t:.0f} CPU s)")
        for k, v in sorted(res.items(), key=lambda kv: -kv[1])[:args.top]:
            print(f"  {k:22s} {v:.4f}")
        for k in ("rel@s0", "mse@s0", "zmse+maha@s0", "rel+maha@s0"):
            if k in res:
                print(f"  [{k}] {res[k]:.4f}")


if __name__ == "__main__":
    main()
