"""report.html: one self-contained page (embedded PNGs, inline CSS), its header, grouped metrics with units from
genlab.metrics.units, the config table; rendered in headless Chromium (a screenshot in the test's temp folder)."""
import base64
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import genlab
from genlab.io.report import config_rows, git_commit, read_metrics, sample_strip, validation_rows, write_report
from genlab.metrics.units import EVALUATION, describe, display_value, lookup
from genlab.testing import tiny_image_data
from tests.conftest import tiny_trainer

#: one model per distinct set of logged keys: autoencoder family (sparse, contractive), VAE (conditional and
#: not), GANs (conditional, auxiliary classifier, Wasserstein with gradient penalty)
FAMILY_MODELS = ("vae", "cvae", "sparse-ae", "contractive-ae", "cgan", "acgan", "wgan-gp")
FID_SAMPLES = 64


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny real runs of every family (2 epochs for the cgan and vae whose reports are rendered, else 1);
    ``{model: run folder}``."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name in FAMILY_MODELS:
        epochs = 2 if name in ("cgan", "vae", "cvae") else 1
        run = genlab.train(name, tiny_image_data(), out=root / name,
                           config={"trainer": tiny_trainer(epochs=epochs, fid_samples=FID_SAMPLES)})
        out[name] = run.out_dir
    return out


class _Imgs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs).get("src", ""))


def _img_srcs(page: str) -> list[str]:
    p = _Imgs()
    p.feed(page)
    return p.srcs


# ---------------------------------------------------------------------------------------------- units table
def test_units_table_covers_every_key_the_runs_log(runs):
    """Every key the Trainer logs and the final evaluation writes, for each family, is known to the table (no
    key falls back to "other"), and every final key lands in its group."""
    unknown = set()
    for name, folder in runs.items():
        final = json.loads((folder / "final_metrics.json").read_text())
        logged = {k for r in read_metrics(folder / "metrics.jsonl") for k in r if k not in ("step", "epoch", "split")}
        unknown |= {f"{name}: {k}" for k in (set(final) | logged) if lookup(k) is None}
        for k in final:
            want = "test" if k.startswith(("test_", "pca_", "mse_vs")) else \
                "validation" if k.startswith(("val_", "best_")) else "run"
            assert describe(k).group == want, (name, k)
    assert not unknown, sorted(unknown)
    # genlab evaluate's labels (evaluation.LABELS, with and without a feature net suffix) are known too
    from genlab.evaluation import LABELS
    for label in LABELS.values():
        for key in (label, f"{label}-digits"):
            assert lookup(key, {"evaluation": True}) is not None, key
            assert lookup(key, {"evaluation": True}).group == "test"


def test_units_know_the_gan_penalties_and_growth_keys():
    """Keys that only some GANs log (dcgan/gan/cgan/acgan's R1, R2, stylegan's path length, progan's drift and
    growth) have their own rows instead of falling back to "other"."""
    for key in ("r1", "r2", "pl", "drift", "alpha", "stage"):
        info = lookup(key)
        assert info is not None and info.label and info.convention, key


def test_units_conventions_and_scale():
    ctx = {"space": "digits", "n_real": 179, "n_fake": 1000}
    fid = describe("val_fid", ctx)
    assert fid.label == "FID-digits" and fid.group == "validation" and fid.better == "lower"
    assert "179 real" in fid.convention and "1000 generated" in fid.convention
    assert "digits feature net" in fid.convention
    assert describe("best_val_fid", ctx).label == "best FID-digits"
    iw = describe("test_iwae_k100_given_y")
    assert iw.unit == "nats/sample" and "k=100" in iw.label and "| y" in iw.label and iw.group == "test"
    # KID is shown x10^3 with the unit saying so: shown value times unit = the value
    kid = describe("KID-mnist")
    assert kid.unit == "x10^-3" and display_value("KID-mnist", 0.0123) == pytest.approx(12.3)
    assert describe("loss/d").label == "loss (d)" and describe("grad_norm/main").unit == "L2"
    assert describe("precision").group == "run"  # the run's numeric precision ...
    assert describe("precision", {"evaluation": True}).unit == "fraction"  # ... or genlab evaluate's metric
    # an autoregressive model's exact likelihood, logged and on the held-out split
    assert describe("bpd").unit == "bits/dim" and describe("test_bpd").group == "test"
    assert describe("val_nll").unit == "nats/sample" and describe("val_nll").better == "lower"
    assert describe("my_own_number").group == "other" and lookup("my_own_number") is None
    assert set(EVALUATION) >= {"FID", "KID", "IS", "precision", "recall", "PPL"}


