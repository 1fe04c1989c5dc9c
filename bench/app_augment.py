"""Augmentation on MNIST with 10 labelled images per class: does adding generated samples help a classifier?

Protocol (fixed before looking at any test number; nothing is tuned on the test images):

* data: ``mnist5k``; the 1,000-image test split of ``split(val=0, test=0.2, seed=0)`` is the held-out test
  set for every arm and seed; the other 4,000 images are the pool;
* per seed s in 0, 1, 2: 10 images per class are drawn from the pool (``numpy.random.default_rng(s)``),
  100 labelled images in all. Nothing else from the pool is used by any arm;
* classifier (the same for every arm): scikit-learn ``LogisticRegression(C=1.0, max_iter=3000)`` on the 784
  pixel values in [0, 1];
* arms:
  - **real**: the 100 real images;
  - **real + shifts** (the classic, non-deep augmentation): plus 10 copies of each real image shifted by a
    random (dx, dy) in {-2..2}^2 \\ {(0, 0)} with zero fill, i.e. 100 extra per class;
  - **real + genlab cvae**: plus ``Augmenter(model="cvae", n_per_class=100)`` samples, the cVAE (conv, latent 8,
    Bernoulli decoder, Adam 1e-3, batch 32, ``--epochs`` epochs, no validation split) trained on **only the
    same 100 real images**, seed s; samples are decoder means in [0, 1];
* figure: test accuracy (%) per arm, mean ± sample std over the 3 seeds; plus the accuracy that genlab's
  ``mnist`` feature net (97.6 % on real MNIST) gives the generated samples for their requested labels
  (label fidelity of the generator).

    OMP_NUM_THREADS=1 .venv/bin/python bench/app_augment.py [--epochs 300] [--quick]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.linear_model import LogisticRegression

from genlab.apps import Augmenter
from genlab.data import load_dataset

SEEDS = (0, 1, 2)
PER_CLASS = 10
GENERATED = 100


def pick(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in range(10)])


def shifted_copies(x: np.ndarray, copies: int, seed: int) -> np.ndarray:
    """``copies`` random shifts by (dx, dy) in {-2..2}^2 minus (0, 0) of each ``(N, 1, 28, 28)`` image."""
    rng = np.random.default_rng(1000 + seed)
    moves = [(dx, dy) for dx in range(-2, 3) for dy in range(-2, 3) if (dx, dy) != (0, 0)]
    out = []
    for img in x:
        for j in rng.choice(len(moves), copies, replace=False):
            dx, dy = moves[j]
            s = np.zeros_like(img)
            src = img[:, max(0, -dy):28 - max(0, dy), max(0, -dx):28 - max(0, dx)]
            s[:, max(0, dy):max(0, dy) + src.shape[1], max(0, dx):max(0, dx) + src.shape[2]] = src
            out.append(s)
    return np.stack(out)


def accuracy(x_tr, y_tr, x_te, y_te) -> float:
    clf = LogisticRegression(C=1.0, max_iter=3000)
    clf.fit(x_tr.reshape(len(x_tr), -1), y_tr)
    return 100.0 * float((clf.predict(x_te.reshape(len(x_te), -1)) == y_te).mean())


def run(quick: bool = False, epochs: int = 300) -> list[dict]:
    from genlab.metrics.feature_nets import load_feature_net
    ds = load_dataset("mnist5k")
    pool, _, test = ds.split(val=0.0, test=0.2, seed=0)
    xp, yp = pool.x.numpy(), pool.y.numpy()
    xt, yt = test.x.numpy(), test.y.numpy()
    seeds, n_gen = (SEEDS[:1], 20) if quick else (SEEDS, GENERATED)
    if quick:
        epochs = 5
    net = load_feature_net("mnist")
    acc: dict[str, list[float]] = {"real": [], "real + shifts": [], "real + genlab cvae": []}
    fidelity, train_s = [], []
    for s in seeds:
        idx = pick(yp, PER_CLASS, s)
        xr, yr = xp[idx], yp[idx]
        acc["real"].append(accuracy(xr, yr, xt, yt))
        xs = shifted_copies(xr, n_gen // PER_CLASS, s)
        acc["real + shifts"].append(accuracy(np.concatenate([xr, xs]), np.concatenate([yr, np.repeat(yr, n_gen // PER_CLASS)]),
                                             xt, yt))
        t0 = time.perf_counter()
        aug = Augmenter(model="cvae", model_config={"latent_dim": 8}, n_per_class=n_gen, epochs=epochs, batch_size=32,
                        validation_fraction=0.0, random_state=s).fit(xr, yr)
        train_s.append(time.perf_counter() - t0)
        xg, yg = aug.generate(random_state=s)
        acc["real + genlab cvae"].append(accuracy(np.concatenate([xr, xg]), np.concatenate([yr, yg]), xt, yt))
        pred = np.asarray(net.extract(xg)[1]).argmax(1)  # (logits of the mnist feature net)
        fidelity.append(100.0 * float((pred == yg).mean()))
        print(f"seed {s}: " + ", ".join(f"{k} {v[-1]:.1f}%" for k, v in acc.items())
              + f"; generated label fidelity {fidelity[-1]:.1f}%; cvae {train_s[-1]:.0f} s", flush=True)
    rows = []
    for k, v in acc.items():
        row = {"arm": k, "train_images": 100 + (0 if k == "real" else 10 * n_gen), "seeds": len(v),
               "accuracy_mean": float(np.mean(v)), "accuracy_std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
               "accuracies": " / ".join(f"{a:.1f}" for a in v)}
        if k == "real + genlab cvae":
            row["label_fidelity_mean"] = float(np.mean(fidelity))
            row["cvae_train_s_mean"] = float(np.mean(train_s))
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one seed, 20 generated per class, 5 epochs (smoke test)")
    ap.add_argument("--epochs", type=int, default=300, help="cVAE epochs on the 100 real images (default 300)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = run(quick=args.quick, epochs=args.epochs)
    print(f"\n`OMP_NUM_THREADS=1 .venv/bin/python bench/app_augment.py "
          f"{'--quick' if args.quick else f'--epochs {args.epochs}'}` ({time.perf_counter() - t0:.0f} s; mnist5k, 10 real images per "
          "class, 1,000 held-out test images, LogisticRegression)\n")
    print("| training set | images | test accuracy % (mean ± std) | per seed |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['arm']} | {r['train_images']} | {r['accuracy_mean']:.1f} ± {r['accuracy_std']:.1f} | "
              f"{r['accuracies']} |")
    g = rows[-1]
    print(f"\ngenerated samples: genlab mnist feature net agrees with the requested label for "
          f"{g['label_fidelity_mean']:.1f} % of them; cVAE training {g['cvae_train_s_mean']:.0f} s per seed")


if __name__ == "__main__":
    main()
