"""Trainer overhead: the same conv VAE on 28×28 images, genlab Trainer vs a minimal hand-written loop.

Prints images/s for both, their ratio (Trainer / hand loop; target >= 0.95) and the precision /
channels_last choice the Trainer made by measurement. Both loops use that same choice, the same
initial weights, batch size and data; runs alternate and the medians of ``--repeats`` are reported.

    .venv/bin/python bench/trainer_overhead.py [--steps 150] [--repeats 3] [--batch-size 128]

``--run-folder``: instead, the cost of a run folder's optional epoch-end chores on a tiny data set, where they
dominate: ``genlab.train("dcgan", ...)`` on the 100 faces of scikit-image's lfw_subset (edge-padded to 32x32) into a
temporary run folder, with ``trainer.chore_overhead`` null (``checkpoints/last`` after every epoch and the automatic
sample grids at every due epoch, what genlab did before this key) and 0.05 (the default), alternating; prints the
steps per second of ``fit``'s wall time (epoch ends included), the grids written and the ratio. Trainer settings:
``examples/dcgan_few_images.yaml``'s (batch 64: 2 steps per epoch; grids every 50 epochs, so only the checkpoints
change), or with ``--defaults`` ``dcgan``'s own (batch 128: 1 step per epoch; ``sample_every: null``, a grid per
epoch); bf16 and channels_last fixed (no probe), no validation, no end-of-run evaluation.

    .venv/bin/python bench/trainer_overhead.py --run-folder [--defaults] [--steps 300] [--repeats 3]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time

import torch

from genlab.config import from_dict
from genlab.data import load_dataset
from genlab.models.vae import VAE, VAEConfig
from genlab.training import Trainer, seed_everything


def hand_loop(model, x, steps, batch_size, precision, channels_last):
    """The minimal PyTorch loop: shuffle, slice, forward, backward, Adam step."""
    model.train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    ctx = (lambda: contextlib.nullcontext()) if precision == "fp32" else \
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    done, seen = 0, 0
    t0 = time.perf_counter()
    while done < steps:
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            xb = x.index_select(0, perm[i:i + batch_size])
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with ctx():
                loss = model.training_step({"x": xb}, done)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            seen += len(xb)
            if done >= steps:
                break
    return seen / (time.perf_counter() - t0)


def run_folder_cost(steps: int, repeats: int, defaults: bool) -> None:
    """``--run-folder``: dcgan on 100 faces, ``chore_overhead`` null vs 0.05 (see the module docstring)."""
    import tempfile
    from pathlib import Path

    import yaml
    from gans import lfw_budget_data  # bench/gans.py: the faces edge-padded to 32x32, as its budget arms train

    import genlab

    data, _ = lfw_budget_data()
    recipe = yaml.safe_load((Path(__file__).parents[1] / "examples" / "dcgan_few_images.yaml").read_text())
    model = {} if defaults else recipe["model"]
    trainer = {**({} if defaults else recipe["trainer"]), "epochs": 10**6, "max_seconds": None, "max_steps": steps,
               "precision": "bf16", "channels_last": True, "fid_samples": 0}
    what = "its defaults" if defaults else "examples/dcgan_few_images.yaml"
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, dcgan ({what}) on {tuple(data.x.shape)}, "
          f"{steps} steps")
    rates, grids = {None: [], 0.05: []}, {None: [], 0.05: []}
    for r in range(repeats):
        for share in rates:
            with tempfile.TemporaryDirectory() as tmp:
                run = genlab.train("dcgan", data, out=Path(tmp) / "run", figures=False, progress=False, config={
                    "model": model, "trainer": {**trainer, "chore_overhead": share}, "data": {"val": 0, "test": 0},
                    "test": {"enabled": False}})
                grids[share].append(len(list((Path(tmp) / "run" / "samples").glob("*.png"))))
            rates[share].append(run.result.step / run.result.seconds)
        print(f"  repeat {r + 1}: every epoch {rates[None][-1]:6.2f} steps/s ({grids[None][-1]} grids)   "
              f"chore_overhead=0.05 {rates[0.05][-1]:6.2f} steps/s ({grids[0.05][-1]} grids)   ratio "
              f"{rates[0.05][-1] / rates[None][-1]:.3f}")
    ratios = [b / a for a, b in zip(rates[None], rates[0.05])]
    print(f"median: every epoch {statistics.median(rates[None]):.2f} steps/s, chore_overhead=0.05 "
          f"{statistics.median(rates[0.05]):.2f} steps/s, ratio {statistics.median(ratios):.3f} over {repeats} repeats")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave as is)")
    ap.add_argument("--run-folder", action="store_true",
                    help="measure the run folder's epoch-end chores on 100 faces instead (module docstring)")
    ap.add_argument("--defaults", action="store_true", help="--run-folder: dcgan's own trainer settings")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run_folder:
        return run_folder_cost(args.steps, args.repeats, args.defaults)
    data = load_dataset("mnist5k")
    seed_everything(0)
    base = VAE(from_dict(VAEConfig, {"latent_dim": 16}), data.info())
    init = copy.deepcopy(base.state_dict())
    n_batches = data.num_batches(args.batch_size)
    epochs = -(-args.steps // n_batches)

    # Let the Trainer choose precision/layout once by measurement; both loops then use that choice.
    probe = Trainer({"epochs": 1, "max_steps": 1, "batch_size": args.batch_size, "log_every": 10**9})
    m = copy.deepcopy(base)
    res = probe.fit(m, data)
    precision, cl = res.precision, res.channels_last
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, data mnist5k {tuple(data.x.shape)}")
    print(f"Trainer's measured choice: precision={precision} channels_last={cl}")

    ours, ref = [], []
    for r in range(args.repeats):
        m = copy.deepcopy(base)
        m.load_state_dict(init)
        tr = Trainer({"epochs": epochs, "max_steps": args.steps, "batch_size": args.batch_size,
                      "precision": precision, "channels_last": cl, "log_every": 10})
        ours.append(tr.fit(m, data).samples_per_sec)
        m = copy.deepcopy(base)
        m.load_state_dict(init)
        ref.append(hand_loop(m, data.x, args.steps, args.batch_size, precision, cl))
        print(f"  repeat {r + 1}: trainer {ours[-1]:8.1f} img/s   hand loop {ref[-1]:8.1f} img/s   "
              f"ratio {ours[-1] / ref[-1]:.3f}")
    mo, mr = statistics.median(ours), statistics.median(ref)
    ratios = [a / b for a, b in zip(ours, ref)]
    print(f"median: trainer {mo:.1f} img/s, hand loop {mr:.1f} img/s, ratio {statistics.median(ratios):.3f} "
          f"(target >= 0.95) over {args.repeats} repeats of {args.steps} steps, batch {args.batch_size}")


if __name__ == "__main__":
    main()