def test_cli_metric_table_has_a_unit_column():
    from rich.console import Console

    from genlab.commands._common import metrics_table
    con = Console(record=True, width=200)
    con.print(metrics_table("t", [("KID-digits", 0.0123), ("train_seconds", 2.5), ("note", "x")]))
    text = con.export_text()
    assert any(re.search(r"metric\s+.\s+value\s+.\s+unit", ln) for ln in text.splitlines()[:4])
    row = next(ln for ln in text.splitlines() if "KID-digits" in ln)
    assert "12.3" in row and "x10^-3" in row
    assert " s " in next(ln for ln in text.splitlines() if "train_seconds" in ln)
    other = metrics_table("models", [("vae", "a VAE", "genlab")], ("name", "summary", "from"))
    assert [c.header for c in other.columns] == ["name", "summary", "from"]  # not a metric table: no unit column


# ---------------------------------------------------------------------------------------------- grouping
def test_validation_rows_last_and_best():
    hist = [{"step": 10, "epoch": 0, "split": "val", "fid": 50.0, "cond_acc": 0.4, "loss": 3.0},
            {"step": 20, "epoch": 1, "split": "val", "fid": 30.0, "cond_acc": 0.7, "loss": 2.0},
            {"step": 30, "epoch": 2, "split": "val", "fid": 40.0, "cond_acc": 0.6, "loss": 2.5}]
    metrics = {"val_fid": 40.0, "val_cond_acc": 0.6, "val_loss": 2.5, "best_val_loss": 1.9, "best_step": 25}
    rows = {r["key"]: r for r in validation_rows(metrics, hist)}
    assert rows["fid"] == {"key": "fid", "last": 40.0, "best": 30.0, "best_step": 20, "monitored": False}
    assert rows["cond_acc"]["best"] == 0.7 and rows["cond_acc"]["best_step"] == 20  # higher is better
    # the monitored key takes the Trainer's own best (what checkpoints/best holds)
    assert rows["loss"] == {"key": "loss", "last": 2.5, "best": 1.9, "best_step": 25, "monitored": True}


def test_config_rows_mark_changed_values():
    cfg = {"model": "vae", "sections": {"model": {"latent_dim": 8, "beta": 1.0}, "trainer": {"epochs": 3}}}
    dflt = {"model": "vae", "sections": {"model": {"latent_dim": 16, "beta": 1.0}, "trainer": {"epochs": 50}}}
    rows = config_rows(cfg, dflt)
    assert ("model", "latent_dim", 8, 16, True) in rows and ("model", "beta", 1.0, 1.0, False) in rows
    assert ("trainer", "epochs", 3, 50, True) in rows and ("run", "model", "vae", "vae", False) in rows
    # an application's flat parameters: one section-less row per key, nothing marked without defaults
    assert config_rows({"epochs": 5, "noise": {"kind": "gaussian"}}) == [
        ("", "epochs", 5, None, False), ("noise", "kind", "gaussian", None, False)]


