import os
import subprocess
import sys

import pytest
import torch

from genlab.testing import tiny_image_data, tiny_tabular_data

# Keep the 2-core CI box responsive and results repeatable.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny convolutions run far faster so on a shared CI machine (no OpenMP
    spinning); the thread count is restored after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def image_data():
    """64 smooth 1×8×8 images in [0, 1] with 4 classes (tiny and fast; genlab.testing's contract data)."""
    return tiny_image_data()


@pytest.fixture
def tabular_data():
    """80 rows of 5 correlated columns, 2 classes (genlab.testing's contract data)."""
    return tiny_tabular_data()


def tiny_trainer(**kw):
    cfg = {"epochs": 2, "batch_size": 16, "precision": "fp32", "channels_last": False, "log_every": 1}
    cfg.update(kw)
    return cfg


def run_cli(*args, cwd=None, env=None, timeout=300):
    """Run the genlab CLI in a subprocess; returns CompletedProcess (text)."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "genlab.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=e, timeout=timeout)
