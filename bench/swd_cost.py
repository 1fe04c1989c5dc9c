"""Cost of ``genlab.metrics.swd`` by set size: wall time and the process's peak resident memory.

Each size runs in its own child process (peak memory is per process), on random 3x32x32 images in [0, 1] (the cost
does not depend on the pixel values: the same number of patches, projections and sorts), real and generated sets of
equal size, the default conventions (128 patches per image and level, 512 directions; 32x32 gives 3 levels).

    OMP_NUM_THREADS=2 .venv/bin/python bench/swd_cost.py [--sizes 2000,10000] [--repeats 3]

Prints a table: images per set, patches per set and level, median wall seconds, peak RSS in GiB (the baseline of the
interpreter with torch imported is printed first; subtract it for the metric's own working memory).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import torch
from genlab.metrics import swd
n, seed = int(sys.argv[1]), int(sys.argv[2])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if n:
    g = torch.Generator().manual_seed(seed)
    real, fake = torch.rand(n, 3, 32, 32, generator=g), torch.rand(n, 3, 32, 32, generator=g)
    t0 = time.perf_counter()
    out = swd(real, fake)
    dt = time.perf_counter() - t0
else:
    dt, out = 0.0, {"mean": float("nan")}
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": dt, "peak_kib": peak, "base_kib": base, "swd": out["mean"]}))
"""


def child(n: int, seed: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(n), str(seed)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2000,10000", help="comma list of images per set")
    ap.add_argument("--repeats", type=int, default=3, help="runs per size (medians reported)")
    args = ap.parse_args()
    base = child(0, 0)
    print(f"interpreter + torch: peak RSS {base['peak_kib'] / 2**20:.2f} GiB")
    print("\n| images per set | patches per set and level | wall s (median) | peak RSS GiB (median) | SWD x1e3 |")
    print("|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",") if s):
        runs = [child(n, r) for r in range(args.repeats)]
        print(f"| {n:,} | {128 * n:,} | {statistics.median(r['seconds'] for r in runs):.1f} | "
              f"{statistics.median(r['peak_kib'] for r in runs) / 2**20:.2f} | "
              f"{statistics.median(r['swd'] for r in runs):.3g} |", flush=True)


if __name__ == "__main__":
    main()
