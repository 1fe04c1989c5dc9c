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
    return AnomalyDetector(model="ae", epochs=2, trainer_config=TRAINER).fit(images)


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
