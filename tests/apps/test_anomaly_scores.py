"""AnomalyDetector's default score (``auto`` -> ``relative_reconstruction`` on images) and the PixelCNN
likelihood ratio against a background model trained on perturbed data (Ren et al. 2019)."""
import numpy as np
import pytest
import torch

from genlab.apps import AnomalyDetector
from genlab.data import Normalization, TensorDataset
from genlab.errors import ConfigError, DataError
from tests.conftest import tiny_trainer

TRAINER = tiny_trainer(batch_size=32)
BITS = Normalization(torch.tensor(0.0), torch.tensor(1.0))  # binarised images: raw values are bits
PIXELCNN = {"channels": 4, "layers": 1, "head_channels": 8, "lr": 1e-2}


def _images(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(3, 1, 8, 8, generator=g)
    return (base[torch.arange(n) % 3] * 0.8 + 0.2 * torch.rand(n, 1, 8, 8, generator=g)).clamp(0, 1).numpy()


@pytest.fixture(scope="module")
def images():
    return _images()


@pytest.fixture(scope="module")
def auto_det(images):
    """The default score with one model (``n_ensemble="auto"`` trains three; their mean is tested below)."""
    return AnomalyDetector(model="ae", epochs=2, n_ensemble=1, trainer_config=TRAINER).fit(images)


def test_default_score_is_the_complexity_corrected_reconstruction_error(auto_det, images):
    assert auto_det.scoring == "auto" and auto_det.scoring_ == "relative_reconstruction"
    x = torch.as_tensor(images).double()
    mse = ((auto_det.model_.reconstruct(torch.as_tensor(images)).double() - x) ** 2).flatten(1).mean(1)
    ref = (-torch.log(mse + 1e-12) + 0.5 * torch.log(x.flatten(1).pow(2).mean(1) + 1e-12)).numpy()
    np.testing.assert_allclose(auto_det.score_samples(images), ref, rtol=1e-6, atol=1e-6)
    # the same model scored by plain MSE ranks inputs differently only through the ink term
    plain = AnomalyDetector(model=auto_det.model_, scoring="reconstruction").fit(images)
    np.testing.assert_allclose(plain.score_samples(images), -mse.numpy(), rtol=1e-6, atol=1e-9)


def test_auto_on_tabular_data_adds_the_latent_term_and_relative_refuses_it(auto_det):
    assert auto_det.latent_score_ is None and auto_det.score_params_ == {}  # images: no latent term
    x = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    det = AnomalyDetector(model="ae", epochs=1, model_config={"latent_dim": 2}, trainer_config=TRAINER).fit(x)
    assert det.scoring_ == "standardized_reconstruction" and det.latent_score_ == "mahalanobis"
    assert len(det.score_params_["feature_scale"]) == 5 and np.shape(det.score_params_["precision"]) == (2, 2)
    with pytest.raises(DataError, match="needs image data") as e:
        AnomalyDetector(model="ae", scoring="relative_reconstruction", epochs=1).fit(x)
    assert "\n" not in str(e.value)


def test_save_load_keeps_the_resolved_score(auto_det, images, tmp_path):
    loaded = AnomalyDetector.load(auto_det.save(tmp_path / "det"))
    assert loaded.scoring_ == "relative_reconstruction"
    np.testing.assert_array_equal(loaded.score_samples(images), auto_det.score_samples(images))


def test_folder_saved_before_the_latent_term_loads_and_scores_as_before(tmp_path):
    """An estimator.json without ``latent_score`` / ``latent_score_`` / ``score_params_`` (written before they
    existed): the tabular detector keeps its plain reconstruction score."""
    import json
    x = np.random.default_rng(1).normal(size=(40, 5)).astype(np.float32)
    det = AnomalyDetector(model="ae", scoring="reconstruction", epochs=1, model_config={"latent_dim": 2},
                          trainer_config=TRAINER).fit(x)
    path = det.save(tmp_path / "old")
    rec = json.loads((path / "estimator.json").read_text())
    rec["params"]["scoring"] = "auto"  # old files resolved auto to plain reconstruction
    del rec["params"]["latent_score"], rec["state"]["latent_score_"], rec["state"]["score_params_"]
    (path / "estimator.json").write_text(json.dumps(rec))
    old = AnomalyDetector.load(path)
    assert old.scoring_ == "reconstruction"
    np.testing.assert_array_equal(old.score_samples(x), det.score_samples(x))


# ------------------------------------------------------------------ likelihood ratio (PixelCNN)
def _stripes(n, seed):
    g = torch.Generator().manual_seed(seed)
    stripes = (torch.arange(8) % 4 == 0).float().view(1, 1, 1, 8).expand(n, 1, 8, 8)
    return TensorDataset((stripes + (torch.rand(n, 1, 8, 8, generator=g) < 0.05)) % 2, norm=BITS)


@pytest.fixture(scope="module")
def lr_det():
    return AnomalyDetector(model="pixelcnn", model_config=PIXELCNN, scoring="likelihood_ratio", epochs=3,
                           batch_size=16, random_state=0, validation_fraction=0.0,
                           trainer_config={"precision": "fp32", "channels_last": False}).fit(_stripes(64, 0))


def test_likelihood_ratio_is_foreground_minus_background(lr_det):
    x = _stripes(8, 1).x
    fg = lr_det.model_.log_likelihood(x).double().numpy()
    bg = lr_det.background_.log_likelihood(x).double().numpy()
    np.testing.assert_allclose(lr_det.score_samples(x.numpy()), fg - bg, rtol=1e-6, atol=1e-4)
    assert lr_det.background_ is not lr_det.model_
    assert lr_det.background_.config == lr_det.model_.config  # the same model, other data
    # the background model saw perturbed stripes: it finds clean stripes less likely than the foreground does
    assert (fg > bg).mean() > 0.5
    noise = (torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(9)) > 0.5).float().numpy()
    assert np.median(lr_det.score_samples(noise)) < np.median(lr_det.score_samples(x.numpy()))


