"""Speed of genlab's feature metrics next to straightforward implementations.

Usage: python bench/metrics_speed.py [--n 10000] [--dim 2048] [--repeats 3] [--large]

Prints seconds (median of --repeats runs for FID; one run for the slower metrics unless
--repeats-slow is raised) and ratios. ``--large`` also runs precision/recall and density/coverage
at 50,000 x 2,048 and reports the peak RSS, to check the chunked memory bound
(two inputs + at most 4 blocks of row_chunk x (col_chunk + k) in the compute dtype).
Never asserted in tests.
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import time

import numpy as np
import scipy.linalg
import torch

from genlab.metrics import FeatureStats, density_coverage, fid, kid, prdc, precision_recall


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def make_features(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Correlated Gaussians (float32): real = z A, fake = (z' A) * 1.1 + 0.05."""
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal((dim, dim), dtype=np.float32) / np.sqrt(dim)).astype(np.float32)
    real = rng.standard_normal((n, dim), dtype=np.float32) @ a
    fake = (rng.standard_normal((n, dim), dtype=np.float32) @ a) * 1.1 + 0.05
    return real, fake


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


# ---------------------------------------------------------------- straightforward references

def fid_sqrtm(real: np.ndarray, fake: np.ndarray) -> float:
    r, f = real.astype(np.float64), fake.astype(np.float64)
    m1, m2 = r.mean(0), f.mean(0)
    s1, s2 = np.cov(r, rowvar=False), np.cov(f, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def kid_numpy(real, fake, subsets=100, m=1000, seed=2020, dtype=np.float64) -> tuple[float, float]:
    """The NumPy route (float64), or with ``dtype=np.float32`` torch-fidelity's (its features stay float32)."""
    rng = np.random.RandomState(seed)
    d = real.shape[1]
    vals = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)].astype(dtype)
        y = fake[rng.choice(len(fake), m, replace=False)].astype(dtype)
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        vals.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.sum() / m ** 2)
    return float(np.mean(vals)), float(np.std(vals))


