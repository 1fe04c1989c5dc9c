"""The model contract as checks any package can run on its own models (diffusers' ``ModelTesterMixin`` idea).

Every genlab model passes these checks; ``tests/models/test_contract.py`` runs them on each registered model.
A package that adds a model (docs/models/adding.md) runs the same checks in its own tests:

.. code-block:: python

    from genlab.testing import ModelContractTests

    class TestTinyVAE(ModelContractTests):
        model = "tiny-vae"            # a registered name, or the registered model class
        config = {"latent_dim": 4}   # small settings for fast tests

or call the functions (``check_declarations``, ``check_inference``, ``check_one_step_lowers_loss``,
``check_save_load_round_trip``, ``check_seeded_training``, ``check_trains``) with data of your own. Each check
raises ``AssertionError`` with what broke. What the contract asks:

* **declarations**: the class subclasses :class:`~genlab.models.GenerativeModel`, is registered under its
  ``registry_name`` with a config dataclass whose defaults build, declares every capability as a bool and its
  ``input_kinds``; a model that cannot reconstruct can sample;
* **inference**, per declared capability: ``reconstruct`` keeps the shape, ``sample(n, generator=g)`` gives
  ``(n, *shape)`` and the same samples for the same seed (a model that cannot sample refuses with a
  :class:`~genlab.errors.GenlabError`), ``encode`` a ``(B, latent_dim)`` tensor, ``decode`` ``(B, *shape)``,
  ``posterior``/``elbo``/``log_likelihood`` per-sample values, conditional models take and check labels, models
  that support missing values train and reconstruct through NaN entries; every output finite;
* **training**: one optimizer step lowers the loss of a fixed batch at fixed noise; seeded Trainer runs are
  identical and another seed differs; ``genlab.train`` runs end to end;
* **saving**: ``save_model``/``load`` round trip exactly and ``config.json`` records where the class lives.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import is_dataclass
from pathlib import Path

import torch

from .config import from_dict
from .data import TensorDataset
from .errors import GenlabError
from .models.base import CAPABILITIES, GenerativeModel, capabilities
from .registry import ModelEntry, get_model_entry, model_location

__all__ = ["ModelContractTests", "tiny_image_data", "tiny_tabular_data", "build", "accepts", "check_declarations",
           "check_inference", "check_one_step_lowers_loss", "check_save_load_round_trip", "check_seeded_training",
           "check_trains", "TINY_TRAINER"]

#: Trainer settings of the training checks (a few fast steps, exact fp32 on the CPU)
TINY_TRAINER = {"epochs": 1, "batch_size": 16, "precision": "fp32", "channels_last": False, "log_every": 1}


def tiny_image_data() -> TensorDataset:
    """64 smooth 1x8x8 images in [0, 1], 4 classes (the same every call)."""
    g = torch.Generator().manual_seed(0)
    base = torch.rand(4, 1, 8, 8, generator=g)
    y = torch.arange(64) % 4
    x = (base[y] * 0.8 + 0.2 * torch.rand(64, 1, 8, 8, generator=g)).clamp(0, 1)
    return TensorDataset(x, y, name="tiny-images")


def tiny_tabular_data() -> TensorDataset:
    """80 rows of 5 correlated columns (rank 2 plus noise), 2 classes (the same every call; not standardised)."""
    g = torch.Generator().manual_seed(1)
    z = torch.randn(80, 2, generator=g)
    w = torch.randn(2, 5, generator=g)
    y = (z[:, 0] > 0).long()  # 2 classes, so conditional models can run on tabular data too
    return TensorDataset(z @ w + 0.05 * torch.randn(80, 5, generator=g), y, name="tiny-table")


def _entry(model) -> ModelEntry:
    if isinstance(model, str):
        return get_model_entry(model)
    assert isinstance(model, type) and issubclass(model, GenerativeModel), \
        f"{model!r} is not a genlab model class (subclass genlab.models.GenerativeModel)"
    entry = get_model_entry(model.registry_name) if model.registry_name != "?" else None
    assert entry is not None and entry.cls is model, \
        f"{model.__qualname__} is not registered; decorate it with @genlab.register_model(name, ConfigClass)"
    return entry


def accepts(model, data: TensorDataset) -> bool:
    """Whether ``model`` (name or class) takes data of ``data``'s kind."""
    return data.kind in _entry(model).cls.input_kinds


