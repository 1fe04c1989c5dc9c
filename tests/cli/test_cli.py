"""CLI: commands end to end through a subprocess, and bad input -> one line on stderr, exit 2, no traceback."""
import gzip
import json
import struct

import numpy as np
import pytest

from genlab.cli import examples, main
from tests.conftest import run_cli

QUICK = ["trainer.epochs=1", "trainer.batch_size=64", "data.limit=300", "trainer.precision=fp32",
         "trainer.channels_last=false", "model.latent_dim=4"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    r = run_cli("train", "vae", "--data", "digits", *QUICK, "--out", out)
    assert r.returncode == 0, r.stderr
    return out, r


def test_train_writes_run_folder(trained_run):
    out, r = trained_run
    for f in ("config.json", "metrics.jsonl", "model/config.json", "model/model.safetensors", "samples.png",
              "reconstructions.png", "interpolation.png", "loss_curves.png", "report.html",
              "final_metrics.json", "checkpoints/last/trainer_state.json"):
        assert (out / f).is_file(), f
    assert "report:" in r.stdout
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(x["split"] == "val" for x in recs)


def test_sample_reconstruct_info(trained_run, tmp_path):
    out, _ = trained_run
    r = run_cli("sample", out, "-n", "16", "-o", tmp_path / "s.png")
    assert r.returncode == 0, r.stderr and (tmp_path / "s.png").stat().st_size > 0
    r = run_cli("sample", out, "-n", "5", "-o", tmp_path / "s.npz")
    assert r.returncode == 0, r.stderr
    arr = np.load(tmp_path / "s.npz")
    assert arr["x"].shape == (5, 1, 8, 8) and np.allclose(arr["raw"], arr["x"] * 16, atol=1e-5)
    r = run_cli("reconstruct", out, "-n", "8", "-o", tmp_path / "r.png")
    assert r.returncode == 0 and "MSE" in r.stdout, r.stderr
    r = run_cli("info", out)
    assert r.returncode == 0 and "vae" in r.stdout and "latent_dim" in r.stdout


def test_resume_continues_a_finished_run_to_more_epochs(trained_run, tmp_path):
    import shutil
    out, _ = trained_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    r = run_cli("train", "--resume", copy)
    assert r.returncode == 0, r.stderr  # nothing left to do: finishes at once with the same step count
    assert json.loads((copy / "final_metrics.json").read_text())["steps"] == \
        json.loads((out / "final_metrics.json").read_text())["steps"]


def test_models_datasets_and_help():
    r = run_cli("models")
    assert r.returncode == 0 and "vae" in r.stdout and "ae" in r.stdout
    r = run_cli("datasets")
    assert r.returncode == 0 and "digits" in r.stdout and "cifar10" in r.stdout
    for cmd in examples():
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0


@pytest.mark.parametrize("cmd", list(examples()))
def test_every_help_has_an_example(cmd, capsys):
    with pytest.raises(SystemExit):
        main([cmd, "--help"])
    assert "example: genlab " + cmd in capsys.readouterr().out


def test_unknown_model_via_subprocess(tmp_path):
    r = run_cli("train", "nope", "--data", "digits", "--out", tmp_path / "x")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "unknown model 'nope'" in r.stderr and "vae" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "x").exists()


def _bad(argv, capsys, *needles):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.count("\n") == 0 and err.startswith("genlab: error:"), err
    for n in needles:
        assert n in err, err
    return err


def test_bad_inputs_exit_2_one_line(tmp_path, capsys):
    out = tmp_path / "o"
    _bad(["train", "vae", "--data", "nosuchset", "--out", str(out)], capsys, "nosuchset", "digits")
    _bad(["train", "vae", "--data", "digits", "model.latnt_dim=3", "--out", str(out)], capsys,
         "unknown key 'latnt_dim'", "latent_dim")
    _bad(["train", "vae", "--data", "digits", "trainer.epochs=many", "--out", str(out)], capsys,
         "trainer.epochs", "int")
    _bad(["train", "vae", "--data", "digits", "model.beta=-1", "--out", str(out)], capsys, "beta")
    _bad(["train", "vae", "--data", "digits", "bogus.key=1", "--out", str(out)], capsys, "section 'bogus'")
    assert not out.exists()


