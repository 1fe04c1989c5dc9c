"""genlab upscale / inpaint / colorize / translate: outputs of a tiny run, reuse of a saved estimator, and bad input
(shape mismatch, non-binary mask, wrong factor, colour into a grey model, unmatched folder names): exit 2, one line,
nothing written."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from genlab.cli import main
from genlab.data import load_dataset
from tests.cli.test_cli import _bad

TINY = ["--epochs", "1", "trainer.precision=fp32", "trainer.channels_last=false", "trainer.batch_size=32",
        "--set", "width=4", "--set", "d_width=4"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("i2i")
    x = load_dataset("digits").x[:64].numpy()  # (64, 1, 8, 8)
    np.savez(d / "digits.npz", x=x)
    np.savez(d / "low.npz", x=x.reshape(64, 1, 4, 2, 4, 2).mean(axis=(3, 5)))  # x2 block means
    np.savez(d / "low3.npz", x=x[:, :, :3, :3])
    np.savez(d / "colour_low.npz", x=np.repeat(x.reshape(64, 1, 4, 2, 4, 2).mean(axis=(3, 5)), 3, axis=1))
    np.savez(d / "half_mask.npz", x=np.full((64, 1, 8, 8), 0.5, np.float32))
    return d


@pytest.fixture(scope="module")
def saved_upscaler(files):
    code = main(["upscale", str(files / "digits.npz"), "--degrade", "-o", str(files / "up"), "--save",
                 str(files / "upest"), *TINY, "--set", "n_blocks=1"])
    assert code == 0
    return files / "upest"


def test_upscale_degrade_writes_grid_npz_metrics(files, saved_upscaler):
    out = files / "up"
    assert {p.name for p in out.iterdir()} >= {"upscale.npz", "upscale.png", "metrics.json", "report.html"}
    z = np.load(out / "upscale.npz")
    assert z["x"].shape == (64, 1, 8, 8) and z["src"].shape == (64, 1, 4, 4) and z["target"].shape == (64, 1, 8, 8)
    m = json.loads((out / "metrics.json").read_text())
    assert m["factor"] == 2 and m["baseline"] == "bicubic" and np.isfinite(m["psnr"]) and m["trained_on"]
    w, h = Image.open(out / "upscale.png").size
    assert h > 2 * 8 and w > 16 * 8  # three rows of 16 images


def test_upscale_sources_with_saved_estimator_and_target(files, saved_upscaler, capsys):
    out = files / "up2"
    assert main(["upscale", str(files / "low.npz"), "--run", str(saved_upscaler), "--target",
                 str(files / "digits.npz"), "-o", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["trained_on"] == "--run" and m["samples"] == 64 and "psnr" in m and "baseline_psnr" in m
    ref = json.loads((files / "up" / "metrics.json").read_text())
    assert m["psnr"] == pytest.approx(ref["psnr"], abs=1e-6)  # the same sources as --degrade made


def test_bad_inputs_exit_2_nothing_written(files, saved_upscaler, tmp_path, capsys):
    out = tmp_path / "o"
    run = ["--run", str(saved_upscaler), "-o", str(out)]
    _bad(["upscale", str(files / "low3.npz"), *run], capsys, "(1, 3, 3)", "(1, 4, 4)")  # shape mismatch
    _bad(["upscale", str(files / "low.npz"), *run, "--factor", "4"], capsys, "--factor 4", "factor=2")
    _bad(["upscale", str(files / "colour_low.npz"), *run], capsys, "greyscale model given colour input")
    _bad(["upscale", str(files / "low.npz"), *run, "--target", str(files / "low.npz")], capsys,
         "(64, 1, 4, 4)", "(64, 1, 8, 8)")
    _bad(["upscale", str(files / "low.npz"), "-o", str(out)], capsys, "--run", "--degrade")  # sources, no model
    # non-binary mask, mask of the wrong shape: refused before anything is trained
    _bad(["inpaint", str(files / "digits.npz"), "--mask-file", str(files / "half_mask.npz"), "--train",
          str(files / "digits.npz"), "-o", str(out), *TINY], capsys, "only 0", "0.5")
    _bad(["inpaint", str(files / "digits.npz"), "--mask-file", str(files / "low.npz"), "--train",
          str(files / "digits.npz"), "-o", str(out), *TINY], capsys, "(64, 1, 4, 4)", "(64, 1, 8, 8)")
    # folder pairs with unmatched names
    for side, names in (("A", ("a", "b")), ("B", ("a", "c"))):
        (tmp_path / "p" / side).mkdir(parents=True)
        for n in names:
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "p" / side / f"{n}.png")
    _bad(["translate", f"pairs:{tmp_path / 'p'}", "-o", str(out), *TINY], capsys, "b.png", "c.png", "unmatched")
    assert not out.exists()


def test_inpaint_and_translate_degrade(files, capsys):
    out = files / "inp"
    assert main(["inpaint", str(files / "digits.npz"), "--degrade", "--mask", "free", "-o", str(out), *TINY]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["mask"] == "free" and {"psnr_missing", "baseline_psnr_missing"} <= set(m)
    assert np.load(out / "inpaint.npz")["mask"].shape == (64, 1, 8, 8)
    out = files / "tr"
    assert main(["translate", str(files / "digits.npz"), "--degrade", "--pair", "edges", "-o", str(out), *TINY]) == 0
    assert json.loads((out / "metrics.json").read_text())["pair"] == "edges"


def test_translate_folder_pairs_report_given_sources(tmp_path, capsys):
    """Folder pairs bring their own sources and targets: the report says so (it named the default transform,
    edges, which made nothing), and --pair / --target, which would do nothing, are refused."""
    rng = np.random.default_rng(0)
    for side in ("A", "B"):
        (tmp_path / "p" / side).mkdir(parents=True)
    for i in range(8):
        Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).save(tmp_path / "p" / "A" / f"{i}.png")
        Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).save(tmp_path / "p" / "B" / f"{i}.png")
    pairs = f"pairs:{tmp_path / 'p'}"
    out = tmp_path / "o"
    _bad(["translate", pairs, "-o", str(out), "--pair", "grey", *TINY], capsys, "--pair grey does not apply")
    _bad(["translate", pairs, "-o", str(out), "--target", str(tmp_path / "p" / "B"), *TINY], capsys,
         "its targets are B/ already; drop --target")
    assert not out.exists()
    assert main(["translate", pairs, "-o", str(out), *TINY]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["pair"] == "given (folder pairs)" and m["trained_on"] == "input (pairs)" and m["samples"] == 8
