"""Why ``stylegan`` collapses on mnist5k: the two players and the samples' variety over the first training steps.

Data: the selection split of ``bench/gan_select.py`` (3,000 training images of mnist5k's train split; scored against
the other 1,000), never the splits the README reports. One model trains for ``--steps`` batches of 64 (Trainer,
``--threads`` torch threads, ``--precision``); every 100 steps it prints the mean over the logged steps of
``d_real`` / ``d_fake`` (D's probability of "real" on the batch's real images and fakes, before D's update),
``d_fake_after`` (on the same fakes after it, in G's step) and the losses. Every ``--every`` steps it scores 1,000
samples (FID-mnist, recall, class shares, as ``bench/gan_select.py``) and prints the samples' variety: the standard
deviation of each pixel across 256 samples, averaged over pixels (the real images': about 0.19; a conditional model
also prints it inside each class, 64 samples per class, averaged), and, for a
``stylegan``, where that variety goes inside the generator: per synthesis layer the across-sample standard deviation
of the styles ``s = affine(w)`` against their mean size, and of each layer's output (constant noise) against its
mean size (``cstylegan``: every class in turn, so the spread includes the classes').

    OMP_NUM_THREADS=2 .venv/bin/python bench/stylegan_diag.py [--model stylegan] [--steps 500] [--every 250]
        [--set mbstd_group=32] [--precision fp32] [--disc progan]

``--disc progan`` (``stylegan`` only) replaces the residual discriminator by ``progan``'s critic (the same channels
per side, no residual sums; its last stage, fully faded in), trained with ``stylegan``'s loss, R1 and optimiser: it
tells whether the collapse comes from the discriminator. ``--gen SWITCHES`` (``stylegan`` only) replaces the mapping
and synthesis networks by ``bench/stylegan_bisect.py``'s generator with those switches (``none``: ``progan``'s final
generator; ``all``: ``stylegan``'s; ``mod+const``, ``all-skip``, ...), fed ``pixel_norm(z)`` (mixing and noise off):
which part of the generator collapses in the game. ``--precision``: bf16 is only fast on a CPU with native bf16
(AVX512-BF16 or AMX); elsewhere use fp32.
"""
from __future__ import annotations

import argparse
import logging
import time

import torch

from gan_select import selection_split
from stylegan_bisect import Generator, parse
from gans import budget_score
from genlab.config import apply_overrides, from_dict
from genlab.metrics import load_feature_net
from genlab.registry import get_model_entry
from genlab.training import Callback, Trainer, seed_everything


def rel_spread(t: torch.Tensor) -> float:
    """Across-sample standard deviation (dim 0), averaged, over the mean absolute value: how much of a tensor's size
    varies with the latent."""
    return float(t.float().std(0).mean() / t.float().abs().mean().clamp_min(1e-12))


def pixel_spread(x: torch.Tensor) -> float:
    """Standard deviation of each pixel across the samples (dim 0), averaged over the pixels."""
    return x.float().std(0).mean().item()


@torch.no_grad()
def synthesis_spread(model, n: int = 256, seed: int = 3) -> str:
    """Per synthesis layer: the styles' spread (std across samples / mean |s|) and the layer output's, constant
    noise; then the image's (the summed RGB outputs). Read with forward hooks on the model's own synthesis pass."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % model.num_classes if model.conditional else None  # cstylegan: every class in turn
    w = model.mapping(torch.randn(n, model.latent_dim, generator=g), labels=labels)
    syn = model.synthesis
    parts = []
    hooks = []
    for i, layer in enumerate(syn.layers):
        hooks.append(layer.conv.affine.register_forward_hook(
            lambda mod, inp, s, i=i: parts.append(f"L{i} s {rel_spread(s):.2f}")))
        hooks.append(layer.register_forward_hook(lambda mod, inp, out: parts.append(f"out {rel_spread(out):.2f};")))
    try:
        rgb = syn(w[:, None].expand(-1, model.num_ws, -1), "const")
    finally:
        for h in hooks:
            h.remove()
    return " ".join(parts) + f" image {rel_spread(rgb):.2f}"


class _LastStageCritic(torch.nn.Module):
    """``progan``'s critic at its last stage, fully faded in, as a ``(B, C, R, R) -> (B,)`` module."""

    def __init__(self, critic, stage: int):
        super().__init__()
        self.critic, self.stage = critic, stage

    def forward(self, x):
        return self.critic(x, self.stage, 1.0)


