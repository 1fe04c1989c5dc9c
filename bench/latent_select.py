"""Selection of the latent-map settings on a digits-like set that the bench's table does not use.

Selection data: 1,797 images of ``mnist5k`` (a seeded draw, seed 0) made digits-like: the 28x28 image cropped
to its central 24x24, average-pooled 3x3 to 8x8 and rounded to 16 grey levels (scikit-learn's digits are 8x8
counts 0-16 of 4x4 blocks). The bench (bench/app_latent.py) reports scikit-learn's digits; nothing here reads
them. Encoders are trained on the selection images without labels; every map is scored with
``knn_accuracy`` (kNN-5, 5-fold CV), as in the bench.

Map variants of the codes ``z`` (N, L): ``raw`` (t-SNE of z as they are), ``std`` (each code dimension
standardised to unit variance first), ``white`` (PCA-whitened), ``pcaK`` (the first K principal components of the
standardised codes), ``ens`` (the standardised codes of all the
encoders trained, concatenated), each at the perplexities asked for (and the extra ``TSNE`` settings of
``--tsne-kw``; ``--shift-copies`` trains on the images plus their four one-pixel shifts); ``ensN``: N seeds' standardised codes
concatenated (what ``LatentExplorer(n_ensemble=N)`` maps), for every N-subset of the seeds given, and the mean over
the subsets (one t-SNE map of one training run varies by about 0.01 on this set: the mean is the figure to compare
with the mean of the single seeds).

    OMP_NUM_THREADS=1 .venv/bin/python bench/latent_select.py [--models ae:64:100] [--seeds 0,1] [--perplexity 30]
        [--preps raw,std,pca32] [--shift-copies] [--tsne-kw early_exaggeration=24,metric=manhattan] [--pixels]
"""
from __future__ import annotations

import argparse
import itertools
import logging
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from genlab.apps import LatentExplorer
from genlab.apps.latent import knn_accuracy
from genlab.data import load_dataset

TRAINER = {"precision": "fp32", "channels_last": False, "log_every": 1000}


def digits_like(n: int = 1797, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` mnist5k images as 8x8 digits-like images in [0, 1] (16 levels), and their labels."""
    ds = load_dataset("mnist5k")
    idx = np.random.default_rng(seed).permutation(len(ds))[:n]
    x = ds.x[torch.as_tensor(idx)][:, :, 2:26, 2:26]  # (n, 1, 24, 24)
    x = torch.round(F.avg_pool2d(x, 3) * 16) / 16  # (n, 1, 8, 8)
    return x.numpy().astype(np.float32), ds.y[torch.as_tensor(idx)].numpy()


#: extra ``TSNE`` keyword arguments (``--tsne-kw``), e.g. ``{"early_exaggeration": 24.0}``
TSNE_KW: dict = {}


def _tsne(z, p):
    return TSNE(n_components=2, init="pca", perplexity=p, random_state=0, **TSNE_KW).fit_transform(z)


def shifted_copies(x: np.ndarray) -> np.ndarray:
    """``x`` (N, 1, H, W) followed by its four one-pixel shifts (down, up, right, left; zero fill): (5N, 1, H, W)."""
    out = [x]
    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        s = np.zeros_like(x)
        H, W = x.shape[-2:]
        src_y, dst_y = (slice(0, H - dy), slice(dy, H)) if dy >= 0 else (slice(-dy, H), slice(0, H + dy))
        src_x, dst_x = (slice(0, W - dx), slice(dx, W)) if dx >= 0 else (slice(-dx, W), slice(0, W + dx))
        s[..., dst_y, dst_x] = x[..., src_y, src_x]
        out.append(s)
    return np.concatenate(out)


def _prep(z: np.ndarray, how: str) -> np.ndarray:
    if how == "raw":
        return z
    if how == "std":
        return (z - z.mean(0)) / np.maximum(z.std(0), 1e-12)
    if how == "white":
        return PCA(whiten=True, svd_solver="full").fit_transform(z)
    if how.startswith("pca"):  # ``pcaK``: the standardised codes' first K principal components (not whitened)
        return PCA(int(how[3:]), svd_solver="full").fit_transform(_prep(z, "std"))
    raise ValueError(how)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="ae:64:100")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--preps", default="raw,std")
    ap.add_argument("--perplexity", default="30")
    ap.add_argument("--pixels", action="store_true", help="also the pixel baselines")
    ap.add_argument("--shift-copies", action="store_true",
                    help="train each encoder on the images plus their 4 one-pixel shifts (epochs / 5: the same "
                         "optimiser steps); the maps are of the unshifted images' codes")
    ap.add_argument("--tsne-kw", default="", help="extra TSNE keywords, e.g. early_exaggeration=24,max_iter=2000")
    args = ap.parse_args()
    for kv in filter(None, args.tsne_kw.split(",")):
        k, v = kv.split("=")
        TSNE_KW[k] = int(v) if k == "max_iter" else v if k == "metric" else float(v)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    X, y = digits_like()
    flat = X.reshape(len(X), -1).astype(np.float64)
    perps = [float(p) for p in args.perplexity.split(",")]
    preps = args.preps.split(",")

    def show(src, kind, coords, t0):
        print(f"  {src:<30} {kind:<22} {knn_accuracy(coords, y):.4f}  ({time.process_time() - t0:.0f} s cpu)",
              flush=True)
    if args.pixels:
        t = time.process_time()
        show("pixels", "none", flat, t)
        for p in perps:
            t = time.process_time()
            show("pixels", f"tsne p{p:g}", _tsne(flat, p), t)
    for spec in args.models.split(","):
        name, latent, epochs = spec.split(":")
        codes = []
        for seed in [int(s) for s in args.seeds.split(",")]:
            t = time.process_time()
            xtr, ep = (shifted_copies(X), max(1, int(epochs) // 5)) if args.shift_copies else (X, int(epochs))
            ex = LatentExplorer(model=name, model_config={"latent_dim": int(latent)}, epochs=ep,
                                random_state=seed, trainer_config=TRAINER, verbose=False).fit(xtr)
            z = ex.encode(X).astype(np.float64)
            codes.append(z)
            src = f"{spec} seed {seed}"
            show(src, "none (codes)", z, t)
            for how in preps:
                for p in perps:
                    t = time.process_time()
                    show(src, f"tsne {how} p{p:g}", _tsne(_prep(z, how), p), t)
        for n in range(2, len(codes) + 1):  # n seeds' standardised codes side by side, every n-subset of seeds
            for p in perps:
                accs = []
                for sub in itertools.combinations(range(len(codes)), n):
                    t = time.process_time()
                    zc = np.hstack([_prep(codes[i], "std") for i in sub])
                    accs.append(knn_accuracy(_tsne(zc, p), y))
                    print(f"  {spec} seeds {sub}  tsne std-concat p{p:g} {accs[-1]:.4f}  "
                          f"({time.process_time() - t:.0f} s cpu)", flush=True)
                print(f"  {spec} ens{n}: mean over {len(accs)} subsets {np.mean(accs):.4f}", flush=True)


if __name__ == "__main__":
    main()
