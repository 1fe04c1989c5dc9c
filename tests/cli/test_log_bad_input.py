"""``genlab log`` on bad input: one line, exit 2, nothing written and nothing of the user's deleted.

--overwrite removes only the event files an earlier ``genlab log`` of the same run wrote; a log place that runs
through a file, a damaged sample grid or final_metrics.json, and a run with no metrics are refused before anything
is written; a replay that fails while writing leaves nothing behind and keeps the earlier log."""
from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

import genlab
from genlab.cli import main
from genlab.training import tracking

pytest.importorskip("tensorboard")
HAVE_MLFLOW = importlib.util.find_spec("mlflow") is not None
TRACKERS = ["tensorboard", pytest.param("mlflow", marks=pytest.mark.skipif(not HAVE_MLFLOW,
                                                                           reason="mlflow not installed"))]
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 refuses its file store otherwise

# 200 digits, an MLP VAE, one epoch: a run folder with metrics.jsonl, samples/epoch-0001.png, final_metrics.json
CFG = {"model": {"hidden": [16], "latent_dim": 4},
       "trainer": {"epochs": 1, "batch_size": 32, "log_every": 2, "precision": "fp32", "channels_last": False,
                   "fid_samples": 0, "monitor_every": 0},
       "data": {"limit": 200}, "test": {"iwae_k": 0}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("log") / "run"
    genlab.train("vae", "digits", out=run, config=CFG, progress=False)
    assert (run / "samples" / "epoch-0001.png").is_file()
    return run


@pytest.fixture
def run(trained, tmp_path, monkeypatch):
    """A fresh copy of the run in the test's own folder (the working directory)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    copy = tmp_path / "run"
    shutil.copytree(trained, copy, ignore=shutil.ignore_patterns(".genlab.lock"))
    return copy


def _tree(root) -> dict:
    """Every file under ``root`` with its bytes, and every folder (``None``)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _refused(argv, error_line, *needles) -> str:
    assert main(argv) == 2
    line = error_line()
    assert line.startswith("genlab: error:"), line
    for n in needles:
        assert n in line, line
    return line


def _events(folder) -> list[str]:
    return sorted(p.name for p in folder.glob("events.out.tfevents.*"))


def test_overwrite_never_deletes_event_files_genlab_log_did_not_write(run, tmp_path, error_line, capsys):
    user = tmp_path / "userlogs"
    user.mkdir()
    (user / "events.out.tfevents.123.other.0").write_text("precious\n")
    before = _tree(tmp_path)
    _refused(["log", "run", "--to", "tensorboard", "--logdir", "userlogs", "--overwrite"], error_line,
             "events.out.tfevents.123.other.0", "--logdir")
    assert _tree(tmp_path) == before

    # a replay of this run is replaced by --overwrite; the user's other files in the folder stay
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "notes.txt").write_text("mine\n")
    assert main(["log", "run", "--to", "tensorboard", "--logdir", "logs"]) == 0
    first = _events(logs)
    assert len(first) == 1 and first[0].endswith(tracking.replay_mark(run))
    _refused(["log", "run", "--to", "tensorboard", "--logdir", "logs"], error_line, "already holds", "--overwrite")
    assert main(["log", "run", "--to", "tensorboard", "--logdir", "logs", "--overwrite"]) == 0
    second = _events(logs)
    assert len(second) == 1 and second != first
    assert (logs / "notes.txt").read_text() == "mine\n"
    assert sorted(p.name for p in logs.iterdir()) == sorted(second + ["notes.txt"])
    capsys.readouterr()

    # another run's replay in the folder is not this run's log: refused, even with --overwrite
    other = tmp_path / "other"
    shutil.copytree(run, other)
    before = _tree(tmp_path)
    _refused(["log", "other", "--to", "tensorboard", "--logdir", "logs", "--overwrite"], error_line, second[0])
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("to", TRACKERS)
@pytest.mark.parametrize("logdir", ["somefile", "somefile/x"])
def test_a_logdir_through_a_file_is_one_line(run, tmp_path, error_line, to, logdir):
    (tmp_path / "somefile").write_text("x\n")
    before = _tree(tmp_path)
    _refused(["log", "run", "--to", to, "--logdir", logdir], error_line, "somefile is a file", "--logdir")
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("to", TRACKERS)
def test_a_truncated_sample_grid_is_one_line_and_nothing_is_written(run, error_line, to):
    png = run / "samples" / "epoch-0001.png"
    data = png.read_bytes()
    png.write_bytes(data[:len(data) // 2])
    before = _tree(run)
    _refused(["log", "run", "--to", to], error_line, "epoch-0001.png", "delete it")
    assert _tree(run) == before


@pytest.mark.parametrize("to", TRACKERS)
def test_a_damaged_final_metrics_file_leaves_no_log(run, error_line, to):
    (run / "final_metrics.json").write_text("garbage {\n")
    before = _tree(run)
    _refused(["log", "run", "--to", to], error_line, "final_metrics.json")
    assert _tree(run) == before


@pytest.mark.parametrize("to", TRACKERS)
@pytest.mark.parametrize("how", ["empty", "missing"])
def test_a_run_without_metrics_is_refused(run, error_line, to, how):
    f = run / "metrics.jsonl"
    if how == "empty":
        f.write_text("")
    else:
        f.unlink()
    before = _tree(run)
    _refused(["log", "run", "--to", to], error_line, "no metrics to log", "train it first")
    assert _tree(run) == before


def test_a_replay_that_fails_while_writing_keeps_the_earlier_log_and_leaves_nothing(run, tmp_path, monkeypatch,
                                                                                    capsys):
    assert main(["log", "run", "--to", "tensorboard", "--logdir", "deep/logs"]) == 0
    before = _tree(tmp_path)

    def broken(self, tag, png, step):
        raise OSError("disk full")

    monkeypatch.setattr(tracking.TensorBoardSink, "image", broken)
    with pytest.raises(OSError, match="disk full"):
        tracking.replay(run, "tensorboard", log_dir="deep/logs", overwrite=True)
    assert _tree(tmp_path) == before  # the earlier replay stays, no temp folder
    with pytest.raises(OSError, match="disk full"):
        tracking.replay(run, "tensorboard", log_dir="new/logs")
    assert _tree(tmp_path) == before  # the folders this call made are gone too
    if HAVE_MLFLOW:
        monkeypatch.setattr(tracking.MlflowSink, "image", broken)
        with pytest.raises(OSError, match="disk full"):
            tracking.replay(run, "mlflow")
        assert _tree(tmp_path) == before  # no run/mlruns store left
