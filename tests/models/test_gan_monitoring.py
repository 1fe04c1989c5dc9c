"""GAN training-time monitoring: diversity / collapse warnings, FID each validation with the best
checkpoint chosen by it, sample grids from a fixed noise batch, gradient norms in the logs."""
import json
import logging

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
from genlab.training import Trainer
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
        idx = (z[:, 0].abs() * 1000).long()  # a z-dependent pick within the class
        return torch.stack([by_class[int(k)][int(i) % len(by_class[int(k)])] for k, i in zip(y, idx)])
    model.generate = generate


def test_fid_diversity_and_class_accuracy_of_a_perfect_and_a_collapsed_generator(digits_split):
    """A generator that replays real training digits of the requested class scores near the real-vs-real
    floor with full class coverage and the feature net's accuracy; one that repeats a single image scores
    entropy 0, one class and a large FID."""
    train, val = digits_split
    model = build("cgan", train, fid_samples=600).eval()
    _replay_generator(model, train.x, train.y)
    m = model.validation_epoch_metrics(val)
    net = load_feature_net("digits")
    feats_tr, _ = net.extract(train.x[:600])
    feats_va, _ = net.extract(val.x)
    floor = fid(FeatureStats.from_features(feats_tr), FeatureStats.from_features(feats_va))
    assert m["fid"] < 2.0 * floor + 1.0
    assert m["div_classes"] == 10 and m["div_entropy"] > 0.97
    assert m["cond_acc"] > 0.95
    _replay_generator(model, train.x, train.y, collapse=True)
    bad = model.validation_epoch_metrics(val)
    assert bad["div_entropy"] == 0.0 and bad["div_classes"] == 1 and bad["cond_acc"] < 0.2
    assert bad["fid"] > 20 * m["fid"]


def test_fid_matches_an_independent_computation(digits_split):
    train, val = digits_split
    model = build("gan", train, fid_samples=300).eval()
    got = model.validation_epoch_metrics(val)["fid"]
    x = model.sample(300, generator=torch.Generator().manual_seed(12345))
    net = load_feature_net("digits")
    want = fid(FeatureStats.from_features(net.extract(x.clamp(0, 1))[0]),
               FeatureStats.from_features(net.extract(val.x)[0]))
    assert got == pytest.approx(want, rel=1e-6)
    assert model.validation_epoch_metrics(val)["fid"] == got  # fixed seed: repeatable


def test_collapse_warning_after_warmup_only(digits_split, caplog):
    train, _ = digits_split
    model = build("gan", train, monitor_every=1, collapse_warmup=5)
    _replay_generator(model, train.x, train.y, collapse=True)
    batch = {"x": train.x[:32], "y": train.y[:32]}
    with caplog.at_level(logging.WARNING, logger="genlab.models.gan"):
        out = model.training_step(batch, 3, "d")
        assert not caplog.records
        out = model.training_step(batch, 5, "g")
    assert out["div_entropy"] == 0.0 and out["div_classes"] == 1
    assert len(caplog.records) == 1 and "possible mode collapse at step 5" in caplog.records[0].getMessage()


def test_diversity_ratio_without_a_feature_net(tabular_data):
    model = build("gan", tabular_data, hidden=[8])
    model.generate = lambda z, y=None: torch.zeros(len(z), 5)
    d = model.diversity(50, real=tabular_data.x)
    assert d == {"div_ratio": 0.0}
    model.generate = lambda z, y=None: tabular_data.x[torch.arange(len(z)) % len(tabular_data)]
    assert model.diversity(80, real=tabular_data.x)["div_ratio"] == pytest.approx(1.0, rel=1e-6)


def test_monitoring_does_not_change_training(image_data):
    """The monitor samples from its own generator in eval mode: weights after training are identical."""
    states = []
    for every in (1, 0):
        torch.manual_seed(0)
        model = build("dcgan", image_data, width=8, monitor_every=every)
        res = Trainer(tiny_trainer(epochs=2)).fit(model, image_data)
        states.append(model.state_dict())
        logged = {k for r in res.history if r["split"] == "train" for k in r}
        assert ("div_entropy" in logged) == bool(every)
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k


