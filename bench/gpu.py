"""GPU-ready check: training images/s and feature-metric times, on CUDA when there is one (tiny sizes on CPU).

Prints, for ``vae``, ``dcgan`` and ``wgan-gp`` on 28x28 images, the genlab Trainer's images/s at batch 128 and 512
with each precision (fp32, bf16, fp16 where the device has it) and ``trainer.compile`` off and on (the first
``--warmup`` steps, which include compilation, are not timed); then the seconds of FID (FeatureStats + fid), KID
(100 subsets of 1,000) and precision/recall/density/coverage (one pass, ``genlab.metrics.prdc``) on N x 2,048
features (N = 50,000 on a GPU).

    bash bench/gpu.sh                      # = python bench/gpu.py (CUDA: full sizes)
    python bench/gpu.py --tiny             # CPU smoke run in seconds (tests/test_bench_gpu.py runs it)
    python bench/gpu.py --models vae --batches 512 --precisions bf16 --compile off,on --json out.json

The synthetic images are uniform noise in [-1, 1]: throughput does not depend on the pixel values. Never
asserted in tests (the test only checks that the script runs and prints every row).
"""
from __future__ import annotations

import argparse
import json
import logging
import time

import torch

from genlab.config import from_dict
from genlab.data import TensorDataset
from genlab.metrics import FeatureStats, fid, kid, prdc
from genlab.registry import get_model_entry
from genlab.training import Callback, Trainer
from metrics_speed import make_features  # bench/ is on sys.path when a bench script runs


class _Clock(Callback):
    """Wall time from the end of step ``warmup`` to the end of training (CUDA synchronised)."""

    def __init__(self, warmup: int, device: torch.device):
        self.warmup, self.device, self.t0, self.t1, self.n0 = warmup, device, None, None, 0

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def on_step_end(self, trainer, logs):  # called every trainer.log_every (= warmup) steps
        if trainer.step == self.warmup:
            self._sync()
            self.t0 = time.perf_counter()
            self.n0 = trainer.step

    def on_train_end(self, trainer):
        self._sync()
        self.t1 = time.perf_counter()
        self.steps = trainer.step - self.n0


def throughput(model_name: str, batch: int, precision: str, compile_on: bool, *, steps: int, warmup: int,
               device: torch.device, image: int) -> float:
    """Images/s of the Trainer over ``steps`` timed steps after ``warmup`` untimed ones."""
    n = batch * (steps + warmup)
    data = TensorDataset(torch.rand(n, 1, image, image) * 2 - 1, name="noise")
    entry = get_model_entry(model_name)
    torch.manual_seed(0)
    model = entry.cls(from_dict(entry.config_cls, {}), data.info())
    clock = _Clock(warmup, device)
    cfg = {"epochs": 1, "batch_size": batch, "precision": precision, "compile": compile_on, "device": str(device),
           "channels_last": False, "fid_samples": 0, "monitor_every": 0, "log_every": warmup, "val_every": 10 ** 6,
           "sample_every": 0, "drop_last": True}
    Trainer(cfg, callbacks=[clock]).fit(model, data)
    if clock.t0 is None or clock.steps <= 0:
        return float("nan")
    return clock.steps * batch / (clock.t1 - clock.t0)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="CPU smoke sizes (seconds)")
    ap.add_argument("--models", default="vae,dcgan,wgan-gp")
    ap.add_argument("--batches", default="128,512")
    ap.add_argument("--precisions", default=None, help="default: fp32,bf16,fp16 on CUDA, fp32 on CPU")
    ap.add_argument("--compile", default="off,on", help="compile settings to run: off, on")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per row (default 50; tiny 2)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps per row, also the Trainer's log_every "
                    "(default 10; tiny 1)")
    ap.add_argument("--n-features", type=int, default=None, help="features per set (default 50,000; tiny 300)")
    ap.add_argument("--dim", type=int, default=None, help="feature dimension (default 2,048; tiny 64)")
    ap.add_argument("--skip-metrics", action="store_true")
    ap.add_argument("--json", help="also write the rows here")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cuda = torch.cuda.is_available() and not a.tiny
    device = torch.device("cuda" if cuda else "cpu")
    steps = a.steps or (5 if a.tiny else 50)
    warmup = a.warmup or (1 if a.tiny else 10)
    batches = [int(b) for b in a.batches.split(",")] if not a.tiny else [8]
    precisions = a.precisions.split(",") if a.precisions else (["fp32", "bf16", "fp16"] if cuda else ["fp32"])
    compiles = [c.strip() == "on" for c in a.compile.split(",")] if not a.tiny else [False]
    image = 28 if not a.tiny else 16
    name = torch.cuda.get_device_name() if cuda else "CPU"
    print(f"genlab bench/gpu.py on {name}, torch {torch.__version__}, threads {torch.get_num_threads()}", flush=True)
    rows = []
    print(f"\n| model | batch | precision | compile | images/s |  ({steps} timed steps after {warmup})\n|---|---|---|---|---|")
    for model_name in [m for m in a.models.split(",") if m]:  # --models "" runs the metrics only
        for batch in batches:
            for precision in precisions:
                for comp in compiles:
                    try:
                        ips = throughput(model_name, batch, precision, comp, steps=steps, warmup=warmup,
                                         device=device, image=image)
                    except Exception as e:  # noqa: BLE001 - a row that fails is reported, the others still run
                        ips = float("nan")
                        print(f"  ({model_name} {batch} {precision} compile={comp}: {type(e).__name__}: "
                              f"{str(e).splitlines()[0][:120]})")
                    rows.append({"model": model_name, "batch": batch, "precision": precision, "compile": comp,
                                 "images_per_s": ips})
                    print(f"| {model_name} | {batch} | {precision} | {'on' if comp else 'off'} | {ips:,.0f} |",
                          flush=True)
    if not a.skip_metrics:
        n = a.n_features or (300 if a.tiny else 50_000)
        dim = a.dim or (64 if a.tiny else 2048)
        real, fake = make_features(n, dim, 0)  # bench/metrics_speed.py's correlated Gaussians
        print(f"\nmetrics on {n:,} x {dim:,} float32 features per set, device {device}:")
        t_fid, v_fid = timed(lambda: fid(FeatureStats.from_features(real), FeatureStats.from_features(fake)))
        print(f"  FID (stats of both sets + distance, CPU float64): {t_fid:8.2f} s  value {v_fid:.4f}", flush=True)
        m = min(1000, n)
        t_kid, v_kid = timed(lambda: kid(real, fake, subsets=100, subset_size=m, device=device))
        print(f"  KID (100 subsets of {m}):                           {t_kid:8.2f} s  mean {v_kid[0]:.6e}", flush=True)
        t_pr, v_pr = timed(lambda: prdc(real, fake, device=device))
        print(f"  PRDC (one pass, float64, chunks of 4,096):          {t_pr:8.2f} s  {v_pr}", flush=True)
        rows.append({"metrics_n": n, "dim": dim, "device": str(device), "fid_s": t_fid, "kid_s": t_kid,
                     "prdc_s": t_pr, "fid": v_fid, "kid": v_kid[0], **v_pr})
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
