"""Choose the exponent of the complexity correction of ``scoring="relative_reconstruction"`` on data the anomaly
tables do not report: inside the TRAINING split of ``bench/app_anomaly.py`` only.

Protocol: the benchmark's 80 % training split (``split(0.0, 0.2, seed=0)``) is cut again 75 / 25 (seed 1) into a
fit part and a selection part. For each class in turn, PCA with the benchmark's code size is fitted on the fit
part's images of that class, and every selection-part image is scored ``-log(mse + 1e-12) + a * log(mean x^2 +
1e-12)``; mean ROC-AUC over classes for each exponent ``a``. The test split is never read.

    .venv/bin/python bench/anomaly_exponent.py
"""
from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from genlab.data import load_dataset

EXPONENTS = (0.0, 0.25, 0.5, 0.75, 1.0)
CODE = {"digits": 8, "mnist5k": 16}


def select(name: str) -> dict[float, float]:
    tr, _, _ = load_dataset(name).split(0.0, 0.2, seed=0)      # the benchmark's training split only
    fit, _, sel = tr.split(0.0, 0.25, seed=1)
    xf, yf = fit.x.flatten(1).numpy().astype(np.float64), fit.y.numpy()
    xs, ys = sel.x.flatten(1).numpy().astype(np.float64), sel.y.numpy()
    auc = {a: [] for a in EXPONENTS}
    for c in np.unique(yf):
        pca = PCA(n_components=CODE[name], svd_solver="full").fit(xf[yf == c])
        mse = ((pca.inverse_transform(pca.transform(xs)) - xs) ** 2).mean(1)
        ms = (xs ** 2).mean(1)
        for a in EXPONENTS:
            auc[a].append(roc_auc_score(ys == c, -np.log(mse + 1e-12) + a * np.log(ms + 1e-12)))
    return {a: float(np.mean(v)) for a, v in auc.items()}


def main() -> None:
    print("| data | " + " | ".join(f"a={a}" for a in EXPONENTS) + " |")
    print("|---|" + "---|" * len(EXPONENTS))
    for name in ("mnist5k", "digits"):
        res = select(name)
        best = max(res, key=res.get)
        print(f"| {name} | " + " | ".join(f"**{v:.4f}**" if a == best else f"{v:.4f}" for a, v in res.items()) + " |")


if __name__ == "__main__":
    main()
