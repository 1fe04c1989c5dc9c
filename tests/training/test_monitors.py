"""Sample-quality monitors (Trainer callbacks every sampler gets): FID each validation with the best checkpoint
chosen by it, class coverage and conditional accuracy, diversity / collapse warnings, sample grids from a fixed
noise batch; old GAN configs with the removed monitor keys; gradient norms in the logs."""
import json
import logging
import time

import numpy as np
import pytest
import torch
from PIL import Image

import genlab
from genlab.config import from_dict
from genlab.data import TensorDataset, load_dataset
from genlab.errors import ConfigError
from genlab.io.images import make_grid
from genlab.metrics import FeatureStats, fid, load_feature_net
from genlab.registry import get_model_entry
from genlab.training import Callback, DiversityMonitor, SampleQualityMonitor, Trainer, seed_everything
from genlab.training.monitors import FID_SEED, diversity, real_stats, sample_quality
from tests.conftest import tiny_trainer


def build(name, data, **cfg):
    entry = get_model_entry(name)
    return entry.cls(from_dict(entry.config_cls, {"latent_dim": 4, **cfg}), data.info())


@pytest.fixture(scope="module")
def digits_split():
    ds = load_dataset("digits")
    tr, va, _ = ds.split(0.25, 0.0, seed=0)
    return tr, va


def _replay_generator(model, images, labels, *, collapse=False):
    """Make ``model.generate`` return real images: of the requested class (conditional), or one image."""
    by_class = [images[labels == k] for k in range(10)]

    def generate(z, y=None):
        if collapse:
            return images[:1].expand(len(z), -1, -1, -1).clone()
        if y is None:
            y = (z[:, 1].abs() * 1000).long() % 10
        idx = (z[:, 0].abs() * 1000).long()  # a z-dependent pick within the class
        return torch.stack([by_class[int(k)][int(i) % len(by_class[int(k)])] for k, i in zip(y, idx)])
    model.generate = generate


def test_fid_diversity_and_class_accuracy_of_a_perfect_and_a_collapsed_generator(digits_split):
    """A generator that replays real training digits of the requested class scores near the real-vs-real
    floor with full class coverage and the feature net's accuracy; one that repeats a single image scores
    entropy 0, one class and a large FID."""
    train, val = digits_split
    model = build("cgan", train).eval()
    _replay_generator(model, train.x, train.y)
    real = real_stats(model, val.x)
    m = sample_quality(model, real, 600)
    net = load_feature_net("digits")
    feats_tr, _ = net.extract(train.x[:600])
    feats_va, _ = net.extract(val.x)
    floor = fid(FeatureStats.from_features(feats_tr), FeatureStats.from_features(feats_va))
    assert m["fid"] < 2.0 * floor + 1.0
    assert m["div_classes"] == 10 and m["div_entropy"] > 0.97
    assert m["cond_acc"] > 0.95
    _replay_generator(model, train.x, train.y, collapse=True)
    bad = sample_quality(model, real, 600)
    assert bad["div_entropy"] == 0.0 and bad["div_classes"] == 1 and bad["cond_acc"] < 0.2
    assert bad["fid"] > 20 * m["fid"]


class Keep(Callback):
    """Record the weights at the end of each epoch (after the validation of that epoch)."""

    def __init__(self):
        self.states = []

    def on_epoch_end(self, trainer, logs):
        self.states.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})


@pytest.mark.parametrize("name", ["vae", "dcgan"])
def test_logged_fid_equals_an_independent_computation(name, digits_split):
    """The val/fid a Trainer logs is genlab.metrics.fid of the feature-net features of the samples (eval mode,
    noise seeded FID_SEED) and of the validation images, computed here without the monitor."""
    train, val = digits_split
    seed_everything(0)
    model = build(name, train, **({"width": 8} if name == "dcgan" else {}))
    keep = Keep()
    res = Trainer(tiny_trainer(epochs=2, batch_size=64, log_every=100, fid_samples=300),
                  callbacks=[keep]).fit(model, train, val)
    vals = [r for r in res.history if r["split"] == "val"]
    assert len(vals) == 2 and all("fid" in r and "div_entropy" in r and "div_classes" in r for r in vals)
    net = load_feature_net("digits")
    real = FeatureStats.from_features(net.extract(val.x)[0])
    for rec, state in zip(vals, keep.states):
        model.load_state_dict(state)
        model.eval()
        with torch.no_grad():
            x = model.sample(300, generator=torch.Generator().manual_seed(FID_SEED))
        want = fid(FeatureStats.from_features(net.extract(x.clamp(0, 1))[0]), real)
        assert rec["fid"] == pytest.approx(want, rel=1e-7)  # MKL's GEMM may round differently between calls


