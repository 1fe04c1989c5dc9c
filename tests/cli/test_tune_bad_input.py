"""``genlab tune`` on bad input: one line on stderr, exit 2, refused before the tune folder is made, and nothing a
user owns touched; a failure after the folder is made removes only what the call created."""
from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("optuna")

from genlab.cli import main  # noqa: E402
from genlab.errors import DataError  # noqa: E402

FAST = ["--no-retrain", "--no-trial-figures", "--sampler", "random", "trainer.epochs=1", "trainer.batch_size=64",
        "trainer.precision=fp32", "trainer.channels_last=false", "trainer.fid_samples=0", "trainer.sample_every=0",
        "data.limit=200"]
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def tune(*args, trials="1", data="digits"):
    return main(["tune", "vae", "--data", str(data), "--trials", trials, *map(str, args), *FAST])


def test_out_through_a_file_is_one_line(tmp_path, error_line):
    (tmp_path / "somefile").write_text("mine\n")
    assert tune("-o", tmp_path / "somefile" / "x") == 2
    line = error_line()
    assert "somefile is a file, not a folder" in line and "Traceback" not in line
    assert (tmp_path / "somefile").read_text() == "mine\n"


@pytest.mark.parametrize("seed", ["-1", "99999999999999999999", str(2**32)])
def test_seed_out_of_range_names_the_range(tmp_path, error_line, seed):
    with pytest.raises(SystemExit) as e:  # the CLI's --seed type, shared by every command
        tune("-o", tmp_path / "t", "--seed", seed)
    assert e.value.code == 2
    assert f"argument --seed: must be an integer in [0, 4294967295], got {seed}" in error_line()
    from genlab.errors import ConfigError
    from genlab.tuning import tune as tune_api
    with pytest.raises(ConfigError, match="seed must be an int from 0 to 4294967295"):  # and the Python API
        tune_api("vae", "digits", trials=1, out=tmp_path / "t", seed=int(seed))
    assert not (tmp_path / "t").exists()


def test_hostile_trial_and_worker_counts_are_refused_up_front(tmp_path, error_line):
    # (the old code ran trials until --timeout: a refusal must come before any trial)
    assert tune("-o", tmp_path / "t", "--timeout", "2", trials="100000000000") == 2
    assert "trials must be an int from 0 to 100000" in error_line()
    assert tune("-o", tmp_path / "t", "--workers", 2 * CORES + 1) == 2
    assert f"workers must be an int from 1 to {2 * CORES}" in error_line()
    assert not (tmp_path / "t").exists()


def test_check_counts_in_python():
    from genlab.tuning.search import MAX_TRIALS, SEED_MAX, check_counts, max_workers
    check_counts(MAX_TRIALS, max_workers(), SEED_MAX)
    for bad in ((10**11, 1, 0), (-1, 1, 0), (1, 10**11, 0), (1, 0, 0), (1, 1, -1), (1, 1, 2**64), (1.5, 1, 0)):
        with pytest.raises(Exception, match="must be an int from"):
            check_counts(*bad)


def test_trials_zero_on_a_new_study_is_refused_and_writes_nothing(tmp_path, error_line):
    assert tune("-o", tmp_path / "t", trials="0") == 2
    line = error_line()
    assert "trials=0 only rewrites the outputs of an existing study" in line and "--trials N" in line
    assert not (tmp_path / "t").exists()


def test_bad_data_is_refused_before_the_folder_is_made(tmp_path, error_line):
    x = np.random.default_rng(0).random((60, 1, 8, 8), dtype=np.float32)
    x[3, 0, 2, 2] = np.nan
    np.savez(tmp_path / "nanx.npz", x=x)
    assert tune("-o", tmp_path / "a", data=tmp_path / "nanx.npz") == 2
    assert "contains NaN" in error_line() and not (tmp_path / "a").exists()
    assert tune("-o", tmp_path / "b", data=tmp_path / "nosuch") == 2
    assert "nosuch" in error_line() and not (tmp_path / "b").exists()


def test_empty_study_name_is_refused(tmp_path, error_line):
    for name in ("", "  "):
        assert tune("-o", tmp_path / "t", "--study", name) == 2
        assert "the study name (--study) must be a non-empty string" in error_line()
    assert not (tmp_path / "t").exists()


def test_storage_that_is_a_user_file_is_left_unchanged(tmp_path, error_line):
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"my notes\x00\x01 not a database\n")
    empty = tmp_path / "empty.db"
    empty.touch()
    for f in (notes, empty):
        before = f.read_bytes()
        assert tune("-o", tmp_path / "t", "--storage", f) == 2
        line = error_line()
        assert "not a SQLite database" in line and str(f) in line
        assert f.read_bytes() == before
    assert not (tmp_path / "t").exists()


def _failing_train(*args, **kwargs):
    raise DataError("boom: the data went away")


def test_failure_in_the_first_trial_removes_what_the_call_created(tmp_path, error_line, monkeypatch):
    monkeypatch.setattr("genlab.runs.train", _failing_train)
    assert tune("-o", tmp_path / "new" / "deeper" / "t") == 2
    assert "boom" in error_line() and not (tmp_path / "new").exists()
    empty = tmp_path / "empty"  # the user's empty folder stays, and stays empty
    empty.mkdir()
    assert tune("-o", empty) == 2
    assert "boom" in error_line() and empty.is_dir() and not any(empty.iterdir())
    # a user storage file made by this call is removed; the user's own files beside it are not
    (tmp_path / "keep.txt").write_text("mine")
    assert tune("-o", tmp_path / "u", "--storage", tmp_path / "new.db") == 2
    assert "boom" in error_line()
    assert not (tmp_path / "new.db").exists() and not (tmp_path / "u").exists()
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_failure_when_continuing_keeps_the_study(tmp_path, error_line, monkeypatch, capsys):
    out = tmp_path / "t"
    assert tune("-o", out) == 0
    capsys.readouterr()
    before = sorted(p.name for p in out.iterdir())
    monkeypatch.setattr("genlab.runs.train", _failing_train)
    assert tune("-o", out) == 2
    assert "boom" in error_line()
    assert sorted(p.name for p in out.iterdir()) == before  # the study the user continued is kept
    import optuna
    study = optuna.load_study(study_name="vae-digits", storage=f"sqlite:///{out / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL"]
