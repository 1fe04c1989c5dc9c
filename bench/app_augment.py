"""Augmentation on MNIST with 10 labelled images per class: does adding generated samples help a classifier?

Protocol (fixed before looking at any test number; nothing is tuned on the test images):

* data: ``mnist5k``; the 1,000-image test split of ``split(val=0, test=0.2, seed=0)`` is the held-out test
  set for every arm and seed; the other 4,000 images are the pool;
* per seed s in ``--seeds``: 10 images per class are drawn from the pool (``numpy.random.default_rng(s)``),
  100 labelled images in all. Nothing else from the pool is used by any arm;
* classifiers (the same in every arm): scikit-learn ``LogisticRegression(C=1.0, max_iter=3000)`` on the 784
  pixels in [0, 1]; and a small CNN (conv 5x5 8 ch - maxpool - conv 5x5 16 ch - maxpool - linear, ReLU, Adam
  1e-3, batch 32, a fixed ``--cnn-steps`` updates whatever the training-set size, seed s);
* arms:
  - **real**: the 100 real images;
  - **real + shifts** (the classic, non-deep augmentation): plus 10 copies of each real image shifted by a
    random (dx, dy) in {-2..2}^2 \\ {(0, 0)} with zero fill, i.e. 100 extra per class;
  - **real + cVAE, unfiltered** (the old protocol): plus ``Augmenter(model="cvae", n_per_class=100)`` samples,
    the cVAE (conv, latent 8, Adam 1e-3, batch 32, ``--epochs`` epochs, no validation split) trained on
    **only the same 100 real images**, seed s;
  - **real + cVAE, filtered, ratio by CV** (genlab's protocol, docs/apps/augment.md): the same cVAE with
    ``filter="classifier", oversample=4``: per class 4 x ``--max-ratio`` x 10 draws, of which the
    ``--max-ratio`` x 10 that a logistic regression trained on the same 100 real images is surest belong to
    their class are kept, surest first; the number added (ratio r generated per real image, r in ``--ratios``)
    is chosen per classifier by :func:`genlab.apps.augment.select_ratio`: 5-fold stratified CV on the 100 real
    images only (no test image is used to choose anything);
* figure: test accuracy (%) per arm and classifier, mean ± sample std over the seeds; the ratio chosen per seed;
  and the accuracy of genlab's ``mnist`` feature net on the kept samples for their requested label (fidelity).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/app_augment.py [--epochs 300] [--seeds 0 1 2] [--quick]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from genlab.apps import Augmenter
from genlab.apps.augment import select_ratio
from genlab.data import load_dataset

PER_CLASS = 10
GENERATED = 100
FAST = {"precision": "fp32", "channels_last": False}


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


class LogReg(BaseEstimator, ClassifierMixin):
    """scikit-learn's LogisticRegression on flattened images."""

    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        self.clf_ = LogisticRegression(C=self.C, max_iter=3000).fit(np.asarray(X).reshape(len(X), -1), y)
        self.classes_ = self.clf_.classes_
        return self

    def predict(self, X):
        return self.clf_.predict(np.asarray(X).reshape(len(X), -1))


