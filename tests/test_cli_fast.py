"""A fast CLI (no torch for --help and models; a static model listing that equals the live registry) and
consistent commands: -o/--out everywhere, app key=value overrides, demo overrides, the salt-and-pepper alias,
one epochs default per app, and PNG outputs of many images split into grids of 256."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genlab import cli
from genlab.cli import build_parser, main, parse_args
from genlab.errors import ConfigError

TESTS = Path(__file__).parent
EXT, BROKEN = TESTS / "ext_pkg", TESTS / "ext_broken"


def _env(*paths: Path) -> dict:
    keep = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, paths), *keep]), "COLUMNS": "250"}


def _python(code: str, *paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(*paths), timeout=120)


# -- no torch for --help, models, import genlab -------------------------------------------------------------------
WRAPPER = """
import sys
from genlab.cli import main
try:
    code = main({argv!r})
except SystemExit as e:
    code = e.code
print("TORCH", "torch" in sys.modules, "RC", code)
"""


@pytest.mark.parametrize("argv", [["--help"], ["models"], ["detect", "--help"], ["train", "--help"]])
def test_help_and_models_do_not_import_torch(argv):
    p = _python(WRAPPER.format(argv=argv))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "TORCH False RC 0", p.stdout[-500:]
    if argv == ["models"]:
        assert "vae" in p.stdout and "dcgan" in p.stdout


def test_import_genlab_is_light_and_the_api_still_resolves():
    p = _python("import sys, genlab; print('torch' in sys.modules, 'open_run' in dir(genlab))")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["False", "True"]
    import genlab
    from genlab.runs import open_run, train
    assert genlab.train is train and genlab.open_run is open_run and "train" in genlab.__all__


def test_unknown_attribute_is_an_attribute_error():
    import genlab
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        genlab.nope  # noqa: B018


# -- the static listing equals the live registry ---------------------------------------------------------------
COMPARE = """
import json
from genlab.commands._listing import static_entries
static = static_entries()
from genlab.registry import list_entries
live = [(e.name, e.summary, e.source) for e in list_entries()]
print(json.dumps({"static": None if static is None else [(e.name, e.summary, e.source) for e in static],
                  "live": live}))
