"""open_run: the typed run folder (config sections, frozen data info, splits rebuilt exactly, model, log, metrics);
explicit val/test splits (API), recorded with checksums; the configurable end-of-run test evaluation."""
import dataclasses
import json
import logging
import shutil

import numpy as np
import pytest
import torch

import genlab
from genlab import runs
from genlab.data import TensorDataset
from genlab.errors import CheckpointError, ConfigError, DataError
from genlab.models.vae import VAEConfig
from genlab.runs import DataConfig, DataInfo, FinalEvalConfig, RunFolder, open_run
from genlab.training import TrainerConfig
from tests.conftest import tiny_trainer

CFG = {"trainer": tiny_trainer(), "model": {"latent_dim": 2}, "test": {"iwae_k": 4}}


def one_line(exc) -> bool:
    return "\n" not in str(exc.value)


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(4, 1, 8, 8, generator=g)
    y = torch.arange(64) % 4
    x = (base[y] * 0.8 + 0.2 * torch.rand(64, 1, 8, 8, generator=g)).clamp(0, 1)
    return TensorDataset(x, y, name="tiny-images")


@pytest.fixture(scope="module")
def memory_run(images, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "mem"
    return genlab.train("vae", images, out=out, config=CFG), images


@pytest.fixture(scope="module")
def file_run(images, tmp_path_factory):
    """A run trained from an .npz file with explicit .npz validation and test files."""
    root = tmp_path_factory.mktemp("files")
    x, y = images.x.numpy(), images.y.numpy()
    np.savez(root / "train.npz", x=x[:40], y=y[:40])
    np.savez(root / "val.npz", x=x[40:52], y=y[40:52])
    np.savez(root / "test.npz", x=x[52:], y=y[52:])
    run = genlab.train("vae", str(root / "train.npz"), val=root / "val.npz", test=str(root / "test.npz"),
                       out=root / "run", config=CFG)
    return run, root


def _equal(a: TensorDataset, b: TensorDataset) -> bool:
    return torch.equal(a.x, b.x) and (a.y is None) == (b.y is None) and (a.y is None or torch.equal(a.y, b.y)) \
        and a.classes == b.classes


# ---------------------------------------------------------------------------------------------- round trip
def test_open_run_round_trip(memory_run):
    run, images = memory_run
    rf = open_run(run.out_dir, data=images)
    assert isinstance(rf, RunFolder) and rf.model_name == "vae" and rf.path.resolve() == run.out_dir.resolve()
    assert isinstance(rf.model_config, VAEConfig) and rf.model_config.latent_dim == 2
    assert isinstance(rf.trainer_config, TrainerConfig) and rf.trainer_config.epochs == 2
    assert isinstance(rf.data_config, DataConfig) and rf.data_config.val == 0.1
    assert isinstance(rf.test_config, FinalEvalConfig) and rf.test_config.iwae_k == 4
    assert rf.genlab_version == genlab.__version__
    # data info: frozen, and what the model was built for
    info = rf.data_info
    assert isinstance(info, DataInfo) and info.kind == "image" and info.shape == (1, 8, 8)
    assert info.num_classes == 4 and info.classes == ("0", "1", "2", "3") and float(info.norm.scale) == 255.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.kind = "tabular"
    assert info.to_dict() == run.model.data_info
    # splits equal those training used, sources recorded
    for name in ("train", "val", "test"):
        assert _equal(getattr(rf.splits, name), getattr(run.splits, name)), name
    assert rf.split_sizes == {"train": 52, "val": 6, "test": 6}
    assert rf.sources["train"]["origin"] == "memory" and rf.sources["train"]["n"] == 64
    assert rf.sources["train"]["sha256"] == runs.fingerprint(images)
    assert len(rf.split("all")) == 64 and torch.equal(rf.split("all").y.sort().values, images.y.sort().values)
    # model, checkpoints, metrics, log
    for k, v in run.model.state_dict().items():
        assert torch.equal(rf.model.state_dict()[k].cpu(), v.cpu()), k
    assert set(rf.checkpoints) >= {"last", "best"}
    assert rf.load_checkpoint("last").config == rf.model.config
    assert rf.metrics == json.loads((run.out_dir / "final_metrics.json").read_text())
    lines = (run.out_dir / "metrics.jsonl").read_text().splitlines()
    assert rf.history == [json.loads(ln) for ln in lines] and rf.finished and rf.report.is_file()


def test_file_run_rebuilds_splits_without_the_data(file_run, tmp_path, monkeypatch):
    run, root = file_run
    cfg = json.loads((run.out_dir / "config.json").read_text())
    d = cfg["sections"]["data"]
    assert d["val"] == 0.0 and d["test"] == 0.0 and d["val_data"].endswith("val.npz") and d["test_data"]
    assert {r: s["origin"] for r, s in cfg["data_sources"].items()} == {"train": "path", "val": "path",
                                                                       "test": "path"}
    assert cfg["split_sizes"] == {"train": 40, "val": 12, "test": 12}
    monkeypatch.chdir(tmp_path)  # recorded absolute paths: opened from another folder
    rf = open_run(run.out_dir)
    for name in ("train", "val", "test"):
        assert _equal(getattr(rf.splits, name), getattr(run.splits, name)), name
    # the validation data is the file itself, not a fraction of the training file
    assert torch.equal(rf.splits.val.x, torch.as_tensor(np.load(root / "val.npz")["x"]))
    assert "-" in rf.data_key("val") and rf.data_key("val") != rf.data_key("test")


def test_changed_file_is_detected(file_run, tmp_path):
    run, root = file_run
    copy = tmp_path / "run"
    shutil.copytree(run.out_dir, copy)
    arr = dict(np.load(root / "test.npz"))
    backup = (root / "test.npz").read_bytes()
    try:
        arr["x"][0, 0, 0, 0] = 1 - arr["x"][0, 0, 0, 0]
        np.savez(root / "test.npz", **arr)
        with pytest.raises(DataError, match="test data .* now holds different values") as e:
            open_run(copy).splits
        assert one_line(e)
        # resuming on changed data is refused the same way (nothing trained)
        with pytest.raises(DataError, match="now holds different values"):
            genlab.train(resume=copy, config={"trainer": {"epochs": 3}})
    finally:
        (root / "test.npz").write_bytes(backup)


def test_in_memory_runs_need_their_data_again(memory_run, images):
    run, _ = memory_run
    with pytest.raises(ConfigError, match=r"in-memory train data 'tiny-images'.*open_run\(RUN, data=") as e:
        open_run(run.out_dir).splits
    assert one_line(e)
    other = images.subset(torch.arange(1, 64))
    with pytest.raises(DataError, match="now holds different values"):
        open_run(run.out_dir, data=other).splits
    with pytest.raises(ConfigError, match="TensorDataset"):
        open_run(run.out_dir, data="digits")


def test_resume_of_an_in_memory_run_takes_the_same_data(memory_run, images, tmp_path):
    run, _ = memory_run
    copy = tmp_path / "mem"
    shutil.copytree(run.out_dir, copy)
    with pytest.raises(ConfigError, match="in-memory train data"):
        genlab.train(resume=copy, config={"trainer": {"epochs": 3}})
    with pytest.raises(DataError, match="now holds different values"):
        genlab.train(resume=copy, data=images.subset(torch.arange(60)), config={"trainer": {"epochs": 3}})
    more = genlab.train(resume=copy, data=images, config={"trainer": {"epochs": 3}})
    assert more.result.epoch == 3 and more.metrics["epochs"] == 3


def test_bad_folders_one_line_errors(memory_run, tmp_path):
    run, _ = memory_run
    cases = []
    cases.append((tmp_path / "nowhere", "does not exist"))
    (tmp_path / "file").write_text("x")
    cases.append((tmp_path / "file", "is a file, not a run folder"))
    (tmp_path / "empty").mkdir()
    cases.append((tmp_path / "empty", r"not a run folder \(no config.json\)"))
    cases.append((run.out_dir / "model", "saved model folder, not a run folder; load it with genlab.load"))
    for name, text, needle in [("trunc", '{"model": "vae", "sec', "corrupt or truncated"),
                               ("list", "[1, 2]", "not a genlab run config"),
                               ("section", None, "unknown config section 'bogus'"),
                               ("model", None, "'nope'"),
                               ("noinfo", None, "has no data_info"),
                               ("badinfo", None, "shape")]:
        d = tmp_path / name
        shutil.copytree(run.out_dir, d)
        rec = json.loads((d / "config.json").read_text())
        if name == "section":
            rec["sections"]["bogus"] = {}
        elif name == "model":
            rec["model"] = "nope"
        elif name == "noinfo":
            del rec["data_info"]
        elif name == "badinfo":
            rec["data_info"]["shape"] = [1, -8, 8]
        (d / "config.json").write_text(text if text is not None else json.dumps(rec))
        cases.append((d, needle))
    for path, needle in cases:
        with pytest.raises(CheckpointError, match=needle) as e:
            open_run(path)
        assert one_line(e), e.value
    d = tmp_path / "metrics"
    shutil.copytree(run.out_dir, d)
    (d / "final_metrics.json").write_text("{")
    (d / "metrics.jsonl").write_text('{"step": 1}\nnot json\n')
    rf = open_run(d)
    with pytest.raises(CheckpointError, match="final_metrics.json") as e:
        rf.metrics
    assert one_line(e)
    with pytest.raises(CheckpointError, match="line 2 is not a JSON record") as e:
        rf.history
    assert one_line(e)
    with pytest.raises(CheckpointError, match="no checkpoint 'step-3'; it has: best, last"):
        rf.load_checkpoint("step-3")
    with pytest.raises(ConfigError, match="unknown split 'dev'"):
        rf.split("dev")


# ---------------------------------------------------------------------------------------------- explicit splits
def test_explicit_in_memory_splits(images, tmp_path):
    train, val, test = images.subset(torch.arange(40)), images.subset(torch.arange(40, 50)), \
        images.subset(torch.arange(50, 64))
    run = genlab.train("vae", train, val=val, test=test, out=tmp_path / "r", config=CFG)
    assert _equal(run.splits.val, val) and _equal(run.splits.test, test)
    # the training data keeps the seeded permutation of DataConfig.split_seed (no fraction held out of it)
    assert _equal(run.splits.train, train.subset(torch.randperm(40, generator=torch.Generator().manual_seed(0))))
    assert run.spec.data.val == 0.0 and run.spec.data.test == 0.0
    assert run.metrics["test_samples"] == 14
    rf = open_run(tmp_path / "r", data=train, val=val, test=test)
    assert _equal(rf.splits.val, val) and _equal(rf.splits.test, test) and _equal(rf.splits.train, run.splits.train)
    assert rf.sources["val"]["origin"] == "memory" and rf.sources["val"]["n"] == 10
    with pytest.raises(ConfigError, match="in-memory val data"):
        open_run(tmp_path / "r", data=train).splits


def test_explicit_splits_are_checked_against_the_training_data(images, tmp_path):
    train = images.subset(torch.arange(40))
    bad = [
        (TensorDataset(torch.rand(8, 1, 6, 6), torch.zeros(8, dtype=torch.long), name="small"),
         DataError, "shape \\(1, 6, 6\\) but the training data"),
        (TensorDataset(torch.rand(8, 64), torch.zeros(8, dtype=torch.long), name="rows"), DataError,
         "tabular samples"),
        (TensorDataset(images.x[:8], name="nolabels"), DataError, "has labels but the val data 'nolabels' has none"),
        (TensorDataset(images.x[:8], torch.zeros(8, dtype=torch.long), classes=["cat"], name="cats"), DataError,
         r"classes \[cat\] but the training data has \[0, 1, 2, 3\]"),
        (TensorDataset(images.x[:8], torch.full((8,), 5), name="k6"), DataError, "classes"),
    ]
    for ds, exc, needle in bad:
        with pytest.raises(exc, match=needle) as e:
            genlab.train("vae", train, val=ds, out=tmp_path / "o", config=CFG)
        assert one_line(e)
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match="both give the val"):
        genlab.train("vae", train, val=images, config={**CFG, "data": {"val_data": "x.npz"}})
    with pytest.raises(ConfigError, match="a fraction; give one"):
        genlab.train("vae", train, test=images, config={**CFG, "data": {"test": 0.2}})
    with pytest.raises(ConfigError, match="data.val=0.2 and data.val_data='v.npz' both give"):
        DataConfig(val=0.2, val_data="v.npz")
    # a validation set lacking some classes is fine; it gets the training data's class names
    few = TensorDataset(images.x[:8], torch.tensor([0, 1] * 4), name="two")
    splits = runs.prepare_data(DataConfig(name="x", val=0.0), train, val=few)
    assert splits.val.classes == train.classes and splits.val.num_classes == 4


