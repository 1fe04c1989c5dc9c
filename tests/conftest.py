import os
import subprocess
import sys

import pytest
import torch

from genlab.data import TensorDataset

# Keep the 2-core CI box responsive and results repeatable.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def image_data():
    """64 smooth 1×8×8 images in [0, 1] with 4 classes (tiny and fast)."""
    g = torch.Generator().manual_seed(0)
    base = torch.rand(4, 1, 8, 8, generator=g)
    y = torch.arange(64) % 4
    x = (base[y] * 0.8 + 0.2 * torch.rand(64, 1, 8, 8, generator=g)).clamp(0, 1)
    return TensorDataset(x, y, name="tiny-images")


@pytest.fixture
def tabular_data():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(80, 2, generator=g)
    w = torch.randn(2, 5, generator=g)
    y = (z[:, 0] > 0).long()  # 2 classes, so conditional models can run on tabular data too
    return TensorDataset(z @ w + 0.05 * torch.randn(80, 5, generator=g), y, name="tiny-table")


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
