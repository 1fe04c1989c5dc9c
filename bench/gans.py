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

Budget section (``--only budget``; issue 17): ``dcgan``, ``wgan-gp``, ``progan``, ``stylegan`` and the textbook
DCGAN loop of pytorch/examples (``bench/gan_textbook.py``'s ``textbook_loop`` on genlab's DCGAN networks) at equal
*process CPU time* (``time.process_time()``, fairer than wall time on a shared machine) on ``mnist5k``'s train
split (4,000 images; batch 64; 1 torch thread for every arm). ``dcgan``, ``wgan-gp`` and the textbook loop
work at 28x28; ``progan`` and ``stylegan`` pad to 32x32 (edges replicated) and crop their samples back to 28x28,
so every arm is scored on 28x28 samples. genlab arms train through ``Trainer.fit`` with default model settings
(``--set`` overrides them), no validation and no monitors, stopped after the step during which the process
CPU time of the arm passed ``--budget`` seconds; the textbook loop stops the same way. Evaluation (not timed):
``--samples`` samples against the held-out images (validation + test splits): FID-mnist (genlab feature net),
recall (k=3), the classes holding > 1 % of the samples and the smallest/largest class share (goal: each class 5-15 %),
and PPL in Z (lerp, eps 1e-4, 1,000 paths, feature-net features, no crop; ``stylegan`` also in W); SWD x1e3
(``genlab.metrics.swd``: ProGAN's sliced Wasserstein distance on Laplacian-pyramid patches, no feature net) of
the samples against the same real images; its floor is measured at the same sample count (``swd_floor_of``).

``--data lfw``: the same arms on the 100 faces of scikit-image's ``lfw_subset`` (25x25), edge-padded to 32x32 for
every arm and cropped back for scoring; FID-lfw (the shipped face/non-face net), recall and PPL against those same
100 faces (too few to hold any out), floor = FID-lfw between two halves of the faces; "classes" are face/non-face.
``--data lfw-nonfaces``: the same protocol on ``lfw_subset``'s 100 *non-face* crops (same size and source), the
selection set for face recipes: a setting chosen there was not chosen on the faces the tables report.
``--trainer-set KEY=VALUE`` overrides Trainer settings of the genlab arms (e.g. ``ema_decay``, or
``precision=auto``: the Trainer's default, which measures bf16 autocast against fp32; the budget arms force fp32
unless told). ``--g-ema D`` also scores the moving average (decay D) of each genlab arm's weights, kept during the
same run (what ``trainer.ema_decay=D`` would export), beside its raw weights.

``--clock wall --threads 2``: the issue's literal protocol, minutes of *wall time* on this 2-core CPU with both
cores per arm; run it on an idle machine, one arm at a time. ``--snapshots 300`` scores each arm also after 300
seconds of the same run, the budget clock paused while it scores and the global RNG restored afterwards, so the
snapshot is the state a 300-second arm stops in (no schedule here depends on the budget); one 1,200-second run
gives both the 5- and the 20-minute rows.

    .venv/bin/python bench/gans.py --only budget --clock wall --threads 2 --budget 1200 --snapshots 300 \
        --seeds 1 --models dcgan --trainer-set precision=auto --trainer-set channels_last=auto --g-ema 0.999
    .venv/bin/python bench/gans.py --only budget --budget 180 --seeds 1        # first numbers (docs/models/gan.md)
    .venv/bin/python bench/gans.py --only budget --budget 300 --seeds 3        # the issue's protocol, 5 minutes
    .venv/bin/python bench/gans.py --only budget --budget 1200 --seeds 3       # ... and 20 minutes

Truncation section (``--only truncation``; issue 17): one ``stylegan`` trained as a budget arm (``--budget`` seconds
of process CPU time, 1 thread, default settings plus ``--set``, mnist5k train split; ``--save DIR`` keeps it) or
loaded with ``--run DIR`` (a run folder or a saved model folder); then, for psi in 0.5, 0.7 and 1.0 (``--psis``),
``--samples`` samples with the same seed (10,000) against the held-out images (validation + test splits):
FID-mnist, precision and recall (k=3, genlab feature net), and the class coverage of the samples. The tracked
``w_avg`` is the truncation centre. ``--data digits`` runs the same protocol on the 8x8 digits (FID-digits; far
cheaper per batch, for machines where a few CPU minutes of mnist5k training are out of reach).

    .venv/bin/python bench/gans.py --only truncation --budget 360 --save runs/trunc   # docs/models/stylegan.md
    .venv/bin/python bench/gans.py --only truncation --run runs/trunc                 # re-score a saved model

``--only cond-truncation``: one ``cstylegan`` trained as a budget arm on ``--data`` (default ``digits``, a data set
the README's GAN tables at these budgets do not use for this choice), then FID, precision, recall and the feature
net's conditional accuracy (labels ``i mod K``) at each psi, with the per-class and the global truncation centre
of the same weights: the measurement behind ``cstylegan``'s ``truncation`` default.

    .venv/bin/python bench/gans.py --only cond-truncation --budget 240 --samples 1000

``--only score-runs --run RUN[,RUN...] --data lfw``: the exported models of run folders (``genlab train ... --out
RUN`` on the faces, as a user trains; 32x32 or the 25x25 faces themselves) scored as the budget arms are: the same
``--samples`` draws (seed 10,000), cropped to 25x25, FID-lfw, recall and SWD against the 100 faces, and the steps the
run made (its ``checkpoints/last``).

    .venv/bin/python bench/gans.py --only score-runs --data lfw --run runs/faces25-s0,runs/faces25-s1
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
from genlab.metrics.swd import swd
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
    base = entry.cls(from_dict(entry.config_cls, {"r1_gamma": 0.0}), data.info())  # the hand loop has no R1
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


# -- equal CPU-time budget (issue 17) ------------------------------------------------------------------------------
BUDGET_MODELS = ["dcgan", "wgan-gp", "progan", "stylegan", "textbook"]
#: per-model settings of the budget runs (before --set): progan's growth fits a short budget (32x32 after 7,000
#: images: 1,000 at 4x4, then 1,000 fading in and 1,000 stable per side)
BUDGET_CONFIG = {"progan": {"fade_images": 1000, "stable_images": 1000}}


class BudgetClock:
    """The clock of a budget arm: this process's CPU time (``cpu``) or wall time (``wall``) since the arm began, less
    the time spent scoring snapshots inside :meth:`pause`, so the state at a snapshot at T seconds is the state a
    T-second arm stops in (the global RNG is restored after each snapshot), unless the arm's learning rate decays
    over the budget (``--trainer-set lr_schedule=cosine``): then a T-second arm needs its own run."""

    def __init__(self, kind: str = "cpu"):
        self.now = time.process_time if kind == "cpu" else time.perf_counter
        self.t0, self.paused = self.now(), 0.0

    def elapsed(self) -> float:
        return self.now() - self.t0 - self.paused

    @contextlib.contextmanager
    def pause(self):
        t, rng = self.now(), torch.get_rng_state()
        try:
            yield
        finally:
            torch.set_rng_state(rng)
            self.paused += self.now() - t


class WeightsEMA:
    """Trainer callback: exponential moving averages of the model's weights (one per spec, genlab's ``EMA``, as
    ``trainer.ema_decay`` keeps it: every floating-point parameter and buffer, the discriminator's too), updated
    after every step, so one run scores its raw generator and each average. A spec is a decay ``D`` or ``DrR``, the
    decay with ``trainer.ema_rampup=R`` (e.g. ``0.999r0.05``). The updates cost time inside the arm's budget (a few
    ms per step, against ~100 ms per step)."""

    def __init__(self, specs):
        from genlab.training import Callback
        from genlab.training.ema import EMA
        self.emas: list = []
        parsed = []  # (decay, rampup or None) per spec
        for spec in map(str, specs):
            decay, _, rampup = spec.partition("r")
            parsed.append((float(decay), float(rampup) if rampup else None))

        class Update(Callback):
            def step_figures(cb, trainer, batch):
                if not self.emas:
                    self.emas = [EMA(trainer.model, d, r) for d, r in parsed]
                for e in self.emas:
                    e.update(trainer.model)
                return {}
        self.callback = Update()

    def variants(self, model):
        """``(label, context)`` pairs: the raw weights, then each average loaded into ``model`` (only the raw
        weights without specs)."""
        return [("", contextlib.nullcontext())] + [
            (f" EMA {e.decay:g}" + (f" rampup {e.rampup:g}" if e.rampup is not None else ""), e.applied(model))
            for e in self.emas]


def budget_arm(name: str, train, seed: int, seconds: float, model_config: dict, trainer_config: dict | None = None,
               callbacks: list | None = None, clock: str = "cpu", threads: int = 1,
               snapshots: dict | None = None):
    """Train one arm for ``seconds`` on ``clock`` (``cpu``: process CPU time; ``wall``) with ``threads`` torch
    threads; returns (genlab model to sample from, info). ``trainer_config`` overrides the Trainer settings of the
    genlab arms (e.g. ``ema_decay``); ``callbacks`` are added to theirs (their time counts in the budget).
    ``snapshots``: ``{t: fn}``, ``fn(model, info)`` called (clock paused, model in eval mode) once the budget clock
    passes ``t`` seconds."""
    bc = BudgetClock(clock)
    pending = sorted((snapshots or {}).items())

    def snap(model, batches):
        while pending and bc.elapsed() >= pending[0][0]:
            t, fn = pending.pop(0)
            with bc.pause():
                mode = model.training
                model.eval()
                fn(model, {"batches": batches, "budget_s": t})
                model.train(mode)
    torch.set_num_threads(threads)
    if name == "textbook":
        import gan_textbook
        entry = get_model_entry("dcgan")
        model = entry.cls(from_dict(entry.config_cls, {}), train.info())

        def on_batch(netG, batches):  # the same DCGANGenerator: sample/decode/PPL as genlab's
            if pending and bc.elapsed() >= pending[0][0]:
                model.generator.load_state_dict(netG.state_dict())
                snap(model, batches)
        netG, info = gan_textbook.textbook_loop(train.x, seconds, seed, clock=bc.elapsed, on_batch=on_batch)
        model.generator.load_state_dict(netG.state_dict())
        return model.eval(), {"batches": info["batches"], "budget_s": seconds}
    seed_everything(seed)
    entry = get_model_entry(name)
    model = entry.cls(from_dict(entry.config_cls, {**BUDGET_CONFIG.get(name, {}), **model_config}), train.info())
    from genlab.training import Callback

    class Snap(Callback):
        def step_figures(cb, trainer, batch):
            snap(trainer.model, trainer.step)
            return {}
    # trainer.max_seconds on the arm's budget clock (clock=): the run ends after the step during which it passes
    # `seconds`, and a time-budgeted lr_schedule decays over that clock; the raw weights unless trainer_config sets
    # ema_decay (the models' default_ema is scored beside them with --g-ema, e.g. 0.999r0.05, on the same run)
    trainer = Trainer({"epochs": 10**6, "batch_size": BATCH, "seed": seed, "log_every": 10**6, "monitor_every": 0,
                       "fid_samples": 0, "num_threads": threads, "precision": "fp32", "channels_last": False,
                       "max_seconds": seconds, "ema_decay": None, **(trainer_config or {})},
                      callbacks=[*(callbacks or []), Snap()], clock=bc.elapsed)
    res = trainer.fit(model, train)
    info = {"batches": res.step, "budget_s": seconds,
            "precision": trainer.precision + (" channels_last" if trainer.channels_last else "")}
    if hasattr(model, "growth"):
        info["growth"] = model.growth()
    return model.eval(), info


LFW_SETS = {"lfw": (1, "faces"), "lfw-nonfaces": (0, "non-faces")}  # --data -> (lfw_subset label, what they are)


def lfw_budget_data(label: int = 1):
    """The 100 faces (``label`` 1; 0: the 100 non-face crops, the selection set) of scikit-image's lfw_subset,
    edge-padded (centred, ``pad_to``) to 32x32, a DCGAN size, for every arm; samples are cropped back with
    ``crop_to``. Train set = reference set: 100 images leave nothing worth holding out; the floor is the FID between
    two halves of the images."""
    from genlab.data import TensorDataset, load_dataset
    from genlab.nn.style_blocks import pad_to
    data = load_dataset("lfw")
    faces = data.x[data.y == label]
    train = TensorDataset(pad_to(faces, 32), None, norm=data.norm, name="lfw-faces-32" if label else "lfw-nonfaces-32")
    return train, faces


def crop_lfw(x: torch.Tensor) -> torch.Tensor:
    from genlab.nn.style_blocks import crop_to
    return crop_to(x, 25, 25)


def budget_score(model, net, real_feats, n: int, seed: int, ppl_n: int, crop=None, swd_real=None) -> dict:
    """FID, recall, class shares, PPL of ``n`` samples (PPL skipped when ``ppl_n`` is 0); ``crop`` maps samples to
    the feature net's size; with ``swd_real`` (images), also the multi-scale sliced Wasserstein distance of the
    (cropped) samples to them (genlab.metrics.swd: no feature net)."""
    from genlab.metrics.ppl import perceptual_path_length
    crop = crop or (lambda im: im)  # noqa: E731
    g = torch.Generator().manual_seed(10_000 + seed)
    with torch.no_grad():
        x = torch.cat([model.sample(min(500, n - i), generator=g) for i in range(0, n, 500)]).float().clamp(0, 1)
    f, lg = net.extract(crop(x))
    counts = class_histogram(lg)
    share = counts / counts.sum()
    _, rec = precision_recall(real_feats, f, k=3)
    feat = lambda im: net.features(crop(im).clamp(0, 1))  # noqa: E731
    out = {"fid": fid(FeatureStats.from_features(f), FeatureStats.from_features(real_feats)), "recall": rec,
           "classes": classes_covered(counts, 0.01), "min_share": 100 * float(share.min()),
           "max_share": 100 * float(share.max())}
    if swd_real is not None:
        res = swd(swd_real, crop(x), seed=seed)
        out["swd"], out["swd_levels"] = res["mean"], [v for *_, v in res["levels"]]
    if ppl_n:
        out["ppl_z"] = perceptual_path_length(model, feat, n=ppl_n, seed=seed)
    if getattr(type(model), "has_w_space", False):
        if ppl_n:
            out["ppl_w"] = perceptual_path_length(model, feat, n=ppl_n, seed=seed, space="w")
        for psi in (0.5, 0.7):  # the truncation curve (psi = 1 is the row itself)
            g = torch.Generator().manual_seed(10_000 + seed)
            with torch.no_grad():
                x = torch.cat([model.sample(min(500, n - i), generator=g, psi=psi)
                               for i in range(0, n, 500)]).float().clamp(0, 1)
            f, _ = net.extract(crop(x))
            p, r = precision_recall(real_feats, f, k=3)
            out[f"psi{psi}"] = (fid(FeatureStats.from_features(f), FeatureStats.from_features(real_feats)), p, r)
    return out


def swd_floor_of(data: str, train, swd_real: torch.Tensor, n: int) -> tuple[float, str]:
    """The SWD a perfect arm would score at the arms' sample count ``n`` (SWD grows as the set shrinks, so the floor
    must use the same count), mean of 3 draws: on mnist5k, ``n`` train-split images against the held-out images
    (real vs real); on lfw, whose 100 faces are both the train and the reference set, ``n`` draws with repetition
    from the faces against them (what a generator that replays the training faces scores)."""
    vals = []
    for s in range(3):
        g = torch.Generator().manual_seed(s)
        if data in LFW_SETS:
            imgs = swd_real[torch.randint(0, len(swd_real), (n,), generator=g)]
        else:
            imgs = train.x[torch.randperm(len(train), generator=g)[:n]]
        vals.append(swd(swd_real, imgs, seed=s)["mean"])
    what = "the training images replayed" if data in LFW_SETS else "train vs held-out images"
    return float(np.mean(vals)), f"{what}, {n} images, 3 draws"


def budget(args, model_config: dict, trainer_config: dict | None = None) -> None:
    torch.set_num_threads(1)
    if args.data in LFW_SETS:
        subset, kind = LFW_SETS[args.data]
        train, faces = lfw_budget_data(subset)
        net, crop = load_feature_net("lfw"), crop_lfw
        real_feats, _ = net.extract(faces)
        half = len(faces) // 2
        fl = fid(FeatureStats.from_features(real_feats[:half]), FeatureStats.from_features(real_feats[half:]))
        swd_real = faces
        what = (f"lfw_subset's {len(faces)} {kind} edge-padded to 32x32 (samples cropped back to 25x25), scored "
                f"against the same {len(faces)} {kind}; floor FID-lfw {fl:.4g} (two halves of the {kind}); "
                "'classes' = face / non-face by the lfw net")
    else:
        splits = prepare_data(from_dict(DataConfig, {"name": "mnist5k"}))
        train, net, crop = splits.train, load_feature_net("mnist"), None
        real_feats, _ = net.extract(held_out(splits))
        fl = floor(splits, net)
        swd_real = held_out(splits)
        what = (f"mnist5k train split ({len(train)} images); {len(held_out(splits))} held-out images; "
                f"real-vs-real floor FID-mnist {fl:.4g}")
    label = "FID-lfw" if args.data in LFW_SETS else "FID-mnist"
    swd_floor, floor_what = swd_floor_of(args.data, train, swd_real, args.samples)
    what += f"; SWD x1e3 (Laplacian-pyramid patches, no feature net) floor {swd_floor:.3g} ({floor_what})"
    clock = "process CPU time" if args.clock == "cpu" else "wall time"
    print(f"\n## equal {clock}: {args.budget:g} s per arm ({args.threads} torch thread(s)"
          + (f"; snapshots at {args.snapshots} s of the same runs, clock paused while scoring" if args.snapshots
             else "") + f"), batch {BATCH}, {args.seeds} seed(s), {args.samples} samples; {what}"
          + (f"; trainer overrides {trainer_config}" if trainer_config else "")
          + (f"; EMA {args.g_ema} of the weights scored beside the raw weights of the genlab arms" if args.g_ema else ""))
    rows = []
    ema_specs = [d for d in args.g_ema.split(",") if d]
    budgets = sorted({*(float(t) for t in args.snapshots.split(",") if t), args.budget})

    def score(name, seed, info, model, ema):
        for variant, ctx in ema.variants(model):
            with ctx:
                r = {"model": name + variant, "seed": seed, **info,
                     **budget_score(model, net, real_feats, args.samples, seed, args.ppl_paths, crop, swd_real)}
            rows.append(r)
            print(f"  {r['model']:9s} seed {seed} at {r['budget_s']:g} s: {r['batches']} batches, {label} "
                  f"{r['fid']:.4g}, SWD {r['swd']:.4g} (levels {' / '.join(f'{v:.4g}' for v in r['swd_levels'])}), "
                  f"recall {r['recall']:.3f}, classes {r['classes']} (shares {r['min_share']:.1f}-"
                  f"{r['max_share']:.1f} %)" + (f", PPL-z {r['ppl_z']:.4g}" if "ppl_z" in r else "")
                  + (f", PPL-w {r['ppl_w']:.4g}" if "ppl_w" in r else "")
                  + (f", growth {r['growth']}" if "growth" in r else "")
                  + (f", {r['precision']}" if "precision" in r else ""), flush=True)
            for psi in (0.5, 0.7):
                if f"psi{psi}" in r:
                    print(f"    truncation psi={psi}: FID {r[f'psi{psi}'][0]:.1f}, precision {r[f'psi{psi}'][1]:.3f}, "
                          f"recall {r[f'psi{psi}'][2]:.3f}", flush=True)

    for name in args.models.split(","):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            ema = WeightsEMA(ema_specs if name != "textbook" else [])  # no specs: the raw weights only
            snaps = {t: (lambda m, info, name=name, seed=seed, ema=ema: score(name, seed, info, m, ema))
                     for t in budgets if t < args.budget}
            model, info = budget_arm(name, train, seed, args.budget, model_config, trainer_config,
                                     callbacks=[ema.callback], clock=args.clock, threads=args.threads,
                                     snapshots=snaps)
            score(name, seed, info, model, ema)
    print(f"\n| model | budget s | batches | {label} (floor {fl:.3g}) | SWD x1e3 (floor {swd_floor:.3g}) | recall | "
          "classes > 1 % | class share min-max % | PPL z | PPL w |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in dict.fromkeys(r["model"] for r in rows):
        for t in budgets:
            rs = [r for r in rows if r["model"] == name and r["budget_s"] == t]
            mn, mx = mean_std(rs, "min_share"), mean_std(rs, "max_share")
            print(f"| {name} | {t:g} | {mean_std(rs, 'batches')} | {mean_std(rs, 'fid')} | {mean_std(rs, 'swd')} | "
                  f"{mean_std(rs, 'recall')} | "
                  f"{mean_std(rs, 'classes')} | {mn} - {mx} | {mean_std(rs, 'ppl_z')} | {mean_std(rs, 'ppl_w')} |")


def truncation(args, model_config: dict) -> None:
    """FID / precision / recall over psi for one stylegan (trained here within ``--budget`` CPU s, or loaded)."""
    torch.set_num_threads(1)
    data = "mnist5k" if args.data == "mnist5k,digits" else args.data.split(",")[0]  # --data digits: 8x8, cheaper
    splits = prepare_data(from_dict(DataConfig, {"name": data}))
    net = load_feature_net(NET[data])
    real_feats, _ = net.extract(held_out(splits))
    fl = floor(splits, net)
    if args.run:
        from genlab.io import load
        from genlab.runs import is_run_folder, open_run
        model = (open_run(args.run).model if is_run_folder(args.run) else load(args.run)).eval()
        how = f"loaded from {args.run}"
    else:
        model, info = budget_arm("stylegan", splits.train, 0, args.budget, model_config)
        how = (f"trained here: {info['batches']} batches of {BATCH} in {info['budget_s']:.0f} CPU s (1 thread), "
               f"config {model.config}")
        if args.save:
            from genlab.io import save_model
            save_model(model, args.save)
            how += f"; saved to {args.save}"
    print(f"\n## stylegan truncation curve on {data}: {how}\n{args.samples} samples per psi (seed 10000) vs "
          f"{len(held_out(splits))} held-out images; real-vs-real floor FID-{NET[data]} {fl:.3g}")
    print(f"\n| psi | FID-{NET[data]} | precision | recall | classes > 1 % |\n|---|---|---|---|---|")
    n = args.samples
    for psi in (float(p) for p in args.psis.split(",")):
        g = torch.Generator().manual_seed(10_000)
        t0 = time.process_time()
        with torch.no_grad():
            x = torch.cat([model.sample(min(500, n - i), generator=g, psi=psi)
                           for i in range(0, n, 500)]).float().clamp(0, 1)
        f, lg = net.extract(x)
        p, r = precision_recall(real_feats, f, k=3)
        cov = classes_covered(class_histogram(lg), 0.01)
        print(f"| {psi:g} | {fid(FeatureStats.from_features(f), FeatureStats.from_features(real_feats)):.1f} | "
              f"{p:.3f} | {r:.3f} | {cov} |  <!-- {time.process_time() - t0:.0f} CPU s -->", flush=True)


def cond_truncation(args, model_config: dict) -> None:
    """cstylegan on ``--data`` (default digits): per-class vs global truncation centre of one trained model."""
    torch.set_num_threads(1)
    data = args.data.split(",")[0]
    splits = prepare_data(from_dict(DataConfig, {"name": data}))
    net = load_feature_net(NET[data])
    real_feats, _ = net.extract(held_out(splits))
    fl = floor(splits, net)
    model, info = budget_arm("cstylegan", splits.train, 0, args.budget, model_config)
    k = model.num_classes
    print(f"\n## cstylegan on {data}: {info['batches']} batches of {BATCH} in {info['budget_s']:.0f} CPU s (1 thread), "
          f"config {model.config}\n{args.samples} samples per row (labels i mod {k}, seed 10000) vs "
          f"{len(held_out(splits))} held-out images; real-vs-real floor FID-{NET[data]} {fl:.3g}")
    print(f"\n| truncation | psi | FID-{NET[data]} | precision | recall | cond. acc. |\n|---|---|---|---|---|---|")
    n = args.samples
    labels = torch.arange(n) % k
    for mode in ("class", "global"):
        model.config.truncation = mode
        for psi in (float(p) for p in args.psis.split(",")):
            if psi == 1.0 and mode == "global":
                continue  # psi = 1 is no truncation: the same row as "class"
            g = torch.Generator().manual_seed(10_000)
            with torch.no_grad():
                x = torch.cat([model.sample(min(500, n - i), labels=labels[i:i + 500], generator=g, psi=psi)
                               for i in range(0, n, 500)]).float().clamp(0, 1)
            f, lg = net.extract(x)
            p, r = precision_recall(real_feats, f, k=3)
            acc = float((torch.from_numpy(lg).argmax(1) == labels).float().mean())
            print(f"| {mode if psi < 1 else 'none'} | {psi:g} | "
                  f"{fid(FeatureStats.from_features(f), FeatureStats.from_features(real_feats)):.1f} | {p:.3f} | "
                  f"{r:.3f} | {100 * acc:.1f} % |", flush=True)


def score_runs(args) -> None:
    """``--only score-runs``: each run folder's exported model scored as a budget arm (module docstring)."""
    import json
    _, faces = lfw_budget_data(LFW_SETS[args.data][0])
    net = load_feature_net("lfw")
    real_feats, _ = net.extract(faces)
    print(f"\n## run folders on lfw_subset's {len(faces)} {LFW_SETS[args.data][1]}: {args.samples} samples (seed "
          "10,000) cropped to 25x25; FID-lfw, recall, SWD x1e3 against the same images")
    print("\n| run | steps | FID-lfw | SWD x1e3 | SWD levels | recall |\n|---|---|---|---|---|---|")
    for run in args.run.split(","):
        model = genlab.load(run).eval()
        steps = json.loads((Path(run) / "checkpoints" / "last" / "trainer_state.json").read_text())["step"]
        r = budget_score(model, net, real_feats, args.samples, 0, 0, crop_lfw, faces)
        print(f"| {run} | {steps} | {r['fid']:.4g} | {r['swd']:.4g} | {' / '.join(f'{v:.4g}' for v in r['swd_levels'])}"
              f" | {r['recall']:.3f} |", flush=True)


def mean_std(rows, key):
    v = [r[key] for r in rows if r.get(key) is not None]
    if not v:
        return "-"
    return f"{np.mean(v):.3g} ± {np.std(v):.2g}" if len(v) > 1 else f"{v[0]:.3g}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, 3 epochs (smoke run, not for the README)")
    ap.add_argument("--only", default="quality,throughput", help="quality, throughput, budget, truncation, "
                    "cond-truncation and/or score-runs")
    ap.add_argument("--run", help="truncation: score this stylegan (run folder or saved model) instead of training; "
                    "score-runs: comma list of run folders")
    ap.add_argument("--save", help="truncation: save the stylegan trained here to this new folder")
    ap.add_argument("--psis", default="0.5,0.7,1.0", help="truncation: comma list of psi values")
    ap.add_argument("--budget", type=float, default=180.0, help="budget: seconds per arm (on --clock)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="budget: process CPU time (default; fair "
                    "on a shared machine; it counts every thread, so with --threads 2 a budget of T seconds is about "
                    "T/2 seconds of wall time) or wall time (the issue's 'minutes on 2 cores': an idle machine, one "
                    "arm at a time)")
    ap.add_argument("--threads", type=int, default=1, help="budget: torch threads per arm (default 1)")
    ap.add_argument("--snapshots", default="", help="budget: comma list of shorter budgets (seconds) scored during "
                    "the same runs, the clock paused while scoring (e.g. 300 in a 1200-second run)")
    ap.add_argument("--g-ema", default="", help="budget: comma list of decays D or DrR (with "
                    "trainer.ema_rampup R); also score these moving averages of the genlab arms' weights, kept during "
                    "the same runs (what trainer.ema_decay exports; e.g. 0.999 or 0.999r0.05)")
    ap.add_argument("--samples", type=int, default=2000, help="budget: samples per arm for FID/recall/classes")
    ap.add_argument("--ppl-paths", type=int, default=1000, help="budget: PPL paths per arm")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--data", default="mnist5k,digits")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="budget: seeds first-seed .. first-seed+seeds-1 (to "
                    "run the protocol's seeds in separate processes)")
    ap.add_argument("--epochs-scale", type=float, default=1.0, help="multiply the epoch budgets")
    ap.add_argument("--steps", type=int, default=200, help="throughput: batches (D and G update each) per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="model config override for every model run (YAML value), e.g. --set d_cls_fake=false")
    ap.add_argument("--trainer-set", action="append", default=[], metavar="KEY=VALUE",
                    help="budget: Trainer override for the genlab arms, e.g. --trainer-set ema_decay=0.999")
    args = ap.parse_args()
    model_config = apply_overrides({}, args.set)  # the CLI's KEY=VALUE rules (YAML values)
    trainer_config = apply_overrides({}, args.trainer_set)
    if model_config:
        print(f"model config overrides: {model_config}")
    logging.basicConfig(level=logging.ERROR)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    parts = set(args.only.split(","))
    if "score-runs" in parts:
        if args.data not in LFW_SETS or not args.run:
            ap.error("--only score-runs needs --data lfw (or lfw-nonfaces) and --run RUN[,RUN...]")
        score_runs(args)
    if "truncation" in parts:
        truncation(args, model_config)
    if "cond-truncation" in parts:
        if args.data == "mnist5k,digits":
            args.data = "digits"
        cond_truncation(args, model_config)
    if "budget" in parts:
        if args.models == ",".join(MODELS):
            args.models = ",".join(BUDGET_MODELS)
        if args.data == "mnist5k,digits":
            args.data = "mnist5k"
        if args.data not in ("mnist5k", *LFW_SETS):
            ap.error(f"--only budget runs on --data mnist5k, lfw or lfw-nonfaces, got {args.data!r}")
        budget(args, model_config, trainer_config)
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
