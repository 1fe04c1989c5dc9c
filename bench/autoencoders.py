"""Autoencoder-family figures on real data: digits (8×8) and the offline MNIST subset (28×28).

For each data set (fixed split: 80 % train / 20 % test with seed 0, i.e. 4,000/1,000 on mnist5k) and
each model, with fixed seeds, prints one table:

* held-out reconstruction MSE vs PCA with the same code size (and the ratio);
* sparse AE: achieved mean code activation vs the target rho;
* denoising AE: PSNR of the noisy input, of a 3×3 median filter and of the model, per corruption;
* contractive AE: mean squared Frobenius norm of the encoder Jacobian (exact, autograd) and MSE vs the
  plain AE of the same size;
* distance AE (and the plain AE): the normalised stress between the test codes' and the test images' distances;
* VAE / β-VAE / cVAE: test ELBO and IWAE log-likelihood (k=100, nats), active units;
* cVAE: accuracy of genlab's feature-net classifier on samples generated for each requested label,
  and the FID (feature net) of its samples against the test images;
* the wall time of every training.

    .venv/bin/python bench/autoencoders.py [--data digits,mnist5k] [--epochs-digits 100] [--epochs-mnist 30]
"""
from __future__ import annotations

import argparse
import logging
import time

import torch
from scipy.ndimage import median_filter

import genlab
from genlab.data import load_dataset
from genlab.evaluation import evaluate_model
from genlab.metrics import load_feature_net, psnr
from genlab.models.ae_family import distance_stress, input_distances

LATENT = 16
CORRUPTIONS = [("gaussian", 0.3), ("salt_pepper", 0.2), ("mask", 0.3)]


def jacobian_sq_norm(model, x, n=100):
    """Mean over n test inputs of ||d code / d x||_F^2, exact (full Jacobian by autograd)."""
    enc = model.encode  # (B, L) codes for every model with an encoder (a VAE's posterior mean)
    total = 0.0
    for xi in x[:n]:
        j = torch.autograd.functional.jacobian(lambda v: enc(v.unsqueeze(0))[0], xi)
        total += float((j ** 2).sum())
    return total / min(n, len(x))


def fit(name, ds, epochs, args, **model_cfg):
    cfg = {"model": {"latent_dim": LATENT, **model_cfg},
           "trainer": {"epochs": epochs, "batch_size": 128, "seed": args.seed, "precision": args.precision,
                       "channels_last": args.precision != "fp32", "log_every": 50},
           "data": {"val": 0.0, "test": 0.2, "split_seed": 0}}
    t0 = time.perf_counter()
    run = genlab.train(name, ds, config=cfg, figures=False)
    return run, time.perf_counter() - t0


def row(table, data, model, **kv):
    table.append({"data": data, "model": model, **kv})
    print("  " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in table[-1].items()),
          flush=True)


def bench_dataset(dname, epochs, args, table):
    ds = load_dataset(dname)
    print(f"\n== {dname}: {tuple(ds.x.shape)}, {epochs} epochs per model, latent {LATENT}")
    wanted = set(args.only.split(",")) if args.only else None
    for label, name, cfg in [("ae (conv)", "ae", {}),
                             ("sparse-ae (KL, rho=0.05)", "sparse-ae", {"rho": 0.05, "sparsity_weight": 1.0}),
                             ("contractive-ae (lam=0.01)", "contractive-ae", {"lam": 0.01}),
                             ("distance-ae", "distance-ae", {}),
                             ("vae", "vae", {}), ("beta-vae (beta=4)", "vae", {"beta": 4.0}),
                             ("cvae", "cvae", {"latent_dim": args.cvae_latent})]:
        if wanted is not None and name not in wanted:
            continue
        try:
            run, secs = fit(name, ds, epochs, args, **cfg)
        except genlab.GenlabError as e:
            print(f"  {label}: skipped ({e})")
            continue
        sp = run.splits
        te = sp.test.x
        m = run.model
        # held-out MSE, PCA with the same code size, ELBO/IWAE: already computed by genlab.runs.test_metrics
        mse, pm = run.metrics["test_mse"], run.metrics["pca_mse"]
        extra = {}
        if name == "sparse-ae":
            extra["mean_activation"] = float(m.encode(te).detach().mean())
            extra["rho"] = 0.05
        if name == "contractive-ae" or name == "ae":
            with torch.enable_grad():
                extra["jacobian_sq_norm"] = jacobian_sq_norm(m, te)
        if name in ("ae", "distance-ae"):  # how well the test codes keep the test images' distances
            with torch.no_grad():
                extra["test_stress"] = float(distance_stress(m.encode(te), input_distances(te)))
        if name in ("vae", "cvae"):
            tag = "_given_y" if getattr(m, "conditional", False) else ""  # cvae: log p(x|y)
            extra["elbo"] = run.metrics[f"test_elbo{tag}"]
            extra["iwae_k100"] = run.metrics[f"test_iwae_k100{tag}"]
            if hasattr(m, "active_units"):
                extra["active_units"] = int(m.active_units(te))
        if name == "cvae":
            net = load_feature_net("digits" if ds.sample_shape == (1, 8, 8) else "mnist")
            labels = torch.arange(10).repeat_interleave(100)
            xs = m.sample(len(labels), labels=labels, generator=torch.Generator().manual_seed(1))
            pred = net.extract(xs)[1].argmax(1)
            extra["label_accuracy"] = float((torch.as_tensor(pred) == labels).float().mean())
            ev = evaluate_model(m, sp.test, data_key=f"bench-{dname}-test", n=1000, metrics=["fid"], use_cache=False)
            extra.update(ev["metrics"])
        row(table, dname, label, test_mse=mse, pca_mse=pm, mse_vs_pca=mse / pm, train_s=secs, **extra)
    # denoising: PSNR of noisy input, 3x3 median filter and the model, per corruption
    for noise, level in CORRUPTIONS:
        if wanted is not None and "denoising-ae" not in wanted:
            continue
        try:
            run, secs = fit("denoising-ae", ds, epochs, args, noise=noise, level=level)
        except genlab.GenlabError as e:
            print(f"  denoising-ae {noise}: skipped ({e})")
            continue
        te = run.splits.test.x
        noisy = run.model.corrupt(te, generator=torch.Generator().manual_seed(2))
        med = torch.from_numpy(median_filter(noisy.numpy(), size=(1, 1, 3, 3), mode="reflect"))
        out = run.model.reconstruct(noisy)
        row(table, dname, f"denoising-ae ({noise} {level})", psnr_noisy=float(psnr(noisy, te)),
            psnr_median3=float(psnr(med, te)), psnr_model=float(psnr(out, te)), train_s=secs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="digits,mnist5k")
    ap.add_argument("--epochs-digits", type=int, default=100)
    ap.add_argument("--epochs-mnist", type=int, default=30)
    ap.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cvae-latent", type=int, default=2,
                    help="cVAE code size: a small code leaves the class to the label (default 2)")
    ap.add_argument("--only", help="comma list of model names to run (e.g. cvae,denoising-ae)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"genlab {genlab.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"precision {args.precision}, seed {args.seed}")
    table: list[dict] = []
    for d in args.data.split(","):
        bench_dataset(d, args.epochs_digits if d == "digits" else args.epochs_mnist, args, table)


if __name__ == "__main__":
    main()