def test_best_checkpoint_follows_fid(image_data, tmp_path):
    torch.manual_seed(0)
    tr, va, _ = image_data.split(0.25, 0.0, seed=0)
    data = TensorDataset(torch.cat([tr.x, va.x]), torch.cat([tr.y, va.y]), name="tiny")
    run = genlab.train("dcgan", data, out=tmp_path / "run", config={
        "model": {"latent_dim": 4, "width": 8, "fid_samples": 64},
        "trainer": tiny_trainer(epochs=4), "data": {"val": 0.25, "test": 0.0}})
    fids = [(r["step"], r["fid"]) for r in run.result.history if r["split"] == "val"]
    assert len(fids) == 4
    best_step, best = min(fids, key=lambda t: t[1])
    assert run.metrics["best_val_fid"] == best and run.metrics["best_step"] == best_step
    assert run.metrics["val_fid"] == fids[-1][1]  # the final score is recorded too
    # the exported model is the best one: its FID on the validation set is the best score
    model = genlab.load(run.out_dir)
    assert model.validation_epoch_metrics(run.splits.val)["fid"] == pytest.approx(best, rel=1e-6)


def test_no_best_checkpoint_without_cheap_fid(tmp_path):
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(40, 1, 16, 16, generator=g), name="16px")
    model = build("dcgan", data, width=8)
    assert model.default_monitor is None
    res = Trainer(tiny_trainer(epochs=2), out_dir=tmp_path / "r").fit(model, *data.split(0.25, 0.0)[:2])
    assert res.best_value is None and not (tmp_path / "r" / "checkpoints" / "best").exists()
    with pytest.raises(ConfigError, match="trainer.patience needs a monitored value"):
        Trainer(tiny_trainer(epochs=2, patience=2)).fit(build("dcgan", data, width=8), data)
    # an explicit monitor still works
    res = Trainer(tiny_trainer(epochs=2, monitor="val/loss")).fit(build("dcgan", data, width=8),
                                                                  *data.split(0.25, 0.0)[:2])
    assert res.best_value is not None


def test_default_monitors(image_data, tabular_data):
    assert build("dcgan", image_data, width=8).default_monitor == ("val/fid", "min")
    assert build("gan", tabular_data).default_monitor == ("val/fid", "min")
    assert build("gan", tabular_data, fid_samples=0).default_monitor is None
    assert build("vae", image_data).default_monitor == ("val/loss", "min")


def test_sample_grids_from_fixed_noise_each_epoch(image_data, tmp_path):
    torch.manual_seed(0)
    run = genlab.train("cgan", image_data, out=tmp_path / "run", config={
        "model": {"latent_dim": 4, "width": 8}, "trainer": tiny_trainer(epochs=3, restore_best=False)})
    files = sorted(p.name for p in (run.out_dir / "samples").iterdir())
    assert files == ["epoch-0001.png", "epoch-0002.png", "epoch-0003.png"]
    # the last grid is the final model's samples of labels 0..K-1 cycled, from the seeded noise
    x = run.model.sample(64, labels=torch.arange(64) % 4, generator=torch.Generator().manual_seed(0))
    want = make_grid(x, nrow=4)
    got = np.asarray(Image.open(run.out_dir / "samples" / "epoch-0003.png"))
    assert np.array_equal(got, want[..., 0])
    run2 = genlab.train("gan", image_data, out=tmp_path / "run2", config={
        "model": {"latent_dim": 4}, "trainer": tiny_trainer(epochs=3, sample_every=2)})
    assert sorted(p.name for p in (run2.out_dir / "samples").iterdir()) == ["epoch-0002.png", "epoch-0003.png"]
    run3 = genlab.train("gan", image_data, out=tmp_path / "run3", config={
        "model": {"latent_dim": 4}, "trainer": tiny_trainer(epochs=1, sample_every=0)})
    assert not (run3.out_dir / "samples").exists()


def test_gradient_norms_logged_on_log_steps(image_data, tmp_path):
    torch.manual_seed(0)
    model = build("gan", image_data)
    Trainer(tiny_trainer(epochs=2, log_every=1), out_dir=tmp_path / "r").fit(model, image_data)
    recs = [json.loads(ln) for ln in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in recs if r["split"] == "train"]
    assert all(("grad_norm/d" in r) == ("d_loss" in r) and ("grad_norm/g" in r) == ("g_loss" in r) for r in steps)
    assert all(r.get("grad_norm/d", 1.0) > 0 for r in steps)


@pytest.mark.slow
def test_mlp_gan_covers_the_digit_classes():
    """Quality regression: the MLP generator (BatchNorm on hidden layers) covers the 10 digit classes after a
    short run; without BatchNorm it stayed on one class for 60 epochs."""
    torch.manual_seed(0)
    run = genlab.train("gan", "digits", config={"model": {"fid_samples": 500},
                                                 "trainer": {"epochs": 25, "batch_size": 64, "precision": "fp32"}},
                       figures=False)
    assert run.metrics["val_div_classes"] >= 8 and run.metrics["val_div_entropy"] > 0.8
    assert run.metrics["best_val_fid"] < 250