def test_explicit_tabular_split_is_standardised_by_the_training_split(tabular_data):
    train, val = tabular_data.subset(torch.arange(60)), tabular_data.subset(torch.arange(60, 80))
    s = runs.prepare_data(DataConfig(name="t", val=0.0, test=0.0), train, val=val)
    mean, std = train.x.double().mean(0), train.x.double().std(0, unbiased=False)
    assert torch.allclose(s.val.x.double(), (val.x.double() - mean) / std, atol=1e-5)
    assert torch.allclose(s.train.x.double().mean(0), torch.zeros(5, dtype=torch.float64), atol=1e-5)


# ---------------------------------------------------------------------------------------------- end-of-run test
def test_end_of_run_test_evaluation_is_configurable(images, memory_run):
    run, _ = memory_run
    m = run.metrics
    assert "test_iwae_k4" in m and "test_iwae_k100" not in m and np.isfinite(m["test_iwae_k4"])
    assert "test_elbo" in m and "test_mse" in m
    s = run.splits
    off = runs.test_metrics(run.model, s, iwae_k=0)
    assert "test_elbo" in off and not any(k.startswith("test_iwae") for k in off)
    assert off["test_mse"] == pytest.approx(m["test_mse"], rel=1e-6)
    # PCA with as many components as the code size (latent_dim=2), by numpy's SVD: the best rank-2 reconstruction
    tr = s.train.x.flatten(1).double().numpy()
    te = s.test.x.flatten(1).double().numpy()
    mu = tr.mean(0)
    v = np.linalg.svd(tr - mu, full_matrices=False)[2][:2]  # (2, D) principal axes
    ref = np.mean(((te - mu) @ v.T @ v + mu - te) ** 2)
    assert m["pca_mse"] == pytest.approx(ref, rel=1e-6) and m["mse_vs_pca"] == pytest.approx(m["test_mse"] / ref)
    # the reported bound is the model's IWAE estimate with k samples on the test split (the same noise)
    k = 3
    g = torch.Generator().manual_seed(0)
    _ = run.model.elbo(s.test.x, generator=g)  # test_metrics draws the ELBO's noise first
    ref = run.model.log_likelihood(s.test.x, k=k, generator=g).mean()
    assert runs.test_metrics(run.model, s, iwae_k=k, seed=0)["test_iwae_k3"] == pytest.approx(float(ref), rel=1e-9)
    with pytest.raises(ConfigError, match="test.iwae_k must be in"):
        FinalEvalConfig(iwae_k=-1)
    with pytest.raises(ConfigError, match="unknown key 'k'"):
        runs.RunSpec.from_sections("vae", {"test": {"k": 3}})
    r = genlab.train("vae", images, config={**CFG, "test": {"enabled": False}}, figures=False)
    assert not any(k.startswith("test_") for k in r.metrics) and "val_loss" in r.metrics


