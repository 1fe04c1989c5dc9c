"""Models from outside genlab: discovery of genlab's own model modules, the ``genlab.models`` entry-point group,
run folders that record where the model class lives, and the test package's ``tiny-vae`` trained and used
through the real CLI (tests/ext_pkg: ``genlab_ext_demo`` plus its ``.dist-info`` with the entry point; put on
``PYTHONPATH`` of a subprocess, importlib.metadata finds it as an installed distribution)."""
import importlib
import importlib.metadata
import json
import logging
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import genlab
import genlab.models
from genlab import registry
from genlab.errors import CheckpointError, ConfigError
from genlab.testing import ModelContractTests, tiny_image_data
from tests.conftest import run_cli

TESTS = Path(__file__).resolve().parents[1]
EXT = TESTS / "ext_pkg"
BROKEN = TESTS / "ext_broken"
EXT_MODULES = ("genlab_ext_demo", "genlab_ext_broken", "pb_tmp_models")


def _forget_ext_modules():
    for m in [m for m in sys.modules if m.split(".")[0] in EXT_MODULES]:
        del sys.modules[m]


@pytest.fixture
def clean_registry(monkeypatch):
    """Restore the registry (models, entry-point failures) and drop the test packages' modules afterwards, so
    nothing registered here leaks into other tests."""
    registry._ensure_loaded()
    saved = (dict(registry._MODELS), dict(registry._FAILED), set(registry._WARNED))
    _forget_ext_modules()
    yield
    registry._MODELS.clear()
    registry._MODELS.update(saved[0])
    registry._FAILED.clear()
    registry._FAILED.update(saved[1])
    registry._WARNED.clear()
    registry._WARNED.update(saved[2])
    _forget_ext_modules()


@pytest.fixture
def ext_path(monkeypatch, clean_registry):
    monkeypatch.syspath_prepend(str(EXT))
    return EXT


def _entry_points(path: Path):
    return [ep for d in importlib.metadata.distributions(path=[str(path)]) for ep in d.entry_points
            if ep.group == registry.ENTRY_POINT_GROUP]


def _env(*paths: Path) -> dict:
    """Subprocess environment with ``paths`` in front of the caller's PYTHONPATH (which finds genlab itself)."""
    keep = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {"PYTHONPATH": os.pathsep.join([*map(str, paths), *keep]), "COLUMNS": "250", "OMP_NUM_THREADS": "1"}