def build(model, data: TensorDataset, config: dict | None = None) -> GenerativeModel:
    """``model`` (name or class) built from ``config`` (a dict of config fields) for ``data``."""
    entry = _entry(model)
    return entry.build(from_dict(entry.config_cls, dict(config or {}), "model"), data.info())


def _kw(model, data, n):
    return {"labels": data.y[:n]} if model.conditional else {}


def _finite(t, what: str) -> None:
    assert isinstance(t, torch.Tensor), f"{what} returned {type(t).__name__}, not a tensor"
    assert bool(torch.isfinite(t).all()), f"{what} returned non-finite values"


# -- the checks -------------------------------------------------------------------------------------------------
def check_declarations(model) -> None:
    """Registration and declared capabilities (see the module docstring)."""
    entry = _entry(model)
    cls = entry.cls
    assert cls.registry_name == entry.name and cls.config_cls is entry.config_cls
    assert is_dataclass(entry.config_cls), f"{entry.name}: config class {entry.config_cls.__name__} is not a dataclass"
    entry.config_cls()  # every field has a default
    assert entry.summary and "\n" not in entry.summary, f"{entry.name}: the summary must be one line"
    for cap in CAPABILITIES:
        assert isinstance(getattr(cls, cap), bool), f"{entry.name}: capability {cap} must be declared as a bool"
    kinds = capabilities(cls)["input_kinds"]
    assert kinds and set(kinds) <= {"image", "sequence", "tabular"}, \
        f"{entry.name}: input_kinds must name image, sequence and/or tabular"
    assert cls.can_reconstruct or cls.can_sample or cls.translates, \
        f"{entry.name}: a model that cannot reconstruct must sample (or translate)"
    loc = model_location(cls)
    assert loc["class"] == f"{cls.__module__}:{cls.__qualname__}" and json.dumps(loc)


def _refuses(fn, what: str) -> None:
    try:
        fn()
    except GenlabError:
        return
    raise AssertionError(f"{what} did not refuse with a GenlabError")


