"""bench/gpu.py runs on the CPU at tiny sizes (so it is known to work before a GPU is there); its numbers are
never asserted, only that every row and metric line is printed with a finite value."""
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_bench_tiny_cpu_run(tmp_path):
    out = tmp_path / "rows.json"
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--tiny", "--models", "vae,wgan-gp",
                        "--json", str(out)], capture_output=True, text=True, timeout=300,
                       env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr[-2000:]
    rows = json.loads(out.read_text())
    train = [r for r in rows if "model" in r]
    assert [(r["model"], r["precision"]) for r in train] == [("vae", "fp32"), ("wgan-gp", "fp32")]
    assert all(math.isfinite(r["images_per_s"]) and r["images_per_s"] > 0 for r in train)
    metrics = [r for r in rows if "fid_s" in r][0]
    assert {"fid", "kid", "precision", "recall", "density", "coverage"} <= set(metrics)
    assert "| vae | 8 | fp32 | off |" in p.stdout and "KID (100 subsets" in p.stdout
