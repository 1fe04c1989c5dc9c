"""Diversity figures for collapse detection, against closed forms and brute-force sums."""
import math

import numpy as np
import pytest

from genlab.errors import DataError
from genlab.metrics.diversity import (class_histogram, classes_covered, diversity_ratio, mean_pairwise_distance,
                                      normalized_entropy)


def test_normalized_entropy_closed_forms():
    assert normalized_entropy([5, 5, 5, 5]) == pytest.approx(1.0, abs=1e-12)
    assert normalized_entropy([7, 0, 0, 0]) == 0.0
    assert normalized_entropy([3, 3, 0, 0]) == pytest.approx(math.log(2) / math.log(4), abs=1e-12)
    p = np.array([0.5, 0.25, 0.25])
    assert normalized_entropy(p * 8) == pytest.approx(-(p * np.log(p)).sum() / math.log(3), abs=1e-12)
    assert normalized_entropy([4]) == 1.0
    for bad in ([], [0, 0], [-1, 2], [[1, 2]]):
        with pytest.raises(DataError, match="non-empty 1-D histogram"):
            normalized_entropy(bad)


def test_class_histogram_and_coverage():
    logits = np.eye(4)[[0, 0, 1, 3, 3, 3]] * 5.0
    counts = class_histogram(logits)
    assert counts.tolist() == [2, 1, 0, 3]
    assert classes_covered(counts) == 3
    assert classes_covered(counts, min_fraction=0.2) == 2  # 1/6 is not > 0.2
    with pytest.raises(DataError, match="num_classes=5"):
        class_histogram(logits, num_classes=5)


def test_mean_pairwise_distance_matches_brute_force():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 7))
    brute = np.mean([np.linalg.norm(x[i] - x[j]) for i in range(30) for j in range(30) if i < j])
    assert mean_pairwise_distance(x) == pytest.approx(brute, rel=1e-12)
    # a 3-4-5 triangle: mean of the three side lengths
    assert mean_pairwise_distance([[0, 0], [3, 0], [0, 4]]) == pytest.approx(4.0)
    assert mean_pairwise_distance(x, max_samples=2) == pytest.approx(np.linalg.norm(x[0] - x[1]))
    with pytest.raises(DataError, match="at least 2 samples"):
        mean_pairwise_distance(x[:1])


def test_diversity_ratio():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(200, 5))
    assert diversity_ratio(2 * real, real) == pytest.approx(2.0, rel=1e-12)  # distances scale linearly
    assert diversity_ratio(np.ones((10, 5)), real) == 0.0  # collapsed to a point
    with pytest.raises(DataError, match="all identical"):
        diversity_ratio(real, np.zeros((4, 5)))