def test_resume_may_change_only_the_test_section_and_resumable_trainer_keys():
    saved = {"model": {"latent_dim": 2}, "trainer": {"epochs": 2}, "data": {"val": 0.1}, "test": {"iwae_k": 4}}
    out = runs._resume_sections(saved, {"test": {"iwae_k": 0, "enabled": False}, "trainer": {"epochs": 5}})
    assert out["test"] == {"iwae_k": 0, "enabled": False} and out["trainer"]["epochs"] == 5
    with pytest.raises(ConfigError, match="data.val cannot change when resuming"):
        runs._resume_sections(saved, {"data": {"val": 0.2}})
    with pytest.raises(ConfigError, match="data.val_data cannot change"):
        runs._resume_sections(saved, {"data": {"val_data": "v.npz"}})


def test_a_run_that_loses_to_pca_says_so(caplog):
    """One epoch of a VAE on 200 digits reconstructs worse than PCA with as many components: the run's metrics hold
    the ratio and a warning names it."""
    with caplog.at_level(logging.WARNING, logger="genlab.runs"):
        run = genlab.train("vae", "digits", config={"trainer": {"epochs": 1, "batch_size": 64, "precision": "fp32",
                                                                "channels_last": False, "fid_samples": 0},
                                                    "data": {"limit": 200}, "model": {"latent_dim": 4}})
    assert run.metrics["mse_vs_pca"] > 1
    msgs = [r.getMessage() for r in caplog.records if "worse than PCA" in r.getMessage()]
    assert len(msgs) == 1 and "with 4 components" in msgs[0] and f"{run.metrics['mse_vs_pca']:.2f} times" in msgs[0]