class _SwitchSynthesis(torch.nn.Module):
    """``bench/stylegan_bisect.py``'s generator behind ``stylegan``'s synthesis call: it reads the first style
    input only (so style mixing does nothing) and ignores the noise argument."""

    def __init__(self, gen):
        super().__init__()
        self.gen = gen

    def forward(self, ws, noise):
        return self.gen(ws[:, 0])


def progan_critic(model) -> torch.nn.Module:
    from genlab.models.progan import _Critic
    sides = [4 * 2 ** k for k in range(model.side.bit_length() - 2)]
    return _LastStageCritic(_Critic(model.shape[0], sides, model.config.width, model.config.mbstd_group),
                            len(sides) - 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="stylegan")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model config value")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--every", type=int, default=250, help="score every this many steps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--disc", choices=("own", "progan"), default="own", help="stylegan: the discriminator")
    ap.add_argument("--gen", default="", help="stylegan: bench/stylegan_bisect.py's generator with these switches")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    mcfg = apply_overrides({}, args.set)  # the CLI's KEY=VALUE rules (YAML values)
    torch.set_num_threads(args.threads)
    train, sel = selection_split()
    net = load_feature_net("mnist")
    sel_feats, _ = net.extract(sel.x)
    within = [pixel_spread(sel.x[sel.y == k][:64]) for k in range(10)]
    swaps = (", progan critic" if args.disc == "progan" else "") + (f", generator {args.gen}" if args.gen else "")
    print(f"{args.model} {mcfg or 'defaults'}{swaps}, {args.precision}, seed {args.seed}; real images' pixel spread "
          f"across samples {pixel_spread(sel.x[:256]):.3f} (within a class {sum(within) / 10:.3f})", flush=True)
    seed_everything(args.seed)
    entry = get_model_entry(args.model)
    model = entry.cls(from_dict(entry.config_cls, mcfg), train.info())
    if args.disc == "progan":
        model.disc = progan_critic(model)
    if args.gen:
        model.mapping_net = torch.nn.Identity()  # w = pixel_norm(z); the switch generator has its own mapping
        model.synthesis = _SwitchSynthesis(Generator(parse(args.gen), latent_dim=model.latent_dim,
                                                     out_ch=model.shape[0], side=model.side, width=model.config.width))
    acc: dict[str, list[float]] = {}
    t0 = time.perf_counter()

    class Diag(Callback):
        def on_train_start(self, trainer, total_steps):
            if hasattr(trainer.model, "synthesis") and not args.gen:
                print("  at initialisation, spread: " + synthesis_spread(trainer.model), flush=True)

        def on_step_end(self, trainer, rec):
            for k in ("d_real", "d_fake", "d_fake_after", "d_loss", "g_loss"):
                if k in rec:
                    acc.setdefault(k, []).append(rec[k])
            if trainer.step % 100 == 0:
                print(f"step {trainer.step:5d} {time.perf_counter() - t0:5.0f} s  " + "  ".join(
                    f"{k} {sum(v) / len(v):.3f}" for k, v in acc.items()), flush=True)
                acc.clear()
            if trainer.step % args.every == 0:
                m = trainer.model
                mode = m.training
                m.eval()
                r = budget_score(m, net, sel_feats, 1000, args.seed, ppl_n=0)
                with torch.no_grad():
                    x = m.sample(256, generator=torch.Generator().manual_seed(1))
                within = ""
                if m.conditional:  # the spread inside one class, averaged over the classes
                    with torch.no_grad():
                        per = [pixel_spread(m.sample(64, labels=torch.full((64,), k),
                                                     generator=torch.Generator().manual_seed(k)))
                               for k in range(m.num_classes)]
                    within = f" (within a class {sum(per) / len(per):.3f})"
                print(f"  step {trainer.step}: FID-mnist {r['fid']:.1f}  recall {r['recall']:.3f}  class share "
                      f"{r['min_share']:.1f}-{r['max_share']:.1f} %  pixel spread {pixel_spread(x):.3f}"
                      f"{within}", flush=True)
                if hasattr(m, "synthesis") and not args.gen:
                    print("  spread (std across samples / mean size): " + synthesis_spread(m), flush=True)
                m.train(mode)

    trainer = Trainer({"epochs": 10**6, "max_steps": args.steps, "batch_size": 64, "seed": args.seed,
                       "log_every": 10, "monitor_every": 0, "fid_samples": 0, "num_threads": args.threads,
                       "precision": args.precision, "channels_last": False}, callbacks=[Diag()])
    trainer.fit(model, train)


if __name__ == "__main__":
    main()
