"""Contract tests every registered model passes (build, a step lowers the loss, save/load, seeding)."""
import pytest
import torch

import genlab
from genlab.config import from_dict
from genlab.registry import get_model_entry, list_models
from genlab.training import Trainer, seed_everything
from tests.conftest import tiny_trainer

MODELS = [name for name, _ in list_models()]
KINDS = ["image", "tabular"]


def _data(kind, image_data, tabular_data):
    return image_data if kind == "image" else tabular_data.standardized()


def _build(name, data, **cfg):
    entry = get_model_entry(name)
    if data.kind not in entry.cls.input_kinds:
        pytest.skip(f"{name} does not take {data.kind} data")
    return entry.cls(from_dict(entry.config_cls, {"latent_dim": 4, **cfg}), data.info())


def test_registry_lists_foundation_models():
    assert {"ae", "vae"} <= set(MODELS)
    for _, summary in list_models():
        assert summary and "\n" not in summary


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", MODELS)
def test_builds_and_shapes(name, kind, image_data, tabular_data):
    data = _data(kind, image_data, tabular_data)
    model = _build(name, data)
    x = data.x[:5]
    if model.can_reconstruct:
        rec = model.reconstruct(x)
        assert rec.shape == x.shape and torch.isfinite(rec).all()
    else:
        assert model.can_sample, "a model that cannot reconstruct must sample"
    if model.can_sample:
        s = model.sample(3, generator=torch.Generator().manual_seed(0))
        assert s.shape == (3, *data.sample_shape) and torch.isfinite(s).all()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", MODELS)
def test_one_step_lowers_loss(name, kind, image_data, tabular_data):
    data = _data(kind, image_data, tabular_data)
    torch.manual_seed(0)
    model = _build(name, data)
    batch = {"x": data.x[:32], "y": data.y[:32]}  # labels: conditional models (cvae) need them
    specs = model.configure_optimizers()
    opt = next(iter(specs.values())).optimizer  # GANs: "d", the default optimizer of training_step

    def loss_at_fixed_noise():
        torch.manual_seed(123)
        return model.training_step(batch, 0)["loss"]

    before = loss_at_fixed_noise()
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = loss_at_fixed_noise()
    assert after.item() < before.item()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip_is_exact(name, kind, image_data, tabular_data, tmp_path):
    data = _data(kind, image_data, tabular_data)
    model = _build(name, data).eval()
    genlab.save_model(model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    loaded = genlab.load(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.config == model.config
    if model.can_reconstruct:
        assert torch.equal(loaded.reconstruct(data.x[:8]), model.reconstruct(data.x[:8]))
    if model.can_sample:
        a = model.sample(4, generator=torch.Generator().manual_seed(5))
        b = loaded.sample(4, generator=torch.Generator().manual_seed(5))
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", MODELS)
def test_seeded_runs_are_identical(name, image_data):
    def run(seed):
        seed_everything(seed)
        model = _build(name, image_data)
        Trainer(tiny_trainer(seed=seed, epochs=1)).fit(model, image_data)
        return model.state_dict()

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
