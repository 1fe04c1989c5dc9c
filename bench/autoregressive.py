"""Gated PixelCNN against genlab's VAE: exact held-out NLL vs the VAE's IWAE bound at the same CPU budget, bits/dim
on 8-bit mnist5k (softmax and logistic-mixture heads), sampling time (naive vs cached) and sample quality.

Protocol (held-out data only; every figure on the test part of ``TensorDataset.split(0.1, 0.1, seed=0)``, the
split ``genlab.train`` makes with ``data.val=0.1 data.test=0.1``):

* **Binarised digits and mnist5k**: pixels in [0, 1] binarised at 0.5 (``x >= 0.5``; digits: raw level >= 8 of
  0..16, mnist: raw byte >= 128), stored as bits (norm scale 1, so ``pixelcnn`` picks its Bernoulli head).
  ``pixelcnn`` (per-data defaults below, chosen on the validation split) trains for at most ``--epochs``, stopping
  after ``--patience`` epochs without a better validation loss and keeping the best epoch's weights; the process CPU
  seconds it used (``time.process_time()``, one thread: ``torch.set_num_threads(1)``, validation included) are the
  budget ``T``. A ``vae`` (Bernoulli likelihood, conv encoder/decoder, latent 16) then trains on the same split
  until it has used ``T`` CPU seconds (checked at the end of each epoch, so it may overrun by one epoch; both
  figures are printed; it also keeps its best-validation weights). CPU seconds, not wall seconds: the machine is shared and wall time depends on the load.
  Test figures: ``pixelcnn``'s exact ``-log p(x)`` and the ``vae``'s IWAE bound ``-log p_k(x)``, ``k = --iwae-k``
  (1000 in the issue's protocol), in nats per image (the IWAE figure is an upper bound on the VAE's NLL).
* **8-bit mnist5k**: ``pixelcnn`` with the 256-way softmax head and with the discretised logistic mixture
  (``n_mix`` 5), ``--epochs-8bit`` epochs each: test bits/dim.
* **Sampling**: 100 samples of 28x28 from the binarised-mnist5k ``pixelcnn``: CPU seconds of the cached sampler,
  and of the naive one (a full forward pass per pixel): measured in full with ``--naive full``, or (``--naive row``,
  the default) on the first row and multiplied by the number of rows (each naive step is the same full pass, so
  the total is rows x one row). The samples are judged by FID-mnist (genlab's MNIST feature net) against the
  binarised test images, and by class coverage (the feature net's predicted-class histogram: normalised entropy
  and the number of classes holding more than a tenth of their uniform share); next to them the same figures for
  100 VAE samples (Bernoulli draws from the decoder means) and for 100 binarised training images (the floor at
  this sample size: FID from 100 images is strongly biased upwards). Each 8-bit model's 100 samples are judged the
  same way against the 8-bit test images, next to 100 8-bit training images.

The trainers' sample monitors are off (``fid_samples=0``, ``monitor_every=0``). ``--limit N`` trains on the first
N samples of each data set (quick checks).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/autoregressive.py [--epochs 20] [--iwae-k 1000]
"""
from __future__ import annotations

import argparse
import logging
import time

import torch

import genlab
import genlab.testing
from genlab.data import Normalization, TensorDataset, load_builtin
from genlab.metrics.fid import fid
from genlab.metrics.stats import FeatureStats
from genlab.training.callbacks import Callback
from genlab.training.monitors import class_figures, features

BITS = Normalization(torch.tensor(0.0), torch.tensor(1.0))
TRAINER = {"batch_size": 64, "precision": "fp32", "fid_samples": 0, "monitor_every": 0, "sample_every": 0,
           "seed": 0}
#: pixelcnn settings per data set (chosen on the validation split, see docs/models/pixelcnn.md)
PIXELCNN = {"digits": {"channels": 32, "layers": 4, "head_channels": 64, "lr": 3e-3, "dropout": 0.2},
            "mnist5k": {"channels": 32, "layers": 4, "head_channels": 64, "lr": 3e-3}}
VAE = {"latent_dim": 16, "likelihood": "bernoulli", "arch": "conv"}


class CPUBudget(Callback):
    """Ends training at the first epoch end after ``seconds`` of process CPU time since construction."""

    def __init__(self, seconds: float):
        self.seconds, self.t0 = seconds, time.process_time()

    def on_epoch_end(self, trainer, logs):
        if time.process_time() - self.t0 >= self.seconds:
            trainer.stopped_early = True


