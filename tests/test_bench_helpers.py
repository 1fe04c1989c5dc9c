"""Helpers of the application benches that the README's figures rest on: the paired bootstrap of ROC-AUC
differences (bench/app_anomaly.py) and the codec-curve lookups (bench/app_compress.py), against closed forms."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def anomaly():
    return _load("app_anomaly")


@pytest.fixture(scope="module")
def compress():
    return _load("app_compress")


def test_paired_bootstrap_identical_scores_give_zero(anomaly):
    rng = np.random.default_rng(0)
    normal = rng.random(60) < 0.4
    s = rng.normal(size=60) + normal
    b = anomaly.paired_bootstrap_auc(normal, s, s.copy(), n=200)
    assert b == {"diff": 0.0, "lo": 0.0, "hi": 0.0, "share_ge0": 1.0}


def test_paired_bootstrap_perfect_vs_reversed(anomaly):
    normal = np.r_[np.ones(10, bool), np.zeros(30, bool)]
    perfect = normal.astype(float)  # AUC 1 on every resample (both classes always present)
    b = anomaly.paired_bootstrap_auc(normal, perfect, -perfect, n=100)
    assert b["diff"] == 1.0 and b["lo"] == 1.0 and b["hi"] == 1.0 and b["share_ge0"] == 1.0


def test_paired_bootstrap_interval_holds_the_observed_difference(anomaly):
    rng = np.random.default_rng(1)
    normal = np.r_[np.ones(70, bool), np.zeros(200, bool)]
    a = rng.normal(size=270) + 1.5 * normal
    c = rng.normal(size=270) + 1.0 * normal
    b = anomaly.paired_bootstrap_auc(normal, a, c, n=500, seed=3)
    assert b["diff"] == pytest.approx(roc_auc_score(normal, a) - roc_auc_score(normal, c), abs=1e-12)
    assert b["lo"] < b["diff"] < b["hi"] and 0.0 <= b["share_ge0"] <= 1.0
    # the same seed gives the same interval; another seed a different one
    assert anomaly.paired_bootstrap_auc(normal, a, c, n=500, seed=3) == b
    assert anomaly.paired_bootstrap_auc(normal, a, c, n=500, seed=4)["lo"] != b["lo"]


def test_bytes_for_and_interp_on_a_toy_curve(compress):
    curve = [{"bytes": 100.0, "psnr": 20.0, "ssim": 0.8}, {"bytes": 50.0, "psnr": 18.0, "ssim": 0.7},
             {"bytes": 200.0, "psnr": 30.0, "ssim": 0.95}, {"bytes": 150.0, "psnr": 19.0, "ssim": 0.9}]
    assert compress.bytes_for(curve, "psnr", 19.5) == 100.0  # the smallest file at or above the value
    assert compress.bytes_for(curve, "psnr", 18.0) == 50.0
    assert compress.bytes_for(curve, "ssim", 0.85) == 150.0
    assert compress.bytes_for(curve, "psnr", 31.0) is None  # no setting reaches it
    assert compress._interp(curve, 40.0, "psnr") is None  # below the smallest file
    assert compress._interp(curve, 75.0, "psnr") == pytest.approx(19.0)
    assert compress._interp(curve, 150.0, "psnr") == pytest.approx(20.0)  # best quality reachable at that size
    assert compress._interp(curve, 500.0, "psnr") == pytest.approx(30.0)


def test_read_ts_univariate_files(tmp_path):
    sel = _load("anomaly_select")
    a, b = tmp_path / "P_TRAIN.ts", tmp_path / "P_TEST.ts"
    a.write_text("# comment\n@problemName P\n@classLabel true b a\n@data\n1,2,3:b\n-1.5,0,2e1:a\n")
    b.write_text("@data\n\n4,5,6:b\n")
    x, y = sel.read_ts(a, b)
    assert x.dtype == np.float32 and x.tolist() == [[1, 2, 3], [-1.5, 0, 20], [4, 5, 6]]
    assert y.tolist() == [1, 0, 1]  # labels numbered in sorted order: a -> 0, b -> 1
    b.write_text("@data\n4,5:b\n")
    with pytest.raises(ValueError, match="different lengths"):
        sel.read_ts(a, b)
    b.write_text("@data\n4,5,6\n")
    with pytest.raises(ValueError, match="P_TEST.ts:2: expected one univariate series"):
        sel.read_ts(b)