@torch.no_grad()
def check_inference(model, data: TensorDataset, config: dict | None = None) -> None:
    """The inference methods each declared capability promises, on 5 samples of ``data``, called the way genlab's
    apps and reports call them: ``encode(x, labels)``, ``decode(z, labels)`` and ``posterior(x, labels)`` with
    ``labels=None`` for unconditional models (which must refuse labels), ``reconstruct(x)`` (conditional models:
    ``reconstruct(x, labels)``),
    ``sample(n, labels=..., generator=...)``, ``elbo(x, labels=..., generator=...)`` and
    ``log_likelihood(x, k=..., labels=..., generator=...)``."""
    m = build(model, data, config).eval()
    name = m.registry_name
    x, n = data.x[:5], 5
    y = data.y[:n] if m.conditional else None
    if m.can_reconstruct:
        rec = m.reconstruct(x, **_kw(m, data, n))
        _finite(rec, f"{name}.reconstruct")
        assert rec.shape == x.shape, f"{name}.reconstruct: shape {tuple(rec.shape)} != input {tuple(x.shape)}"
    if m.can_sample:
        a = m.sample(3, labels=None, generator=torch.Generator().manual_seed(0))
        b = m.sample(3, labels=None, generator=torch.Generator().manual_seed(0))
        _finite(a, f"{name}.sample")
        assert a.shape == (3, *data.sample_shape), f"{name}.sample(3): shape {tuple(a.shape)}"
        assert torch.equal(a, b), f"{name}.sample: the same generator seed gave different samples"
    else:
        _refuses(lambda: m.sample(3), f"{name}.sample (can_sample=False)")
    if m.has_encoder:
        z = m.encode(x, y)
        _finite(z, f"{name}.encode")
        assert z.shape == (n, m.latent_dim), f"{name}.encode: shape {tuple(z.shape)} != (B, latent_dim={m.latent_dim})"
    if m.has_decoder:
        out = m.decode(torch.zeros(n, m.latent_dim), y)
        _finite(out, f"{name}.decode")
        assert out.shape == x.shape, f"{name}.decode: shape {tuple(out.shape)} != {tuple(x.shape)}"
    if m.has_likelihood and m.has_encoder:  # latent-variable models; exact-likelihood ones (pixelcnn) have none
        mu, logvar = m.posterior(x, y)
        assert mu.shape == logvar.shape == (n, m.latent_dim), f"{name}.posterior: shapes {mu.shape}, {logvar.shape}"
        assert torch.equal(m.encode(x, y), mu), f"{name}.encode must be the posterior mean"
    if m.has_likelihood:
        e = m.elbo(x, labels=y, generator=torch.Generator().manual_seed(0))
        ll = m.log_likelihood(x, k=4, labels=y, generator=torch.Generator().manual_seed(0))
        for t, what in ((e, "elbo"), (ll, "log_likelihood")):
            _finite(t, f"{name}.{what}")
            assert t.shape == (n,), f"{name}.{what}: shape {tuple(t.shape)} != (B,)"
    labels = data.y[:3]
    if m.conditional:
        s = m.sample(3, labels=labels, generator=torch.Generator().manual_seed(0))
        assert s.shape == (3, *data.sample_shape)
        bad = torch.tensor([int(data.y.max()) + 100])
        _refuses(lambda: m.sample(1, labels=bad), f"{name}.sample with a label outside the training classes")
    else:
        if m.can_sample:
            _refuses(lambda: m.sample(3, labels=labels), f"{name}.sample(labels=...) of an unconditional model")
        if m.has_encoder:
            _refuses(lambda: m.encode(x[:3], labels), f"{name}.encode(x, labels) of an unconditional model")
    if m.translates:  # paired image-to-image models: translate(src[, mask]) -> (B, *shape)
        _check_translate(m, data, n)
    if m.supports_missing:
        xm = x.clone()
        xm.view(n, -1)[:, ::3] = float("nan")
        m.train()
        with torch.enable_grad():
            loss = m.training_step({"x": xm, "y": data.y[:n]}, 0)["loss"]
        _finite(loss, f"{name}.training_step on data with NaN entries")
        m.eval()
        if m.can_reconstruct:
            _finite(m.reconstruct(xm, **_kw(m, data, n)), f"{name}.reconstruct of data with NaN entries")


def _translate_args(data: TensorDataset, n: int) -> tuple:
    return data.extras["src"][:n], (data.extras["mask"][:n] if "mask" in data.extras else None)


def _check_translate(m, data: TensorDataset, n: int) -> None:
    name = m.registry_name
    assert "src" in data.extras, f"{name} translates: test it on a paired data set (extras 'src')"
    src, mask = _translate_args(data, n)
    out = m.translate(src, mask)
    _finite(out, f"{name}.translate")
    assert out.shape == (n, *data.sample_shape), f"{name}.translate: shape {tuple(out.shape)}"
    assert float(out.min()) >= 0 and float(out.max()) <= 1, f"{name}.translate: outputs outside [0, 1]"
    _refuses(lambda: m.translate(src[..., :-1], mask), f"{name}.translate of a source of the wrong shape")


def check_one_step_lowers_loss(model, data: TensorDataset, config: dict | None = None, *, seed: int = 0) -> None:
    """One step of the first optimizer of ``configure_optimizers`` lowers ``training_step``'s loss on a fixed batch
    of 32 at fixed noise."""
    torch.manual_seed(seed)
    m = build(model, data, config)
    batch = {"x": data.x[:32], "y": data.y[:32],  # labels: conditional models need them
             **{k: v[:32] for k, v in data.extras.items()}}  # paired data: the sources (and masks)
    specs = m.configure_optimizers()
    assert specs, "configure_optimizers must name at least one optimizer"
    opt = next(iter(specs.values())).optimizer  # GANs: "d", the default optimizer of training_step

    def loss_at_fixed_noise():
        torch.manual_seed(123)
        out = m.training_step(batch, 0)
        assert "loss" in out and out["loss"].ndim == 0, "training_step must return a scalar 'loss'"
        return out["loss"]

    before = loss_at_fixed_noise()
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = loss_at_fixed_noise()
    assert after.item() < before.item(), f"{m.registry_name}: one step did not lower the loss " \
                                         f"({before.item():.6g} -> {after.item():.6g})"


