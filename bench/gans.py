"""The GAN family on real data: FID-mnist/-digits (best and final), KID, precision/recall, class coverage,
conditional accuracy, wall time and images/s, 3 seeds each; the real-vs-real floor; DCGAN Trainer vs a
hand-written loop.

Protocol (all printed with the table):

* data: ``mnist5k`` (5,000 real 28x28 MNIST digits) and ``digits`` (1,797 8x8), split 80/10/10 with split
  seed 0. Models train on the train split; the FID at every validation (``trainer.fid_samples`` samples vs
  the validation split) picks the best checkpoint, which the run restores.
* evaluation: ``len(train)`` samples of the best and of the final weights against the held-out images
  (validation + test splits), genlab feature net of the data (FID-mnist / FID-digits, KID,
  precision/recall with k=3); class coverage = classes holding more than a tenth of their uniform share of
  the samples' predicted classes, with the normalised entropy of that histogram.
* floor: the same FID between the train split and the held-out images (real vs real).
* conditional models: feature-net accuracy on 100 samples per requested class.
* throughput: ``dcgan`` images/s with the genlab Trainer vs a minimal hand-written loop of the same networks
  and the same iteration (per batch: one D update, then one G update through the updated D on the same fakes;
  same init, data, batch size, thread count and the Trainer's measured precision/channels_last choice; the
  Trainer's diversity monitor off, there is no validation), alternating, median of the repeats.
  ``bench/gan_textbook.py`` compares sample quality at equal wall time.

    .venv/bin/python bench/gans.py                       # everything (long: see README for the time)
    .venv/bin/python bench/gans.py --quick               # 1 seed, few epochs: a smoke run
    .venv/bin/python bench/gans.py --only throughput
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import genlab
from genlab.config import apply_overrides, from_dict
from genlab.metrics import FeatureStats, fid, load_feature_net
from genlab.metrics.diversity import class_histogram, classes_covered, normalized_entropy
from genlab.metrics.kid import kid
from genlab.metrics.neighbours import precision_recall
from genlab.models import capabilities
from genlab.registry import get_model_entry
from genlab.runs import DataConfig, prepare_data
from genlab.training import Trainer, seed_everything

MODELS = ["gan", "dcgan", "wgan", "wgan-gp", "cgan", "acgan"]
#: epochs per data set (a fixed budget; WGANs take 5 critic steps per generator step within it)
EPOCHS = {"mnist5k": 20, "digits": 60}
NET = {"mnist5k": "mnist", "digits": "digits"}
BATCH = 64


def held_out(splits) -> torch.Tensor:
    return torch.cat([splits.val.x, splits.test.x])


def score(model, net, real_feats, n: int, seed: int = 0) -> dict:
    """FID/KID/PR and class coverage of ``n`` samples against precomputed real features."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x = torch.cat([model.sample(min(500, n - i), generator=g) for i in range(0, n, 500)]).float().clamp(0, 1)
    f, lg = net.extract(x)
    counts = class_histogram(lg)
    prec, rec = precision_recall(real_feats, f, k=3)
    out = {"fid": fid(FeatureStats.from_features(f), FeatureStats.from_features(real_feats)),
           "kid": kid(real_feats, f, subset_size=min(1000, len(f), len(real_feats)))[0],
           "precision": prec, "recall": rec,
           "classes": classes_covered(counts, 0.1 / len(counts)), "entropy": normalized_entropy(counts)}
    if capabilities(model)["conditional"]:
        labels = torch.arange(1000) % model.num_classes
        with torch.no_grad():
            xs = model.sample(1000, labels=labels, generator=torch.Generator().manual_seed(seed + 1)).float()
        out["cond_acc"] = float((torch.from_numpy(net.extract(xs.clamp(0, 1))[1]).argmax(1) == labels).float().mean())
    return out