def binarised(name: str, limit: int | None) -> TensorDataset:
    ds = load_builtin(name, data_dir=None, download=False, split="train")
    x = ds.x if limit is None else ds.x[:limit]
    y = None if ds.y is None else (ds.y if limit is None else ds.y[:limit])
    return TensorDataset((x >= 0.5).float(), y, norm=BITS, name=f"{name}-bin")


def eight_bit(name: str, limit: int | None) -> TensorDataset:
    ds = load_builtin(name, data_dir=None, download=False, split="train")
    return ds if limit is None else ds.subset(torch.arange(min(limit, len(ds))))


def train(model: str, data: TensorDataset, model_cfg: dict, trainer: dict, callbacks=()):
    t = time.process_time()
    run = genlab.train(model, data, config={"model": model_cfg, "trainer": {**TRAINER, **trainer},
                                            "data": {"val": 0.1, "test": 0.1}, "test": {"enabled": False}},
                       callbacks=list(callbacks), progress=False)
    return run, time.process_time() - t


def test_split(data: TensorDataset) -> TensorDataset:
    return data.split(0.1, 0.1, seed=0)[2]  # genlab.train's default data.split_seed is 0


def parse_overrides(text: str) -> dict:
    cfg = {}
    for kv in filter(None, text.split(",")):
        k, v = kv.split("=")
        cfg[k] = int(v) if v.lstrip("-").isdigit() else float(v)
    return cfg


def judge(model, x: torch.Tensor, real: FeatureStats) -> dict:
    f, logits = features(model, x)
    out = {"fid": fid(FeatureStats.from_features(f.double()), real)}
    out.update(class_figures(logits))
    return out


def naive_seconds(m, n: int, rows: int | None, seed: int = 0) -> float:
    """CPU seconds of the naive sampler (a full forward pass per sub-pixel) for ``n`` images; with ``rows``, the
    first ``rows`` rows are sampled and the time is scaled to all ``H`` rows (every step is the same full pass)."""
    C, H, W = m.shape
    if rows is None:
        t = time.process_time()
        m.sample(n, generator=torch.Generator().manual_seed(seed), cache=False)
        return time.process_time() - t
    m.eval()
    us = m._uniform(n * C * H * W, torch.Generator().manual_seed(seed)).view(H, W, C, n)
    q = torch.zeros(n, C, H, W, dtype=torch.long)
    t = time.process_time()
    with torch.inference_mode():
        for i in range(rows):  # the body of PixelCNN._sample_naive
            for j in range(W):
                for c in range(C):
                    q[:, c, i, j] = m._draw(m.net(m._net_input(q), None)[:, c, :, i, j], us[i, j, c])
    return (time.process_time() - t) * H / rows