def test_vae_best_checkpoint_follows_val_fid(tmp_path):
    """A VAE run logs val/fid at every validation and, with trainer.monitor=val/fid, keeps the lowest-FID
    epoch as checkpoints/best and exports it."""
    torch.manual_seed(0)
    run = genlab.train("vae", "digits", out=tmp_path / "run", figures=False, config={
        "model": {"latent_dim": 4}, "data": {"limit": 500},
        "trainer": tiny_trainer(epochs=4, batch_size=32, log_every=100, fid_samples=200, monitor="val/fid",
                                lr_schedule="cosine")})
    vals = [(r["step"], r["fid"]) for r in run.result.history if r["split"] == "val"]
    assert len(vals) == 4
    best_step, best = min(vals, key=lambda t: t[1])
    assert run.metrics["best_val_fid"] == best and run.metrics["best_step"] == best_step
    model = genlab.load(run.out_dir)
    fig = sample_quality(model.eval(), real_stats(model, run.splits.val.x), 200)
    assert fig["fid"] == pytest.approx(best, rel=1e-7)  # (FeatureStats' float64 GEMM: ~1e-9 run to run)


def test_cvae_logs_conditional_accuracy(tmp_path):
    run = genlab.train("cvae", "digits", figures=False, config={
        "model": {"latent_dim": 4}, "data": {"limit": 400},
        "trainer": tiny_trainer(epochs=2, batch_size=32, log_every=100, fid_samples=100)})
    vals = [r for r in run.result.history if r["split"] == "val"]
    assert len(vals) == 2
    assert all({"fid", "cond_acc", "div_entropy", "div_classes"} <= set(r) for r in vals)
    assert all(0 <= r["cond_acc"] <= 1 for r in vals)
    assert run.metrics["best_val_loss"] is not None  # a VAE's default monitor stays val/loss


def test_collapse_warning_fires_on_a_collapsed_generator_only(digits_split, caplog):
    """Through the Trainer: a generator that repeats one image is reported from collapse_warmup on; one that
    replays real digits is never reported."""
    train, _ = digits_split
    data = TensorDataset(train.x[:320], train.y[:320], name="digits-part")
    logged = {}
    for collapse in (True, False):
        torch.manual_seed(0)
        model = build("gan", data)
        _replay_generator(model, data.x, data.y, collapse=collapse)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="genlab.training.monitors"):
            res = Trainer(tiny_trainer(epochs=1, batch_size=32, log_every=100, monitor_every=2,
                                       collapse_warmup=5)).fit(model, data)
        logged[collapse] = [r for r in res.history if r["split"] == "train" and "div_entropy" in r]
        msgs = [r.getMessage() for r in caplog.records if "possible mode collapse" in r.getMessage()]
        if collapse:
            assert [r["step"] for r in logged[True]] == [2, 4, 6, 8, 10]  # records on monitor steps
            assert all(r["div_entropy"] == 0.0 and r["div_classes"] == 1 for r in logged[True])
            assert len(msgs) == 3 and "at step 6" in msgs[0]  # steps 6, 8, 10: after the warm-up only
        else:
            assert msgs == [] and all(r["div_classes"] == 10 and r["div_entropy"] > 0.9 for r in logged[False])