def test_data_shape_model_cannot_take(tmp_path, capsys):
    np.save(tmp_path / "tiny.npy", np.random.rand(20, 1, 2, 2).astype(np.float32))
    _bad(["train", "vae", "--data", str(tmp_path / "tiny.npy"), "--out", str(tmp_path / "o")], capsys,
         "H, W >= 4")
    np.save(tmp_path / "tab.npy", np.random.rand(20, 3).astype(np.float32))
    _bad(["train", "vae", "--data", str(tmp_path / "tab.npy"), "model.arch=conv", "--out", str(tmp_path / "o")],
         capsys, "arch='conv' needs image data")
    _bad(["train", "vae", "--data", str(tmp_path / "tab.npy"), "model.likelihood=bernoulli", "--out",
          str(tmp_path / "o")], capsys, "bernoulli", "tabular")
    np.save(tmp_path / "big.npy", np.random.rand(8, 1, 70, 70).astype(np.float32))  # dcgan's nets stop at 64x64
    _bad(["train", "dcgan", "--data", str(tmp_path / "big.npy"), "--out", str(tmp_path / "o")], capsys,
         "70x70 is larger than the DCGAN networks' largest side, 64x64", "progan or stylegan")
    assert not (tmp_path / "o").exists()


def test_nan_in_image_data(tmp_path, capsys):
    x = np.random.rand(10, 1, 8, 8).astype(np.float32)
    x[3, 0, 2, 2] = np.nan
    np.savez(tmp_path / "nan.npz", x=x)
    _bad(["train", "vae", "--data", str(tmp_path / "nan.npz"), "--out", str(tmp_path / "o")], capsys, "NaN")


def test_corrupt_idx_and_missing_files(tmp_path, capsys):
    root = tmp_path / "data"
    (root / "mnist").mkdir(parents=True)
    err = _bad(["train", "vae", "--data", "mnist", "--data-dir", str(root), "data.download=false", "--out",
                str(tmp_path / "o")], capsys, "mnist")
    assert "train-images-idx3-ubyte.gz" in err
    # a truncated image file
    with gzip.open(root / "mnist" / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, 10, 28, 28) + b"\0" * 100)
    with gzip.open(root / "mnist" / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x801, 10) + b"\0" * 10)
    _bad(["train", "vae", "--data", "mnist", "--data-dir", str(root), "data.download=false", "--out",
          str(tmp_path / "o")], capsys, "train-images-idx3-ubyte.gz")
    assert not (tmp_path / "o").exists()


def test_broken_checkpoint_folders(tmp_path, capsys, trained_run):
    import shutil
    out, _ = trained_run
    _bad(["sample", str(tmp_path / "nowhere")], capsys, "does not exist")
    broken = tmp_path / "broken"
    shutil.copytree(out / "model", broken)
    (broken / "model.safetensors").write_bytes(b"garbage")
    _bad(["sample", str(broken), "-o", str(tmp_path / "s.png")], capsys, "model.safetensors")
    assert not (tmp_path / "s.png").exists()
    rec = json.loads((out / "model" / "config.json").read_text())
    shutil.copytree(out / "model", tmp_path / "old")
    (tmp_path / "old" / "config.json").write_text(json.dumps({**rec, "format_version": 0}))
    _bad(["info", str(tmp_path / "old")], capsys, "format_version 0")


def test_existing_out_folder_is_not_clobbered(trained_run, capsys):
    out, _ = trained_run
    _bad(["train", "vae", "--data", "digits", "--out", str(out)], capsys, "already exists", "--overwrite")