def test_background_data_is_the_training_data_with_a_share_of_pixels_replaced(monkeypatch):
    import genlab.runs
    seen = []
    real = genlab.runs.train

    def spy(name, data, **kw):
        seen.append(data.x.clone())
        return real(name, data, **kw)

    monkeypatch.setattr(genlab.runs, "train", spy)
    normal = _stripes(64, 0)
    AnomalyDetector(model="pixelcnn", model_config=PIXELCNN, scoring="likelihood_ratio", epochs=1, batch_size=32,
                    mutation_rate=0.5, validation_fraction=0.0,
                    trainer_config={"precision": "fp32", "channels_last": False}).fit(normal)
    assert len(seen) == 2  # the foreground model, then the background model
    fg, bg = seen
    assert torch.equal(fg, normal.x)
    changed = (bg != fg).float().mean().item()
    # half the pixels are redrawn, half of those land on the other of the two levels: about 25 % change
    assert 0.2 < changed < 0.3
    assert set(bg.unique().tolist()) <= {0.0, 1.0}


def test_likelihood_ratio_save_load_round_trip(lr_det, tmp_path):
    x = _stripes(8, 2).x.numpy()
    loaded = AnomalyDetector.load(lr_det.save(tmp_path / "lr"))
    assert loaded.background_ is not None and loaded.scoring_ == "likelihood_ratio"
    np.testing.assert_array_equal(loaded.score_samples(x), lr_det.score_samples(x))


@pytest.mark.parametrize("rate", [0, 1, 1.5, -0.1, True, "0.2"])
def test_bad_mutation_rate(rate):
    with pytest.raises(ConfigError, match="mutation_rate") as e:
        AnomalyDetector(model="pixelcnn", scoring="likelihood_ratio", mutation_rate=rate).fit(_stripes(8, 0).x.numpy())
    assert "\n" not in str(e.value)


def test_likelihood_ratio_needs_an_exact_likelihood_model(images):
    with pytest.raises(ConfigError) as e:
        AnomalyDetector(model="ae", scoring="likelihood_ratio").fit(images)
    assert "has_likelihood" in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------ ensembles over seeds (n_ensemble)
def _standardised(det, x, x_train):
    """A single detector's scores of ``x`` standardised by the mean and (population) std of its training scores."""
    tr = det.score_samples(x_train)
    return (det.score_samples(x) - tr.mean()) / tr.std()


