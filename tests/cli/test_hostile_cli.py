"""Bad input to the commands outside the seven applications (an audit of ~490 hostile invocations): outputs that
exist or run through a file, hostile sizes and seeds, options a folder given with --run would ignore, masks with
nothing to inpaint. Each is one line on stderr, exit 2, and nothing written or changed."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from genlab.cli import main
from tests.cli.test_cli import QUICK, _bad
from tests.conftest import run_cli

TINY_I2I = ["--epochs", "1", "trainer.precision=fp32", "trainer.channels_last=false", "trainer.batch_size=32",
            "--set", "width=4", "--set", "d_width=4"]


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    r = run_cli("train", "vae", "--data", "digits", *QUICK, "--out", d / "run")
    assert r.returncode == 0, r.stderr
    from genlab.data import load_dataset
    x = load_dataset("digits").x[:64].numpy()
    np.savez(d / "digits.npz", x=x)
    np.savez(d / "low.npz", x=x.reshape(64, 1, 4, 2, 4, 2).mean(axis=(3, 5)))
    assert main(["upscale", str(d / "digits.npz"), "--degrade", "-o", str(d / "up"), "--save", str(d / "upest"),
                 *TINY_I2I, "--set", "n_blocks=1"]) == 0
    (d / "somefile").write_text("hi")
    (d / "mine").mkdir()
    (d / "mine" / "metrics.json").write_text("USER DATA")
    return d


def test_existing_outputs_are_refused_and_untouched(files, capsys):
    before = _digest(files)
    run, mine = str(files / "run"), str(files / "mine")
    _bad(["upscale", str(files / "low.npz"), "--run", str(files / "upest"), "-o", mine], capsys,
         "--out", "already exists and is not empty")
    _bad(["upscale", str(files / "digits.npz"), "--degrade", "-o", str(files / "new1"), "--save", str(files / "upest"),
          *TINY_I2I], capsys, "--save", "already exists and is not empty")
    _bad(["interpolate", "digits", "--run", run, "-o", mine], capsys, "already exists and is not empty")
    _bad(["interpolate", "digits", "--run", run, "-o", str(files / "somefile")], capsys, "is a file")
    _bad(["interpolate", "digits", "--run", run, "-o", str(files / "somefile" / "x")], capsys,
         "somefile is a file, not a folder")
    (files / "mine" / "s.png").write_bytes(b"png of mine")
    _bad(["sample", run, "-n", "4", "-o", str(files / "mine" / "s.png")], capsys, "already exists; give a new file")
    _bad(["reconstruct", run, "-n", "4", "-o", str(files / "mine" / "s.png")], capsys, "already exists")
    (files / "mine" / "g-001.png").write_bytes(b"part of mine")  # 300 images: g-000.png, g-001.png
    _bad(["sample", run, "-n", "300", "-o", str(files / "mine" / "g.png")], capsys, "g-001.png already exists")
    _bad(["train", "vae", "--data", "digits", "-o", str(files / "somefile" / "x"), *QUICK], capsys,
         "somefile is a file, not a folder")
    _bad(["demo", "trainer.epochs=1", "-o", run], capsys, "holds a genlab run", "--overwrite")
    after = _digest(files)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing the user had changed
    assert set(after) - set(before) == {"mine/s.png", "mine/g-001.png"}  # only the files this test wrote


def test_hostile_sizes_and_seeds(files, capsys):
    run = str(files / "run")
    _bad(["train", "vae", "--data", "digits", "-o", str(files / "np"), "--nproc", "100000000000", *QUICK], capsys,
         "--nproc 100000000000 is more processes than this machine can run")
    _bad(["reconstruct", run, "-n", "0", "-o", str(files / "r.png")], capsys, "-n must be >= 1")
    _bad(["reconstruct", run, "-n", "-1", "-o", str(files / "r.png")], capsys, "-n must be >= 1")
    _bad(["evaluate", run, "-n", "100000000000", "--features", "digits", "--no-cache", "--metrics", "fid"], capsys,
         "out of memory")
    for argv in (["sample", run, "-n", "4", "-o", str(files / "s.png")],
                 ["detect", "digits", "-o", str(files / "d")]):
        for seed in ("-1", "99999999999999999999"):
            with pytest.raises(SystemExit) as e:
                main([*argv, "--seed", seed])
            assert e.value.code == 2
            err = capsys.readouterr().err.strip()
            assert err.count("\n") == 0 and f"argument --seed: must be an integer in [0, 4294967295], got {seed}" \
                in err, err
    assert not any((files / n).exists() for n in ("np", "r.png", "s.png", "d"))


def test_options_a_run_folder_would_ignore(files, capsys, tmp_path):
    run, est = str(files / "run"), str(files / "upest")
    out = str(tmp_path / "o")
    _bad(["upscale", str(files / "low.npz"), "--run", est, "--model", "srgan", "-o", out], capsys,
         "its model is the folder's, so --model srgan does not apply")
    _bad(["upscale", str(files / "low.npz"), "--run", est, "--train", str(files / "digits.npz"), "-o", out], capsys,
         "nothing is fitted, so --train")
    _bad(["interpolate", "digits", "--run", run, "--model", "dcgan", "-o", out], capsys, "--model dcgan does not apply")
    _bad(["interpolate", "digits", "--run", run, "--span", "nan", "-o", out], capsys,
         "--span sets the traversal; add --traverse")
    _bad(["interpolate", "digits", "--run", run, "--traverse", "--span", "inf", "-o", out], capsys,
         "--span must be a finite number > 0")
    _bad(["interpolate", "digits", "--run", run, "--traverse", "--dims", ",", "-o", out], capsys,
         "--dims names no dimension")
    _bad(["evaluate", "--real", str(files / "digits.npz"), "--fake", str(files / "digits.npz"), "-n", "5"], capsys,
         "-n chooses the samples and real split of a RUN")
    _bad(["sample", run, "-n", "4", "--labels", "", "-o", str(tmp_path / "l.png")], capsys, "--labels")
    assert main(["interpolate", "digits", "--run", run, "-o", out, "--traverse", "--span", "2"]) == 0
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["traversal_span"] == 2.0
    assert not (tmp_path / "l.png").exists()


def test_detect_train_with_a_fitted_estimator(tmp_path, capsys):
    x = np.random.default_rng(0).random((40, 1, 8, 8), dtype=np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    assert main(["detect", str(tmp_path / "x.npz"), "-o", str(tmp_path / "a"), "--epochs", "1", "--save",
                 str(tmp_path / "det")]) == 0
    capsys.readouterr()
    _bad(["detect", str(tmp_path / "x.npz"), "-o", str(tmp_path / "b"), "--run", str(tmp_path / "det"), "--train",
          str(tmp_path / "x.npz")], capsys, "nothing is fitted, so --train")
    assert not (tmp_path / "b").exists()


def test_inpaint_masks_with_nothing_to_do(files, capsys, tmp_path):
    np.savez(tmp_path / "all.npz", x=np.ones((64, 1, 8, 8), np.float32))
    np.savez(tmp_path / "none.npz", x=np.zeros((64, 1, 8, 8), np.float32))
    common = [str(files / "digits.npz"), "--train", str(files / "digits.npz"), "-o", str(tmp_path / "o"), *TINY_I2I]
    _bad(["inpaint", *common, "--mask-file", str(tmp_path / "all.npz")], capsys, "hides every pixel of image 0")
    _bad(["inpaint", *common, "--mask-file", str(tmp_path / "none.npz")], capsys, "marks no pixel missing")
    assert not (tmp_path / "o").exists()


def test_demo_replaces_only_its_default_folder_or_with_overwrite(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    quick = ["trainer.epochs=1", "trainer.fid_samples=0", "model.latent_dim=2", "data.limit=200",
             "test.iwae_k=0", "--no-progress"]
    assert main(["demo", *quick]) == 0  # runs/demo, the demo's own folder
    assert main(["demo", *quick]) == 0  # replaced by the next demo
    assert main(["demo", *quick, "-o", "mine"]) == 0
    capsys.readouterr()
    _bad(["demo", *quick, "-o", "mine"], capsys, "already exists and holds a genlab run", "--overwrite")
    assert main(["demo", *quick, "-o", "mine", "--overwrite"]) == 0


def test_messages_name_the_cli_fix(files, capsys, tmp_path):
    """Refusals that named a Python call or a wrong cause now name the command-line fix (audit findings)."""
    run, est, out = str(files / "run"), str(files / "upest"), str(tmp_path / "o")
    _bad(["colorize", str(files / "low.npz"), "--run", str(tmp_path / "nonexist"), "-o", out], capsys,
         "nonexist does not exist; give a folder saved with --save")
    _bad(["detect", "digits", "--run", str(files / "somefile"), "-o", out], capsys, "somefile is a file")
    _bad(["colorize", str(files / "low.npz"), "--run", est, "-o", out], capsys,
         "holds an Upscaler, not a Colorizer; load it with Upscaler.load (genlab upscale --run")
    _bad(["sample", est, "-n", "4", "-o", str(tmp_path / "s.png")], capsys, "genlab upscale / colorize / inpaint")
    _bad(["info", str(files / "somefile")], capsys, "somefile is a file, not a folder")
    _bad(["translate", f"pairs:{files / 'somefile'}", "--run", est, "-o", out], capsys,
         "somefile is a file, not a folder; folder pairs need")
    _bad(["upscale", str(files / "digits.npz"), "--degrade", "--factor", "16", "-o", out, *TINY_I2I], capsys,
         "images of 8x8 are smaller than the factor 16")
    _bad(["interpolate", "digits", "--run", run, "--a", "3", "--b", "3", "-o", out], capsys,
         "--a and --b are both input 3")
    _bad(["evaluate", run, "--inception-weights", str(files / "somefile"), "--features", "inception", "-n", "10",
          "--metrics", "fid"], capsys, "cannot read Inception weights", "give the path of pt_inception")
    assert (files / "somefile").read_text() == "hi"
    assert not (tmp_path / "o").exists() and not (tmp_path / "s.png").exists()


def test_options_that_would_do_nothing_in_train_and_upscale(files, capsys, tmp_path):
    out = str(tmp_path / "o")
    _bad(["train", "vae", "--data", "digits", "--no-test", "test.iwae_k=5", "-o", out, *QUICK], capsys,
         "--no-test skips the test evaluation, so test.iwae_k would do nothing")
    _bad(["train", "vae", "--data", "digits", "--no-test", "--test-data", str(files / "digits.npz"), "-o", out,
          *QUICK], capsys, "so --test-data would do nothing")
    _bad(["upscale", str(files / "low.npz"), "--run", str(files / "upest"), "--factor", "0", "-o", out], capsys,
         "--factor must be an integer >= 2")
    assert not (tmp_path / "o").exists()


def test_evaluate_refuses_settings_it_would_ignore(files, capsys):
    run = str(files / "run")
    _bad(["evaluate", run, "--no-cache", "--cache-dir", str(files / "somefile")], capsys,
         "--no-cache neither reads nor writes", "--cache-dir would do nothing")
    _bad(["evaluate", run, "--features", "digits", "--inception-weights", str(files / "somefile")], capsys,
         "--features digits uses genlab's own feature net")


def test_second_audit_app_options(files, capsys, tmp_path):
    """The re-audit's findings in the app commands: options a fitted estimator or the other options make
    meaningless, one-row fits and hostile counts."""
    x = np.load(files / "digits.npz")["x"]
    np.savez(tmp_path / "lab.npz", x=x, y=np.arange(len(x)) % 4)
    np.savez(tmp_path / "one.npz", x=np.random.default_rng(0).random((1, 5), dtype=np.float32))
    lab, out = str(tmp_path / "lab.npz"), str(tmp_path / "o")
    assert main(["denoise", lab, "--add-noise", "-o", str(tmp_path / "d1"), "--epochs", "1", "--save",
                 str(tmp_path / "den")]) == 0
    capsys.readouterr()
    _bad(["denoise", lab, "--add-noise", "-o", out, "--run", str(tmp_path / "den"), "--level", "0.7"], capsys,
         "it keeps the settings it was fitted with, so --level does not apply; drop it")
    _bad(["detect", str(tmp_path / "one.npz"), "-o", out, "--epochs", "1"], capsys,
         "X has 1 sample; an anomaly detector needs at least 2")
    _bad(["augment", lab, "-o", out, "--balance", "-n", "5", "--epochs", "1"], capsys, "give one of them")
    _bad(["augment", lab, "-o", out, "--oversample", "3", "--epochs", "1"], capsys, "add --filter classifier")
    _bad(["augment", lab, "-o", out, "--max-shift", "3", "--shift-copies", "0", "--epochs", "1"], capsys,
         "--shift-copies 0 makes none")
    _bad(["augment", lab, "-o", out, "-n", "100000000000", "--epochs", "1"], capsys,
         "draws of (1, 8, 8) need", "more than this machine's", "ask for fewer samples per class")
    _bad(["detect", lab, "-o", out, "--epochs", "100000000000"], capsys, "trainer.epochs must be in [1, 10_000_000]")
    assert main(["latent-map", lab, "-o", str(tmp_path / "m1"), "--epochs", "1", "--save", str(tmp_path / "lm"),
                 "-n", "40"]) == 0
    capsys.readouterr()
    _bad(["latent-map", lab, "-o", out, "--run", str(tmp_path / "lm"), "--shift-copies"], capsys,
         "--shift-copies does not apply")
    assert not (tmp_path / "o").exists()


def test_image_only_display_options_refused_on_tables(capsys, tmp_path):
    np.savez(tmp_path / "tab.npz", x=np.random.default_rng(0).random((40, 5), dtype=np.float32))
    tab, out = str(tmp_path / "tab.npz"), str(tmp_path / "o")
    _bad(["detect", tab, "-o", out, "--top", "5", "--epochs", "1"], capsys,
         "--top sets the images of most_anomalous.png", "holds tabular data")
    _bad(["denoise", tab, "--add-noise", "-o", out, "--grid", "5", "--epochs", "1"], capsys,
         "--grid sets the images of denoise.png", "holds tabular data")
    assert not (tmp_path / "o").exists()


def test_resume_names_a_damaged_checkpoint_config(tmp_path, capsys):
    """A corrupt checkpoints/last/config.json was reported as 'written for a different model/config; resume with
    the run's own config (genlab train --resume RUN)', the very command that failed."""
    run = tmp_path / "run"
    assert main(["train", "vae", "--data", "digits", *QUICK, "--out", str(run)]) == 0
    capsys.readouterr()
    cfg = run / "checkpoints" / "last" / "config.json"
    cfg.write_text("{bad")
    _bad(["train", "--resume", str(run), "trainer.epochs=2"], capsys, "config.json is corrupt",
         "the checkpoint is damaged; resume from another checkpoint")
    cfg.unlink()
    _bad(["train", "--resume", str(run), "trainer.epochs=2"], capsys, "config.json is missing",
         "the checkpoint is incomplete")