def test_config_file_with_overrides(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model:\n  latent_dim: 4\ntrainer:\n  epochs: 1\n  bogus: 3\n")
    _bad(["train", "vae", "--data", "digits", "--config", str(cfg), "--out", str(tmp_path / "o")], capsys,
         "trainer: unknown key 'bogus'")
    (tmp_path / "bad.yaml").write_text("model: [1, 2\n")
    _bad(["train", "vae", "--config", str(tmp_path / "bad.yaml")], capsys, "not valid YAML")


@pytest.mark.parametrize("name", ["cvae", "sparse-ae", "denoising-ae", "contractive-ae"])
def test_family_models_train_from_cli(name, tmp_path, capsys):
    out = tmp_path / name
    code = main(["train", name, "--data", "digits", *QUICK, "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()  # drop the progress bar output before checking error lines
    for f in ("model/model.safetensors", "reconstructions.png", "report.html"):
        assert (out / f).is_file(), f
    if name == "cvae":
        assert (out / "interpolation.png").is_file() and (out / "samples.png").is_file()
        assert main(["sample", str(out), "-n", "10", "--labels", "0,1,2,3,4,5,6,7,8,9", "-o",
                     str(tmp_path / "s.png")]) == 0
        capsys.readouterr()
        _bad(["sample", str(out), "-n", "3", "--labels", "12", "-o", str(tmp_path / "t.png")], capsys, "labels")
        assert not (tmp_path / "t.png").exists()
    else:
        _bad(["sample", str(out), "--labels", "1"], capsys, "conditional")


@pytest.mark.parametrize("argv, expected", [
    (["detect", "digits", "-o", "x", "--epochs", "abc"],
     "genlab detect: error: argument --epochs: invalid int value: 'abc'; see 'genlab detect --help'"),
    (["detect", "digits", "-o", "x", "--bogus"],
     "genlab detect: error: unrecognized arguments: --bogus; see 'genlab detect --help'"),
    (["models", "extra"], "genlab models: error: unrecognized arguments: extra; see 'genlab models --help'"),
    (["detect"], "genlab detect: error: the following arguments are required: input, -o/--out; "
                 "see 'genlab detect --help'"),
    ([], "genlab: error: the following arguments are required: COMMAND; see 'genlab --help'"),
])
def test_argument_errors_are_one_line(argv, expected, error_line, tmp_path, monkeypatch):
    """argparse's errors follow the CLI's rule: one line naming the problem and where the fix is, exit 2, no
    usage block; an unknown flag after a command is that command's error, not the top level's."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert error_line() == expected
    assert list(tmp_path.iterdir()) == []


def test_unknown_command_lists_the_commands(error_line):
    with pytest.raises(SystemExit) as e:
        main(["nosuch"])
    assert e.value.code == 2
    line = error_line()
    assert line.startswith("genlab: error: argument COMMAND: invalid choice: 'nosuch' (choose from 'train', ")
    assert line.endswith("'demo'); see 'genlab --help'")


def test_saved_estimator_refuses_a_csv_with_other_columns(tmp_path, capsys):
    """A detector fitted on a CSV with a header keeps the names; a CSV whose columns are swapped (same count, so
    it used to be scored as if in the fitted order) is refused with one line and nothing written."""
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(40, 3))
    body = "".join(",".join(f"{v:.4f}" for v in r) + "\n" for r in rows)
    (tmp_path / "fit.csv").write_text("age,bmi,bp\n" + body)
    (tmp_path / "swapped.csv").write_text("bmi,age,bp\n" + body)
    (tmp_path / "plain.csv").write_text(body)
    assert main(["detect", str(tmp_path / "fit.csv"), "-o", str(tmp_path / "a"), "--epochs", "1", "--save",
                 str(tmp_path / "det"), "model.latent_dim=2"]) == 0
    capsys.readouterr()
    _bad(["detect", str(tmp_path / "swapped.csv"), "-o", str(tmp_path / "b"), "--run", str(tmp_path / "det")],
         capsys, "the columns are in another order than in fit (column 1 is 'bmi', fitted 'age')",
         "give them in the fitted order: age, bmi, bp")
    assert not (tmp_path / "b").exists()
    assert main(["detect", str(tmp_path / "plain.csv"), "-o", str(tmp_path / "c"), "--run",
                 str(tmp_path / "det")]) == 0  # no header: not checked, as scikit-learn does with plain arrays