def sampling_times(m, n: int, naive: str) -> torch.Tensor:
    """Print the CPU seconds of cached and naive sampling of ``n`` images; returns the cached samples."""
    t = time.process_time()
    s = m.sample(n, generator=torch.Generator().manual_seed(0))
    t_cached = time.process_time() - t
    t_naive = None if naive == "none" else naive_seconds(m, n, 1 if naive == "row" else None)
    print(f"\nsampling {n} x {tuple(s.shape[1:])}: cached {t_cached:.1f} CPU s"
          + ("" if t_naive is None else f", naive {t_naive:.1f} CPU s"
             + (f" (first row x {m.shape[1]})" if naive == "row" else "") + f", {t_naive / t_cached:.1f}x"),
          flush=True)
    return s


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30, help="most pixelcnn epochs on the binarised data")
    p.add_argument("--patience", type=int, default=5, help="pixelcnn: stop after this many epochs without a better "
                   "validation loss (the weights of the best epoch are kept; trainer.restore_best)")
    p.add_argument("--epochs-8bit", type=int, default=2, help="pixelcnn epochs on 8-bit mnist5k (each head)")
    p.add_argument("--iwae-k", type=int, default=1000)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--naive", choices=("row", "full", "none"), default="row")
    p.add_argument("--n-samples", type=int, default=100)
    p.add_argument("--data", default="digits,mnist5k", help="binarised data sets to compare on (comma-separated)")
    p.add_argument("--no-8bit", action="store_true", help="skip the 8-bit mnist5k bits/dim runs")
    p.add_argument("--pixelcnn", default="", help="model overrides for every pixelcnn, e.g. channels=32,layers=5")
    p.add_argument("--timing-only", action="store_true", help="only the sampling times, of an untrained binarised-"
                   "mnist5k pixelcnn (the cost of sampling does not depend on the weights)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    over = parse_overrides(a.pixelcnn)
    if a.timing_only:
        data = binarised("mnist5k", 64)
        m = genlab.testing.build("pixelcnn", data, {**PIXELCNN["mnist5k"], **over}).eval()
        sampling_times(m, a.n_samples, a.naive)
        return
    rows, mnist = [], None
    for name in filter(None, a.data.split(",")):
        data = binarised(name, a.limit)
        test = test_split(data)
        cfg = {**PIXELCNN.get(name, {}), **over}
        pc, t_pc = train("pixelcnn", data, cfg, {"epochs": a.epochs, "patience": a.patience})
        nll_pc = float(-pc.model.log_likelihood(test.x).mean())
        vae, t_vae = train("vae", data, VAE, {"epochs": 100_000}, [CPUBudget(t_pc)])
        g = torch.Generator().manual_seed(0)
        nll_vae = float(-vae.model.log_likelihood(test.x, k=a.iwae_k, generator=g, batch_size=16).mean())
        rows.append((f"{name} (binarised)", len(test), f"{pc.metrics['epochs']}", f"{t_pc:.0f}", f"{nll_pc:.2f}",
                     f"{vae.metrics['epochs']}", f"{t_vae:.0f}", f"{nll_vae:.2f}", f"{nll_vae - nll_pc:+.2f}"))
        print(f"[{name}] pixelcnn {cfg}: {t_pc:.0f} CPU s, test NLL {nll_pc:.2f}; vae: {t_vae:.0f} CPU s, "
              f"IWAE-{a.iwae_k} {nll_vae:.2f}", flush=True)
        if name == "mnist5k":
            mnist = (pc.model, vae.model, data, test)
    print(f"\n| data | test images | pixelcnn epochs | pixelcnn CPU s | pixelcnn exact NLL (nats) | vae epochs | "
          f"vae CPU s | vae IWAE-{a.iwae_k} bound (nats) | bound - NLL |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(map(str, r)) + " |")

    if not a.no_8bit:
        data8 = eight_bit("mnist5k", a.limit)
        test8 = test_split(data8)
        print("\n| 8-bit mnist5k head | epochs | CPU s | test bits/dim |\n|---|---|---|---|")
        models8 = {}
        for head, extra in (("softmax", {}), ("logistic_mixture", {"n_mix": 5})):
            cfg = {**PIXELCNN["mnist5k"], **over, "head": head, **extra}
            pc8, t8 = train("pixelcnn", data8, cfg, {"epochs": a.epochs_8bit})
            bpd = float(pc8.model.bits_per_dim(test8.x).mean())
            models8[head] = pc8.model
            print(f"| {head} | {a.epochs_8bit} | {t8:.0f} | {bpd:.3f} |", flush=True)
        # the 8-bit samples are what the MNIST feature net was trained on (binarised images all look alike to it)
        m8 = models8["logistic_mixture"]
        real8 = FeatureStats.from_features(features(m8, test8.x)[0].double())
        print(f"\n| {a.n_samples} samples vs 8-bit test images | FID-mnist | class entropy (1 = uniform) | "
              "classes covered |\n|---|---|---|---|")
        train8 = data8.split(0.1, 0.1, seed=0)[0]
        for head, m8 in models8.items():
            s8 = m8.sample(a.n_samples, generator=torch.Generator().manual_seed(0))
            j = judge(m8, s8, real8)
            print(f"| pixelcnn {head} | {j['fid']:.1f} | {j['div_entropy']:.3f} | {j['div_classes']:.0f} |", flush=True)
        j = judge(m8, train8.x[:a.n_samples], real8)
        print(f"| 8-bit training images | {j['fid']:.1f} | {j['div_entropy']:.3f} | {j['div_classes']:.0f} |")

    if mnist is not None:
        m, vae, data, test = mnist
        n = a.n_samples
        s = sampling_times(m, n, a.naive)
        real = FeatureStats.from_features(features(m, test.x)[0].double())
        g = torch.Generator().manual_seed(0)
        vs = torch.bernoulli(vae.sample(n, generator=g).clamp(0, 1), generator=g)
        train_part = data.split(0.1, 0.1, seed=0)[0]
        print(f"\n| {n} samples vs binarised test images | FID-mnist | class entropy (1 = uniform) | classes covered |"
              "\n|---|---|---|---|")
        for what, x in (("pixelcnn", s), ("vae (Bernoulli draws)", vs), ("binarised training images", train_part.x[:n])):
            j = judge(m, x, real)
            print(f"| {what} | {j['fid']:.1f} | {j['div_entropy']:.3f} | {j['div_classes']:.0f} |")


if __name__ == "__main__":
    main()
