import os
import subprocess
import sys

import pytest
import torch

from genlab.testing import tiny_image_data, tiny_tabular_data

# Keep the 2-core CI box responsive and results repeatable. Under pytest-xdist the cores are split between the
# workers: each worker, and every CLI subprocess it starts (through OMP_NUM_THREADS, which the Trainer's default
# thread count also reads), gets cores // workers threads (at most 2), so two workers never run four spinning
# OpenMP threads on two cores (that oversubscription made single tests 5x slower inside the suite than alone).
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_WORKERS = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))
_THREADS = max(1, min(2, _CORES // _WORKERS))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(_THREADS))
torch.set_num_threads(_THREADS)


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny convolutions run far faster so on a shared CI machine (no OpenMP
    spinning); the thread count is restored after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def error_line(capsys):
    """A function returning what the CLI wrote to stderr since the last read, which must be exactly one line (the
    one-line error rule)."""
    def read() -> str:
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        return err[0]
    return read


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


@pytest.fixture
def gpu_config_models(tmp_path):
    """``build(model)``: the GPU config blocks of ``docs/models/<model>.md`` (``<!-- gpu-config: NAME -->`` then a
    JSON block, NAME ending in the image side), each read through the ``--config`` reader, validated as a run config
    and built on random data of its side (no training): a list of ``(name, side, spec, model)``."""
    import re
    from pathlib import Path

    from genlab.config import read_config_file
    from genlab.data import TensorDataset
    from genlab.runs import RunSpec, build_model

    def build(model: str):
        page = (Path(__file__).parents[1] / "docs" / "models" / f"{model}.md").read_text()
        out = []
        for name, text in re.findall(r"<!-- gpu-config: ([\w-]+) -->\s*```json\n(.*?)```", page, re.S):
            side = int(name.rsplit("-", 1)[1])
            (tmp_path / f"{name}.json").write_text(text)
            spec = RunSpec.from_sections(model, read_config_file(tmp_path / f"{name}.json"))
            data = TensorDataset(torch.rand(2, 3, side, side), torch.tensor([0, 1]), name=name)
            with torch.random.fork_rng():
                out.append((name, side, spec, build_model(spec, data.info())))
        return out
    return build