def run_one(name: str, data: str, seed: int, epochs: int, workdir: Path, net, real_feats, splits,
            model_config: dict | None = None) -> dict:
    out = workdir / f"{name}-{data}-{seed}"
    t0 = time.perf_counter()
    run = genlab.train(name, data, out=out, overwrite=True, figures=False, config={
        "model": dict(model_config or {}),
        "trainer": {"epochs": epochs, "batch_size": BATCH, "seed": seed, "log_every": 50},
        "data": {"val": 0.1, "test": 0.1, "split_seed": 0}})
    wall = time.perf_counter() - t0
    best = score(run.model, net, real_feats, len(splits.train.x), seed)
    final_model = genlab.load(out / "checkpoints" / "last")
    final = score(final_model, net, real_feats, len(splits.train.x), seed)
    vals = [r["fid"] for r in run.result.history if r["split"] == "val" and "fid" in r]
    row = {"model": name, "data": data, "seed": seed, "fid_best": best["fid"], "fid_final": final["fid"],
           "kid": best["kid"], "precision": best["precision"], "recall": best["recall"],
           "classes": best["classes"], "entropy": best["entropy"], "wall_s": wall,
           "img_s": run.metrics["samples_per_sec"], "best_epoch": vals.index(min(vals)) + 1 if vals else None}
    if "cond_acc" in best:
        row["cond_acc"] = best["cond_acc"]
    return row


def floor(splits, net) -> float:
    a, _ = net.extract(splits.train.x)
    b, _ = net.extract(held_out(splits))
    return fid(FeatureStats.from_features(a), FeatureStats.from_features(b))


def hand_loop(model, x, steps, precision, channels_last) -> float:
    """Minimal PyTorch GAN loop (pytorch/examples DCGAN): shuffle, slice; per batch a D update on real and
    detached fakes, then a G update through the updated D on the same fakes. ``steps`` counts batches."""
    model.train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    c = model.config
    opt_d = torch.optim.Adam(model.discriminator_parameters(), lr=c.lr_d, betas=(c.beta1, c.beta2))
    opt_g = torch.optim.Adam(model.generator_parameters(), lr=c.lr_g, betas=(c.beta1, c.beta2))
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    ctx = contextlib.nullcontext if precision == "fp32" else (lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    g = torch.Generator().manual_seed(0)
    done = seen = 0
    t0 = time.perf_counter()
    while done < steps:
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), BATCH):
            xb = x.index_select(0, perm[i:i + BATCH])
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            z = torch.randn(len(xb), c.latent_dim)
            opt_d.zero_grad(set_to_none=True)
            with ctx():  # discriminator
                fake = model.generator(z)
                r = model.head(model.features(xb)).squeeze(1)
                f = model.head(model.features(fake.detach())).squeeze(1)
                loss = bce(r, torch.ones_like(r)) + bce(f, torch.zeros_like(f))
            loss.backward()
            opt_d.step()
            opt_g.zero_grad(set_to_none=True)
            with ctx():  # generator, non-saturating, on the same fakes
                f = model.head(model.features(fake)).squeeze(1)
                loss = bce(f, torch.ones_like(f))
            loss.backward()
            opt_g.step()
            done += 1
            seen += len(xb)
            if done >= steps:
                break
    return seen / (time.perf_counter() - t0)