@pytest.mark.parametrize("scored", [True, False])
def test_figures_use_the_test_split_only_when_it_is_scored(images, tmp_path, monkeypatch, scored):
    """test.enabled=false (as in tune trials) leaves the test split untouched: the figures' held-out images come
    from the validation split."""
    seen = []
    real = runs.write_figures

    def spy(model, x, *args, **kwargs):  # the real writer, with the held-out images it was given recorded
        seen.append(x.clone())
        return real(model, x, *args, **kwargs)

    monkeypatch.setattr(runs, "write_figures", spy)
    val, test = TensorDataset(images.x[40:52], images.y[40:52]), TensorDataset(images.x[52:], images.y[52:])
    cfg = {**CFG, "test": {"enabled": scored}}
    genlab.train("vae", TensorDataset(images.x[:40], images.y[:40]), val=val, test=test, out=tmp_path / "r", config=cfg)
    assert len(seen) == 1 and torch.equal(seen[0], (test if scored else val).x)
    assert (tmp_path / "r" / "reconstructions.png").is_file()


@pytest.mark.parametrize("name", ["dcgan", "gan", "cgan", "acgan"])
def test_a_gan_saved_before_r1_was_its_default_loads_and_resumes_without_r1(tmp_path, name):
    """config.from_saved: a run folder whose config lacks r1_gamma (written before R1 became the model's default:
    dcgan 2026-12-04, gan, cgan and acgan 2026-12-06) trained without R1; loading, opening and resuming it keep R1 off
    instead of today's default, and a fresh config still gets the default (lazy R1, gamma 1 every 4 D steps)."""
    import genlab
    from genlab.data import TensorDataset
    from genlab.io import load
    data = TensorDataset(torch.rand(16, 1, 8, 8) * 2 - 1, torch.arange(16) % 2)
    cfg = {"model": {"r1_gamma": 0.0}, "trainer": {"epochs": 1, "batch_size": 8, "fid_samples": 0,
                                                  "monitor_every": 0}}
    genlab.train(name, data, config=cfg, out=tmp_path / "run", figures=False)
    for path, keys in ((tmp_path / "run" / "config.json", ("sections", "model")),
                       (tmp_path / "run" / "model" / "config.json", ("config",))):
        rec = json.loads(path.read_text())
        section = rec
        for k in keys:
            section = section[k]
        del section["r1_gamma"]  # as a genlab of before 2026-12-04 wrote it
        path.write_text(json.dumps(rec))
    assert load(tmp_path / "run").config.r1_gamma == 0.0
    assert genlab.open_run(tmp_path / "run").spec.model_config["r1_gamma"] == 0.0
    run = genlab.train(data=data, resume=tmp_path / "run", config={"trainer": {"epochs": 2}}, figures=False)
    assert run.model.config.r1_gamma == 0.0 and run.result.epoch == 2
    fresh = genlab.train(name, data, config={"trainer": cfg["trainer"]}, figures=False).model.config
    assert (fresh.r1_gamma, fresh.r1_every) == (1.0, 4)


def test_a_run_without_figures_records_its_metrics_and_is_finished(images, tmp_path):
    """``figures=False`` (estimators, ``tune --no-trial-figures``) skips figures and report but still writes
    ``final_metrics.json``: the run opens with its metrics and resuming it is the finished run's no-op (it trained
    again from the last checkpoint before)."""
    run = genlab.train("vae", images, config=CFG, out=tmp_path / "run", figures=False)
    assert not (tmp_path / "run" / "report.html").exists()
    assert json.loads((tmp_path / "run" / "final_metrics.json").read_text())["steps"] == run.result.step
    assert open_run(tmp_path / "run", data=images).metrics["steps"] == run.result.step
    again = genlab.train(resume=tmp_path / "run", data=images, figures=False)
    assert again.result is None