class SmallCNN(BaseEstimator, ClassifierMixin):
    """conv5x5(8)-pool-conv5x5(16)-pool-linear, Adam 1e-3, batch 32, ``steps`` updates, seeded."""

    def __init__(self, steps=400, seed=0):
        self.steps = steps
        self.seed = seed

    def fit(self, X, y):
        from torch import nn
        g = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        x = torch.as_tensor(np.asarray(X), dtype=torch.float32).reshape(-1, 1, 28, 28)
        self.classes_, yi = np.unique(y, return_inverse=True)
        t = torch.as_tensor(yi, dtype=torch.long)
        self.net_ = nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 5), nn.ReLU(),
                                  nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 16, len(self.classes_)))
        opt = torch.optim.Adam(self.net_.parameters(), lr=1e-3)
        for _ in range(self.steps):
            b = torch.randint(len(x), (min(32, len(x)),), generator=g)
            loss = nn.functional.cross_entropy(self.net_(x[b]), t[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return self

    @torch.no_grad()
    def predict(self, X):
        x = torch.as_tensor(np.asarray(X), dtype=torch.float32).reshape(-1, 1, 28, 28)
        return self.classes_[self.net_.eval()(x).argmax(1).numpy()]


def accuracy(clf, x_tr, y_tr, x_te, y_te) -> float:
    return 100.0 * float((clf.fit(x_tr, y_tr).predict(x_te) == y_te).mean())


def _take(xg, yg, ratio, per_class=PER_CLASS):
    """The first ``ratio * per_class`` generated samples of each class (surest first when filtered)."""
    idx = np.concatenate([np.flatnonzero(yg == c)[:int(round(ratio * per_class))] for c in np.unique(yg)])
    return xg[idx], yg[idx]


def run(quick=False, epochs=300, seeds=(0, 1, 2), ratios=(0, 1, 3, 10), cnn_steps=400, leak_free=False) -> dict:
    from genlab.metrics.feature_nets import load_feature_net
    ds = load_dataset("mnist5k")
    pool, _, test = ds.split(val=0.0, test=0.2, seed=0)
    xp, yp = pool.x.numpy(), pool.y.numpy()
    xt, yt = test.x.numpy(), test.y.numpy()
    n_gen = GENERATED
    if quick:
        seeds, epochs, ratios, cnn_steps, n_gen = seeds[:1], 5, (0, 1), 50, 20
    max_ratio = max(ratios)
    net = load_feature_net("mnist")
    arms = ("real", "real + shifts", "real + cVAE, unfiltered", "real + cVAE, filtered, ratio by CV")
    acc = {(a, c): [] for a in arms for c in ("logreg", "cnn")}
    chosen = {"logreg": [], "cnn": []}
    fidelity, fidelity_raw, cpu = [], [], []
    for s in seeds:
        clfs = {"logreg": LogReg(), "cnn": SmallCNN(steps=cnn_steps, seed=s)}
        idx = pick(yp, PER_CLASS, s)
        xr, yr = xp[idx], yp[idx]
        xs = shifted_copies(xr, n_gen // PER_CLASS, s)
        ys = np.repeat(yr, n_gen // PER_CLASS)
        t0 = time.process_time()
        common = dict(model="cvae", model_config={"latent_dim": 8}, epochs=epochs, batch_size=32,
                      validation_fraction=0.0, random_state=s, trainer_config=FAST, verbose=False)
        plain = Augmenter(n_per_class=n_gen, **common).fit(xr, yr)
        xg0, yg0 = plain.generate(random_state=s)
        # the same trained cVAE, with the filter (a second fit would retrain: reuse the model object)
        filt = Augmenter(n_per_class=int(max_ratio * PER_CLASS), filter="classifier", oversample=4.0,
                         **{**common, "model": plain.model_}).fit(xr, yr)
        xg, yg = filt.generate(random_state=s)
        cache = {}

        def fold_gen(a, b, common=common, s=s, cache=cache):
            key = hash(a.tobytes())
            if key not in cache:
                cache[key] = Augmenter(n_per_class=int(max_ratio * PER_CLASS), filter="classifier", oversample=4.0,
                                       **common).fit(a, b).generate(random_state=s)
            return cache[key]
        cpu.append(time.process_time() - t0)
        fidelity_raw.append(100.0 * float((np.asarray(net.extract(xg0)[1]).argmax(1) == yg0).mean()))
        fidelity.append(100.0 * float((np.asarray(net.extract(xg)[1]).argmax(1) == yg).mean()))
        for cname, clf in clfs.items():
            acc[("real", cname)].append(accuracy(clf, xr, yr, xt, yt))
            acc[("real + shifts", cname)].append(accuracy(clf, np.concatenate([xr, xs]), np.concatenate([yr, ys]),
                                                          xt, yt))
            acc[("real + cVAE, unfiltered", cname)].append(
                accuracy(clf, np.concatenate([xr, xg0]), np.concatenate([yr, yg0]), xt, yt))
            if leak_free:  # a cVAE + filter per fold, on that fold's real training images only (cached per fold)
                best, scores = select_ratio(xr, yr, None, None, clf, ratios=ratios, cv=5, random_state=s,
                                            generate=lambda a, b: fold_gen(a, b))
            else:
                best, scores = select_ratio(xr, yr, xg, yg, clf, ratios=ratios, cv=5, random_state=s)
            chosen[cname].append(best)
            xa, ya = _take(xg, yg, best)
            acc[("real + cVAE, filtered, ratio by CV", cname)].append(
                accuracy(clf, np.concatenate([xr, xa]), np.concatenate([yr, ya]), xt, yt))
            print(f"seed {s} {cname}: " + ", ".join(f"{a} {acc[(a, cname)][-1]:.1f}%" for a in arms)
                  + f"; CV scores {scores} -> ratio {best:g}", flush=True)
        print(f"seed {s}: fidelity unfiltered {fidelity_raw[-1]:.1f}%, filtered {fidelity[-1]:.1f}%; "
              f"cVAE + generation {cpu[-1]:.0f} s CPU", flush=True)
    return {"acc": acc, "arms": arms, "chosen": chosen, "fidelity": fidelity, "fidelity_raw": fidelity_raw,
            "cpu": cpu, "seeds": list(seeds), "epochs": epochs, "ratios": ratios, "cnn_steps": cnn_steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one seed, 5 epochs, ratios 0/1 (smoke test)")
    ap.add_argument("--epochs", type=int, default=300, help="cVAE epochs on the 100 real images (default 300)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ratios", type=float, nargs="+", default=[0, 1, 3, 10])
    ap.add_argument("--cnn-steps", type=int, default=400)
    ap.add_argument("--leak-free", action="store_true",
                    help="choose the ratio with a cVAE + filter trained per CV fold (5 more cVAE fits per seed)")
    args = ap.parse_args()
    t0 = time.process_time()
    res = run(quick=args.quick, epochs=args.epochs, seeds=tuple(args.seeds), ratios=tuple(args.ratios),
              cnn_steps=args.cnn_steps, leak_free=args.leak_free)
    cmd = "--quick" if args.quick else (f"--epochs {args.epochs} --seeds {' '.join(map(str, args.seeds))} --ratios "
                                        f"{' '.join(f'{r:g}' for r in args.ratios)} --cnn-steps {args.cnn_steps}"
                                        + (" --leak-free" if args.leak_free else ""))
    print(f"\n`OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/app_augment.py {cmd}` "
          f"({time.process_time() - t0:.0f} s process CPU; mnist5k, 10 real images per class, 1,000 held-out "
          "test images)\n")
    print("| training set | logistic regression: test acc % (mean ± std) | per seed | small CNN: test acc % | "
          "per seed |")
    print("|---|---|---|---|---|")
    for a in res["arms"]:
        cells = []
        for c in ("logreg", "cnn"):
            v = res["acc"][(a, c)]
            sd = np.std(v, ddof=1) if len(v) > 1 else 0.0
            cells += [f"{np.mean(v):.1f} ± {sd:.1f}", " / ".join(f"{x:.1f}" for x in v)]
        print(f"| {a} | " + " | ".join(cells) + " |")
    print(f"\nratio chosen by 5-fold CV on the real images (generated per real image, of {res['ratios']}): "
          f"logreg {res['chosen']['logreg']}, cnn {res['chosen']['cnn']}; label fidelity (genlab mnist net) "
          f"unfiltered {np.mean(res['fidelity_raw']):.1f} %, kept after the filter {np.mean(res['fidelity']):.1f} %; "
          f"cVAE training + generation {np.mean(res['cpu']):.0f} s CPU per seed")


if __name__ == "__main__":
    main()
