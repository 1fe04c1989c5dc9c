"""AnomalyDetector (genlab.apps.anomaly) and ``genlab detect``."""
import copy
import csv
import json

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import f1_score, roc_auc_score, roc_curve

from genlab import load_dataset
from genlab.apps import AnomalyDetector
from genlab.cli import main
from genlab.errors import ConfigError, DataError
from tests.conftest import tiny_trainer

TRAINER = tiny_trainer(batch_size=32)


def _images(n=48, c=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(3, c, 8, 8, generator=g)
    x = (base[torch.arange(n) % 3] * 0.8 + 0.2 * torch.rand(n, c, 8, 8, generator=g)).clamp(0, 1)
    return x.numpy()


@pytest.fixture(scope="module")
def images():
    return _images()


@pytest.fixture(scope="module")
def ae_det(images):
    return AnomalyDetector(model="ae", scoring="reconstruction", epochs=2, trainer_config=TRAINER,
                           contamination=0.1).fit(images)


@pytest.fixture(scope="module")
def vae_det(images):
    return AnomalyDetector(model="vae", scoring="elbo", n_samples=4, epochs=2, random_state=3,
                           model_config={"latent_dim": 4}, trainer_config=TRAINER).fit(images)


# ---------------------------------------------------------------- scores and their sign
def test_reconstruction_score_is_minus_mse_of_reconstruct(ae_det, images):
    x = torch.as_tensor(images)
    rec = ae_det.model_.reconstruct(x)
    ref = -((rec.double() - x.double()) ** 2).flatten(1).mean(1).numpy()
    np.testing.assert_allclose(ae_det.score_samples(images), ref, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ae_det.reconstruct(images), rec.numpy(), atol=1e-6)
    assert ae_det.score_samples(images).dtype == np.float64


def test_sign_convention_higher_is_more_normal(ae_det, images):
    # the same inputs, then corrupted by heavy noise: corrupted ones must score lower
    g = np.random.default_rng(0)
    noisy = np.clip(images + g.normal(0, 0.5, images.shape), 0, 1).astype(np.float32)
    s, sn = ae_det.score_samples(images), ae_det.score_samples(noisy)
    assert (sn < s).mean() > 0.9
    assert (ae_det.predict(noisy) == -1).mean() > (ae_det.predict(images) == -1).mean()


def test_contamination_fraction_and_predict_decision_consistency(images):
    for c in (0.1, 0.25):
        det = AnomalyDetector(epochs=1, trainer_config=TRAINER, contamination=c).fit(images)
        assert det.offset_ == pytest.approx(np.percentile(det.train_scores_, 100 * c))
        pred = det.predict(images)
        assert set(np.unique(pred)) <= {-1, 1}
        assert abs((pred == -1).mean() - c) <= 1.0 / len(images) + 1e-12
        d = det.decision_function(images)
        np.testing.assert_allclose(d, det.score_samples(images) - det.offset_)
        np.testing.assert_array_equal(pred, np.where(d < 0, -1, 1))
        np.testing.assert_array_equal(det.fit_predict(images), pred)


def test_set_contamination_moves_threshold_without_refit(ae_det, images, tmp_path):
    det = AnomalyDetector.load(ae_det.save(tmp_path / "est"))  # work on a copy
    before = det.score_samples(images)
    det.set_contamination(0.3)
    assert det.contamination == 0.3 and det.offset_ == pytest.approx(np.percentile(det.train_scores_, 30))
    np.testing.assert_array_equal(det.score_samples(images), before)
    with pytest.raises(ConfigError, match=r"contamination must be a number in \(0, 0.5\]"):
        det.set_contamination(0.7)


def test_scores_deterministic_and_independent_of_batch(ae_det, vae_det, images):
    for det in (ae_det, vae_det):
        s1, s2 = det.score_samples(images), det.score_samples(images)
        np.testing.assert_array_equal(s1, s2)
        np.testing.assert_allclose(det.score_samples(images[5:9]), s1[5:9], rtol=1e-5)
        np.testing.assert_allclose(det.score_samples(images[7:8]), s1[7:8], rtol=1e-5)


def test_elbo_and_iwae_match_the_model_estimators(vae_det, images):
    """With one input, the shared draws are exactly the draws the model's own estimators make."""
    m = vae_det.model_
    det1 = AnomalyDetector(model=m, scoring="elbo", n_samples=1, random_state=7).fit(images)
    detk = AnomalyDetector(model=m, scoring="iwae", n_samples=20, random_state=7).fit(images)
    for i in (0, 11, 30):
        xi = torch.as_tensor(images[i:i + 1])
        elbo = m.elbo(xi, generator=torch.Generator().manual_seed(7))
        iwae = m.log_likelihood(xi, k=20, generator=torch.Generator().manual_seed(7))
        assert det1.score_samples(images[i:i + 1])[0] == pytest.approx(float(elbo[0]), rel=1e-5)
        assert detk.score_samples(images[i:i + 1])[0] == pytest.approx(float(iwae[0]), rel=1e-5)
    # the draws come from random_state: another seed gives other (still fixed) estimates
    other = AnomalyDetector(model=m, scoring="elbo", n_samples=4, random_state=4).fit(images)
    assert not np.array_equal(other.score_samples(images), vae_det.score_samples(images))


def test_vae_reconstruction_uses_posterior_mean(vae_det, images):
    m = vae_det.model_
    det = AnomalyDetector(model=m, scoring="reconstruction").fit(images)
    x = torch.as_tensor(images)
    mu, _ = m.posterior(x)
    ref = -((m.decode(mu).detach().double() - x.double()) ** 2).flatten(1).mean(1).numpy()
    np.testing.assert_allclose(det.score_samples(images), ref, rtol=1e-6)


# ---------------------------------------------------------------- error maps
def test_error_maps_shape_and_values():
    x3 = _images(n=24, c=3, seed=1)
    det = AnomalyDetector(scoring="reconstruction", epochs=1, trainer_config=TRAINER).fit(x3)
    maps = det.error_maps(x3[:5])
    assert maps.shape == (5, 8, 8)
    rec = det.model_.reconstruct(torch.as_tensor(x3[:5])).double()
    ref = ((rec - torch.as_tensor(x3[:5]).double()) ** 2).mean(1).numpy()  # mean over the 3 channels
    np.testing.assert_allclose(maps, ref, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(maps.mean((1, 2)), -det.score_samples(x3[:5]), rtol=1e-6)
    # (N, H, W) grey input works too and gives (N, H, W) maps
    g = _images(n=24, c=1, seed=2)[:, 0]
    assert AnomalyDetector(epochs=1, trainer_config=TRAINER).fit(g).error_maps(g[:3]).shape == (3, 8, 8)


# ---------------------------------------------------------------- tabular data
def test_tabular_scores_in_standardised_units(tabular_data):
    X = tabular_data.x.numpy() * 10 + 3  # raw units far from standardised
    det = AnomalyDetector(scoring="reconstruction", epochs=2, trainer_config=TRAINER,
                          model_config={"latent_dim": 2}).fit(X)
    assert det.latent_score_ is None  # an explicit score gets no latent term from latent_score="auto"
    norm = det._norm
    xm = norm.from_raw(torch.as_tensor(X))
    ref = -((det.model_.reconstruct(xm).double() - xm.double()) ** 2).mean(1).numpy()
    np.testing.assert_allclose(det.score_samples(X), ref, rtol=1e-6)
    far = X + 50.0 * X.std(0)  # far outside the training cloud
    assert (det.predict(far) == -1).all()
    assert det.reconstruct(X).shape == X.shape
    with pytest.raises(DataError, match="error_maps needs image data"):
        det.error_maps(X)


def test_tabular_default_is_standardised_error_plus_code_mahalanobis(tabular_data, tmp_path):
    """The tabular default in closed form, against scikit-learn's own Mahalanobis distance (module docstring)."""
    from sklearn.covariance import LedoitWolf
    X = tabular_data.x.numpy() * 10 + 3
    det = AnomalyDetector(epochs=2, trainer_config=TRAINER, model_config={"latent_dim": 2}, n_ensemble=1).fit(X)
    assert det.scoring_ == "standardized_reconstruction" and det.latent_score_ == "mahalanobis"
    assert det.latent_weight == 3.0  # the latent term weighs three times the reconstruction term
    xm = det._norm.from_raw(torch.as_tensor(X)).double()
    m64 = copy.deepcopy(det.model_).double()  # the latent scores run the model in float64
    with torch.no_grad():
        res = (m64.decode(m64.encode(xm)) - xm).numpy()  # (N, D)
        np.testing.assert_allclose(res + xm.numpy(), det.model_.reconstruct(xm).numpy(), atol=1e-5)  # = reconstruct
        codes = m64.encode(xm).numpy()  # (N, L)
    scale = np.sqrt((res ** 2).mean(0)) + 1e-3
    rec = -((res / scale) ** 2).mean(1)
    lat = -LedoitWolf().fit(codes).mahalanobis(codes)  # squared distances
    ref = (rec - rec.mean()) / rec.std() + 3.0 * (lat - lat.mean()) / lat.std()
    np.testing.assert_allclose(det.score_samples(X), ref, rtol=1e-6, atol=1e-6)
    half = AnomalyDetector(model=det.model_, latent_weight=0.5).fit(X)  # the same model, another weight
    np.testing.assert_allclose(half.score_samples(X), (rec - rec.mean()) / rec.std() + 0.5 * (lat - lat.mean()) /
                               lat.std(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(det.train_scores_, ref, rtol=1e-6, atol=1e-6)
    # the two terms are standardised on the training rows, so the training scores have mean 0
    assert abs(ref.mean()) < 1e-9
    # obvious anomalies: far outside the training cloud, and a normal row moved off the training codes' Gaussian
    far = X + 50.0 * X.std(0)
    assert (det.predict(far) == -1).all()
    assert det.score_samples(far).max() < det.train_scores_.min()
    loaded = AnomalyDetector.load(det.save(tmp_path / "tab"))
    np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))
    assert loaded.latent_score_ == "mahalanobis" and loaded.scoring_ == "standardized_reconstruction"
    # the latent term alone can be switched off: the score is then the standardised error itself
    plain = AnomalyDetector(model=det.model_, latent_score=None).fit(X)
    assert plain.latent_score_ is None
    np.testing.assert_allclose(plain.score_samples(X), rec, rtol=1e-5, atol=1e-7)  # float32 model


def test_latent_score_on_images_and_refusals(ae_det, images):
    det = AnomalyDetector(model=ae_det.model_, scoring="reconstruction", latent_score="mahalanobis").fit(images)
    assert det.latent_score_ == "mahalanobis"
    s = det.score_samples(images)
    assert s.shape == (len(images),) and abs(s.mean()) < 1e-6
    with pytest.raises(ConfigError, match="latent_score='bogus' is not valid"):
        AnomalyDetector(latent_score="bogus").fit(images)
    with pytest.raises(ConfigError, match="latent_score='mahalanobis' adds to a reconstruction score"):
        AnomalyDetector(model="vae", scoring="elbo", latent_score="mahalanobis").fit(images)


# ---------------------------------------------------------------- calibration on labelled data
def test_calibrate_f1_and_youden_match_brute_force(ae_det, images, tmp_path):
    rng = np.random.default_rng(1)
    noisy = np.clip(images[:20] + rng.normal(0, 0.3, images[:20].shape), 0, 1).astype(np.float32)
    Xv = np.concatenate([images[20:], noisy])
    yv = np.r_[np.ones(len(images) - 20), -np.ones(20)].astype(int)
    det = AnomalyDetector.load(ae_det.save(tmp_path / "a"))
    s = det.score_samples(Xv)
    # brute force over every cut: thresholds at every score and just above the largest
    cands = np.r_[np.sort(s), np.inf]
    f1s = [f1_score(yv == -1, s < t, zero_division=0.0) for t in cands]
    det.calibrate(Xv, yv, criterion="f1")
    assert det.threshold_source_ == "f1"
    assert det.calibration_["value"] == pytest.approx(max(f1s))
    assert f1_score(yv == -1, det.predict(Xv) == -1) == pytest.approx(max(f1s))
    fpr, tpr, _ = roc_curve(yv == -1, -s)
    det.calibrate(Xv, yv, criterion="youden")
    pred_out = det.predict(Xv) == -1
    j = pred_out[yv == -1].mean() - pred_out[yv == 1].mean()
    assert j == pytest.approx(np.max(tpr - fpr)) and det.calibration_["value"] == pytest.approx(j)
    # the calibrated threshold survives save/load
    det2 = AnomalyDetector.load(det.save(tmp_path / "b"))
    assert det2.offset_ == det.offset_ and det2.calibration_ == det.calibration_
    with pytest.raises(DataError, match=r"y_val must hold \+1 \(inlier\) and -1 \(outlier\)"):
        det.calibrate(Xv, (yv == -1).astype(int))
    with pytest.raises(DataError, match="calibration needs both"):
        det.calibrate(Xv, np.ones(len(Xv), int))
    with pytest.raises(DataError, match="one label per sample"):
        det.calibrate(Xv, yv[:-1])
    with pytest.raises(ConfigError, match="valid criteria: f1, youden"):
        det.calibrate(Xv, yv, criterion="auc")


# ---------------------------------------------------------------- sklearn rules and persistence
def test_clone_and_params():
    det = AnomalyDetector(model="vae", scoring="iwae", contamination=0.2, n_samples=8, epochs=3, random_state=5)
    c = clone(det)
    assert c.get_params() == det.get_params() and not hasattr(c, "model_")
    from sklearn.base import is_outlier_detector
    assert is_outlier_detector(det)
    with pytest.raises(ConfigError, match="not fitted yet"):
        c.predict(np.zeros((2, 8, 8), np.float32))


def test_save_load_round_trip_identical_scores(ae_det, vae_det, images, tmp_path):
    for i, det in enumerate((ae_det, vae_det)):
        loaded = AnomalyDetector.load(det.save(tmp_path / f"est{i}"))
        np.testing.assert_array_equal(loaded.score_samples(images), det.score_samples(images))
        np.testing.assert_array_equal(loaded.predict(images), det.predict(images))
        np.testing.assert_array_equal(loaded.train_scores_, det.train_scores_)
        assert loaded.offset_ == det.offset_ and loaded.get_params() == det.get_params()


def test_separation_on_digits_class_0():
    """One-class protocol: train on digit 0 only, held-out 0s must score higher than the other digits."""
    ds = load_dataset("digits")
    tr, _, te = ds.split(0.0, 0.2, seed=0)
    det = AnomalyDetector(epochs=10, trainer_config=TRAINER, model_config={"latent_dim": 8})
    det.fit(tr.x[tr.y == 0].numpy())
    auc = roc_auc_score(te.y.numpy() == 0, det.score_samples(te.x.numpy()))
    assert auc > 0.8, auc


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("c", [0, 0.0, 0.51, 1.0, -0.1, True, "auto", None, float("nan")])
def test_bad_contamination(c, images):
    with pytest.raises(ConfigError, match=r"contamination must be a number in \(0, 0.5\]"):
        AnomalyDetector(contamination=c, epochs=1, trainer_config=TRAINER).fit(images)


def test_bad_score_and_model_combinations(images):
    with pytest.raises(ConfigError, match="valid scores: auto, reconstruction, relative_reconstruction, elbo, iwae"):
        AnomalyDetector(scoring="bogus").fit(images)
    with pytest.raises(ConfigError, match=r"model 'ae' lacks the capability 'has_likelihood' \(.*\) that "
                                          r"AnomalyDetector\(scoring='elbo'\) needs; use one of: vae"):
        AnomalyDetector(model="ae", scoring="elbo").fit(images)
    with pytest.raises(ConfigError, match=r"AnomalyDetector\(scoring='iwae'\) does not support conditional models "
                                          "such as 'cvae'; use one of: vae"):
        AnomalyDetector(model="cvae", scoring="iwae").fit(images)
    with pytest.raises(ConfigError, match=r"model 'dcgan' lacks the capability 'can_reconstruct' .* that "
                                          r"AnomalyDetector\(scoring='reconstruction'\) needs; use one of: ae, "):
        AnomalyDetector(model="dcgan").fit(images)
    with pytest.raises(ConfigError, match="n_samples must be an integer >= 1"):
        AnomalyDetector(model="vae", scoring="elbo", n_samples=0).fit(images)
    with pytest.raises(ConfigError, match="neither a registered model"):
        AnomalyDetector(model="no-such-model").fit(images)


def test_bad_data(ae_det, images):
    bad = images.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        ae_det.score_samples(bad)
    with pytest.raises(DataError, match=r"shape \(1, 6, 6\) but the estimator was fitted on \(1, 8, 8\)"):
        ae_det.score_samples(images[:, :, :6, :6])
    with pytest.raises(DataError):
        ae_det.predict(np.zeros((3, 64), np.float32))


# ---------------------------------------------------------------- CLI
def test_cli_detect_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = (_images(n=60, seed=4) * 255).astype(np.uint8)[:, 0]  # (60, 8, 8) uint8
    y = np.zeros(60, np.int64)
    x[50:] = rng.integers(0, 256, (10, 8, 8), dtype=np.uint8)  # 10 noise images: class 1
    y[50:] = 1
    np.savez(tmp_path / "d.npz", x=x, y=y)
    out = tmp_path / "out"
    rc = main(["detect", str(tmp_path / "d.npz"), "--out", str(out), "--normal-class", "0", "--epochs", "3",
               "--contamination", "0.2", "--top", "6", "--save", str(tmp_path / "est")])
    stdout = capsys.readouterr().out
    assert rc == 0 and "n outliers" in stdout and "ROC-AUC" in stdout
    for f in ("scores.csv", "metrics.json", "report.html", "score_histogram.png", "most_anomalous.png"):
        assert (out / f).is_file(), f
    rows = list(csv.DictReader((out / "scores.csv").open()))
    m = json.loads((out / "metrics.json").read_text())
    assert len(rows) == 60 and set(rows[0]) == {"index", "score", "label"}
    labels = np.array([int(r_["label"]) for r_ in rows])
    scores = np.array([float(r_["score"]) for r_ in rows])
    assert m["n"] == 60 and m["n_outliers"] == int((labels == -1).sum()) and m["n_train"] == 50
    np.testing.assert_array_equal(labels, np.where(scores < m["threshold"], -1, 1))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y == 0, scores), abs=1e-6)
    assert m["roc_auc"] > 0.9  # uniform noise vs smooth patterns
    # the saved estimator reproduces the scores
    det = AnomalyDetector.load(tmp_path / "est")
    np.testing.assert_allclose(det.score_samples(x), scores, rtol=1e-8)