def test_faces_one_class_for_the_lfw_net_judged_by_the_feature_spread_not_the_class_histogram(caplog):
    """On lfw_subset's 25x25 faces the lfw net sees one class (face), so a generator replaying real faces has a
    class entropy near 0: the monitor then adds ``div_ratio`` in the net's feature space and warns on it alone, so
    the replaying generator raises no collapse warning and one that repeats one face does."""
    faces = load_dataset("lfw")
    data = TensorDataset(faces.x[faces.y == 1], None, name="faces")
    for collapse in (False, True):
        torch.manual_seed(0)
        model = build("dcgan", data)
        model.generate = (lambda z, y=None: data.x[:1].expand(len(z), -1, -1, -1).clone()) if collapse else \
            (lambda z, y=None: data.x[(z[:, 0].abs() * 1000).long() % len(data.x)])
        out = diversity(model, 200, real=data.x, seed=0)
        assert out["div_entropy"] < 0.5 and out["div_classes"] == 1  # one class for the net, either way
        assert out["div_ratio"] == (0.0 if collapse else pytest.approx(1.0, abs=0.15))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="genlab.training.monitors"):
            Trainer(tiny_trainer(epochs=2, batch_size=50, monitor_every=1, collapse_warmup=0)).fit(model, data)
        msgs = [r.getMessage() for r in caplog.records if "possible mode collapse" in r.getMessage()]
        assert (len(msgs) == 4 and "div_ratio=0.000" in msgs[0]) if collapse else msgs == []


def test_a_one_row_batch_gives_no_diversity_figures_and_no_error(tabular_data):
    """80 rows in batches of 79: the second step's real batch has one row, too few for a pairwise spread, so that
    monitor step logs nothing (and judges nothing) instead of failing."""
    torch.manual_seed(0)
    model = build("gan", tabular_data, hidden=[8])
    res = Trainer(tiny_trainer(epochs=1, batch_size=79, monitor_every=1, collapse_warmup=0)).fit(model, tabular_data)
    steps = [r for r in res.history if r["split"] == "train"]
    assert res.step == 2 and "div_ratio" in steps[0] and "div_ratio" not in steps[1]


def test_diversity_ratio_without_a_feature_net(tabular_data):
    model = build("gan", tabular_data, hidden=[8]).eval()
    model.generate = lambda z, y=None: torch.zeros(len(z), 5)
    assert diversity(model, 50, real=tabular_data.x) == {"div_ratio": 0.0}
    model.generate = lambda z, y=None: tabular_data.x[torch.arange(len(z)) % len(tabular_data)]
    assert diversity(model, 80, real=tabular_data.x)["div_ratio"] == pytest.approx(1.0, rel=1e-6)


def test_monitors_do_not_change_training(image_data):
    """The monitors sample in eval mode from their own generators under a forked RNG: the weights after training
    and every training loss are identical with and without them (EMA on, so the EMA-applied sampling path is
    covered too; restore_best off, since with the FID on the best-FID epoch would be exported)."""
    train, val, _ = image_data.split(0.25, 0.0, seed=0)
    states, losses = [], []
    for on in (True, False):
        torch.manual_seed(0)
        model = build("dcgan", train, width=8)
        res = Trainer(tiny_trainer(epochs=2, ema_decay=0.9, restore_best=False, monitor_every=1 if on else 0,
                                   fid_samples=64 if on else 0)).fit(model, train, val)
        states.append(model.state_dict())
        losses.append([(r["d_loss"], r["g_loss"]) for r in res.history if r["split"] == "train"])
        logged = {k for r in res.history if r["split"] in ("train", "val") for k in r}
        assert ("div_entropy" in logged) == on and ("fid" in logged) == on
    assert losses[0] == losses[1]
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k


def test_user_monitor_replaces_the_default_one(image_data):
    mine = SampleQualityMonitor(32)
    tr = Trainer(tiny_trainer(fid_samples=500), callbacks=[mine])
    assert [type(c) for c in tr.callbacks] == [DiversityMonitor, SampleQualityMonitor] and tr.callbacks[1] is mine
    assert Trainer(tiny_trainer(fid_samples=0, monitor_every=0)).callbacks == []