@pytest.mark.parametrize("kind", ["image", "tabular"])
def test_ensemble_is_the_mean_of_the_seeds_standardised_scores(kind, tmp_path):
    """``n_ensemble=3`` = three detectors with seeds random_state, +1, +2, each score standardised by its own
    training scores, averaged; computed here from three separately fitted single detectors."""
    if kind == "image":
        x, x_new, cfg = _images(48, 0), _images(12, 5), {}
    else:
        rng = np.random.default_rng(3)
        x, x_new = rng.normal(size=(60, 6)).astype(np.float32), rng.normal(size=(10, 6)).astype(np.float32) * 2
        cfg = {"latent_dim": 2}
    kw = {"model": "ae", "epochs": 2, "model_config": cfg, "trainer_config": TRAINER}
    ens = AnomalyDetector(n_ensemble=3, random_state=4, **kw).fit(x)
    singles = [AnomalyDetector(random_state=4 + i, n_ensemble=1, **kw).fit(x) for i in range(3)]
    members = ens._members()
    assert len(members) == 3 and ens.member_3_ is None
    for m, single in zip(members, singles):  # member i is the seed random_state + i model
        for a, b in zip(m.state_dict().values(), single.model_.state_dict().values()):
            assert torch.equal(a, b)
    ref = np.mean([_standardised(d, x_new, x) for d in singles], axis=0)
    np.testing.assert_allclose(ens.score_samples(x_new), ref, rtol=1e-6, atol=1e-6)
    ref_train = np.mean([_standardised(d, x, x) for d in singles], axis=0)
    np.testing.assert_allclose(ens.train_scores_, ref_train, rtol=1e-6, atol=1e-6)
    assert ens.offset_ == pytest.approx(np.percentile(ref_train, 10.0), rel=1e-6, abs=1e-6)
    if kind == "tabular":  # each member has its own latent Gaussian and residual scales
        assert len(ens.member_params_) == 2 and ens.member_params_[0] != ens.score_params_
    loaded = AnomalyDetector.load(ens.save(tmp_path / "ens"))
    assert len(loaded._members()) == 3 and (tmp_path / "ens" / "member_2_").is_dir()
    np.testing.assert_array_equal(loaded.score_samples(x_new), ens.score_samples(x_new))


def test_one_member_scores_as_before(auto_det, images):
    assert auto_det.n_ensemble_ == 1 and auto_det.ensemble_scale_ == [] and auto_det._members() == [auto_det.model_]


@pytest.mark.parametrize("n", [0, 11, 2.0, True, "3"])
def test_bad_n_ensemble(n, images):
    with pytest.raises(ConfigError, match=r"n_ensemble must be 'auto' or an integer in \[1, 10\]") as e:
        AnomalyDetector(model="ae", n_ensemble=n).fit(images)
    assert "\n" not in str(e.value)


def test_n_ensemble_needs_a_model_name_and_no_background(auto_det, images):
    with pytest.raises(ConfigError, match="registered model name") as e:
        AnomalyDetector(model=auto_det.model_, n_ensemble=2).fit(images)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="likelihood_ratio"):
        AnomalyDetector(model="pixelcnn", scoring="likelihood_ratio", n_ensemble=2).fit(images)


@pytest.mark.parametrize("kind", ["image", "tabular"])
def test_n_ensemble_auto_is_three_with_the_default_score_and_one_otherwise(kind, images):
    x = images if kind == "image" else np.random.default_rng(2).normal(size=(40, 5)).astype(np.float32)
    kw = {"epochs": 1, "model_config": {"latent_dim": 2}, "trainer_config": TRAINER}
    det = AnomalyDetector(**kw).fit(x)
    assert det.n_ensemble == "auto" and det.n_ensemble_ == 3
    assert len(det._members()) == 3 and len(det.ensemble_scale_) == 3
    assert AnomalyDetector(scoring="reconstruction", **kw).fit(x).n_ensemble_ == 1  # an explicit score
    assert AnomalyDetector(model=det.model_).fit(x).n_ensemble_ == 1  # a given model is one member


@pytest.mark.parametrize("w", [0, -1.0, float("inf"), float("nan"), True, "3"])
def test_bad_latent_weight(w, images):
    with pytest.raises(ConfigError, match="latent_weight must be a finite number > 0") as e:
        AnomalyDetector(latent_weight=w).fit(images)
    assert "\n" not in str(e.value)


def test_folder_saved_before_the_latent_weight_scores_with_weight_one(tmp_path):
    import json
    x = np.random.default_rng(4).normal(size=(40, 5)).astype(np.float32)
    det = AnomalyDetector(model="ae", epochs=1, latent_weight=1.0, n_ensemble=1, model_config={"latent_dim": 2},
                          trainer_config=TRAINER).fit(x)
    path = det.save(tmp_path / "old")
    rec = json.loads((path / "estimator.json").read_text())
    del rec["params"]["latent_weight"], rec["params"]["n_ensemble"]
    (path / "estimator.json").write_text(json.dumps(rec))
    old = AnomalyDetector.load(path)
    assert old.latent_weight == 1.0
    np.testing.assert_array_equal(old.score_samples(x), det.score_samples(x))
