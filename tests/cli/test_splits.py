"""CLI: explicit --val-data/--test-data splits, the configurable end-of-run test (test.iwae_k, --no-test), and the
commands that open a run folder (info, evaluate, reconstruct) rebuilding its splits through open_run."""
import json

import numpy as np
import pytest

from genlab.cli import main
from genlab.data import load_dataset
from tests.cli.test_cli import _bad

QUICK = ["trainer.epochs=1", "trainer.batch_size=64", "trainer.precision=fp32", "trainer.channels_last=false",
         "model.latent_dim=4"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("split-files")
    d = load_dataset("digits")
    x, y = d.x.numpy(), d.y.numpy()
    np.savez(root / "train.npz", x=x[:400], y=y[:400])
    np.savez(root / "val.npz", x=x[1200:1300], y=y[1200:1300])
    np.savez(root / "test.npz", x=x[1500:1580], y=y[1500:1580])
    np.savez(root / "small.npz", x=np.random.rand(10, 1, 6, 6).astype(np.float32), y=np.zeros(10, dtype=np.int64))
    return root


@pytest.fixture(scope="module")
def split_run(files):
    out = files / "run"
    code = main(["train", "vae", "--data", str(files / "train.npz"), "--val-data", str(files / "val.npz"),
                 "--test-data", str(files / "test.npz"), *QUICK, "test.iwae_k=3", "--out", str(out)])
    assert code == 0
    return out




def test_explicit_splits_are_recorded_and_used(split_run, files, capsys):
    cfg = json.loads((split_run / "config.json").read_text())
    d = cfg["sections"]["data"]
    assert d["val_data"] == str(files / "val.npz") and d["test_data"] == str(files / "test.npz")
    assert d["val"] == 0.0 and d["test"] == 0.0 and cfg["sections"]["test"] == {"enabled": True, "iwae_k": 3}
    assert cfg["split_sizes"] == {"train": 400, "val": 100, "test": 80}
    assert all(len(cfg["data_sources"][r]["sha256"]) == 64 for r in ("train", "val", "test"))
    m = json.loads((split_run / "final_metrics.json").read_text())
    assert m["test_samples"] == 80 and "test_iwae_k3" in m and "test_iwae_k100" not in m
    capsys.readouterr()
    assert main(["info", str(split_run)]) == 0
    out = capsys.readouterr().out
    for needle in ("split sizes", "train 400, val 100, test 80", "source.val", "(100 samples", "test.iwae_k",
                   "data.val_data", "checkpoints"):
        assert needle in out, needle


def test_evaluate_and_reconstruct_use_the_recorded_splits(split_run, files, tmp_path, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(split_run), "--split", "test", "-n", "40", "--metrics", "fid", "--json",
                 "--cache-dir", str(tmp_path / "c")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_real"] == 80 and res["n_fake"] == 40 and np.isfinite(res["metrics"]["FID-digits"])
    assert main(["evaluate", str(split_run), "--split", "val", "-n", "40", "--metrics", "fid", "--json",
                 "--cache-dir", str(tmp_path / "c")]) == 0
    assert json.loads(capsys.readouterr().out)["n_real"] == 100
    assert main(["reconstruct", str(split_run), "-n", "5", "-o", str(tmp_path / "r.npz")]) == 0
    assert np.load(tmp_path / "r.npz")["x"].shape == (5, 1, 8, 8)
    # the test file changed since training: refused, nothing written
    backup = (files / "test.npz").read_bytes()
    try:
        arr = dict(np.load(files / "test.npz"))
        arr["x"] = arr["x"][::-1].copy()
        np.savez(files / "test.npz", **arr)
        capsys.readouterr()
        _bad(["reconstruct", str(split_run), "-o", str(tmp_path / "r2.png")], capsys, "test.npz",
             "now holds different values", "restore the original data")
        _bad(["evaluate", str(split_run), "--split", "test", "-n", "10", "--metrics", "fid"], capsys,
             "now holds different values")
        assert not (tmp_path / "r2.png").exists()
    finally:
        (files / "test.npz").write_bytes(backup)


def test_no_test_and_bad_split_arguments(files, tmp_path, capsys):
    out = tmp_path / "nt"
    assert main(["train", "ae", "--data", str(files / "train.npz"), *QUICK, "--no-test", "--out", str(out)]) == 0
    m = json.loads((out / "final_metrics.json").read_text())
    assert not any(k.startswith(("test_", "pca_", "mse_vs")) for k in m) and "val_loss" in m
    capsys.readouterr()
    _bad(["train", "vae", "--data", str(files / "train.npz"), "--val-data", str(files / "small.npz"),
          "--out", str(tmp_path / "o")], capsys, "small.npz", "(1, 6, 6)", "(1, 8, 8)")
    _bad(["train", "vae", "--data", str(files / "train.npz"), "--test-data", str(tmp_path / "none.npz"),
          "--out", str(tmp_path / "o")], capsys, "none.npz")
    _bad(["train", "vae", "--data", str(files / "train.npz"), "test.iwae_k=-1", "--out", str(tmp_path / "o")],
         capsys, "test.iwae_k must be in [0, 100000]")
    _bad(["train", "vae", "--data", str(files / "train.npz"), "--val-data", str(files / "val.npz"),
          "data.val_data=other.npz", "--out", str(tmp_path / "o")], capsys, "disagree")
    _bad(["train", "--resume", str(out), "--val-data", str(files / "val.npz")], capsys, "--val-data")
    assert not (tmp_path / "o").exists()
    # the test section may change on resume (it does not change what was trained)
    assert main(["train", "--resume", str(out), "test.iwae_k=0"]) == 0


def test_info_on_a_saved_model_folder_and_reconstruct_needs_data(split_run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["info", str(split_run / "model")]) == 0
    assert "config.latent_dim" in capsys.readouterr().out
    _bad(["reconstruct", str(split_run / "model"), "-o", str(tmp_path / "x.png")], capsys, "pass --data")