# ---------------------------------------------------------------------------------------------- header
def test_git_commit(tmp_path, monkeypatch):
    assert git_commit(tmp_path) is None  # not a checkout: nothing, no failure
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f.txt").write_text("a")
    subprocess.run([*git, "-C", str(tmp_path), "add", "f.txt"], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-q", "-m", "x"], check=True)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert git_commit(tmp_path) == head
    (tmp_path / "f.txt").write_text("b")
    assert git_commit(tmp_path) == f"{head}-dirty"
    monkeypatch.chdir(tmp_path)
    assert git_commit() == f"{head}-dirty"  # default: the working directory


def test_report_header_metrics_and_config(runs, tmp_path, monkeypatch):
    page = (runs["cvae"] / "report.html").read_text()
    cfg = json.loads((runs["cvae"] / "config.json").read_text())
    for fact in ("model", "data", "splits", "device", "precision", "wall time", "epochs / steps", "date",
                 "genlab", "host"):
        assert f"<b>{fact}</b>" in page, fact
    assert f"<span>{genlab.__version__}</span>" in page
    sizes = cfg["split_sizes"]
    assert f"{sizes['train']} train, {sizes['val']} val, {sizes['test']} test" in page
    assert "image 1x8x8, 4 classes" in page
    # grouped metrics with units and conventions
    for heading in ("Test (held-out data)", "Validation (last record, and best", "Run facts"):
        assert heading in page
    assert "nats/sample" in page and "IWAE log p(x | y) bound (k=100)" in page
    assert f"vs {FID_SAMPLES} generated" in page and "FID-digits" in page  # 1x8x8 images: the digits net
    assert "monitored" in page
    # the config as a table, changed values highlighted (epochs=2 differs from the default)
    assert re.search(r"<tr class=changed><td>trainer</td><td>epochs</td><td>2</td>", page)
    assert "<pre>" not in page  # no raw JSON dump
    # a report written outside a git checkout has no commit and does not fail
    monkeypatch.chdir(tmp_path)
    out = write_report(tmp_path, title="t", metrics={"steps": 3}, figures={}, config={"a": 1})
    assert "git commit" not in out.read_text()


def test_report_is_self_contained(runs):
    for name in ("cgan", "vae"):
        folder = runs[name]
        page = (folder / "report.html").read_text()
        assert not re.search(r"(?i)(https?|file):", page)  # no link to anything outside the file
        srcs = _img_srcs(page)
        assert len(srcs) >= 4 and all(s.startswith("data:image/png;base64,") for s in srcs)
        files = re.findall(r'data-file="([^"]+)"', page)
        assert "loss_curves.png" in files and "samples.png" in files and "epoch-0002.png" in files
        # every embedded image is the PNG beside it, byte for byte
        for src, f in zip(srcs, files):
            path = folder / f if (folder / f).is_file() else folder / "samples" / f
            assert base64.b64decode(src.split(",", 1)[1]) == path.read_bytes()
    page = (runs["cgan"] / "report.html").read_text()
    assert "Samples, one class per row" in page and "epoch 1</figcaption>" in page and "epoch 2</figcaption>" in page


def test_sample_strip_is_evenly_thinned(tmp_path):
    for e in range(1, 31):
        (tmp_path / f"epoch-{e:04d}.png").write_bytes(b"")
    (tmp_path / "other.png").write_bytes(b"")
    strip = sample_strip(tmp_path, limit=6)
    assert [e for e, _ in strip] == [1, 7, 13, 18, 24, 30]
    assert sample_strip(tmp_path / "none") == []


def test_labelled_figures(runs):
    """Conditional samples: one row per class (4 classes of 12); interpolation rows labelled per pair."""
    im = np.asarray(Image.open(runs["cgan"] / "samples.png").convert("L"))
    assert im.shape[0] > 4 * 48 and im.shape[1] > 12 * 48  # 4 rows of 12 tiles (48 px) plus the labels
    hist = read_metrics(runs["cgan"] / "metrics.jsonl")
    assert any("fid" in r for r in hist if r.get("split") == "val")


# ---------------------------------------------------------------------------------------------- the browser
def _chromium():
    exe = shutil.which("chromium")
    if exe is None:
        if os.environ.get("GENLAB_REQUIRE_BROWSER") == "1":
            pytest.fail("GENLAB_REQUIRE_BROWSER=1 but `chromium` is not on PATH (apt-get install chromium)")
        pytest.skip("chromium is not installed (set GENLAB_REQUIRE_BROWSER=1 to make this a failure)")
    return exe


def _chrome(exe, tmp_path, *args):
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("name", ["cgan", "vae"])
def test_report_renders_in_headless_chromium(runs, tmp_path, name):
    exe = _chromium()
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(runs[name] / "report.html", alone / "report.html")  # copied alone: nothing beside it
    url = (alone / "report.html").as_uri()
    shot = tmp_path / "report.png"
    r = _chrome(exe, tmp_path, f"--screenshot={shot}", "--window-size=1280,3000", url)
    assert shot.is_file(), r.stderr[-2000:]
    img = Image.open(shot)
    assert img.format == "PNG" and img.size == (1280, 3000)
    grey = np.asarray(img.convert("L"), dtype=np.float64)
    assert grey.std() > 20  # not a blank page: text, tables and figures
    assert len(np.unique(grey)) > 100
    # the embedded figures decoded and drew: the curves' train blue and validation orange are on the page (the
    # page's own CSS uses neither)
    rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
    for colour in ((31, 119, 180), (255, 127, 14)):
        assert (np.abs(rgb - colour).max(-1) < 30).sum() > 200, colour
    dom = _chrome(exe, tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    srcs = _img_srcs(dom.stdout)
    assert len(srcs) == len(_img_srcs((alone / "report.html").read_text())) >= 4
    assert all(s.startswith("data:image/png;base64,") for s in srcs)


def test_traversal_and_interpolation_grids_are_labelled(tmp_path):
    """Image traversals and interpolations get a label column at the left and a tick row below: the PNG is wider
    and taller than the bare tile grid, and the label areas hold dark text pixels."""
    from genlab.io.images import make_grid
    from genlab.io.plots import plot_interpolation, plot_traversal
    import torch
    frames = np.random.default_rng(0).random((5, 7, 1, 8, 8)).astype(np.float32)
    plot_traversal(frames, tmp_path / "t.png", dims=[0, 3, 4, 6, 7], offsets=np.linspace(-3, 3, 7))
    bare = make_grid(torch.from_numpy(frames.reshape(35, 1, 8, 8)), nrow=7, padding=2)
    im = np.asarray(Image.open(tmp_path / "t.png").convert("L"))
    assert im.shape[0] > bare.shape[0] + 20 and im.shape[1] > bare.shape[1] + 30
    assert (im[:, :30] < 128).any() and (im[-25:] < 128).any()  # row labels at the left, axis title below
    plot_interpolation(frames[:3], tmp_path / "i.png")
    im = np.asarray(Image.open(tmp_path / "i.png").convert("L"))
    assert im.shape[1] > 7 * 48 + 30 and (im[:, :30] < 128).any()


def test_every_figure_the_report_writes_is_one_overwrite_removes():
    """``--overwrite`` removes only ``KNOWN_ENTRIES``: a figure the report writes but that list lacks would survive
    an overwrite and describe the old run (``translations.png`` once did)."""
    import re
    from pathlib import Path

    import genlab.io.report as report
    from genlab.io.runfolder import KNOWN_ENTRIES
    written = set(re.findall(r'out_dir\) / "([\w.-]+\.png)"|out_dir / "([\w.-]+\.png)"', Path(report.__file__).read_text()))
    names = {a or b for a, b in written}
    assert {"reconstructions.png", "translations.png", "style_mixing.png", "loss_curves.png"} <= names
    assert names <= set(KNOWN_ENTRIES), names - set(KNOWN_ENTRIES)
