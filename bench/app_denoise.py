"""Denoising figures: genlab's Denoiser vs the noisy input and a 3x3 median filter on held-out images.

Data: ``digits`` (8x8; fixed split 80/20 with seed 0: 1,437 train / 360 test images; 100 epochs) and
``mnist5k`` (28x28; 4,000 / 1,000; 15 epochs, what fits the ~5-minute budget of the whole run on one core).
Corruptions, the same ones as the autoencoder bench (``bench/autoencoders.py``): gaussian sigma = 0.3, salt-and-pepper p = 0.2, mask p = 0.3, drawn once on the test images with
``Denoiser.add_noise(test, random_state=0)`` (the model's own corruption). For each corruption a
``Denoiser`` (``denoising-ae``, conv, latent 16, default settings) is trained on the clean train images with
that corruption drawn on the fly, then denoises the noisy test images.

Scores against the clean test images: PSNR in dB (per image, then averaged; data range 1) and SSIM (Gaussian
window of 11 pixels, 7 on 8x8 digits; skimage's conventions, see ``genlab.metrics.reconstruction.ssim``).
Median filter: ``scipy.ndimage.median_filter(x, size=(1, 1, 3, 3))`` (3x3 per image, reflect at the border).
Switching median (a stronger classical baseline for impulse noise, shown for salt-and-pepper and mask): the
3x3 median only at the pixels the noise may have written (0 or 1 for salt-and-pepper, 0 for mask), the others
kept, the same rule as the Denoiser's ``keep_clean`` (default on).

    OMP_NUM_THREADS=1 .venv/bin/python bench/app_denoise.py [--quick] [--data digits,mnist5k] [--noise salt_pepper,mask]
"""
from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

CORRUPTIONS = (("gaussian", 0.3), ("salt_pepper", 0.2), ("mask", 0.3))
EPOCHS = {"digits": 100, "mnist5k": 15}  # sized so the full run stays near 5 minutes on one core


def run(quick: bool = False, data: tuple[str, ...] = ("digits", "mnist5k"),
        noises: tuple[str, ...] = tuple(n for n, _ in CORRUPTIONS)) -> list[dict]:
    from scipy.ndimage import median_filter

    from genlab import load_dataset
    from genlab.apps import Denoiser
    from genlab.apps.denoise import image_report

    rows = []
    for name in data:
        tr, _, te = load_dataset(name).split(val=0.0, test=0.2, seed=0)
        xtr, xte = tr.x.numpy(), te.x.numpy()
        if quick:
            xtr, xte = xtr[:500], xte[:200]
        clean = torch.as_tensor(xte)
        epochs = 5 if quick else EPOCHS[name]
        for noise, level in [(n, lv) for n, lv in CORRUPTIONS if n in noises]:
            t0 = time.perf_counter()
            den = Denoiser(noise=noise, level=level, epochs=epochs,
                           trainer_config={"precision": "fp32", "channels_last": False, "log_every": 1000}).fit(xtr)
            secs = time.perf_counter() - t0
            noisy = den.add_noise(xte, random_state=0)
            med = median_filter(noisy, size=(1, 1, 3, 3))
            outputs = {"noisy input": noisy, "median 3x3": med}
            if noise != "gaussian":
                suspect = ((noisy == 0) | (noisy == 1)) if noise == "salt_pepper" else noisy == 0
                outputs["switching median 3x3"] = np.where(suspect, med, noisy)
            outputs["genlab Denoiser"] = den.transform(noisy)
            for method, out in outputs.items():
                rep = image_report(clean, torch.as_tensor(noisy), torch.as_tensor(out))
                rows.append({"data": name, "noise": noise, "level": level, "method": method,
                             "psnr": rep["psnr_denoised"], "ssim": rep["ssim_denoised"],
                             "train_seconds": secs if method == "genlab Denoiser" else 0.0, "epochs": epochs})
                print("  " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in rows[-1].items()), flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    out = ["| data | corruption | method | PSNR (dB) | SSIM |", "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['data']} | {r['noise']} {r['level']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.3f} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="500 train / 200 test images, 5 epochs")
    ap.add_argument("--data", default="digits,mnist5k", help="comma list of digits, mnist5k (default both)")
    ap.add_argument("--noise", default="gaussian,salt_pepper,mask", help="comma list of the corruptions to run")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import genlab
    print(f"genlab {genlab.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    t0 = time.perf_counter()
    rows = run(quick=args.quick, data=tuple(args.data.split(",")), noises=tuple(args.noise.split(",")))
    extra = (" --quick" if args.quick else "") + (f" --data {args.data}" if args.data != "digits,mnist5k" else "") \
        + (f" --noise {args.noise}" if args.noise != "gaussian,salt_pepper,mask" else "")
    print(f"\ncommand: OMP_NUM_THREADS=1 .venv/bin/python bench/app_denoise.py{extra}  "
          f"({time.perf_counter() - t0:.0f} s)\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
