"""Model/set evaluation: extractor-labelled metrics, the real-feature cache, CLI wiring and errors."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from genlab.cli import main
from genlab.config import from_dict
from genlab.data import load_dataset
from genlab.errors import ConfigError
from genlab.evaluation import evaluate_model, evaluate_sets, parse_metrics
from genlab.metrics import fid, FeatureStats
from genlab.metrics.extractors import cache_key, get_extractor, real_features
from genlab.models.vae import VAE, VAEConfig


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_parse_metrics():
    assert parse_metrics("fid,kid,is,pr,dc,ppl,swd") == ["fid", "kid", "inception_score", "precision_recall",
                                                         "density_coverage", "ppl", "swd"]
    with pytest.raises(ConfigError, match="unknown metric 'fdi'"):
        parse_metrics("fdi")


def test_identical_sets_score_perfectly(digits, tmp_path):
    np.savez(tmp_path / "a.npz", x=digits.x[:400].numpy())
    res = evaluate_sets(str(tmp_path / "a.npz"), str(tmp_path / "a.npz"), cache=tmp_path / "c",
                        metrics=["fid", "precision_recall", "density_coverage"])
    m = res["metrics"]
    assert abs(m["FID-digits"]) < 1e-4  # eigen-route rounding on rank-deficient (ReLU) features
    assert m["precision-digits"] == 1.0 and m["recall-digits"] == 1.0 and m["coverage-digits"] == 1.0
    assert res["extractor"]["name"] == "digits" and res["extractor"]["reported_as"] == "FID-digits"


def test_model_evaluation_uses_and_fills_cache(digits, tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = VAE(from_dict(VAEConfig, {"latent_dim": 4}), digits.info()).eval()
    real = digits.subset(torch.arange(300))
    res = evaluate_model(model, real, data_key="digits-test300", n=200, cache=tmp_path,
                         metrics=["fid", "kid", "inception_score", "ppl"], kid_subset_size=100)
    m = res["metrics"]
    assert set(m) >= {"FID-digits", "KID-digits", "IS-digits", "PPL-digits"}
    assert res["n_fake"] == 200 and res["n_real"] == 300 and np.isfinite(m["FID-digits"])
    files = sorted(p.name for p in tmp_path.iterdir())
    ex = get_extractor("digits")
    assert files == [f"{cache_key('digits-test300', ex)}.npz", f"{cache_key('digits-test300', ex)}.stats.npz"]
    # the cached statistics equal the features' own
    feats, _, stats = real_features(real.x, "digits-test300", ex, cache=tmp_path)
    ref = FeatureStats.from_features(feats)
    assert np.allclose(stats.mean, ref.mean) and np.allclose(stats.cov, ref.cov)
    # a second evaluation reads the cache instead of extracting the real set again
    calls = []
    orig = ex.extract_fn
    ex.extract_fn = lambda x: (calls.append(len(x)), orig(x))[1]
    monkeypatch.setattr("genlab.evaluation.get_extractor", lambda *a, **k: ex)
    res2 = evaluate_model(model, real, data_key="digits-test300", n=200, cache=tmp_path, metrics=["fid"])
    assert calls == [200]  # only the generated images
    assert res2["metrics"]["FID-digits"] == pytest.approx(m["FID-digits"], rel=1e-12)


def test_swd_is_scored_on_the_images_without_the_extractor(digits, tmp_path):
    from genlab.metrics import swd
    real, fake = digits.subset(torch.arange(300)), digits.subset(torch.arange(300, 500))
    res = evaluate_sets(real, fake, metrics=["fid", "swd"], cache=tmp_path)
    want = swd(real.x, fake.x, seed=0)
    assert res["metrics"]["SWD"] == pytest.approx(want["mean"], rel=1e-12)  # no "-digits": no feature net
    assert res["raw"]["swd_levels"] == {"8x8": pytest.approx(want["levels"][0][2], rel=1e-12)}
    assert "no feature net" in res["conventions"]["swd"] and "FID-digits" in res["metrics"]
    torch.manual_seed(0)
    model = VAE(from_dict(VAEConfig, {"latent_dim": 4}), digits.info()).eval()
    a = evaluate_model(model, real, data_key="digits-test300", n=100, cache=tmp_path, metrics=["swd"], seed=3)
    with torch.no_grad():
        samples = model.sample(100, generator=torch.Generator().manual_seed(3))
    assert a["metrics"] == {"SWD": pytest.approx(swd(real.x, samples, seed=3)["mean"], rel=1e-6)}
    assert a["extractor"]["name"] == "none"


def test_swd_alone_needs_no_feature_net(tmp_path, monkeypatch):
    """32x32 RGB images have no genlab net (auto would mean Inception): SWD alone must not build or run one."""
    def no_net(*a, **k):
        raise AssertionError("a feature net was requested")

    monkeypatch.setattr("genlab.evaluation.get_extractor", no_net)
    g = torch.Generator().manual_seed(0)
    np.save(tmp_path / "r.npy", torch.rand(40, 3, 32, 32, generator=g).numpy())
    np.save(tmp_path / "f.npy", torch.rand(30, 3, 32, 32, generator=g).numpy())
    res = evaluate_sets(str(tmp_path / "r.npy"), str(tmp_path / "f.npy"), metrics=["swd"])
    assert res["n_real"] == 40 and res["n_fake"] == 30 and set(res["raw"]["swd_levels"]) == {"32x32", "16x16", "8x8"}
    assert res["metrics"]["SWD"] > 0 and res["extractor"]["name"] == "none"


def test_corrupt_cache_is_recomputed(digits, tmp_path):
    ex = get_extractor("digits")
    x = digits.x[:50]
    f1, _, _ = real_features(x, "k", ex, cache=tmp_path)
    (tmp_path / f"{cache_key('k', ex)}.npz").write_bytes(b"garbage")
    f2, _, _ = real_features(x, "k", ex, cache=tmp_path)
    assert np.array_equal(f1, f2)


def test_custom_module_extractor(digits, tmp_path):
    class Flat(nn.Module):
        def forward(self, x):
            return x.flatten(1)

    res = evaluate_sets(digits.subset(torch.arange(100)), digits.subset(torch.arange(100, 200)), features=Flat(),
                        metrics=["fid"], cache=tmp_path)
    expected = fid(FeatureStats.from_features(digits.x[:100].flatten(1).double().numpy()),
                   FeatureStats.from_features(digits.x[100:200].flatten(1).double().numpy()))
    assert res["metrics"]["FID-custom"] == pytest.approx(expected, rel=1e-9)


def test_cli_evaluate_sets_json_and_errors(digits, tmp_path, capsys):
    np.savez(tmp_path / "r.npz", x=digits.x[:300].numpy())
    np.savez(tmp_path / "f.npz", x=digits.x[300:600].numpy())
    code = main(["evaluate", "--real", str(tmp_path / "r.npz"), "--fake", str(tmp_path / "f.npz"), "--json",
                 "--metrics", "fid,kid,pr,dc,is,swd", "--cache-dir", str(tmp_path / "c")])
    out = capsys.readouterr().out
    assert code == 0
    res = json.loads(out)
    assert res["n_real"] == 300 and "FID-digits" in res["metrics"] and "kid" in res["conventions"]
    assert 0 <= res["metrics"]["precision-digits"] <= 1 and res["metrics"]["SWD"] > 0
    for argv, needle in [(["evaluate", "--real", str(tmp_path / "r.npz"), "--fake", str(tmp_path / "f.npz"),
                           "--metrics", "ppl"], "ppl needs a model"),
                         (["evaluate", "--real", str(tmp_path / "r.npz")], "--real A and --fake B"),
                         (["evaluate", "--real", str(tmp_path / "r.npz"), "--fake", str(tmp_path / "f.npz"),
                           "--features", "mnist"], "takes images of shape (1, 28, 28)"),
                         (["evaluate", "--real", str(tmp_path / "r.npz"), "--fake", str(tmp_path / "f.npz"),
                           "--features", "inception", "--inception-weights", str(tmp_path / "none.pth")],
                          "Inception weights not found")]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and err.count("\n") == 0, err


def test_evaluate_run_refusals(tmp_path):
    import genlab
    from genlab.evaluation import evaluate_run
    run = genlab.train("ae", "digits", out=tmp_path / "ae", config={
        "trainer": {"epochs": 1, "batch_size": 64, "precision": "fp32", "channels_last": False},
        "data": {"limit": 200}, "test": {"enabled": False}})
    with pytest.raises(ConfigError, match="lacks the capability 'can_sample'.*genlab evaluate.*vae"):
        evaluate_run(run.out_dir, n=10, cache=tmp_path / "c")
    with pytest.raises(ConfigError, match="unknown split 'dev'"):
        evaluate_run(run.out_dir, split="dev")
    with pytest.raises(ConfigError, match="is not a run folder"):
        evaluate_run(run.out_dir / "model")