def _one_error_line(proc) -> str:
    """The CLI's bad-input contract: exit 2, exactly one stderr line 'genlab: error: ...', no traceback."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genlab: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


# -- discovery of genlab's own model modules --------------------------------------------------------------------
def test_model_modules_are_discovered_not_listed():
    folder = Path(genlab.models.__file__).parent
    on_disk = sorted(f"genlab.models.{p.stem}" for p in folder.glob("*.py") if not p.stem.startswith("_"))
    assert genlab.models.MODULES == on_disk
    assert all(m in sys.modules for m in on_disk)
    source = (folder / "__init__.py").read_text()
    assert not re.search(r"from \. import|import (autoencoder|vae|cvae|gan)\b", source), "hand-written import list"


def test_import_submodules_registers_a_new_module(tmp_path, monkeypatch, clean_registry):
    pkg = tmp_path / "pb_tmp_models"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "_private.py").write_text("raise RuntimeError('modules starting with _ are not imported')\n")
    (pkg / "my_ae.py").write_text(
        "from genlab import register_model\nfrom genlab.models.autoencoder import AEConfig, AutoEncoder\n\n"
        "@register_model('pb-discovered-ae', AEConfig)\nclass DiscoveredAE(AutoEncoder):\n"
        "    '''An autoencoder found by discovery.'''\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import pb_tmp_models
    assert registry.import_submodules("pb_tmp_models", pb_tmp_models.__path__) == ["pb_tmp_models.my_ae"]
    entry = registry.get_model_entry("pb-discovered-ae")
    assert entry.location == "pb_tmp_models.my_ae:DiscoveredAE"
    assert entry.source == "user code (pb_tmp_models.my_ae)" and entry.summary == "An autoencoder found by discovery."


def test_builtin_models_come_from_genlab():
    for e in registry.list_entries():
        if e.cls.__module__.startswith("genlab."):
            assert e.source == "genlab" and e.dist == ("genlab", genlab.__version__)


# -- entry points ------------------------------------------------------------------------------------------------
def test_entry_point_registers_the_external_model(ext_path):
    eps = _entry_points(EXT)
    assert [(ep.name, ep.value) for ep in eps] == [("tiny-vae", "genlab_ext_demo.models")]
    assert registry.load_entry_points(eps) == []
    entry = registry.get_model_entry("tiny-vae")
    assert entry.location == "genlab_ext_demo.models:TinyVAE"
    assert entry.dist == ("genlab-ext-demo", "0.1") and entry.source == "genlab-ext-demo 0.1 (entry point)"
    assert ("tiny-vae", entry.summary) in genlab.list_models()
    assert registry.model_location(entry.cls) == {"class": "genlab_ext_demo.models:TinyVAE",
                                                  "distribution": {"name": "genlab-ext-demo", "version": "0.1"}}


def test_entry_point_imported_earlier_is_still_credited(ext_path):
    importlib.import_module("genlab_ext_demo.models")  # user code imported it before the registry loaded it
    assert registry.get_model_entry("tiny-vae").dist is None
    registry.load_entry_points(_entry_points(EXT))
    assert registry.get_model_entry("tiny-vae").dist == ("genlab-ext-demo", "0.1")


def test_failing_entry_point_warns_once_and_others_work(monkeypatch, clean_registry, caplog):
    monkeypatch.syspath_prepend(str(BROKEN))
    failures = registry.load_entry_points(_entry_points(BROKEN))
    assert [f.name for f in failures] == ["broken-vae"]
    f = failures[0]
    assert f.dist == "genlab-ext-broken 0.1" and "ModuleNotFoundError" in f.error and \
        "genlab_ext_missing_dependency" in f.error
    with caplog.at_level(logging.WARNING, logger="genlab.registry"):
        assert registry.get_model_entry("vae").name == "vae"  # the others still work
        registry.get_model_entry("ae")
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "'broken-vae'" in warnings[0] and "genlab-ext-broken 0.1" in warnings[0] and \
        "ModuleNotFoundError" in warnings[0]
    with pytest.raises(ConfigError) as e:
        registry.get_model_entry("broken-vae")
    msg = str(e.value)
    assert "\n" not in msg and "broken-vae" in msg and "genlab-ext-broken" in msg and "reinstall" in msg
    with pytest.raises(ConfigError, match=r"unknown model 'nope'.*entry points that failed to load: broken-vae"):
        registry.get_model_entry("nope")
    with pytest.raises(ConfigError, match="broken-vae"):
        genlab.train("broken-vae", tiny_image_data())


def test_entry_point_may_name_a_class_or_a_registering_callable(tmp_path, monkeypatch, clean_registry):
    (tmp_path / "pb_tmp_models").mkdir()
    (tmp_path / "pb_tmp_models" / "__init__.py").write_text(
        "from genlab.models.vae import VAE, VAEConfig\n\n"
        "class Unregistered(VAE):\n    '''A VAE registered by its entry point.'''\n    config_cls = VAEConfig\n\n"
        "def register():\n    from genlab import register_model\n"
        "    register_model('pb-by-callable', VAEConfig, 'registered by a callable')(type('ByCallable', (VAE,), {}))\n"
        "NOT_A_MODEL = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = importlib.metadata.EntryPoint
    group = registry.ENTRY_POINT_GROUP
    fails = registry.load_entry_points([ep("pb-by-class", "pb_tmp_models:Unregistered", group),
                                        ep("pb-callable", "pb_tmp_models:register", group),
                                        ep("pb-bad", "pb_tmp_models:NOT_A_MODEL", group),
                                        ep("pb-missing", "pb_tmp_models_nope.models", group)])
    assert registry.get_model_entry("pb-by-class").cls.__qualname__ == "Unregistered"
    assert registry.get_model_entry("pb-by-callable").summary == "registered by a callable"
    assert [f.name for f in fails] == ["pb-bad", "pb-missing"]
    assert "TypeError" in fails[0].error and "ModuleNotFoundError" in fails[1].error
    assert fails[0].dist == "unknown distribution ?"  # hand-made entry points have no distribution


def test_a_taken_name_is_refused_but_reloading_the_same_class_is_not(ext_path):
    mod = importlib.import_module("genlab_ext_demo.models")
    importlib.reload(mod)  # same module and qualified name: replaces the entry
    assert registry.get_model_entry("tiny-vae").cls is mod.TinyVAE
    with pytest.raises(ValueError, match="already registered by genlab.models.vae:VAE"):
        genlab.register_model("vae", mod.TinyVAEConfig)(mod.TinyVAE)


# -- run folders record where the model class lives ----------------------------------------------------------------
def _tiny_model():
    from genlab.config import from_dict
    entry = registry.get_model_entry("tiny-vae")
    torch.manual_seed(0)
    return entry.cls(from_dict(entry.config_cls, {"latent_dim": 4}), tiny_image_data().info())


def test_saved_external_model_reloads_in_a_process_that_never_imported_it(ext_path, tmp_path):
    registry.load_entry_points(_entry_points(EXT))
    m = _tiny_model().eval()
    genlab.save_model(m, tmp_path / "m")
    rec = json.loads((tmp_path / "m" / "config.json").read_text())
    assert rec["class"] == "genlab_ext_demo.models:TinyVAE" and rec["format_version"] == 1
    assert rec["distribution"] == {"name": "genlab-ext-demo", "version": "0.1"}
    x = tiny_image_data().x[:6]
    want = m.reconstruct(x)
    del registry._MODELS["tiny-vae"]  # as in a fresh process where the entry point is not installed
    _forget_ext_modules()
    loaded = genlab.load(tmp_path / "m")  # imports the recorded module, which registers the model
    assert type(loaded).__module__ == "genlab_ext_demo.models" and "genlab_ext_demo.models" in sys.modules
    assert torch.equal(loaded.reconstruct(x), want)


def test_builtin_record_and_old_files_without_the_key(tmp_path):
    from genlab.config import from_dict
    entry = registry.get_model_entry("vae")
    model = entry.cls(from_dict(entry.config_cls, {"latent_dim": 3}), tiny_image_data().info()).eval()
    genlab.save_model(model, tmp_path / "m")
    cfg = tmp_path / "m" / "config.json"
    rec = json.loads(cfg.read_text())
    assert rec["class"] == "genlab.models.vae:VAE"
    assert rec["distribution"] == {"name": "genlab", "version": genlab.__version__}
    for k in ("class", "distribution"):  # a config.json written before genlab recorded the class
        del rec[k]
    cfg.write_text(json.dumps(rec))
    x = tiny_image_data().x[:4]
    assert torch.equal(genlab.load(tmp_path / "m").reconstruct(x), model.reconstruct(x))


@pytest.mark.parametrize("edit, match", [
    ({"model": "ghost-vae", "class": "ghost_pkg.models:GhostVAE",
      "distribution": {"name": "ghost-pkg", "version": "1.2"}},
     r"model 'ghost-vae' is not registered and its recorded class ghost_pkg\.models:GhostVAE cannot be imported "
     r"\(ModuleNotFoundError: No module named 'ghost_pkg'\); install the package that provides it "
     r"\(ghost-pkg==1\.2\)"),
    ({"model": "ghost-vae", "class": "json:JSONDecoder"},
     r"unknown model 'ghost-vae': importing its recorded class json:JSONDecoder registered no model of that name"),
    ({"model": "ghost-vae", "class": "os; rm -rf /:X"}, r"'class' must be 'module:QualName'"),
    ({"model": "ghost-vae", "class": "__main__:MyVAE"}, r"defined in a script .*importable module"),
    ({"model": "ghost-vae"}, r"unknown model 'ghost-vae'.*install the package that provides 'ghost-vae'"),
])
def test_unresolvable_recorded_class_is_a_one_line_error(tmp_path, edit, match):
    from genlab.config import from_dict
    entry = registry.get_model_entry("vae")
    genlab.save_model(entry.cls(from_dict(entry.config_cls, {"latent_dim": 3}), tiny_image_data().info()),
                      tmp_path / "m")
    cfg = tmp_path / "m" / "config.json"
    rec = {k: v for k, v in json.loads(cfg.read_text()).items() if k not in ("class", "distribution")}
    cfg.write_text(json.dumps({**rec, **edit}))
    with pytest.raises(CheckpointError, match=match) as e:
        genlab.load(tmp_path / "m")
    assert "\n" not in str(e.value) and str(cfg) in str(e.value)


def test_record_of_another_package_under_a_registered_name_warns(tmp_path, caplog):
    from genlab.config import from_dict
    entry = registry.get_model_entry("vae")
    model = entry.cls(from_dict(entry.config_cls, {"latent_dim": 3}), tiny_image_data().info())
    genlab.save_model(model, tmp_path / "m")
    cfg = tmp_path / "m" / "config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "class": "other_pkg.models:VAE"}))
    with caplog.at_level(logging.WARNING, logger="genlab.registry"):
        genlab.load(tmp_path / "m")
    [msg] = [r.getMessage() for r in caplog.records]
    assert "records the class other_pkg.models:VAE for model 'vae'" in msg and "genlab.models.vae:VAE" in msg
    caplog.clear()
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "class": "genlab.models.old_place:VAE"}))
    with caplog.at_level(logging.WARNING, logger="genlab.registry"):
        genlab.load(tmp_path / "m")  # a class that moved inside the same package is no surprise
    assert not caplog.records


# -- the external model passes the shared contract ------------------------------------------------------------------
class TestTinyVAEContract(ModelContractTests):
    """The test package's model runs genlab's contract checks exactly as an external package would."""

    model = "tiny-vae"
    config = {"latent_dim": 4}

    @pytest.fixture(autouse=True)
    def _registered(self, ext_path):
        registry.load_entry_points(_entry_points(EXT))


# -- the must-show: the real CLI on an entry-point model ----------------------------------------------------------
@pytest.fixture(scope="module")
def ext_run(tmp_path_factory):
    """``genlab train tiny-vae --data digits`` in a subprocess whose PYTHONPATH holds the test package."""
    root = tmp_path_factory.mktemp("ext")
    run = root / "run"
    p = run_cli("train", "tiny-vae", "--data", "digits", "trainer.epochs=2", "model.latent_dim=4", "--out", run,
                env=_env(EXT), cwd=root)
    assert p.returncode == 0, p.stdout + p.stderr
    return run


def test_cli_lists_the_external_model():
    p = run_cli("models", env=_env(EXT))
    assert p.returncode == 0, p.stderr
    row = next(line for line in p.stdout.splitlines() if "tiny-vae" in line)
    assert "genlab-ext-demo 0.1 (entry point)" in row
    assert re.search(r"\bvae\b.*\bgenlab\b", p.stdout)


def test_cli_trains_an_external_model_into_a_run_folder(ext_run):
    cfg = json.loads((ext_run / "config.json").read_text())
    assert cfg["model"] == "tiny-vae" and cfg["class"] == "genlab_ext_demo.models:TinyVAE"
    assert cfg["distribution"] == {"name": "genlab-ext-demo", "version": "0.1"}
    rec = json.loads((ext_run / "model" / "config.json").read_text())
    assert rec["class"] == cfg["class"] and rec["distribution"] == cfg["distribution"]
    final = json.loads((ext_run / "final_metrics.json").read_text())
    assert final["model"] == "tiny-vae" and final["epochs"] == 2
    assert np.isfinite(final["test_elbo"]) and final["test_elbo"] < 0  # Bernoulli log-likelihoods are <= 0
    assert final["test_iwae_k100"] >= final["test_elbo"] - 1.0  # IWAE bound above the ELBO (up to noise)
    assert (ext_run / "report.html").is_file() and (ext_run / "samples.png").is_file()


def test_cli_info_sample_evaluate_on_the_external_run(ext_run, tmp_path):
    env = _env(EXT)
    p = run_cli("info", ext_run, env=env)
    assert p.returncode == 0, p.stderr
    assert "tiny-vae" in p.stdout and "genlab_ext_demo.models:TinyVAE (genlab-ext-demo 0.1)" in p.stdout
    assert re.search(r"(model|config)\.latent_dim\s*│\s*4", p.stdout)

    p = run_cli("sample", ext_run, "-n", "8", "-o", tmp_path / "s.npz", "--seed", "3", env=env)
    assert p.returncode == 0, p.stderr
    x = np.load(tmp_path / "s.npz")["x"]
    assert x.shape == (8, 1, 8, 8) and np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1 and x.std() > 0
    p = run_cli("sample", ext_run, "-n", "16", "-o", tmp_path / "grid.png", env=env)
    assert p.returncode == 0 and (tmp_path / "grid.png").stat().st_size > 0, p.stderr

    p = run_cli("evaluate", ext_run, "--metrics", "fid,pr", "-n", "300", "--features", "digits", "--json",
                "--no-cache", env=env)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["n_fake"] == 300 and res["extractor"]["name"] == "digits"
    assert np.isfinite(res["raw"]["fid"]) and res["raw"]["fid"] > 0 and 0 <= res["raw"]["precision"] <= 1


def test_cli_resumes_an_external_run(ext_run, tmp_path):
    import shutil
    run = tmp_path / "copy"
    shutil.copytree(ext_run, run)
    p = run_cli("train", "--resume", run, "trainer.epochs=3", env=_env(EXT))
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads((run / "final_metrics.json").read_text())["epochs"] == 3


@pytest.mark.parametrize("argv", [("info", "{run}"), ("sample", "{run}", "-n", "4", "-o", "{out}/x.png"),
                                  ("evaluate", "{run}", "--metrics", "fid", "-n", "50"),
                                  ("train", "--resume", "{run}", "trainer.epochs=3")])
def test_cli_without_the_package_is_one_line_and_writes_nothing(ext_run, tmp_path, argv):
    before = _snapshot(ext_run)
    args = [a.format(run=ext_run, out=tmp_path) for a in argv]
    line = _one_error_line(run_cli(*args, env=_env(), cwd=tmp_path))
    assert "'tiny-vae'" in line and "genlab_ext_demo.models:TinyVAE" in line
    assert "install the package that provides it (genlab-ext-demo==0.1)" in line
    assert _snapshot(ext_run) == before and list(tmp_path.iterdir()) == []


def test_cli_failing_entry_point(ext_run, tmp_path):
    env = _env(EXT, BROKEN)
    line = _one_error_line(run_cli("train", "broken-vae", "--data", "digits", "--out", tmp_path / "r", env=env,
                                   cwd=tmp_path))
    assert "broken-vae" in line and "genlab-ext-broken 0.1" in line and "genlab_ext_missing_dependency" in line
    assert "reinstall genlab-ext-broken" in line
    assert list(tmp_path.iterdir()) == []
    p = run_cli("info", ext_run, env=env)  # the other models still work; one warning names the broken entry point
    assert p.returncode == 0 and "tiny-vae" in p.stdout
    warn = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(warn) == 1 and warn[0].startswith("WARNING") and "'broken-vae'" in warn[0] and \
        "genlab-ext-broken 0.1" in warn[0]


def test_adding_doc_shows_the_test_package_code():
    """docs/models/adding.md's complete model is the test package's file, byte for byte, and its entry point."""
    doc = (TESTS.parent / "docs" / "models" / "adding.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    code = (EXT / "genlab_ext_demo" / "models.py").read_text()
    assert code in blocks
    assert '[project.entry-points."genlab.models"]\ntiny-vae = "genlab_ext_demo.models"' in doc
    ep = (EXT / "genlab_ext_demo-0.1.dist-info" / "entry_points.txt").read_text()
    assert "[genlab.models]\ntiny-vae = genlab_ext_demo.models" in ep
    for cap in genlab.models.CAPABILITIES:
        assert f"`{cap}`" in doc, f"adding.md does not describe the capability {cap}"
