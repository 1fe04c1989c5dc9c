"""All application figures of the README in one command: runs the per-application benches in turn.

Each part is also a script of its own, with its protocol in its docstring:

* ``bench/app_anomaly.py``  one-class ROC-AUC on digits / mnist5k / breast cancer vs IsolationForest,
  OneClassSVM and PCA;
* ``bench/app_denoise.py``  PSNR/SSIM per noise type vs the noisy input and a median filter;
* ``bench/app_impute.py``   RMSE on missing entries vs mean / KNN / iterative imputation, and inpainting;
* ``bench/app_compress.py`` bytes/image, PSNR and SSIM of a rate-distortion sweep vs JPEG and WebP;
* ``bench/app_augment.py``  classifier accuracy with 10 real images per class, with and without generated ones;
* ``bench/app_latent.py``   kNN-5 accuracy of 2-D maps of the codes vs maps of the pixels (digits).

    OMP_NUM_THREADS=1 .venv/bin/python bench/applications.py [--only anomaly,denoise] [--quick]
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

PARTS = ["anomaly", "denoise", "impute", "compress", "augment", "latent"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    ap.add_argument("--quick", action="store_true", help="smoke runs (not figures to quote)")
    args = ap.parse_args()
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    bad = [p for p in parts if p not in PARTS]
    if bad:
        ap.error(f"unknown part {bad[0]!r}; choose from {', '.join(PARTS)}")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    for part in parts:
        mod = importlib.import_module(f"app_{part}")
        print(f"\n# {part}  (bench/app_{part}.py)\n", flush=True)
        t0 = time.perf_counter()
        sys.argv = [f"bench/app_{part}.py", *(["--quick"] if args.quick else [])]
        mod.main()
        print(f"\n({part}: {time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