def prdc_cdist(real, fake, k_pr=3, k_dc=5):
    r, f = torch.from_numpy(real).double(), torch.from_numpy(fake).double()
    drr = torch.cdist(r, r)
    rr3 = drr.kthvalue(k_pr + 1, dim=1).values
    rr5 = drr.kthvalue(k_dc + 1, dim=1).values
    del drr
    dff = torch.cdist(f, f)
    rf3 = dff.kthvalue(k_pr + 1, dim=1).values
    del dff
    d = torch.cdist(r, f)
    precision = (d <= rr3[:, None]).any(0).double().mean().item()
    recall = (d <= rf3[None, :]).any(1).double().mean().item()
    density = (d < rr5[:, None]).sum(0).double().mean().item() / k_dc
    coverage = (d.min(1).values < rr5).double().mean().item()
    return (precision, recall), (density, coverage)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=3, help="runs of FID (median reported)")
    p.add_argument("--repeats-slow", type=int, default=1, help="runs of KID and PR/DC")
    p.add_argument("--large", action="store_true", help="also PR/DC at --large-n samples with peak RSS")
    p.add_argument("--large-only", action="store_true", help="skip the 10k comparison")
    p.add_argument("--fid-only", action="store_true", help="only the FID comparison")
    p.add_argument("--large-n", type=int, default=50_000)
    p.add_argument("--chunk", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, numpy {np.__version__}, "
          f"scipy {scipy.__version__}, load average {os.getloadavg()[0]:.1f} (other jobs share the CPU)")

    if not a.large_only:
        real, fake = make_features(a.n, a.dim, a.seed)
        print(f"features: real/fake {real.shape} float32 (correlated Gaussians, seed {a.seed})")

        def ours_fid():
            return fid(FeatureStats.from_features(real), FeatureStats.from_features(fake))

        t_ours, v_ours = timed(ours_fid, a.repeats)
        t_ref, v_ref = timed(lambda: fid_sqrtm(real, fake), a.repeats)
        sr, sf = FeatureStats.from_features(real), FeatureStats.from_features(fake)
        t_d_ours, _ = timed(lambda: fid(sr, sf), a.repeats)

        def sqrtm_only():
            return scipy.linalg.sqrtm(sr.cov @ sf.cov)

        t_d_ref, _ = timed(sqrtm_only, a.repeats)
        print(f"FID  ours (FeatureStats + Cholesky) {t_ours:8.2f} s  value {v_ours:.6f}")
        print(f"FID  ref  (np.cov + scipy sqrtm)      {t_ref:8.2f} s  value {v_ref:.6f}  "
              f"(rel diff {abs(v_ours - v_ref) / abs(v_ref):.1e})")
        print(f"FID  total speed-up {t_ref / t_ours:5.1f}x; distance only: ours {t_d_ours:.2f} s vs sqrtm "
              f"{t_d_ref:.2f} s = {t_d_ref / t_d_ours:.1f}x  (medians of {a.repeats})")

        if a.fid_only:
            return
        t_kid, v_kid = timed(lambda: kid(real, fake), a.repeats_slow)
        t_kid_ref, v_kid_ref = timed(lambda: kid_numpy(real, fake), a.repeats_slow)
        t_kid_tf, v_kid_tf = timed(lambda: kid_numpy(real, fake, dtype=np.float32), a.repeats_slow)
        print(f"KID  ours (f32 Gram, f64 sums)       {t_kid:8.2f} s  mean {v_kid[0]:.9e} std {v_kid[1]:.3e}")
        print(f"KID  ref  (numpy float64)            {t_kid_ref:8.2f} s  mean {v_kid_ref[0]:.9e}  "
              f"(rel diff {abs(v_kid[0] - v_kid_ref[0]) / abs(v_kid_ref[0]):.1e})  speed-up {t_kid_ref / t_kid:.2f}x")
        print(f"KID  ref  (numpy float32, torch-fidelity's route) {t_kid_tf:6.2f} s  mean {v_kid_tf[0]:.9e}  "
              f"(rel diff to float64 {abs(v_kid_tf[0] - v_kid_ref[0]) / abs(v_kid_ref[0]):.1e})  "
              f"speed-up {t_kid_tf / t_kid:.2f}x")

        t_all, v_all = timed(lambda: prdc(real, fake, row_chunk=a.chunk, col_chunk=a.chunk), a.repeats_slow)
        t_pr, v_pr = timed(lambda: precision_recall(real, fake, row_chunk=a.chunk, col_chunk=a.chunk),
                           a.repeats_slow)
        t_dc, v_dc = timed(lambda: density_coverage(real, fake, row_chunk=a.chunk, col_chunk=a.chunk),
                           a.repeats_slow)
        t_full, (v_pr_ref, v_dc_ref) = timed(lambda: prdc_cdist(real, fake), a.repeats_slow)
        # precision, recall and coverage are counts over N: exact; density sums k-NN counts in another order
        # than the reference, so its last bit may differ: equal to 1e-12 relative
        same = (v_all["precision"], v_all["recall"], v_all["coverage"]) == (*v_pr_ref, v_dc_ref[1]) and \
            math.isclose(v_all["density"], v_dc_ref[0], rel_tol=1e-12)
        print(f"PRDC ours (prdc, one pass, chunked {a.chunk}, float64) {t_all:6.2f} s  P/R {v_all['precision']:.4f}/"
              f"{v_all['recall']:.4f} D/C {v_all['density']:.4f}/{v_all['coverage']:.4f}")
        print(f"PR   ours (precision_recall alone)   {t_pr:8.2f} s;  DC ours (density_coverage alone) {t_dc:.2f} s")
        print(f"PRDC ref  (full torch.cdist, float64) {t_full:8.2f} s  P/R {v_pr_ref[0]:.4f}/{v_pr_ref[1]:.4f} "
              f"D/C {v_dc_ref[0]:.4f}/{v_dc_ref[1]:.4f}  equal (density to 1e-12): {same}  speed-up {t_full / t_all:.2f}x")
        print(f"peak RSS so far {peak_rss_mib():.0f} MiB (includes the full-matrix reference)")
        del real, fake

    if a.large or a.large_only:
        n = a.large_n
        real, fake = make_features(n, a.dim, a.seed + 1)
        base = peak_rss_mib()
        inputs_mib = (real.nbytes + fake.nbytes) / 2 ** 20
        bound_mib = 4 * a.chunk * (a.chunk + 5) * 8 / 2 ** 20 + 2 * a.chunk * a.dim * 8 / 2 ** 20
        print(f"large: real/fake {real.shape} float32 ({inputs_mib:.0f} MiB); peak RSS after generating "
              f"{base:.0f} MiB; stated bound on top of inputs ~{bound_mib:.0f} MiB + O(N) vectors")
        t = time.perf_counter()
        pr = precision_recall(real, fake, row_chunk=a.chunk, col_chunk=a.chunk)
        t_pr = time.perf_counter() - t
        print(f"large PR {t_pr:8.1f} s  precision {pr[0]:.4f} recall {pr[1]:.4f}  peak RSS {peak_rss_mib():.0f} MiB",
              flush=True)
        t = time.perf_counter()
        dc = density_coverage(real, fake, row_chunk=a.chunk, col_chunk=a.chunk)
        t_dc = time.perf_counter() - t
        peak = peak_rss_mib()
        full_gib = n * n * 8 / 2 ** 30
        print(f"large DC {t_dc:8.1f} s  density {dc[0]:.4f} coverage {dc[1]:.4f}  peak RSS {peak:.0f} MiB")
        print(f"large: peak RSS grew {peak - base:.0f} MiB over the inputs (bound ~{bound_mib:.0f} MiB); one full "
              f"{n}x{n} float64 distance matrix would be {full_gib:.1f} GiB")


if __name__ == "__main__":
    main()