@pytest.mark.parametrize("extra, message", [
    (["--contamination", "0.7"], r"contamination must be a number in \(0, 0.5\]"),
    (["--score", "bogus", "--epochs", "1"], "valid scores: auto, reconstruction, relative_reconstruction, elbo, iwae"),
    (["--normal-class", "0"], "--normal-class needs labelled input"),
    (["--top", "0"], "--top must be >= 1"),
])
def test_cli_detect_bad_input_exit_2(tmp_path, capsys, extra, message):
    import re
    np.save(tmp_path / "d.npy", _images(n=20))  # no labels
    bad_out = tmp_path / "bad"
    assert main(["detect", str(tmp_path / "d.npy"), "--out", str(bad_out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("genlab: error: ") and re.search(message, err), err
    assert not bad_out.exists()  # nothing half-written


def test_cli_detect_saved_estimator_refuses_other_score(ae_det, tmp_path, capsys):
    np.save(tmp_path / "d.npy", _images(n=20))
    ae_det.save(tmp_path / "est")
    args = ["detect", str(tmp_path / "d.npy"), "--run", str(tmp_path / "est")]
    assert main([*args, "--out", str(tmp_path / "o1"), "--score", "elbo"]) == 2
    assert "scores with 'reconstruction'" in capsys.readouterr().err and not (tmp_path / "o1").exists()
    assert main([*args, "--out", str(tmp_path / "o2"), "--contamination", "0.5"]) == 0
    m = json.loads((tmp_path / "o2" / "metrics.json").read_text())
    assert m["contamination"] == 0.5 and m["threshold"] == pytest.approx(np.percentile(ae_det.train_scores_, 50))
    assert m["n_train"] == len(ae_det.train_scores_)  # the saved detector, not refitted
