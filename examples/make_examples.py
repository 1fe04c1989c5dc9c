"""Rewrite the data files of this folder (run from the repository root: python examples/make_examples.py).

table.csv: scikit-learn's wine table (178 rows, 13 columns, header row), 5 % of its cells emptied at random
(numpy default_rng(0)), the input of ``genlab impute examples/table.csv``.
digits-{train,val,test}.npz: genlab's built-in ``digits`` split 80/10/10 with seed 0 (``x`` float32 (N, 1, 8, 8)
in [0, 1], ``y`` int64), the explicit splits of ``genlab train ... --val-data ... --test-data ...``.
run.yaml is the README's YAML block verbatim (tests/test_readme.py checks they are equal); it is not generated.
"""
import csv
from pathlib import Path

import numpy as np
from sklearn.datasets import load_wine

from genlab import load_dataset

HERE = Path(__file__).resolve().parent


def main() -> None:
    wine = load_wine()
    x = wine.data.astype(float)
    x[np.random.default_rng(0).random(x.shape) < 0.05] = np.nan
    with open(HERE / "table.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([n.replace("/", "_") for n in wine.feature_names])
        w.writerows([["" if np.isnan(v) else f"{v:g}" for v in row] for row in x])
    for name, part in zip(("train", "val", "test"), load_dataset("digits").split(val=0.1, test=0.1, seed=0)):
        np.savez_compressed(HERE / f"digits-{name}.npz", x=part.x.numpy().astype(np.float32),
                            y=part.y.numpy().astype(np.int64))


if __name__ == "__main__":
    main()
