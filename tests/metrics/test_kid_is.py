"""KID against a double-loop NumPy estimator; Inception Score against known values and a loop."""
import logging

import numpy as np
import pytest
import torch

from genlab.errors import ConfigError, DataError
from genlab.metrics import inception_score, kid, mmd2_unbiased


def _loop_mmd2(x, y, degree=3, coef0=1.0):
    m, d = x.shape
    gamma = 1.0 / d

    def k(u, v):
        return (gamma * float(np.dot(u, v)) + coef0) ** degree

    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return sxx / (m * (m - 1)) + syy / (m * (m - 1)) - 2 * sxy / (m * m)


def test_kid_matches_double_loop():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 8))
    b = rng.normal(size=(60, 8)) * 1.3 + 0.2
    seed, subsets, m = 7, 3, 20
    rs = np.random.RandomState(seed)
    vals = []
    for _ in range(subsets):  # reference order: indices of a, then of b, per subset
        ia = rs.choice(50, m, replace=False)
        ib = rs.choice(60, m, replace=False)
        vals.append(_loop_mmd2(a[ia], b[ib]))
    rs = np.random.RandomState(seed)
    ia, ib = rs.choice(50, m, replace=False), rs.choice(60, m, replace=False)
    assert mmd2_unbiased(torch.from_numpy(a[ia]), torch.from_numpy(b[ib])) == pytest.approx(vals[0], rel=1e-10)
    mean, std = kid(a, torch.from_numpy(b), subsets=subsets, subset_size=m, seed=seed)
    assert mean == pytest.approx(np.mean(vals), rel=1e-10)
    assert std == pytest.approx(np.std(vals), rel=1e-8)  # population std (ddof=0)


def test_kid_float32_path_matches_float64_at_2048_dims():
    """float32 features (the extractors' dtype) take float32 Gram matrices with float64 sums: within 1e-6 of
    the all-float64 value (exact=True) at the conventional feature size."""
    rng = np.random.default_rng(1)
    mix = (rng.normal(size=(2048, 2048)) / np.sqrt(2048)).astype(np.float32)
    a = rng.normal(size=(400, 2048)).astype(np.float32) @ mix
    b = ((rng.normal(size=(400, 2048)).astype(np.float32) @ mix) * 1.1 + 0.05).astype(np.float32)
    assert a.dtype == b.dtype == np.float32
    fast = kid(a, b, subsets=4, subset_size=300)
    exact = kid(a, b, subsets=4, subset_size=300, exact=True)
    assert fast[0] == pytest.approx(exact[0], rel=1e-6)
    assert fast[1] == pytest.approx(exact[1], rel=1e-5)
    assert fast[0] != exact[0]  # the float32 path really ran (bit-identical would mean float64 twice)


def test_kid_caps_subset_size(caplog):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(15, 4)), rng.normal(size=(12, 4))
    with caplog.at_level(logging.WARNING, logger="genlab.metrics.kid"):
        capped = kid(a, b, subsets=2, subset_size=1000, seed=3)
    assert any("subset_size" in r.getMessage() for r in caplog.records)
    assert capped == kid(a, b, subsets=2, subset_size=12, seed=3)


def test_kid_errors():
    a = np.zeros((10, 3))
    with pytest.raises(DataError, match="dimensions differ"):
        kid(a, np.zeros((10, 4)))
    with pytest.raises(ConfigError):
        kid(a, a, subset_size=1)
    with pytest.raises(DataError, match="NaN"):
        kid(np.full((10, 3), np.inf), a)


def test_is_uniform_logits_is_one():
    mean, std = inception_score(np.zeros((100, 7)), splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_is_balanced_one_hot_is_num_classes():
    c, n = 10, 1000
    logits = np.zeros((n, c))
    logits[np.arange(n), np.arange(n) % c] = 60.0  # every split holds every class equally often
    mean, std = inception_score(logits, splits=10)
    assert mean == pytest.approx(c, rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-9)


def test_is_matches_loop_with_uneven_splits():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(103, 6)) * 3
    splits = 10
    scores = []
    for i in range(splits):
        part = logits[i * 103 // splits:(i + 1) * 103 // splits]
        p = np.exp(part - part.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        q = p.mean(0)
        kl = [sum(pi[j] * (np.log(pi[j]) - np.log(q[j])) for j in range(6)) for pi in p]
        scores.append(np.exp(np.mean(kl)))
    mean, std = inception_score(torch.from_numpy(logits), splits=splits)
    assert mean == pytest.approx(np.mean(scores), rel=1e-10)
    assert std == pytest.approx(np.std(scores), rel=1e-8)


def test_is_errors():
    with pytest.raises(ConfigError, match="splits"):
        inception_score(np.zeros((5, 3)), splits=10)
    with pytest.raises(DataError, match="2-D"):
        inception_score(np.zeros(5))