"""


def test_static_listing_equals_the_live_registry():
    from genlab.commands._listing import ENTRY_POINT_GROUP, static_entries
    from genlab.registry import ENTRY_POINT_GROUP as GROUP, list_entries
    assert ENTRY_POINT_GROUP == GROUP
    static = static_entries()
    assert static is not None
    live = [(e.name, e.summary, e.source) for e in list_entries() if e.source == "genlab"]
    assert [(e.name, e.summary, e.source) for e in static] == live and len(live) >= 12


def test_static_listing_includes_entry_point_models_and_equals_the_registry():
    p = _python(COMPARE, EXT)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["static"] is not None and res["static"] == [list(r) for r in res["live"]]
    assert ["tiny-vae", "Tiny MLP VAE with a Bernoulli decoder (genlab_ext_demo)",
            "genlab-ext-demo 0.1 (entry point)"] in res["static"]


def test_a_broken_entry_point_falls_back_to_the_live_registry():
    code = ("from genlab.commands._listing import static_entries\nprint('STATIC', static_entries())\n"
            + WRAPPER.format(argv=["models"]))
    p = _python(code, EXT, BROKEN)
    assert p.returncode == 0, p.stderr
    assert "STATIC None" in p.stdout  # the broken module registers nothing visible: ask the registry
    assert "tiny-vae" in p.stdout and "'broken-vae'" in p.stderr  # the registry's one warning
    assert p.stdout.strip().splitlines()[-1] == "TORCH True RC 0"


def test_registrations_reads_both_forms_and_the_docstring_rule():
    from genlab.commands._listing import _Unsure, registrations
    src = '''
@register_model("a", ACfg, "summary a")
class A: ...
@genlab.register_model("b", BCfg)
class B:
    """First line of B.

    More."""
class C: ...
register_model("c", CCfg)(C)
'''
    assert registrations(src) == {"A": ("a", "summary a"), "B": ("b", "First line of B."), "C": ("c", "C")}
    with pytest.raises(_Unsure):
        registrations("NAME = 'x'\n@register_model(NAME, Cfg)\nclass X: ...\n")


# -- -o/--out everywhere -----------------------------------------------------------------------------------------
def _subparsers():
    p = build_parser()
    action = next(a for a in p._actions if a.dest == "command")
    return action.choices


WRITERS = {"train", "sample", "reconstruct", "demo", "detect", "denoise", "impute", "compress", "decompress",
           "augment", "interpolate", "latent-map", "tune"}


def test_every_command_that_writes_takes_o_and_out_with_one_wording():
    subs = _subparsers()
    assert WRITERS <= set(subs)
    for name in WRITERS:
        outs = [a for a in subs[name]._actions if "--out" in a.option_strings]
        assert len(outs) == 1, name
        assert "-o" in outs[0].option_strings, name
        assert outs[0].help.startswith("where to write: "), (name, outs[0].help)
    for name in ("sample", "reconstruct", "compress", "decompress"):  # the older spelling keeps working
        args = build_parser().parse_args([name, "x", "--output", "y.npz"] + (["--bits", "4"] if name == "compress"
                                                                              else []))
        assert args.output == "y.npz"
        assert build_parser().parse_args([name, "x", "--out", "z.npz"]).output == "z.npz"


# -- app overrides, --set, epochs defaults -----------------------------------------------------------------------
APPS = {"detect": "AnomalyDetector", "denoise": "Denoiser", "impute": "Imputer", "compress": "Compressor",
        "augment": "Augmenter", "interpolate": "LatentExplorer", "latent-map": "LatentExplorer"}


def _app_args(name, *extra):
    return parse_args([name, "digits", "-o", "out", *extra])


@pytest.mark.parametrize("name", sorted(APPS))
def test_app_epochs_default_comes_from_the_class(name):
    import genlab.apps as apps
    from genlab.commands._common import build_estimator
    cls = getattr(apps, APPS[name])
    args = _app_args(name)
    assert args.epochs is None
    assert build_estimator(cls, args).epochs == cls().epochs
    assert build_estimator(cls, _app_args(name, "--epochs", "7")).epochs == 7


def test_imputer_has_one_epochs_default():
    from genlab.apps import Imputer
    assert Imputer().epochs == 200  # the default the measured tables (docs/apps/impute.md) used


def test_app_overrides_work_like_train_and_set_is_model_alias():
    from genlab.apps import LatentExplorer
    from genlab.commands._common import build_estimator, training_sections
    args = _app_args("latent-map", "model.latent_dim=3", "trainer.epochs=2", "data.val=0.2", "--set", "beta=0.5")
    assert training_sections(args) == {"model": {"beta": 0.5, "latent_dim": 3}, "trainer": {"epochs": 2},
                                       "data": {"val": 0.2}}
    est = build_estimator(LatentExplorer, args)
    assert est.model_config == {"beta": 0.5, "latent_dim": 3} and est.trainer_config == {"epochs": 2}
    assert est.validation_fraction == 0.2
    cfg = est._train_config()
    assert cfg["trainer"]["epochs"] == 2 and cfg["model"]["latent_dim"] == 3  # trainer.epochs wins, as in train
    for bad, match in ((["test.iwae_k=3"], "section 'test'"), (["data.name=mnist"], "data.name")):
        with pytest.raises(ConfigError, match=match):
            training_sections(_app_args("latent-map", *bad))


def test_overrides_are_refused_with_a_fitted_estimator(tmp_path, capsys):
    (tmp_path / "est").mkdir()
    (tmp_path / "est" / "estimator.json").write_text("{}")
    code = main(["latent-map", "digits", "-o", str(tmp_path / "o"), "--run", str(tmp_path / "est"),
                 "trainer.epochs=2"])
    assert code == 2 and "fitted estimator" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory):
    import genlab
    ds = genlab.load_dataset("digits")
    path = tmp_path_factory.mktemp("data") / "digits300.npz"
    np.savez(path, x=ds.x[:300].numpy(), y=ds.y[:300].numpy())
    return path


def test_app_trains_with_dotted_overrides_end_to_end(tmp_path, digits_npz):
    out = tmp_path / "map"
    code = main(["latent-map", str(digits_npz), "-o", str(out), "-n", "60", "model.latent_dim=3", "trainer.epochs=1",
                 "trainer.fid_samples=0", "--set", "arch=mlp", "--no-progress"])
    assert code == 0
    assert json.loads((out / "metrics.json").read_text())["latent_dim"] == 3


def test_demo_takes_overrides(monkeypatch, tmp_path):
    seen = {}

    def fake(args, model, sections, out, **kw):
        seen.update(model=model, sections=sections, out=out)
        return 0

    monkeypatch.setattr(cli, "_run_training", fake)
    assert main(["demo", "trainer.epochs=1", "-o", str(tmp_path / "d"), "model.latent_dim=4"]) == 0
    assert seen["model"] == "vae" and seen["out"] == str(tmp_path / "d")
    assert seen["sections"]["trainer"]["epochs"] == 1 and seen["sections"]["model"]["latent_dim"] == 4
    assert seen["sections"]["model"]["beta"] == 0.5  # the rest of the demo config stays
    from genlab.runs import DEMO_CONFIG
    assert DEMO_CONFIG["trainer"]["epochs"] == 200  # the shared default is not mutated


# -- noise names -----------------------------------------------------------------------------------------------
def test_salt_and_pepper_is_an_alias_everywhere_a_noise_is_parsed():
    from sklearn.base import clone

    from genlab.apps import Denoiser
    from genlab.apps.denoise import check_noise, noise_name
    assert noise_name("salt-and-pepper") == "salt_pepper" and check_noise("salt-and-pepper", 0.2) == 0.2
    with pytest.raises(ConfigError, match="salt-and-pepper"):
        check_noise("pepper", 0.2)
    help_ = next(a.help for a in _subparsers()["denoise"]._actions if "--noise" in a.option_strings)
    assert "salt_pepper" in help_ and "salt-and-pepper" in help_
    x = np.random.default_rng(0).uniform(size=(64, 4)).astype(np.float32)
    den = Denoiser(noise="salt-and-pepper", level=0.2, epochs=1, model_config={"latent_dim": 2},
                   verbose=False).fit(x)
    assert den.model_.config.noise == "salt_pepper" and den.noise == "salt-and-pepper"  # params are not rewritten
    assert clone(den).noise == "salt-and-pepper"
    assert den.add_noise(x, random_state=0).shape == x.shape


# -- PNG outputs of many images ----------------------------------------------------------------------------------
def test_grid_paths_and_save_grids(tmp_path):
    import torch

    from genlab.io.images import GRID_PAGE, grid_paths, save_grids
    assert GRID_PAGE == 256
    assert grid_paths(tmp_path / "a.png", 256) == [tmp_path / "a.png"]
    assert [p.name for p in grid_paths(tmp_path / "a.png", 257)] == ["a-000.png", "a-001.png"]
    imgs = torch.rand(300, 1, 8, 8)
    written = save_grids(imgs, tmp_path / "g.png", nrow=16)
    assert [p.name for p in written] == ["g-000.png", "g-001.png"] and not (tmp_path / "g.png").exists()
    # 256 tiles of 48 px (8 px x 6) + 1 px padding on a 16 x 16 grid; the second holds the other 44 (16 x 3 rows)
    assert Image.open(written[0]).size == (16 * 49 + 1, 16 * 49 + 1)
    assert Image.open(written[1]).size == (16 * 49 + 1, 3 * 49 + 1)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, digits_npz):
    out = tmp_path_factory.mktemp("fast") / "run"
    assert main(["train", "vae", "--data", str(digits_npz), "trainer.epochs=1", "model.latent_dim=2",
                 "model.arch=mlp", "data.test=0.7", "test.enabled=false", "trainer.fid_samples=0",
                 "--no-progress", "-o", str(out)]) == 0
    return out


def test_sample_and_reconstruct_split_png_outputs(tiny_run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["sample", str(tiny_run), "-n", "300", "-o", str(tmp_path / "s.png")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s-000.png", "s-001.png"]
    assert "s-001.png (2 files)" in capsys.readouterr().out
    assert main(["reconstruct", str(tiny_run), "-n", "200", "--out", str(tmp_path / "r.png")]) == 0
    assert sorted(p.name for p in tmp_path.glob("r*")) == ["r-000.png", "r-001.png"]  # 200 inputs: 400 tiles
    assert main(["sample", str(tiny_run), "-n", "20", "-o", str(tmp_path / "one.png")]) == 0
    assert (tmp_path / "one.png").is_file()


def test_decompress_png_uses_the_same_rule(tmp_path, capsys):
    glc = tmp_path / "d.glc"
    assert main(["compress", "digits", "-o", str(glc), "--epochs", "1", "--set", "arch=mlp", "--no-progress"]) == 0
    assert main(["decompress", str(glc), "--out", str(tmp_path / "decoded.png")]) == 0
    names = sorted(p.name for p in tmp_path.glob("decoded*"))
    assert names == [f"decoded-{i:03d}.png" for i in range(8)]  # 1,797 digits: 7 grids of 256 and one of 5
