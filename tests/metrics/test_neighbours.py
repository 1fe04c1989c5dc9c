"""Precision/recall and density/coverage against brute force on small sets, with small chunks."""
import numpy as np
import pytest
import torch

from genlab.errors import ConfigError, DataError
from genlab.metrics import density_coverage, knn_sq_radii, kth_nn_sq_radii, pairwise_sq_distances, prdc, \
    precision_recall


def _dist(a, b):
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def _radii(x, k):
    d = _dist(x, x)
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, k - 1]


def _brute(real, fake, k_pr, k_dc):
    d = _dist(real, fake)  # (Nr, Nf)
    rr, rf = _radii(real, k_pr), _radii(fake, k_pr)
    precision = np.mean((d <= rr[:, None]).any(axis=0))
    recall = np.mean((d <= rf[None, :]).any(axis=1))
    rr5 = _radii(real, k_dc)
    density = (d < rr5[:, None]).sum(axis=0).mean() / k_dc
    coverage = np.mean(d.min(axis=1) < rr5)
    return precision, recall, density, coverage


CHUNKS = dict(row_chunk=8, col_chunk=5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(37, 5))
    fake = rng.normal(size=(29, 5)) * 1.2 + 0.3
    p, r, d, c = _brute(real, fake, 3, 5)
    assert precision_recall(real, fake, k=3, **CHUNKS) == (p, r)
    got_d, got_c = density_coverage(torch.from_numpy(real), fake, k=5, **CHUNKS)
    assert got_d == pytest.approx(d, rel=1e-12)
    assert got_c == c
    both = prdc(real, fake, pr_k=3, dc_k=5, **CHUNKS)  # the one-pass version gives the same four numbers
    assert (both["precision"], both["recall"], both["coverage"]) == (p, r, c)
    assert both["density"] == pytest.approx(d, rel=1e-12)


@pytest.mark.parametrize("chunk", [4, 7, 64])
def test_symmetric_radii_match_brute_force(chunk):
    """knn_sq_radii computes only the blocks on and above the diagonal; every k equals the full sort's."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(41, 6))
    got = knn_sq_radii(x, (1, 3, 5), row_chunk=chunk, col_chunk=chunk)
    for k in (1, 3, 5):
        np.testing.assert_allclose(np.sqrt(got[k].numpy()), _radii(x, k), rtol=1e-10)


def test_float32_input_uses_float64_compute():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(40, 6)).astype(np.float32)
    fake = rng.normal(size=(33, 6)).astype(np.float32)
    p, r, d, c = _brute(real.astype(np.float64), fake.astype(np.float64), 3, 5)
    assert precision_recall(real, fake, **CHUNKS) == (p, r)
    assert density_coverage(real, fake, **CHUNKS) == pytest.approx((d, c), rel=1e-12)


def test_boundary_conventions():
    # 1-D integer points, k=1: real radii 2, 2, 4, 4; fake 4 sits exactly on the ball of real 2.
    real = np.array([[0.0], [2.0], [10.0], [14.0]])
    fake = np.array([[4.0], [7.0], [20.0]])
    precision, _ = precision_recall(real, fake, k=1, **CHUNKS)
    assert precision == pytest.approx(2 / 3)  # <= counts the boundary point
    density, coverage = density_coverage(real, fake, k=1, **CHUNKS)
    assert density == pytest.approx(1 / 3)  # strict < excludes it
    assert coverage == pytest.approx(1 / 4)


def test_identical_sets():
    x = np.random.default_rng(3).normal(size=(30, 4))
    p, r = precision_recall(x, x, **CHUNKS)
    _, c = density_coverage(x, x, **CHUNKS)
    assert (p, r, c) == (1.0, 1.0, 1.0)


def test_chunked_distances_equal_unchunked():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(23, 7)), rng.normal(size=(17, 7))
    full = pairwise_sq_distances(a, b, row_chunk=10_000, col_chunk=10_000)
    chunked = pairwise_sq_distances(a, b, row_chunk=4, col_chunk=3)
    np.testing.assert_allclose(chunked.numpy(), full.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(full.numpy(), _dist(a, b) ** 2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(kth_nn_sq_radii(a, 3, row_chunk=4, col_chunk=3).numpy(), _radii(a, 3) ** 2,
                               rtol=1e-10)


def test_duplicates_count_as_neighbours():
    x = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    assert kth_nn_sq_radii(x, 1, row_chunk=2, col_chunk=2).tolist() == [0.0, 0.0, 25.0]


def test_errors():
    x = np.zeros((3, 2))
    with pytest.raises(ConfigError, match="k=3"):
        precision_recall(x, x, k=3)
    with pytest.raises(DataError, match="dimensions differ"):
        density_coverage(np.zeros((10, 2)), np.zeros((10, 3)))
    with pytest.raises(DataError, match="NaN"):
        precision_recall(np.full((10, 2), np.nan), np.zeros((10, 2)))
