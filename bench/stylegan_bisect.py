"""Which part of the style-based generator makes it fit slowly? ``progan``'s generator turned into ``stylegan``'s one
part at a time, each variant run on ``bench/stylegan_fit.py``'s supervised check.

The generator here is built from genlab's own blocks (:mod:`genlab.nn.style_blocks`) with seven switches; all off is
``progan``'s final generator, all on is ``stylegan``'s synthesis network with its mapping network:

* ``mapping``: ``w = mapping(z)`` (four equalised linear layers, learning-rate multiplier 0.01,
  LeakyReLU(0.2)·√2) instead of ``w = pixel_norm(z)``;
* ``const``: the 4×4 input is a learned constant instead of ``fc(w)`` followed, as in ``progan``, by LeakyReLU·√2
  and pixel norm;
* ``mod``: every 3×3 convolution is modulated by ``w`` and demodulated (``stylegan``'s ``ModulatedConv2d``, then a
  bias) instead of an equalised convolution; the RGB layers are modulated too (not demodulated);
* ``nopnorm``: no pixel norm after the convolutions' LeakyReLU·√2 (``progan`` normalises there, ``stylegan`` does
  not: its demodulation takes that role);
* ``bilinear``: bilinear upsampling instead of nearest;
* ``skip``: RGB outputs summed over sides (StyleGAN2's skip generator) instead of one RGB layer at the end;
* ``noise``: per-pixel noise (fixed maps, learned strength from 0) after each convolution.

Each variant regresses ``--n`` fixed latents onto ``--n`` fixed real images of the GAN selection split of mnist5k
(never a split the README reports), MSE, Adam(lr 2e-3, betas (0, 0.99)), batches of 64, seeds 0..``--seeds``-1 (the
weights, the latents and the batches). Printed: each variant's error on all ``--n`` pairs after the last step (the
mean over seeds, and each seed's) beside the mean-image floor, and the outputs' pixel spread.

    OMP_NUM_THREADS=1 .venv/bin/python bench/stylegan_bisect.py --variants "none,mapping,const,mod" [--steps 300]

A variant is a ``+``-joined set of switches (``none``: all off; ``all``: all on; ``all-mod``: all on but ``mod``).
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from gan_select import selection_split
from genlab.nn.style_blocks import (EqualConv2d, EqualLinear, LReLUGain, ModulatedConv2d, channels, lrelu_gain,
                                    pad_to, pixel_norm, up2)

SWITCHES = ("mapping", "const", "mod", "nopnorm", "bilinear", "skip", "noise")


class Conv(nn.Module):
    """One 3×3 layer: ``progan``'s (conv, LReLU·√2, pixel norm) or ``stylegan``'s (modulated conv, noise, bias,
    LReLU·√2), or a mix (``mod`` and ``pnorm`` apart)."""

    def __init__(self, a: int, b: int, w_dim: int, side: int, mod: bool, noise: bool, pnorm: bool):
        super().__init__()
        self.mod, self.pnorm = mod, pnorm
        self.conv = ModulatedConv2d(a, b, 3, w_dim) if mod else EqualConv2d(a, b, 3)
        self.bias = nn.Parameter(torch.zeros(b)) if mod else None
        self.noise_strength = nn.Parameter(torch.zeros(())) if noise else None
        self.register_buffer("noise_const", torch.randn(1, 1, side, side))

    def forward(self, x, w):
        x = self.conv(x, w) if self.mod else self.conv(x)
        if self.noise_strength is not None:
            x = x + self.noise_strength * self.noise_const
        if self.mod:
            x = x + self.bias[:, None, None]
        x = lrelu_gain(x)
        return pixel_norm(x) if self.pnorm else x


class Generator(nn.Module):
    def __init__(self, on: set[str], latent_dim: int = 128, out_ch: int = 1, side: int = 32, width: int = 64,
                 mapping_layers: int = 4):
        super().__init__()
        self.on = on
        sides = [4 * 2 ** k for k in range(side.bit_length() - 2)]
        c0 = channels(width, 4)
        self.c0 = c0
        if "mapping" in on:
            layers: list[nn.Module] = []
            for _ in range(mapping_layers):
                layers += [EqualLinear(latent_dim, latent_dim, lr_mul=0.01), LReLUGain()]
            self.mapping = nn.Sequential(*layers)
        if "const" in on:
            self.const = nn.Parameter(torch.randn(c0, 4, 4))
        else:
            self.fc = EqualLinear(latent_dim, c0 * 16)
        mod, noise, pn = "mod" in on, "noise" in on, "nopnorm" not in on
        self.layers = nn.ModuleList([Conv(c0, c0, latent_dim, 4, mod, noise, pn)])
        self.to_rgb = nn.ModuleList()
        for a, b in zip(sides[:-1], sides[1:]):
            ca, cb = channels(width, a), channels(width, b)
            self.layers.append(Conv(ca, cb, latent_dim, b, mod, noise, pn))
            self.layers.append(Conv(cb, cb, latent_dim, b, mod, noise, pn))
        rgb_in = [channels(width, s) for s in sides] if "skip" in on else [channels(width, side)]
        for c in rgb_in:
            self.to_rgb.append(ModulatedConv2d(c, out_ch, 1, latent_dim, demodulate=False) if mod
                               else EqualConv2d(c, out_ch, 1))
        self.rgb_bias = nn.Parameter(torch.zeros(len(rgb_in), out_ch))

    def up(self, x):
        return up2(x) if "bilinear" in self.on else F.interpolate(x, scale_factor=2, mode="nearest")

    def rgb(self, k: int, h, w):
        conv = self.to_rgb[k]
        out = conv(h, w) if isinstance(conv, ModulatedConv2d) else conv(h)
        return out + self.rgb_bias[k][:, None, None]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        w = self.mapping(pixel_norm(z)) if "mapping" in self.on else pixel_norm(z)
        if "const" in self.on:
            h = self.const[None].expand(len(z), -1, -1, -1)
        else:
            h = pixel_norm(lrelu_gain(self.fc(w).view(len(z), self.c0, 4, 4)))
        h = self.layers[0](h, w)
        skip = "skip" in self.on
        rgb = self.rgb(0, h, w) if skip else None
        for k in range(1, (len(self.layers) + 1) // 2):
            h = self.layers[2 * k](self.layers[2 * k - 1](self.up(h), w), w)
            if skip:
                rgb = self.up(rgb) + self.rgb(k, h, w)
        return rgb if skip else self.rgb(0, h, w)


def parse(variant: str) -> set[str]:
    if variant == "none":
        return set()
    if variant == "all":
        return set(SWITCHES)
    if variant.startswith("all-"):
        off = set(variant[4:].split("-"))
        bad = off - set(SWITCHES)
        if bad:
            raise SystemExit(f"unknown switch(es) {sorted(bad)}; choose from {', '.join(SWITCHES)}")
        return set(SWITCHES) - off
    on = set(variant.split("+"))
    bad = on - set(SWITCHES)
    if bad:
        raise SystemExit(f"unknown switch(es) {sorted(bad)}; choose from {', '.join(SWITCHES)} (or none, all, all-X)")
    return on


def fit(on: set[str], x: torch.Tensor, steps: int, lr: float, width: int, seed: int) -> tuple[float, float, int]:
    torch.manual_seed(seed)
    g = Generator(on, side=x.shape[-1], out_ch=x.shape[1], width=width)
    z = torch.randn(len(x), 128)
    opt = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.0, 0.99))
    for _ in range(steps + 1):
        idx = torch.randint(0, len(x), (64,))
        loss = ((g(z[idx]) + 1) / 2 - x[idx]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        final = float(((g(z) + 1) / 2 - x).pow(2).mean())
        spread = float(((g(z) + 1) / 2).std(0).mean())
    return final, spread, sum(p.numel() for p in g.parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="none,all")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (initialisation, latents, batches)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = pad_to(selection_split()[0].x[:args.n], 32)
    floor = float((x - x.mean(0)).pow(2).mean())
    print(f"{args.n} images, {args.steps} steps, Adam lr {args.lr}; mean-image floor {floor:.4f}; targets' spread "
          f"{float(x.std(0).mean()):.3f}", flush=True)
    for v in args.variants.split(","):
        t = time.perf_counter()
        runs = [fit(parse(v), x, args.steps, args.lr, args.width, seed) for seed in range(args.seeds)]
        mses = [r[0] for r in runs]
        each = f" ({' / '.join(f'{m:.4f}' for m in mses)})" if len(runs) > 1 else ""
        print(f"{v:28s} mse {sum(mses) / len(mses):.4f}{each}  spread {sum(r[1] for r in runs) / len(runs):.3f}  "
              f"{runs[0][2]:,} parameters  {time.perf_counter() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
