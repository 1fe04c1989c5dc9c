"""Fixtures for the genlab.data tests."""
from __future__ import annotations

import numpy as np
import pytest

from _genlab_data_files import write_idx


@pytest.fixture
def mnist_arrays():
    rng = np.random.default_rng(0)
    return {"train": (rng.integers(0, 256, (12, 28, 28), dtype=np.uint8), rng.integers(0, 10, 12).astype(np.uint8)),
            "test": (rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), rng.integers(0, 10, 5).astype(np.uint8))}


@pytest.fixture
def mnist_dir(tmp_path, mnist_arrays):
    """<tmp>/data/mnist/ with the four IDX .gz files (small)."""
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    names = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
    for split, (xi, yi) in names.items():
        write_idx(folder / xi, mnist_arrays[split][0])
        write_idx(folder / yi, mnist_arrays[split][1])
    return folder
