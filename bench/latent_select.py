"""Selection of the latent-map settings on a digits-like set that the bench's table does not use.

Selection data: 1,797 images of ``mnist5k`` (a seeded draw, seed 0) made digits-like: the 28x28 image cropped
to its central 24x24, average-pooled 3x3 to 8x8 and rounded to 16 grey levels (scikit-learn's digits are 8x8
counts 0-16 of 4x4 blocks). The bench (bench/app_latent.py) reports scikit-learn's digits; nothing here reads
them. Encoders are trained on the selection images without labels; every map is scored with
``knn_accuracy`` (kNN-5, 5-fold CV), as in the bench.

Map variants of the codes ``z`` (N, L): ``raw`` (t-SNE of z as they are), ``std`` (each code dimension
standardised to unit variance first), ``white`` (PCA-whitened), ``pcaK`` (the first K principal components of the
standardised codes), ``rpcaK`` (of the raw codes), ``post`` (a VAE's codes divided per dimension by the mean of its
posterior standard deviation over the images), ``au`` (a VAE's active units only, variance over the images
above 0.01, standardised), ``ens`` (the standardised codes of all the
encoders trained, concatenated), each at the perplexities asked for (and the extra ``TSNE`` settings of
``--tsne-kw``; ``--shift-copies`` trains on the images plus their shifted copies, by default the four one-pixel
shifts, ``--shifts 8`` / ``4x2`` for the eight 1-px shifts or the 1- and 2-px shifts along the axes, at
``epochs / (1 + shifts)``; ``--shift-denoise P`` instead feeds each image shifted at random and trains it to
reconstruct the unshifted image, the shift as a denoising corruption); ``ensN``: N seeds' standardised codes
concatenated (what ``LatentExplorer(n_ensemble=N)`` maps), for every N-subset of the seeds given, and the mean over
the subsets (one t-SNE map of one training run varies by about 0.01 on this set: the mean is the figure to compare
with the mean of the single seeds).

    OMP_NUM_THREADS=1 .venv/bin/python bench/latent_select.py [--models ae:64:100] [--seeds 0,1] [--perplexity 30]
        [--preps raw,std,pca32] [--shift-copies] [--shifts 4|8|4x2] [--shift-denoise 0.2]
        [--tsne-kw early_exaggeration=24,metric=manhattan] [--pixels] [--model-set beta=0.1]
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from genlab.apps import LatentExplorer
from genlab.config import apply_overrides
from genlab.apps._base import translate
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


#: ``--shifts``: the (dx, dy) pixel shifts trained on with ``--shift-copies`` / ``--shift-denoise``
SHIFTS = {"4": ((0, 1), (0, -1), (1, 0), (-1, 0)),  # the four 1-px shifts (LatentExplorer(shift_copies=True))
          "8": tuple((dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)),  # 1 px, diagonals too
          "4x2": ((0, 1), (0, -1), (1, 0), (-1, 0), (0, 2), (0, -2), (2, 0), (-2, 0))}  # 1 and 2 px along the axes


def shifted_copies(x: np.ndarray, shifts=SHIFTS["4"]) -> np.ndarray:
    """``x`` (N, 1, H, W) followed by its shifted copies (zero fill), in the order of ``shifts``: (N (1 + S), 1, H, W).
    With the default four shifts: the same images as ``genlab.apps.latent.shifted_copies``."""
    t = torch.as_tensor(x)
    return torch.cat([t, *(translate(t, dx, dy) for dx, dy in shifts)]).numpy()


@contextlib.contextmanager
def shift_denoising(shifts, p_clean: float):
    """While open, ``ae`` trains with a shift as the corruption of a denoising objective: each image of a batch is fed
    shifted by one of ``shifts`` (drawn uniformly; unshifted with probability ``p_clean``) and the loss is the
    reconstruction of the unshifted image (a temporary ``AutoEncoder.training_step``; measurement only)."""
    from genlab.models.autoencoder import AutoEncoder
    plain = AutoEncoder.training_step

    def step(self, batch, step, optimizer="main"):
        x = batch["x"]  # (B, C, H, W)
        every = torch.stack([x, *(translate(x, dx, dy) for dx, dy in shifts)])  # (1 + S, B, C, H, W)
        k = torch.randint(1, len(shifts) + 1, (len(x),), device=x.device)
        k = torch.where(torch.rand(len(x), device=x.device) < p_clean, torch.zeros_like(k), k)
        loss, mse = self.reconstruction_loss(self.decode_logits(self.encode(every[k, torch.arange(len(x))])), x)
        return {"loss": loss, "mse": mse}

    AutoEncoder.training_step = step
    try:
        yield
    finally:
        AutoEncoder.training_step = plain


def _prep(z: np.ndarray, how: str, sigma: np.ndarray | None = None) -> np.ndarray:
    if how == "raw":
        return z
    if how == "au":  # the active units (variance over the images > 0.01, Burda et al. 2016), standardised
        keep = z.var(0) > 0.01
        return _prep(z[:, keep], "std")
    if how == "post":  # a VAE's codes in units of its mean posterior standard deviation per dimension
        return z / sigma
    if how == "std":
        return (z - z.mean(0)) / np.maximum(z.std(0), 1e-12)
    if how == "white":
        return PCA(whiten=True, svd_solver="full").fit_transform(z)
    if how.startswith("pca"):  # ``pcaK``: the standardised codes' first K principal components (not whitened)
        return PCA(int(how[3:]), svd_solver="full").fit_transform(_prep(z, "std"))
    if how.startswith("rpca"):  # ``rpcaK``: the raw codes' first K principal components
        return PCA(int(how[4:]), svd_solver="full").fit_transform(z)
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
    ap.add_argument("--shifts", default="4", choices=sorted(SHIFTS),
                    help="the shifts of --shift-copies / --shift-denoise: 4 (1 px along the axes, the default), 8 "
                         "(1 px, diagonals too), 4x2 (1 and 2 px along the axes)")
    ap.add_argument("--shift-denoise", type=float, default=None, metavar="P",
                    help="instead of --shift-copies: the shift as the corruption of a denoising objective (input "
                         "shifted at random, kept unshifted with probability P; target the unshifted image)")
    ap.add_argument("--tsne-kw", default="", help="extra TSNE keywords, e.g. early_exaggeration=24,max_iter=2000")
    ap.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra model config entries (the CLI's KEY=VALUE rules), e.g. beta=0.1 or lam=0.001")
    args = ap.parse_args()
    extra = apply_overrides({}, args.model_set)
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
            shifts = SHIFTS[args.shifts]
            xtr, ep = ((shifted_copies(X, shifts), max(1, round(int(epochs) / (1 + len(shifts)))))
                       if args.shift_copies else (X, int(epochs)))
            with (shift_denoising(shifts, args.shift_denoise) if args.shift_denoise is not None
                  else contextlib.nullcontext()):
                ex = LatentExplorer(model=name, model_config={"latent_dim": int(latent), **extra}, epochs=ep,
                                    random_state=seed, trainer_config=TRAINER, verbose=False).fit(xtr)
            z = ex.encode(X).astype(np.float64)
            sigma = None
            if "post" in preps and hasattr(ex.model_, "posterior"):  # (L,) mean posterior std over X
                with torch.no_grad():
                    _, logvar = ex.model_.eval().posterior(ex._to_model(ex._batch(X, "X")))
                sigma = (0.5 * logvar.double()).exp().mean(0).numpy()
            codes.append(z)
            src = f"{spec} seed {seed}"
            show(src, "none (codes)", z, t)
            print(f"    code variances over the images: {np.array2string(np.sort(z.var(0))[::-1], precision=3)}")
            for how in preps:
                for p in perps:
                    t = time.process_time()
                    # ``dec``: the decoded codes (the decoder's output for each code, flattened): distances between
                    # codes measured through the decoder (its pull-back metric), not in the code space itself
                    zz = (np.asarray(ex.decode(z.astype(np.float32)), np.float64).reshape(len(z), -1) if how == "dec"
                          else _prep(z, how, sigma))
                    show(src, f"tsne {how} p{p:g}", _tsne(zz, p), t)
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