def throughput(steps: int, repeats: int) -> dict:
    splits = prepare_data(from_dict(DataConfig, {"name": "mnist5k"}))
    data = splits.train
    seed_everything(0)
    entry = get_model_entry("dcgan")
    base = entry.cls(from_dict(entry.config_cls, {}), data.info())
    init = copy.deepcopy(base.state_dict())
    quiet = {"monitor_every": 0, "fid_samples": 0, "num_threads": torch.get_num_threads()}
    probe = Trainer({"epochs": 1, "max_steps": 1, "batch_size": BATCH, "log_every": 10**9, **quiet})
    res = probe.fit(copy.deepcopy(base), data)
    precision, cl = res.precision, res.channels_last
    epochs = -(-steps // data.num_batches(BATCH))
    ours, ref = [], []
    for _ in range(repeats):
        m = copy.deepcopy(base)
        m.load_state_dict(init)
        tr = Trainer({"epochs": epochs, "max_steps": steps, "batch_size": BATCH, "precision": precision,
                      "channels_last": cl, "log_every": 50, "restore_best": False, **quiet})
        ours.append(tr.fit(m, data).samples_per_sec)
        m = copy.deepcopy(base)
        m.load_state_dict(init)
        ref.append(hand_loop(m, data.x, steps, precision, cl))
    ratios = [a / b for a, b in zip(ours, ref)]
    return {"precision": precision, "channels_last": cl, "trainer_img_s": statistics.median(ours),
            "hand_img_s": statistics.median(ref), "ratio": statistics.median(ratios), "ratios": ratios,
            "steps": steps, "repeats": repeats}


def mean_std(rows, key):
    v = [r[key] for r in rows if r.get(key) is not None]
    if not v:
        return "-"
    return f"{np.mean(v):.3g} ± {np.std(v):.2g}" if len(v) > 1 else f"{v[0]:.3g}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, 3 epochs (smoke run, not for the README)")
    ap.add_argument("--only", default="quality,throughput", help="quality and/or throughput")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--data", default="mnist5k,digits")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs-scale", type=float, default=1.0, help="multiply the epoch budgets")
    ap.add_argument("--steps", type=int, default=200, help="throughput: batches (D and G update each) per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="model config override for every model run (YAML value), e.g. --set d_cls_fake=false")
    args = ap.parse_args()
    model_config = apply_overrides({}, args.set)  # the CLI's KEY=VALUE rules (YAML values)
    if model_config:
        print(f"model config overrides: {model_config}")
    logging.basicConfig(level=logging.ERROR)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    parts = set(args.only.split(","))
    if "quality" in parts:
        seeds = 1 if args.quick else args.seeds
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for data in args.data.split(","):
                splits = prepare_data(from_dict(DataConfig, {"name": data}))
                net = load_feature_net(NET[data])
                real_feats, _ = net.extract(held_out(splits))
                fl = floor(splits, net)
                epochs = 3 if args.quick else max(1, round(EPOCHS[data] * args.epochs_scale))
                print(f"\n## {data}: {len(splits.train)} train, {len(held_out(splits))} held-out images, "
                      f"{epochs} epochs, batch {BATCH}; real-vs-real floor FID-{NET[data]} {fl:.3g}")
                for name in args.models.split(","):
                    for seed in range(seeds):
                        r = run_one(name, data, seed, epochs, Path(tmp), net, real_feats, splits, model_config)
                        rows.append(r)
                        print(f"  {name:8s} seed {seed}: FID best {r['fid_best']:.3g} final {r['fid_final']:.3g} "
                              f"classes {r['classes']} acc {r.get('cond_acc', float('nan')):.3f} "
                              f"{r['wall_s']:.0f}s", flush=True)
                sub = [r for r in rows if r["data"] == data]
                print(f"\n| model | FID-{NET[data]} best | final | KID | precision | recall | classes | "
                      "entropy | cond. acc. | wall s | img/s |")
                print("|---|---|---|---|---|---|---|---|---|---|---|")
                print(f"| real vs real (floor) | {fl:.3g} | | | | | 10 | | | | |")
                for name in args.models.split(","):
                    rs = [r for r in sub if r["model"] == name]
                    print(f"| {name} | " + " | ".join(mean_std(rs, k) for k in (
                        "fid_best", "fid_final", "kid", "precision", "recall", "classes", "entropy", "cond_acc",
                        "wall_s", "img_s")) + " |")
    if "throughput" in parts:
        t = throughput(50 if args.quick else args.steps, 1 if args.quick else args.repeats)
        print(f"\n## dcgan throughput on mnist5k (batch {BATCH}, {t['steps']} batches x {t['repeats']} repeats, "
              f"Trainer's measured choice: precision={t['precision']} channels_last={t['channels_last']})")
        print(f"Trainer {t['trainer_img_s']:.0f} img/s, hand loop {t['hand_img_s']:.0f} img/s, median ratio "
              f"{t['ratio']:.3f} (target >= 0.95); ratios {', '.join(f'{r:.3f}' for r in t['ratios'])}")


if __name__ == "__main__":
    main()