def test_best_checkpoint_follows_fid(image_data, tmp_path):
    torch.manual_seed(0)
    tr, va, _ = image_data.split(0.25, 0.0, seed=0)
    data = TensorDataset(torch.cat([tr.x, va.x]), torch.cat([tr.y, va.y]), name="tiny")
    run = genlab.train("dcgan", data, out=tmp_path / "run", config={
        "model": {"latent_dim": 4, "width": 8},
        "trainer": tiny_trainer(epochs=4, fid_samples=64), "data": {"val": 0.25, "test": 0.0}})
    fids = [(r["step"], r["fid"]) for r in run.result.history if r["split"] == "val"]
    assert len(fids) == 4
    best_step, best = min(fids, key=lambda t: t[1])
    assert run.metrics["best_val_fid"] == best and run.metrics["best_step"] == best_step
    assert run.metrics["val_fid"] == fids[-1][1]  # the final score is recorded too
    # the exported model is the best one: its FID on the validation set is the best score
    model = genlab.load(run.out_dir).eval()
    assert sample_quality(model, real_stats(model, run.splits.val.x), 64)["fid"] == pytest.approx(best, rel=1e-6)


def test_no_best_checkpoint_without_cheap_fid(tmp_path, tabular_data):
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(40, 1, 16, 16, generator=g), name="16px")
    model = build("dcgan", data, width=8)
    assert model.default_monitor == ("val/fid", "min")
    res = Trainer(tiny_trainer(epochs=2), out_dir=tmp_path / "r").fit(model, *data.split(0.25, 0.0)[:2])
    assert res.best_value is None and not (tmp_path / "r" / "checkpoints" / "best").exists()
    assert not [r for r in res.history if "fid" in r]
    with pytest.raises(ConfigError, match="trainer.patience needs a monitored value"):
        Trainer(tiny_trainer(epochs=2, patience=2)).fit(build("dcgan", data, width=8), data)
    # an explicit monitor still works
    res = Trainer(tiny_trainer(epochs=2, monitor="val/loss")).fit(build("dcgan", data, width=8),
                                                                  *data.split(0.25, 0.0)[:2])
    assert res.best_value is not None
    # tabular data has a (raw-column) FID, unless the monitor is off
    t = tabular_data.standardized()
    tr, va, _ = t.split(0.25, 0.0, seed=0)
    assert Trainer(tiny_trainer(epochs=1)).fit(build("gan", tr, hidden=[8]), tr, va).best_value is not None
    off = Trainer(tiny_trainer(epochs=1, fid_samples=0)).fit(build("gan", tr, hidden=[8]), tr, va)
    assert off.best_value is None and not [r for r in off.history if "fid" in r]


