"""FeatureStats and FID against independent computations (numpy cov, scipy sqrtm, closed forms)."""
import numpy as np
import pytest
import scipy.linalg
import torch

from genlab.errors import DataError
from genlab.metrics import FeatureStats, fid


def _sqrtm_fid(m1, s1, m2, s2):
    """pytorch-fid's route: tr(sqrtm(S1 S2)) via scipy, real part."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    diff = m1 - m2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


@pytest.fixture
def feats():
    rng = np.random.default_rng(0)
    return rng.normal(size=(1000, 12)) @ rng.normal(size=(12, 12)) + 3.0  # correlated, non-zero mean


def test_stats_match_numpy(feats):
    s = FeatureStats.from_features(feats)
    np.testing.assert_allclose(s.mean, feats.mean(0), rtol=1e-12)
    np.testing.assert_allclose(s.cov, np.cov(feats, rowvar=False), rtol=1e-10)  # N-1 divisor
    assert s.n == 1000


@pytest.mark.parametrize("bs", [1, 7, 333])
def test_stats_batch_size_independent(feats, bs):
    ref = FeatureStats.from_features(feats)
    s = FeatureStats()
    for i in range(0, len(feats), bs):
        s.update(torch.from_numpy(feats[i:i + bs]))
    np.testing.assert_allclose(s.mean, ref.mean, rtol=1e-10)
    np.testing.assert_allclose(s.cov, ref.cov, rtol=1e-10, atol=1e-10 * np.abs(ref.cov).max())


def test_stats_merge_equals_single_pass(feats):
    ref = FeatureStats.from_features(feats)
    parts = [FeatureStats.from_features(feats[a:b]) for a, b in [(0, 1), (1, 400), (400, 1000)]]
    merged = FeatureStats()
    for p in parts:
        merged.merge(p)
    assert merged.n == ref.n
    np.testing.assert_allclose(merged.mean, ref.mean, rtol=1e-10)
    np.testing.assert_allclose(merged.cov, ref.cov, rtol=1e-10, atol=1e-10 * np.abs(ref.cov).max())


def test_stats_npz_round_trip(feats, tmp_path):
    s = FeatureStats.from_features(feats)
    p = s.save(tmp_path / "stats.npz")
    t = FeatureStats.load(p)
    assert t.n == s.n
    np.testing.assert_array_equal(t.mean, s.mean)
    np.testing.assert_array_equal(t.cov, s.cov)
    with np.load(p, allow_pickle=False) as z:  # plain arrays only
        assert set(z.files) >= {"n", "mean", "m2"}


def test_stats_errors(tmp_path):
    with pytest.raises(DataError, match="NaN"):
        FeatureStats().update(np.array([[1.0, np.nan]]))
    s = FeatureStats().update(np.ones((3, 4)))
    with pytest.raises(DataError, match="dimension"):
        s.update(np.ones((3, 5)))
    with pytest.raises(DataError, match="at least 2"):
        FeatureStats().update(np.ones((1, 4))).cov
    bad = tmp_path / "bad.npz"
    np.savez(bad, mean=np.zeros(3))
    with pytest.raises(DataError, match="lacks"):
        FeatureStats.load(bad)


def test_fid_matches_sqrtm_full_rank():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(400, 20))
    b = rng.normal(size=(300, 20)) @ rng.normal(size=(20, 20)) * 0.5 + 0.7
    sa, sb = FeatureStats.from_features(a), FeatureStats.from_features(b)
    ref = _sqrtm_fid(sa.mean, sa.cov, sb.mean, sb.cov)
    assert fid(sa, sb) == pytest.approx(ref, rel=1e-6)
    assert fid((sa.mean, sa.cov), (sb.mean, sb.cov)) == pytest.approx(ref, rel=1e-6)


def test_fid_matches_sqrtm_rank_deficient():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(10, 20))  # N < D: covariance of rank 9
    b = rng.normal(size=(15, 20)) * 2.0 + 1.0
    sa, sb = FeatureStats.from_features(a), FeatureStats.from_features(b)
    assert np.linalg.matrix_rank(sa.cov) == 9
    ref = _sqrtm_fid(sa.mean, sa.cov, sb.mean, sb.cov)
    assert fid(sa, sb) == pytest.approx(ref, rel=1e-6)


def test_fid_closed_form_diagonal():
    rng = np.random.default_rng(3)
    va, vb = rng.uniform(0.1, 4.0, size=30), rng.uniform(0.1, 4.0, size=30)
    ma, mb = rng.normal(size=30), rng.normal(size=30)
    expected = float(((ma - mb) ** 2).sum() + ((np.sqrt(va) - np.sqrt(vb)) ** 2).sum())
    assert fid((ma, np.diag(va)), (mb, np.diag(vb))) == pytest.approx(expected, rel=1e-10)
    # singular diagonals (zeros) have the same closed form
    va[:10] = 0.0
    expected = float(((ma - mb) ** 2).sum() + ((np.sqrt(va) - np.sqrt(vb)) ** 2).sum())
    assert fid((ma, np.diag(va)), (mb, np.diag(vb))) == pytest.approx(expected, rel=1e-10)


def test_fid_identical_is_zero(feats):
    s = FeatureStats.from_features(feats)
    assert abs(fid(s, s)) < 1e-8 * np.trace(s.cov)


def test_fid_errors():
    with pytest.raises(DataError, match="dimension"):
        fid((np.zeros(3), np.eye(3)), (np.zeros(4), np.eye(4)))
    with pytest.raises(DataError, match="NaN"):
        fid((np.array([0.0, np.nan]), np.eye(2)), (np.zeros(2), np.eye(2)))
    with pytest.raises(DataError):
        fid("nope", (np.zeros(2), np.eye(2)))
