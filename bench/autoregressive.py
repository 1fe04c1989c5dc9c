"""Gated PixelCNN against genlab's VAE: exact held-out NLL vs the VAE's IWAE bound, bits/dim, sampling time.

Protocol (held-out data only):

* **Binarised digits and mnist5k**: pixels in [0, 1] binarised at 0.5 (``x >= 0.5``), stored as bits (norm
  scale 1, so ``pixelcnn`` picks its Bernoulli head); split ``TensorDataset.split(0.1, 0.1, seed=0)``. ``pixelcnn``
  trains for ``--epochs`` epochs (wall time ``T``, validation included); a ``vae`` (Bernoulli likelihood, conv
  nets, latent 16) then trains on the same split with ``trainer.max_seconds = T`` (the same wall time). Test
  figures: ``pixelcnn``'s exact ``-log p(x)`` and the ``vae``'s IWAE bound ``-log p_k(x)``, ``k = --iwae-k``
  (1000 in the issue's protocol), both in nats per image (the IWAE bound is an upper bound on the VAE's NLL:
  lower is better for both).
* **8-bit mnist5k**: ``pixelcnn`` with the 256-way softmax head, test bits/dim.
* **Sampling time**: 100 samples from the last binarised ``pixelcnn`` (mnist5k: 28x28), cached (row-wise vertical
  stack, horizontal stack up to the current pixel) and, with ``--naive``, a full forward pass per pixel.

The trainers' sample monitors are off (``fid_samples=0``, ``monitor_every=0``): they would sample every
validation. ``--limit N`` trains on the first N samples of each data set (quick checks).

    OMP_NUM_THREADS=1 .venv/bin/python bench/autoregressive.py [--epochs 10] [--iwae-k 1000] [--limit N] [--naive]
"""
from __future__ import annotations

import argparse
import logging
import time

import torch

import genlab
from genlab.data import Normalization, TensorDataset, load_builtin

BITS = Normalization(torch.tensor(0.0), torch.tensor(1.0))
TRAINER = {"batch_size": 64, "precision": "fp32", "fid_samples": 0, "monitor_every": 0, "sample_every": 0,
           "seed": 0}


def binarised(name: str, limit: int | None) -> TensorDataset:
    ds = load_builtin(name, data_dir=None, download=False, split="train")
    x = ds.x if limit is None else ds.x[:limit]
    y = None if ds.y is None else (ds.y if limit is None else ds.y[:limit])
    return TensorDataset((x >= 0.5).float(), y, norm=BITS, name=f"{name}-bin")


def eight_bit(name: str, limit: int | None) -> TensorDataset:
    ds = load_builtin(name, data_dir=None, download=False, split="train")
    return ds if limit is None else ds.subset(torch.arange(min(limit, len(ds))))


def train(model: str, data: TensorDataset, model_cfg: dict, trainer: dict):
    t = time.perf_counter()
    run = genlab.train(model, data, config={"model": model_cfg, "trainer": {**TRAINER, **trainer},
                                            "data": {"val": 0.1, "test": 0.1}})
    return run, time.perf_counter() - t


def test_split(data: TensorDataset) -> TensorDataset:
    return data.split(0.1, 0.1, seed=0)[2]  # genlab.train's default data.split_seed is 0


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--iwae-k", type=int, default=1000)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--naive", action="store_true", help="also time naive sampling (a full pass per pixel)")
    p.add_argument("--n-samples", type=int, default=100)
    p.add_argument("--data", default="digits,mnist5k", help="binarised data sets to compare on (comma-separated)")
    p.add_argument("--no-8bit", action="store_true", help="skip the 8-bit mnist5k bits/dim run")
    p.add_argument("--pixelcnn", default="", help="model overrides, e.g. channels=32,layers=5")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cfg = {}
    for kv in filter(None, a.pixelcnn.split(",")):
        k, v = kv.split("=")
        cfg[k] = int(v) if v.isdigit() else float(v)
    rows = []
    bin_mnist_model = None
    for name in filter(None, a.data.split(",")):
        data = binarised(name, a.limit)
        test = test_split(data)
        pc, t_pc = train("pixelcnn", data, cfg, {"epochs": a.epochs})
        nll_pc = float(-pc.model.log_likelihood(test.x).mean())
        vae, t_vae = train("vae", data, {"latent_dim": 16, "likelihood": "bernoulli"},
                           {"epochs": 10_000, "max_seconds": t_pc})
        g = torch.Generator().manual_seed(0)
        nll_vae = float(-vae.model.log_likelihood(test.x, k=a.iwae_k, generator=g).mean())
        rows.append((f"{name} (binarised)", len(test), f"{t_pc:.0f}", f"{nll_pc:.2f}", f"{t_vae:.0f}",
                     f"{nll_vae:.2f}", f"{vae.metrics['epochs']}"))
        bin_mnist_model = pc.model  # the last one: its samples are timed
    print(f"| data | test images | pixelcnn s | pixelcnn exact NLL (nats) | vae s | vae IWAE-{a.iwae_k} NLL bound "
          "(nats) | vae epochs |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(map(str, r)) + " |")

    if not a.no_8bit:
        data8 = eight_bit("mnist5k", a.limit)
        pc8, t8 = train("pixelcnn", data8, cfg, {"epochs": a.epochs})
        bpd = float(pc8.model.bits_per_dim(test_split(data8).x).mean())
        print(f"\n8-bit mnist5k: pixelcnn ({a.epochs} epochs, {t8:.0f} s): test {bpd:.3f} bits/dim")

    m = bin_mnist_model
    for cache in ((True, False) if a.naive else (True,)):
        t = time.perf_counter()
        s = m.sample(a.n_samples, generator=torch.Generator().manual_seed(0), cache=cache)
        dt = time.perf_counter() - t
        print(f"sampling {a.n_samples} x {tuple(s.shape[1:])} ({'cached' if cache else 'naive'}): {dt:.1f} s")


if __name__ == "__main__":
    main()
