import numpy as np
import pytest

from genlab.errors import ConfigError
from genlab.metrics import (FeatureStats, density_coverage, evaluate_features, fid, inception_score, kid,
                            precision_recall)


def test_evaluate_features_matches_individual_functions():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(60, 5)), rng.normal(size=(50, 5)) + 0.2
    logits = rng.normal(size=(50, 4))
    out = evaluate_features(real, fake, fake_logits=logits, metrics=["fid", "kid", "precision_recall",
                                                                     "density_coverage", "inception_score"],
                            kid_subsets=5, kid_subset_size=20, is_splits=5)
    assert out["fid"] == pytest.approx(fid(FeatureStats.from_features(real), FeatureStats.from_features(fake)),
                                       rel=1e-10)
    assert (out["kid_mean"], out["kid_std"]) == kid(real, fake, subsets=5, subset_size=20)
    assert (out["precision"], out["recall"]) == precision_recall(real, fake)
    assert (out["density"], out["coverage"]) == density_coverage(real, fake)
    assert (out["inception_score_mean"], out["inception_score_std"]) == inception_score(logits, splits=5)
    assert set(out["conventions"]) == {"fid", "kid", "precision_recall", "density_coverage", "inception_score"}
    assert out["n_real"] == 60 and out["n_fake"] == 50 and out["feature_dim"] == 5


def test_evaluate_features_errors():
    x = np.zeros((10, 3))
    with pytest.raises(ConfigError, match="unknown metrics"):
        evaluate_features(x, x, metrics=["fid", "lpips"])
    with pytest.raises(ConfigError, match="fake_logits"):
        evaluate_features(x, x, metrics=["inception_score"])


def test_default_metrics_include_is_only_with_logits():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    out = evaluate_features(real, fake, kid_subset_size=10, kid_subsets=2)
    assert "inception_score_mean" not in out and {"fid", "kid_mean", "precision", "density"} <= set(out)
    out = evaluate_features(real, fake, rng.normal(size=(40, 5)), rng.normal(size=(40, 5)), kid_subset_size=10,
                            kid_subsets=2, is_splits=4)
    assert "inception_score_mean" in out and "real_inception_score_mean" in out
