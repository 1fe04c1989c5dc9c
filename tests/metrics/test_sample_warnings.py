"""Small-sample guards: a metric computed on fewer samples than its convention needs is warned about (logging and
the CLI), naming the number used and the number needed; conventional sizes warn about nothing."""
import json
import logging

import numpy as np

from genlab.metrics import evaluate_features, fid_min_samples, kid, sample_size_warnings

from tests.conftest import run_cli

ALL = ["fid", "kid", "precision_recall", "density_coverage"]


def _feats(n, d, seed):
    return np.random.default_rng(seed).normal(size=(n, d))


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_small_samples_warn_with_used_and_needed_counts(caplog):
    real, fake = _feats(200, 128, 0), _feats(64, 128, 1)
    with caplog.at_level(logging.WARNING, logger="genlab"):
        out = evaluate_features(real, fake, ALL)
    msgs = _warnings(caplog)
    assert len(msgs) == 4, msgs
    fid_msg, kid_msg, pr_msg, dc_msg = msgs
    assert fid_msg.startswith("FID on 64 generated / 200 real samples of 128-D features") and "256" in fid_msg
    assert kid_msg.startswith("KID subsets of 64 samples") and "requested 1000" in kid_msg
    assert pr_msg.startswith("precision/recall with k=3") and "at least 300" in pr_msg
    assert dc_msg.startswith("density/coverage with k=5") and "at least 500" in dc_msg
    # recorded with the result, and the numbers are still computed
    assert out["sample_warnings"] == msgs
    assert (out["n_real"], out["n_fake"], out["feature_dim"]) == (200, 64, 128)
    assert (out["kid_subsets"], out["kid_subset_size"]) == (100, 64)
    assert np.isfinite([out["fid"], out["kid_mean"], out["precision"], out["coverage"]]).all()


def test_conventional_sizes_warn_nothing(caplog):
    # D = 16 -> FID needs 32; KID 100 subsets of 200 <= n; PR needs 300, DC 500: 500 per set meets them all
    real, fake = _feats(500, 16, 2), _feats(500, 16, 3)
    with caplog.at_level(logging.DEBUG, logger="genlab"):
        out = evaluate_features(real, fake, ALL, kid_subset_size=200)
    assert _warnings(caplog) == [] and out["sample_warnings"] == []
    assert out["kid_subset_size"] == 200


def test_fid_rule_scales_with_the_feature_dimension():
    assert fid_min_samples(2048) == 4096 and fid_min_samples(128) == 256
    kw = dict(n_real=1000, n_fake=200)
    assert sample_size_warnings(["fid"], feature_dim=100, **kw) == []      # needs 200
    assert len(sample_size_warnings(["fid"], feature_dim=101, **kw)) == 1  # needs 202
    assert sample_size_warnings(["fid"], feature_dim=2048, n_real=4096, n_fake=4096) == []
    [msg] = sample_size_warnings(["fid"], feature_dim=2048, n_real=50_000, n_fake=2048)
    assert "2048 generated / 50000 real" in msg and "4096" in msg
    # only the metrics asked for are judged
    assert sample_size_warnings(["inception_score"], feature_dim=2048, n_real=10, n_fake=10) == []


def test_kid_subset_rules():
    kw = dict(n_real=5000, n_fake=5000, feature_dim=8)
    assert sample_size_warnings(["kid"], **kw) == []
    [few] = sample_size_warnings(["kid"], kid_subsets=10, **kw)
    assert "10 subsets" in few and "convention is 100" in few
    [big] = sample_size_warnings(["kid"], kid_subset_size=6000, **kw)
    assert "subsets of 5000 samples" in big and "requested 6000" in big


def test_prdc_boundaries():
    kw = dict(feature_dim=8, pr_k=3, dc_k=5)
    assert sample_size_warnings(["precision_recall"], n_real=300, n_fake=300, **kw) == []
    assert len(sample_size_warnings(["precision_recall"], n_real=300, n_fake=299, **kw)) == 1
    assert sample_size_warnings(["density_coverage"], n_real=500, n_fake=500, **kw) == []
    [msg] = sample_size_warnings(["density_coverage"], n_real=499, n_fake=800, dc_k=5, pr_k=3, feature_dim=8)
    assert "800 generated / 499 real" in msg and "k=5" in msg


def test_kid_function_warns_when_it_caps_the_subset_size(caplog):
    a, b = _feats(40, 4, 4), _feats(30, 4, 5)
    with caplog.at_level(logging.WARNING, logger="genlab"):
        kid(a, b, subsets=3, subset_size=1000)
    [msg] = _warnings(caplog)
    assert "using subsets of 30" in msg and "convention 1000" in msg


def test_cli_evaluate_shows_the_warning_and_records_counts(tmp_path):
    from genlab import load_dataset
    x = load_dataset("digits").x.numpy()
    np.savez(tmp_path / "real.npz", x=x[:1000])
    np.savez(tmp_path / "fake.npz", x=x[1000:1064])
    p = run_cli("evaluate", "--real", tmp_path / "real.npz", "--fake", tmp_path / "fake.npz", "--metrics", "fid,kid",
                "--json", "--no-cache", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "FID on 64 generated / 1000 real samples of 128-D features" in p.stderr
    assert "KID subsets of 64 samples" in p.stderr
    res = json.loads(p.stdout)
    assert (res["n_fake"], res["n_real"]) == (64, 1000)
    assert len(res["sample_warnings"]) == 2 and res["sample_warnings"][0].startswith("FID on 64")
