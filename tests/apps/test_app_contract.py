"""Contract tests of the application estimators, as the model contract tests are for models.

Every estimator x every registered model (``genlab.list_models()``, plus models this module registers for its own
tests): when the model has the capabilities the estimator needs (stated here, independently of the estimators'
code, from what each one does), the estimator accepts it: ``fit`` trains it by name on a tiny data set (1 epoch)
and then predicts / transforms / generates; otherwise ``fit`` refuses it before any training with the one-line
``ConfigError`` of :func:`genlab.models.require`, which names the missing capability and exactly the registered
models that have what the estimator needs. The same for a model object given to the estimator, and for the CLI
commands (exit 2, one line, nothing written).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from genlab import registry
from genlab.apps import AnomalyDetector, Augmenter, Compressor, Denoiser, Imputer, LatentExplorer
from genlab.cli import main
from genlab.config import from_dict
from genlab.data import TensorDataset
from genlab.errors import ConfigError
from genlab.io.serialize import save_model
from genlab.models import CAPABILITIES, GenerativeModel, OptimizerSpec, capabilities
from genlab.models.autoencoder import AEConfig, AutoEncoder
from genlab.registry import get_model_entry, list_models, register_model

TRAINER = {"epochs": 1, "batch_size": 32, "precision": "fp32", "channels_last": False, "log_every": 100}


# ------------------------------------------------------------------------------------------ test-time models
@dataclass
class DensityConfig:
    """A diagonal Gaussian over the data: nothing but a sampler."""

    lr: float = 0.05


class GaussianDensity(GenerativeModel):
    """``x ~ N(mu, diag(sigma^2))`` fitted by maximum likelihood: samples, but no encoder, decoder or
    reconstruction."""

    can_reconstruct = False

    def __init__(self, config: DensityConfig, data_info: dict):
        super().__init__(config, data_info)
        self.mu = nn.Parameter(torch.zeros(self.shape))
        self.log_sigma = nn.Parameter(torch.zeros(self.shape))

    def training_step(self, batch: dict, step: int, optimizer: str = "main") -> dict:
        z = (batch["x"] - self.mu) * torch.exp(-self.log_sigma)  # (B, *shape)
        return {"loss": (0.5 * z.pow(2) + self.log_sigma).flatten(1).sum(1).mean()}

    def configure_optimizers(self) -> dict:
        return {"main": OptimizerSpec(torch.optim.Adam(self.parameters(), lr=self.config.lr))}

    @torch.no_grad()
    def sample(self, n: int, *, labels=None, generator=None) -> torch.Tensor:
        if labels is not None:
            raise ConfigError("contract-density is unconditional and takes no labels")
        eps = torch.randn((n, *self.shape), generator=generator)
        return self.mu + self.log_sigma.exp() * eps


class CompleteDataAE(AutoEncoder):
    """The ``ae`` declared without ``supports_missing``: an encoder and decoder that need complete data."""

    supports_missing = False


#: models registered for this module's tests only (removed again afterwards)
EXTRA = {"contract-density": (GaussianDensity, DensityConfig), "contract-complete-ae": (CompleteDataAE, AEConfig)}


@pytest.fixture(scope="module", autouse=True)
def _extra_models():
    saved = dict(registry._MODELS)
    for name, (cls, cfg) in EXTRA.items():
        register_model(name, cfg)(cls)
    yield
    registry._MODELS.clear()
    registry._MODELS.update(saved)


MODELS = sorted({n for n, _ in list_models()} | set(EXTRA))


def _cls(name: str) -> type:
    return EXTRA[name][0] if name in EXTRA else get_model_entry(name).cls


def _has(name: str, cap: str) -> bool:
    return capabilities(_cls(name))[cap]


# ------------------------------------------------------------------------------------------ what each one needs
@dataclass(frozen=True)
class Spec:
    """An estimator, what it needs and refuses, and how to use it once fitted."""

    make: object  # (**params) -> estimator
    needs: tuple[str, ...]
    refuses: tuple[str, ...] = ()

    def missing(self, name: str) -> list[str]:
        """Needed capabilities ``name`` lacks, then refused ones it has."""
        return [c for c in self.needs if not _has(name, c)] + [c for c in self.refuses if _has(name, c)]


SPECS = {
    # scores by reconstruction error (and reconstruct / error_maps)
    "AnomalyDetector": Spec(lambda **kw: AnomalyDetector(**kw), ("can_reconstruct",)),
    # the ELBO of x alone: a likelihood, and no labels to condition on
    "AnomalyDetector(elbo)": Spec(lambda **kw: AnomalyDetector(scoring="elbo", n_samples=2, **kw),
                                  ("can_reconstruct", "has_likelihood"), ("conditional",)),
    "Denoiser": Spec(lambda **kw: Denoiser(level=0.1, **kw), ("can_reconstruct",)),
    # trains through the holes, fills them by reconstruction; rows carry no labels
    "Imputer": Spec(lambda **kw: Imputer(**kw), ("supports_missing", "can_reconstruct"), ("conditional",)),
    # codes from the encoder, back through the decoder; a file holds no labels
    "Compressor": Spec(lambda **kw: Compressor(bits=4, coder="fixed", **kw), ("has_encoder", "has_decoder"),
                       ("conditional",)),
    # samples of a requested class
    "Augmenter": Spec(lambda **kw: Augmenter(n_per_class=2, **kw), ("conditional", "can_sample")),
    # decodes codes (encoder-based methods need has_encoder, checked per method)
    "LatentExplorer": Spec(lambda **kw: LatentExplorer(**kw), ("has_decoder",)),
}


def _ok_names(spec: Spec) -> list[str]:
    """The registered models (this module's included) that have what ``spec`` needs and none it refuses."""
    return [n for n in MODELS if not spec.missing(n)]


def _denoising(name: str) -> bool:
    """Whether the model corrupts its own training inputs (noise and level in its config), as Denoiser trains."""
    cfg = EXTRA[name][1] if name in EXTRA else get_model_entry(name).config_cls
    return {"noise", "level"} <= {f.name for f in dataclasses.fields(cfg)}


#: the estimators whose fit takes class labels (y) and trains with them; the others train on unlabelled data
LABELLED = ("Augmenter", "LatentExplorer")


def _accepts_by_name(est_name: str, name: str) -> bool:
    if SPECS[est_name].missing(name):
        return False
    if est_name not in LABELLED and _has(name, "conditional"):
        return False  # a conditional model needs labels to train
    if est_name == "Denoiser" and not _denoising(name):
        return False
    if est_name == "LatentExplorer" and not _has(name, "can_sample"):
        return _has(name, "has_encoder")  # no prior: the traversal centre comes from the codes of the data
    return True


# ------------------------------------------------------------------------------------------ data
def _data(name: str) -> TensorDataset:
    """Tabular rows (fast MLPs) for models that take them, else 8x8 images; both labelled."""
    g = torch.Generator().manual_seed(0)
    if "tabular" in _cls(name).input_kinds:
        z = torch.randn(64, 2, generator=g)
        x = z @ torch.randn(2, 5, generator=g) + 0.05 * torch.randn(64, 5, generator=g)
        return TensorDataset(x, (z[:, 0] > 0).long(), name="contract-table")
    if "image" not in _cls(name).input_kinds:  # sequence models (wavenet): smooth standardised series
        t = torch.arange(48, dtype=torch.float32)
        x = torch.sin(t / 3 + torch.rand(64, 1, 1, generator=g) * 6) + 0.1 * torch.randn(64, 1, 48, generator=g)
        return TensorDataset(x, torch.arange(64) % 4, name="contract-series")
    y = torch.arange(64) % 4
    base = torch.rand(4, 1, 8, 8, generator=g)
    x = (base[y] * 0.8 + 0.2 * torch.rand(64, 1, 8, 8, generator=g)).clamp(0, 1)
    x = (x * 255).round() / 255  # 8-bit levels (pixelcnn needs them)
    if _has(name, "translates"):  # image-to-image models are built from paired data (the estimators refuse them)
        return _paired(name, x, y)
    return TensorDataset(x, y, name="contract-images")


def _paired(name: str, x: torch.Tensor, y: torch.Tensor) -> TensorDataset:
    from genlab.data.paired import make_pairs
    if name == "colorizer":
        x = x.expand(-1, 3, -1, -1) * torch.tensor([1.0, 0.8, 0.6]).view(1, 3, 1, 1)  # colour targets
    spec = {"context-encoder": "mask:box", "colorizer": "grey"}.get(name, "downsample:2")
    return make_pairs(TensorDataset(x, y, name="contract-images"), spec, seed=0)


def _arrays(name: str):
    ds = _data(name)
    return ds.x.numpy().astype(np.float32), ds.y.numpy()


def _tiny(name: str) -> dict:
    fields = {f.name for f in dataclasses.fields(_cls(name).config_cls if name not in EXTRA else EXTRA[name][1])}
    tiny = {"latent_dim": 2, "hidden": [16]}
    if "head_channels" in fields:  # the pixelcnn family: a small net (its defaults take minutes to sample here)
        tiny.update(channels=8, layers=2, head_channels=16)
    return {k: v for k, v in tiny.items() if k in fields}


def _with_holes(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    rng = np.random.default_rng(0)
    hole = rng.random(out.shape) < 0.1
    hole[:, 0] = False  # every sample and feature keeps observed values
    hole[0] = False
    out[hole] = np.nan
    return out


# ------------------------------------------------------------------------------------------ use once fitted
def _use(est_name: str, est, X: np.ndarray, y: np.ndarray, name: str) -> None:
    """Predict / transform / generate with a fitted estimator; real outputs of the right shapes."""
    n = len(X)
    if est_name.startswith("AnomalyDetector"):
        s = est.score_samples(X)
        assert s.shape == (n,) and np.isfinite(s).all()
        assert set(np.unique(est.predict(X))) <= {-1, 1}
        np.testing.assert_array_equal(est.predict(X), np.where(s - est.offset_ < 0, -1, 1))
    elif est_name == "Denoiser":
        out = est.transform(X)
        assert out.shape == X.shape and np.isfinite(out).all()
    elif est_name == "Imputer":
        Xh = _with_holes(X)
        out = est.transform(Xh)
        assert out.shape == X.shape and np.isfinite(out).all()
        seen = ~np.isnan(Xh)
        np.testing.assert_array_equal(out[seen], Xh[seen])  # observed entries come back exactly
    elif est_name == "Compressor":
        q = est.transform(X)
        assert q.shape == (n, est.latent_dim_) and q.dtype == np.uint32 and int(q.max()) < 2 ** 4
        back = est.inverse_transform(q)
        assert back.shape == X.shape and np.isfinite(back).all()
        np.testing.assert_allclose(est.decompress(est.compress(X)), back, rtol=0, atol=1e-6)
    elif est_name == "Augmenter":
        Xg, yg = est.generate()
        k = len(np.unique(y))
        assert Xg.shape == (2 * k, *X.shape[1:]) and np.isfinite(Xg).all()
        np.testing.assert_array_equal(yg, np.repeat(np.unique(y), 2))
    elif est_name == "LatentExplorer":
        lab = 1 if _has(name, "conditional") else None
        za, zb = np.zeros(est.latent_dim_), np.ones(est.latent_dim_)
        frames = est.interpolate_codes(za, zb, steps=3, labels=lab)
        assert frames.shape == (3, *X.shape[1:]) and np.isfinite(frames).all()
        assert est.traverse(steps=3, labels=lab).shape == (est.latent_dim_, 3, *X.shape[1:])
        if _has(name, "has_encoder"):
            z = est.encode(X[:5], labels=lab)
            assert z.shape == (5, est.latent_dim_) and np.isfinite(z).all()
            assert est.interpolate(X[0], X[1], steps=3, labels=lab).shape == (3, *X.shape[1:])
        else:
            _assert_refused(lambda: est.encode(X[:5]), name, ("has_encoder",), "LatentExplorer.encode")
    else:  # pragma: no cover
        raise AssertionError(est_name)


def _assert_refused(call, name: str, caps: tuple[str, ...], purpose: str) -> None:
    """``call()`` raises require's one line: ``name`` lacks the first of ``caps`` it lacks, for ``purpose``, and the
    registered models that have ``caps`` are listed."""
    with pytest.raises(ConfigError) as e:
        call()
    lacking = next(c for c in caps if not _has(name, c))
    ok = ", ".join(n for n in MODELS if all(_has(n, c) for c in caps)) or "none registered"
    assert str(e.value) == (f"model {name!r} lacks the capability {lacking!r} ({CAPABILITIES[lacking]}) that "
                            f"{purpose} needs; use one of: {ok}"), str(e.value)


# ------------------------------------------------------------------------------------------ the contract
@pytest.fixture
def no_training(monkeypatch):
    """Training anything is a test failure (a refusal must come before it)."""
    import genlab.runs

    def fail(*a, **k):
        raise AssertionError("trained a model the estimator should have refused")

    monkeypatch.setattr(genlab.runs, "train", fail)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("est_name", list(SPECS))
def test_estimator_accepts_or_refuses_a_registered_name(est_name, name, request):
    spec = SPECS[est_name]
    X, y = _arrays(name)
    if est_name == "Imputer":
        X = _with_holes(X) if "tabular" in _cls(name).input_kinds else X
    est = spec.make(model=name, model_config=_tiny(name), epochs=1, batch_size=32, trainer_config=TRAINER,
                    validation_fraction=0.0)
    fit = (lambda: est.fit(X, y)) if est_name in LABELLED else (lambda: est.fit(X))
    missing = spec.missing(name)
    purpose = "AnomalyDetector(scoring='elbo')" if est_name == "AnomalyDetector(elbo)" else \
        "AnomalyDetector(scoring='reconstruction')" if est_name == "AnomalyDetector" else est_name
    if missing:
        request.getfixturevalue("no_training")
        lacking = [c for c in spec.needs if not _has(name, c)]
        with pytest.raises(ConfigError) as e:
            fit()
        msg = str(e.value)
        assert "\n" not in msg, msg
        ok = ", ".join(_ok_names(spec)) or "none registered"
        if lacking:
            assert msg == (f"model {name!r} lacks the capability {lacking[0]!r} ({CAPABILITIES[lacking[0]]}) that "
                           f"{purpose} needs; use one of: {ok}"), msg
        else:
            refused = next(c for c in spec.refuses if _has(name, c))
            assert msg == f"{purpose} does not support {refused} models such as {name!r}; use one of: {ok}", msg
        assert not hasattr(est, "model_")
        return
    if not _accepts_by_name(est_name, name):  # has the capabilities, but fit cannot train it by name
        request.getfixturevalue("no_training")
        with pytest.raises(ConfigError) as e:
            fit()
        assert "\n" not in str(e.value)
        if est_name == "Denoiser" and not _denoising(name):  # its config has no noise to train with
            assert "Denoiser trains a model that corrupts its inputs in training" in str(e.value)
        elif est_name not in LABELLED and _has(name, "conditional"):  # fit(X) has no labels to train it on
            ok = ", ".join(n for n in _ok_names(spec) if not _has(n, "conditional"))
            assert str(e.value) == (f"{purpose} training on data without labels does not support conditional models "
                                    f"such as {name!r}; use one of: {ok}"), str(e.value)
        else:
            assert "lacks the capability 'has_encoder'" in str(e.value)
        return
    torch.manual_seed(0)
    assert (est.fit(X, y) if est_name in LABELLED else est.fit(X)) is est
    assert est.model_.registry_name == name and est.n_features_in_ == int(np.prod(X.shape[1:]))
    _use(est_name, est, np.nan_to_num(X, nan=0.0) if est_name == "Imputer" else X, y, name)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("est_name", list(SPECS))
def test_estimator_accepts_or_refuses_a_model_object(est_name, name, request):
    """A built model given to the estimator (``fit`` trains nothing): the same capability rule."""
    spec = SPECS[est_name]
    ds = _data(name)
    cfg_cls = EXTRA[name][1] if name in EXTRA else get_model_entry(name).config_cls
    torch.manual_seed(0)
    model = _cls(name)(from_dict(cfg_cls, _tiny(name)), ds.info()).eval()
    X, y = _arrays(name)
    est = spec.make(model=model)
    fit = (lambda: est.fit(X, y)) if est_name in LABELLED else (lambda: est.fit(X))
    request.getfixturevalue("no_training")
    if spec.missing(name):
        with pytest.raises(ConfigError) as e:
            fit()
        assert "\n" not in str(e.value) and name in str(e.value)
        assert any(c in str(e.value) for c in spec.missing(name))
        return
    if est_name == "LatentExplorer" and not _has(name, "can_sample") and not _has(name, "has_encoder"):
        with pytest.raises(ConfigError, match="lacks the capability 'has_encoder'"):
            fit()
        return
    fit()
    assert est.model_ is model
    _use(est_name, est, X, y, name)


def test_the_table_covers_acceptance_and_refusal():
    """Every estimator accepts some registered model and refuses another (the suite tests both sides)."""
    for est_name, spec in SPECS.items():
        ok = _ok_names(spec)
        assert ok and len(ok) < len(MODELS), (est_name, ok)
    # this module's own models are in the listings require gives while they are registered
    assert "contract-complete-ae" in _ok_names(SPECS["Compressor"])
    assert "contract-complete-ae" not in _ok_names(SPECS["Imputer"])
    assert not any("contract-density" in _ok_names(s) for s in SPECS.values())


# ------------------------------------------------------------------------------------------ the CLI
@pytest.fixture
def images_npz(tmp_path):
    g = torch.Generator().manual_seed(0)
    y = (torch.arange(32) % 2).numpy()
    x = torch.rand(32, 8, 8, generator=g).numpy().astype(np.float32)
    p = tmp_path / "in" / "data.npz"
    p.parent.mkdir()
    np.savez(p, x=x, y=y)
    return p


@pytest.fixture
def gan_folder(tmp_path):
    ds = TensorDataset(torch.rand(8, 1, 8, 8), torch.arange(8) % 2, name="g")
    entry = get_model_entry("gan")
    folder = tmp_path / "in" / "gan-model"
    save_model(entry.cls(from_dict(entry.config_cls, {"latent_dim": 2}), ds.info()), folder)
    return folder


CLI_CASES = [
    (["compress", "{npz}", "-o", "{out}/data.glc", "--model", "gan"], "gan", ("has_encoder",), "Compressor"),
    (["compress", "{npz}", "-o", "{out}/data.glc", "--run", "{gan}"], "gan", ("has_encoder",), "Compressor"),
    (["augment", "{npz}", "--out", "{out}", "--model", "vae", "--format", "npz"], "vae", ("conditional",),
     "Augmenter"),
    (["detect", "{npz}", "--out", "{out}", "--model", "wgan"], "wgan", ("can_reconstruct",),
     "AnomalyDetector(scoring='reconstruction')"),
    (["detect", "{npz}", "--out", "{out}", "--model", "ae", "--score", "elbo"], "ae", ("has_likelihood",),
     "AnomalyDetector(scoring='elbo')"),
    (["denoise", "{npz}", "--out", "{out}", "--model", "dcgan"], "dcgan", ("can_reconstruct",), "Denoiser"),
    (["impute", "{npz}", "--out", "{out}", "--model", "cgan"], "cgan", ("supports_missing",), "Imputer"),
    (["latent-map", "{npz}", "--out", "{out}", "--model", "gan"], "gan", ("has_encoder",), "genlab latent-map"),
    (["latent-map", "{npz}", "--out", "{out}", "--run", "{gan}"], "gan", ("has_encoder",), "genlab latent-map"),
    (["interpolate", "{npz}", "--out", "{out}", "--model", "cgan", "--a", "0"], "cgan", ("has_encoder",),
     "genlab interpolate --a/--b"),
]


@pytest.mark.parametrize("argv, name, caps, purpose", CLI_CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in
                                                                      CLI_CASES])
def test_cli_refuses_a_model_without_the_capability(argv, name, caps, purpose, images_npz, gan_folder, tmp_path,
                                                     capsys, monkeypatch):
    import genlab.runs
    monkeypatch.setattr(genlab.runs, "train", lambda *a, **k: pytest.fail("trained a refused model"))
    out = tmp_path / "out"
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = main([a.format(npz=images_npz, out=out, gan=gan_folder) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("genlab: error: ") and "\n" not in err and "Traceback" not in err, err
    assert f"model {name!r} lacks the capability {caps[0]!r}" in err and f"that {purpose}" in err, err
    assert "use one of: " in err, err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


def test_a_path_whose_text_is_a_registered_name_trains_by_name_everywhere(tmp_path):
    """``model=Path("ae")`` is the name "ae" for every decision that depends on training by name (ensembles, the
    trainer's defaults, the capability check), as ``_fit_model`` has always treated it; a saved folder, even one
    whose text is not a name, and a model object are not names."""
    from pathlib import Path
    x = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    det = AnomalyDetector(model=Path("ae"), n_ensemble=2, epochs=1, model_config={"latent_dim": 2},
                          trainer_config=TRAINER)
    assert det._trains_by_name()
    det.fit(x)  # n_ensemble=2 needs a name: refused for a Path before the predicate was shared
    assert det.n_ensemble_ == 2 and len(det._members()) == 2
    folder = save_model(det.model_, tmp_path / "ae_model")
    for spec in (folder, str(folder), det.model_):
        assert not AnomalyDetector(model=spec)._trains_by_name()
    with pytest.raises(ConfigError, match="registered model name"):
        AnomalyDetector(model=folder, n_ensemble=2).fit(x)
    # the Augmenter trains Path("cvae") by name too: with the labels, and with its shifted copies (shift_copies="auto")
    imgs = np.random.default_rng(1).random((20, 1, 8, 8)).astype(np.float32)
    aug = Augmenter(model=Path("cvae"), n_per_class=2, epochs=1, trainer_config=TRAINER).fit(imgs, np.arange(20) % 2)
    assert aug.shift_copies_ == 8 and list(aug.classes_) == [0, 1]
