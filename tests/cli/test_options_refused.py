"""Command-line options that would do nothing are refused with one line (exit 2) instead of being ignored: fit-time
settings with a fitted estimator (``--run``), a tabular setting on images and the reverse, ``--bits`` without the
fixed coder, more kNN neighbours than a fold holds, a class named twice."""
from __future__ import annotations

import json

import numpy as np
import pytest

from genlab.cli import main



@pytest.fixture()
def images(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 8, 8), dtype=np.float32)
    x[0, 0, 0, 0] = np.nan
    np.savez(tmp_path / "img.npz", x=x, y=np.arange(40) % 4)
    return tmp_path / "img.npz"


@pytest.fixture()
def table(tmp_path):
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(40, 4))
    text = "a,b,c,d\n" + "".join(",".join("" if (i % 5 == 0 and j == 1) else f"{v:.4f}" for j, v in enumerate(r))
                                 + "\n" for i, r in enumerate(rows))
    (tmp_path / "t.csv").write_text(text)
    return tmp_path / "t.csv"


def test_impute_refuses_the_other_kinds_setting(images, table, tmp_path, error_line):
    assert main(["impute", str(images), "-o", str(tmp_path / "a"), "--epochs", "1", "--gaussian-weight", "0.5"]) == 2
    assert "--gaussian-weight" in error_line() and not (tmp_path / "a").exists()
    assert main(["impute", str(table), "-o", str(tmp_path / "b"), "--epochs", "1", "--mask-copies", "2"]) == 2
    assert "--mask-copies" in error_line() and not (tmp_path / "b").exists()


def test_impute_run_takes_fill_settings_and_refuses_fit_settings(images, tmp_path, error_line):
    assert main(["impute", str(images), "-o", str(tmp_path / "a"), "--epochs", "1", "--save", str(tmp_path / "imp"),
                 "--model", "ae"]) == 0
    assert main(["impute", str(images), "-o", str(tmp_path / "b"), "--run", str(tmp_path / "imp"),
                 "--mask-copies", "2"]) == 2
    assert "it keeps the settings it was fitted with, so --mask-copies does not apply; drop it" in error_line()
    assert main(["impute", str(images), "-o", str(tmp_path / "c"), "--run", str(tmp_path / "imp"),
                 "--n-iter", "3"]) == 0
    assert json.loads((tmp_path / "c" / "metrics.json").read_text())["n_iter"] == 3


def test_compress_bits_needs_the_fixed_coder(tmp_path, capsys, error_line):
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(2).random((30, 1, 8, 8), dtype=np.float32))
    assert main(["compress", str(tmp_path / "x.npz"), "-o", str(tmp_path / "x.glc"), "--epochs", "1",
                 "--rd-epochs", "1"]) == 0
    capsys.readouterr()
    assert main(["compress", str(tmp_path / "x.npz"), "-o", str(tmp_path / "b.glc"), "--run",
                 str(tmp_path / "x.compressor"), "--bits", "4"]) == 2
    assert "codes with 'ans'; drop --bits" in error_line() and not (tmp_path / "b.glc").exists()


def test_latent_map_k_must_fit_in_a_fold(images, tmp_path, error_line):
    np.savez(tmp_path / "clean.npz", x=np.nan_to_num(np.load(images)["x"]), y=np.arange(40) % 4)
    assert main(["latent-map", str(tmp_path / "clean.npz"), "-o", str(tmp_path / "m"), "--k", "500",
                 "--epochs", "1"]) == 2
    assert "--k 500 is more neighbours than the 32 samples" in error_line() and not (tmp_path / "m").exists()


def test_augment_classes_once_each(tmp_path, error_line):
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(3).random((40, 1, 8, 8), dtype=np.float32),
             y=np.arange(40) % 4)
    assert main(["augment", str(tmp_path / "d.npz"), "-o", str(tmp_path / "a"), "-n", "2", "--epochs", "1",
                 "--classes", "1,1"]) == 2
    assert "--classes must name each class once" in error_line() and not (tmp_path / "a").exists()


def test_save_with_a_fitted_estimator_is_refused(images, tmp_path, capsys, error_line):
    np.savez(tmp_path / "clean.npz", x=np.nan_to_num(np.load(images)["x"]), y=np.arange(40) % 4)
    assert main(["detect", str(tmp_path / "clean.npz"), "-o", str(tmp_path / "a"), "--epochs", "1", "--save",
                 str(tmp_path / "det")]) == 0
    capsys.readouterr()
    assert main(["detect", str(tmp_path / "clean.npz"), "-o", str(tmp_path / "b"), "--run", str(tmp_path / "det"),
                 "--save", str(tmp_path / "det2")]) == 2
    assert "nothing new to --save" in error_line() and not (tmp_path / "det2").exists()


def test_compress_fixed_coder_refuses_the_ans_settings(tmp_path, error_line):
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(2).random((30, 1, 8, 8), dtype=np.float32))
    for extra, flags in ((["--coder", "fixed", "--lmbda", "100"], "--lmbda only tune"),
                         (["--bits", "4", "--rd-epochs", "3"], "--rd-epochs only tune"),
                         (["--coder", "fixed", "--lmbda", "1", "--rd-epochs", "3"], "--lmbda and --rd-epochs only")):
        assert main(["compress", str(tmp_path / "x.npz"), "-o", str(tmp_path / "x.glc"), "--epochs", "1",
                     *extra]) == 2
        line = error_line()
        assert flags in line and "the fixed coder does not have" in line, line
        assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npz"]


def test_detect_n_samples_only_with_the_likelihood_scores(images, tmp_path, capsys, error_line):
    np.savez(tmp_path / "clean.npz", x=np.nan_to_num(np.load(images)["x"]), y=np.arange(40) % 4)
    clean = str(tmp_path / "clean.npz")
    for score in ([], ["--score", "reconstruction"]):
        assert main(["detect", clean, "-o", str(tmp_path / "a"), "--epochs", "1", "--n-samples", "0", *score]) == 2
        assert "--n-samples sets the posterior draws of --score elbo/iwae" in error_line()
    assert main(["detect", clean, "-o", str(tmp_path / "a"), "--epochs", "1", "--model", "vae", "--score", "elbo",
                 "--n-samples", "0"]) == 2
    assert "n_samples must be an integer >= 1, got 0" in error_line() and not (tmp_path / "a").exists()
    assert main(["detect", clean, "-o", str(tmp_path / "a"), "--epochs", "1", "--model", "vae", "--score", "elbo",
                 "--n-samples", "2", "--save", str(tmp_path / "det"), "model.latent_dim=2"]) == 0
    assert json.loads((tmp_path / "det" / "estimator.json").read_text())["params"]["n_samples"] == 2
    capsys.readouterr()
    assert main(["detect", clean, "-o", str(tmp_path / "b"), "--run", str(tmp_path / "det"), "--n-samples", "8"]) == 2
    assert "it keeps the settings it was fitted with, so --n-samples" in error_line()
    assert not (tmp_path / "b").exists()