def test_old_gan_folders_with_removed_monitor_keys_load(image_data, tmp_path, caplog):
    """Folders written when the monitor settings were GAN model keys still load: the keys are ignored with a
    warning naming where they went (trainer.*)."""
    torch.manual_seed(0)
    model = build("dcgan", image_data, width=8).eval()
    genlab.save_model(model, tmp_path / "m")
    cfg_file = tmp_path / "m" / "config.json"
    rec = json.loads(cfg_file.read_text())
    rec["config"].update(monitor_every=100, monitor_samples=256, collapse_threshold=0.5, collapse_warmup=500,
                         fid_samples=1000)
    cfg_file.write_text(json.dumps(rec))
    with caplog.at_level(logging.WARNING, logger="genlab.config"):
        loaded = genlab.load(tmp_path / "m")
    assert any("fid_samples" in r.getMessage() and "trainer.fid_samples" in r.getMessage() for r in caplog.records)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(loaded.sample(4, generator=g), model.sample(4, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ConfigError, match="unknown key 'fid_sample'"):  # other unknown keys are still refused
        build("dcgan", image_data, fid_sample=3)


def test_sample_grids_from_fixed_noise_each_epoch(image_data, tmp_path):
    torch.manual_seed(0)
    run = genlab.train("cgan", image_data, out=tmp_path / "run", config={  # chore_overhead null: every epoch
        "model": {"latent_dim": 4, "width": 8}, "trainer": tiny_trainer(epochs=3, restore_best=False,
                                                                        chore_overhead=None)})
    files = sorted(p.name for p in (run.out_dir / "samples").iterdir())
    assert files == ["epoch-0001.png", "epoch-0002.png", "epoch-0003.png"]
    # the last grid is the final model's samples, one class per row (64 // K of each), from the seeded noise
    x = run.model.sample(64, labels=torch.arange(4).repeat_interleave(16), generator=torch.Generator().manual_seed(0))
    want = make_grid(x, nrow=16)
    got = np.asarray(Image.open(run.out_dir / "samples" / "epoch-0003.png"))
    assert np.array_equal(got, want[..., 0])
    run2 = genlab.train("gan", image_data, out=tmp_path / "run2", config={
        "model": {"latent_dim": 4}, "trainer": tiny_trainer(epochs=3, sample_every=2)})
    assert sorted(p.name for p in (run2.out_dir / "samples").iterdir()) == ["epoch-0002.png", "epoch-0003.png"]
    run3 = genlab.train("gan", image_data, out=tmp_path / "run3", config={
        "model": {"latent_dim": 4}, "trainer": tiny_trainer(epochs=1, sample_every=0)})
    assert not (run3.out_dir / "samples").exists()


@pytest.mark.parametrize("sample_every", [None, 1])
def test_automatic_sample_grids_keep_under_chore_overhead_explicit_ones_do_not(image_data, tmp_path, monkeypatch,
                                                                                sample_every):
    """With grids made to take 0.2 s, ``sample_every: null`` (a GAN: every epoch) writes the first and the last
    epoch's grid and skips those due inside the 4 s window after each (a busy machine may add one or two);
    ``sample_every: 1``, asked for explicitly, writes all twelve."""
    from genlab.io import images
    real = images.save_grid
    monkeypatch.setattr(images, "save_grid", lambda *a, **k: (time.sleep(0.2), real(*a, **k))[1])
    run = genlab.train("gan", image_data, out=tmp_path / "run", config={
        "model": {"latent_dim": 4}, "trainer": tiny_trainer(epochs=12, sample_every=sample_every)})
    files = sorted(p.name for p in (run.out_dir / "samples").iterdir())
    assert files[0] == "epoch-0001.png" and files[-1] == "epoch-0012.png"
    if sample_every is None:
        assert len(files) <= 5, files
    else:
        assert files == [f"epoch-{e:04d}.png" for e in range(1, 13)]


def test_gradient_norms_logged_on_log_steps(image_data, tmp_path):
    torch.manual_seed(0)
    model = build("gan", image_data, n_critic=2)
    Trainer(tiny_trainer(epochs=2, log_every=1), out_dir=tmp_path / "r").fit(model, image_data)
    recs = [json.loads(ln) for ln in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in recs if r["split"] == "train"]
    assert all("grad_norm/d" in r and ("grad_norm/g" in r) == ("g_loss" in r) for r in steps)
    assert [r["step"] for r in steps if "g_loss" in r] == [2, 4, 6, 8]
    assert all(r["grad_norm/d"] > 0 and r.get("grad_norm/g", 1.0) > 0 for r in steps)


@pytest.mark.slow
def test_mlp_gan_covers_the_digit_classes():
    """Quality regression: the MLP generator (BatchNorm on hidden layers) covers the 10 digit classes after a
    short run; without BatchNorm it stayed on one class for 60 epochs."""
    torch.manual_seed(0)
    run = genlab.train("gan", "digits", config={"trainer": {"epochs": 25, "batch_size": 64, "precision": "fp32",
                                                             "fid_samples": 500}}, figures=False)
    assert run.metrics["val_div_classes"] >= 8 and run.metrics["val_div_entropy"] > 0.8
    assert run.metrics["best_val_fid"] < 250


def test_fid_on_validation_data_with_missing_values_uses_the_complete_samples(digits_split):
    """Imputation trains on data with NaN entries: the monitor compares samples with the complete validation
    samples only (the same FID as on those samples alone), and the run does not stop on the NaN."""
    train, val = digits_split
    x = val.x.clone()
    x[::3, 0, 2, 3] = float("nan")  # a third of the validation images lose one pixel
    holey = TensorDataset(x, val.y, name="digits-holes", allow_missing=True)
    complete = TensorDataset(val.x[torch.isfinite(x.flatten(1)).all(1)], name="digits-complete")
    fids = []
    for data in (holey, complete):
        seed_everything(0)
        model = build("vae", train)
        res = Trainer(tiny_trainer(epochs=1, batch_size=64, log_every=100, fid_samples=200)).fit(model, train, data)
        fids.append([r for r in res.history if r["split"] == "val"][-1]["fid"])
    assert np.isfinite(fids[0]) and fids[0] == pytest.approx(fids[1], rel=1e-9)