def check_save_load_round_trip(model, data: TensorDataset, folder: str | Path | None = None,
                               config: dict | None = None) -> None:
    """``save_model`` then ``load`` gives the same class, config, and outputs bit for bit; ``config.json``
    records the class location."""
    from .io.serialize import load, save_model

    m = build(model, data, config).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(folder if folder is not None else tmp) / "m"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_model(m, path)
        assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
        rec = json.loads((path / "config.json").read_text())
        assert rec["class"] == f"{type(m).__module__}:{type(m).__qualname__}", "config.json must record the class"
        loaded = load(path)
    assert type(loaded) is type(m) and loaded.config == m.config
    x, kw = data.x[:8], _kw(m, data, 8)
    if m.can_reconstruct:
        assert torch.equal(loaded.reconstruct(x, **kw), m.reconstruct(x, **kw)), "reconstructions differ after load"
    if m.can_sample:
        a = m.sample(4, generator=torch.Generator().manual_seed(5))
        b = loaded.sample(4, generator=torch.Generator().manual_seed(5))
        assert torch.equal(a, b), "samples differ after load"
    if m.translates:
        args = _translate_args(data, 8)
        assert torch.equal(loaded.translate(*args), m.translate(*args)), "translations differ after load"


def check_seeded_training(model, data: TensorDataset, config: dict | None = None) -> None:
    """Trainer runs (:data:`TINY_TRAINER`) with the same seed give identical weights; another seed differs."""
    from .training import Trainer, seed_everything

    def run(seed):
        seed_everything(seed)
        m = build(model, data, config)
        Trainer({**TINY_TRAINER, "seed": seed}).fit(m, data)
        return m.state_dict()

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(a[k], b[k]) for k in a), "two runs with the same seed differ"
    assert any(not torch.equal(a[k], c[k]) for k in a), "runs with different seeds are identical"


def check_trains(model, data: TensorDataset, config: dict | None = None) -> None:
    """``genlab.train`` (in memory) runs the model end to end and reports finite figures."""
    from .runs import train

    entry = _entry(model)
    run = train(entry.name, data, config={"model": dict(config or {}), "trainer": {**TINY_TRAINER, "epochs": 2},
                                          "data": {"val": 0.25, "test": 0.25}})
    assert run.metrics["steps"] >= 1
    for k, v in run.metrics.items():
        if isinstance(v, float):
            assert v == v and abs(v) != float("inf"), f"{entry.name}: genlab.train reported {k}={v}"


class ModelContractTests:
    """pytest mixin running the contract on one model: subclass it in a test file and set :attr:`model`.

    Attributes
    ----------
    model : str or type
        Registered name or registered model class.
    config : dict
        Config fields for small, fast models.

    Override :meth:`datasets` to test on other data (default: :func:`tiny_image_data` and the standardised
    :func:`tiny_tabular_data`, each used when the model takes its kind).
    """

    model = None
    config: dict = {}

    def datasets(self) -> list[TensorDataset]:
        return [tiny_image_data(), tiny_tabular_data().standardized()]

    def _data(self) -> list[TensorDataset]:
        assert self.model is not None, "set the model attribute (a registered name or class)"
        out = [d for d in self.datasets() if accepts(self.model, d)]
        if not out:
            import pytest
            pytest.skip(f"{self.model} takes none of the test data kinds")
        return out

    def test_declarations(self):
        check_declarations(self.model)

    def test_inference(self):
        for d in self._data():
            check_inference(self.model, d, self.config)

    def test_one_step_lowers_loss(self):
        for d in self._data():
            check_one_step_lowers_loss(self.model, d, self.config)

    def test_save_load_round_trip(self, tmp_path):
        for i, d in enumerate(self._data()):
            check_save_load_round_trip(self.model, d, tmp_path / str(i), self.config)

    def test_seeded_training(self):
        check_seeded_training(self.model, self._data()[0], self.config)

    def test_trains(self):
        check_trains(self.model, self._data()[0], self.config)
