"""Can the generator alone fit a few real images? A supervised check that takes the GAN game out of the question.

Each generator maps ``--n`` fixed latents ``z ~ N(0, I)`` (seed 0) to ``--n`` fixed real images (the first ``--n`` of
``bench/gan_select.py``'s selection split of mnist5k, or of scikit-learn's digits with ``--data digits``; never the
splits the README reports) and is trained on the mean squared error alone: Adam(``--lr``, betas (``--beta1``, 0.99)),
batches of 64 latents drawn with replacement, no discriminator. A generator that can reproduce its targets drives the
error towards 0; one that cannot tell its latents apart stops near the error of the mean image. Printed every
``--every`` steps: the error, the error of the targets' mean image (the "mean-image floor") and the outputs' pixel
spread (standard deviation across the batch, averaged over pixels) beside the targets'.

``stylegan``: ``synthesis(mapping(z))`` with every style input the same ``w``, the fixed noise maps, no mixing,
unclamped, compared at the network side (targets padded as in training). ``progan``: its generator at the last
stage, fully faded in (the final network, without growing). Other GANs: ``generate(z)`` in training mode.
``--set K=V`` changes the model config with the CLI's override rules (``--set width=128``).

    OMP_NUM_THREADS=1 .venv/bin/python bench/stylegan_fit.py --model stylegan [--n 16] [--steps 300] [--lr 2e-3]
"""
from __future__ import annotations

import argparse

import torch

from gan_select import selection_split
from genlab.config import apply_overrides, from_dict
from genlab.data import load_dataset
from genlab.nn.style_blocks import pad_to
from genlab.registry import get_model_entry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="stylegan")
    ap.add_argument("--data", default="mnist5k", choices=["mnist5k", "digits"])
    ap.add_argument("--n", type=int, default=16, help="number of (latent, image) pairs to fit")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--beta1", type=float, default=0.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model config value")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    train = load_dataset("digits") if args.data == "digits" else selection_split()[0]
    x = train.x[:args.n]
    cfg = apply_overrides({}, args.set)  # the CLI's KEY=VALUE rules (YAML values)
    entry = get_model_entry(args.model)
    m = entry.cls(from_dict(entry.config_cls, cfg), train.info())
    g_params = m.generator_parameters()
    xt = pad_to(x, getattr(m, "side", x.shape[-1]))  # the targets at the network side (stylegan, progan: padded)
    floor = float((xt - xt.mean(0)).pow(2).mean())
    z = torch.randn(args.n, m.latent_dim)
    opt = torch.optim.Adam(g_params, lr=args.lr, betas=(args.beta1, 0.99))
    style = hasattr(m, "synthesis")
    print(f"{args.model} {cfg or 'defaults'} on {args.n} {args.data} images; {sum(p.numel() for p in g_params):,} "
          f"generator parameters; Adam lr {args.lr}, beta1 {args.beta1}", flush=True)
    m.train()
    for step in range(args.steps + 1):
        idx = torch.randint(0, args.n, (64,))
        if style:
            w = m.mapping(z[idx])
            out = (m.synthesis(w[:, None].expand(-1, m.num_ws, -1), "const") + 1) / 2  # (64, C, R, R)
        elif hasattr(m, "stages"):  # progan: the last stage, fully faded in (no growing)
            out = (m.generator(z[idx], m.stages - 1, 1.0) + 1) / 2
        else:
            out = m.generate(z[idx])
        tgt = xt[idx]
        loss = (out - tgt).pow(2).mean()
        if step % args.every == 0:
            print(f"step {step:5d}  mse {loss.item():.4f}  (mean-image floor {floor:.4f})  output spread "
                  f"{out.detach().std(0).mean():.3f}  targets' {tgt.std(0).mean():.3f}", flush=True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


if __name__ == "__main__":
    main()
