"""Denoiser (genlab.apps.denoise) and ``genlab denoise``."""
import json

import numpy as np
import pytest
import torch
from sklearn.base import clone

from genlab import load_dataset
from genlab.apps import Denoiser
from genlab.apps.denoise import ssim_window
from genlab.cli import main
from genlab.errors import ConfigError, DataError
from genlab.metrics.reconstruction import psnr
from genlab.models.ae_family import corrupt

TRAINER = {"precision": "fp32", "channels_last": False, "log_every": 50}  # epochs come from the estimator


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits")
    tr, _, te = ds.split(val=0.0, test=0.2, seed=0)
    return tr.x[:600].numpy(), te.x[:200].numpy()  # (N, 1, 8, 8) in [0, 1]


@pytest.fixture(scope="module")
def den(digits):
    return Denoiser(noise="mask", level=0.3, epochs=25, batch_size=64, trainer_config=TRAINER).fit(digits[0])


def test_denoiser_improves_psnr_on_held_out_digits(den, digits):
    test = digits[1]
    noisy = den.add_noise(test, random_state=0)
    out = den.transform(noisy)
    gain = psnr(out, test) - psnr(noisy, test)
    assert gain > 2.0, gain  # masking 30 % of the pixels: ~11.9 dB noisy, ~15 dB denoised after 25 epochs
    rep = den.score_report(test, noisy)
    assert rep["psnr_denoised"] == pytest.approx(psnr(out, test), abs=1e-6)
    assert rep["psnr_noisy"] == pytest.approx(psnr(noisy, test), abs=1e-6)
    assert rep["ssim_denoised"] > rep["ssim_noisy"] and rep["ssim_window"] == 7
    assert den.score(test, X_noisy=noisy) == pytest.approx(rep["psnr_denoised"])
    # X_noisy defaults to add_noise(X_clean, random_state=self.random_state)
    assert den.score(test) == pytest.approx(den.score(test, X_noisy=den.add_noise(test, random_state=den.random_state)))


def test_transform_shapes_units_and_layouts(den, digits):
    test = digits[1][:10]
    out = den.transform(test)
    assert out.shape == test.shape and out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    grey = test[:, 0]
    assert np.allclose(den.transform(grey), out[:, 0])
    u8 = np.round(test * 255).astype(np.uint8)
    assert den.transform(u8).shape == test.shape
    cl = test.transpose(0, 2, 3, 1)  # channels-last
    assert den.transform(cl).shape == cl.shape
    # a built-in data set (raw pixel scale 0..16) and the same images as an array give the same output
    ds = load_dataset("digits")
    assert np.allclose(den.transform(ds.subset(torch.arange(5))), den.transform(ds.x[:5].numpy()))


def test_add_noise_reuses_the_model_corruption(den, digits):
    test = digits[1][:20]
    a = den.add_noise(test, random_state=3)
    ref = corrupt(torch.as_tensor(test), "mask", 0.3, kind="image", generator=torch.Generator().manual_seed(3))
    assert np.array_equal(a, ref.numpy())
    assert np.array_equal(den.add_noise(test, random_state=3), a)
    assert not np.array_equal(den.add_noise(test, random_state=4), a)
    frac = float((a != test).mean())
    assert 0.05 < frac < 0.3  # mask p=0.3, minus pixels already black
    # the model's own corrupt draws the same noise from the same generator
    own = den.model_.corrupt(torch.as_tensor(test), generator=torch.Generator().manual_seed(3))
    assert np.array_equal(own.numpy(), a)
    # images may be corrupted before fit
    g = Denoiser(noise="gaussian", level=0.1).add_noise(test, random_state=0)
    assert g.shape == test.shape and g.min() >= 0 and g.max() <= 1


def test_tabular_denoising_in_raw_units(tabular_data):
    raw = tabular_data.x.numpy() * 10.0 + 100.0
    d = Denoiser(noise="gaussian", level=0.3, epochs=30, batch_size=32, trainer_config=TRAINER,
                 model_config={"latent_dim": 2}).fit(raw)
    with pytest.raises(ConfigError, match="call fit"):
        Denoiser().add_noise(raw)
    noisy = d.add_noise(raw, random_state=0)
    out = d.transform(noisy)
    assert out.shape == raw.shape and abs(out.mean() - raw.mean()) < 5.0  # raw units, not standardised
    rep = d.score_report(raw, noisy)
    assert set(rep) == {"mse_noisy", "mse_denoised"}
    assert rep["mse_noisy"] == pytest.approx(0.09, rel=0.35)  # sigma 0.3 in standardised units
    assert d.score(raw, X_noisy=noisy) == pytest.approx(-rep["mse_denoised"])


def test_clone_and_save_load_identical(den, digits, tmp_path):
    c = clone(den)
    assert c.get_params() == den.get_params() and not hasattr(c, "model_")
    den.save(tmp_path / "d")
    back = Denoiser.load(tmp_path / "d")
    x = digits[1][:16]
    assert np.array_equal(back.transform(x), den.transform(x))
    assert back.noise == "mask" and back.level == 0.3


def test_bad_input_errors(den, digits):
    x = digits[0][:32]
    for kw, msg in [({"noise": "speckle"}, "noise must be one of gaussian, salt_pepper, mask, got 'speckle'"),
                    ({"noise": "gaussian", "level": 0.0}, r"level \(gaussian sigma\) must be > 0"),
                    ({"noise": "mask", "level": 1.0}, r"level \(mask probability\) must be in \(0, 1\)"),
                    ({"noise": "salt_pepper", "level": -0.1}, r"level \(salt_pepper probability\)"),
                    ({"level": float("nan")}, "level must be a finite number"),
                    ({"model": "vae"}, r"Denoiser trains a model that corrupts its inputs in training \(noise and "
                                      r"level in its config: denoising-ae\), not 'vae'"),
                    ({"model_config": {"noise": "mask"}}, r"set it as Denoiser\(noise=...\)")]:
        with pytest.raises(ConfigError, match=msg) as e:
            Denoiser(epochs=1, **kw).fit(x)
        assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="fitted on"):
        den.transform(np.zeros((2, 1, 9, 9), np.float32))
    nan = digits[1][:4].copy()
    nan[0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        den.transform(nan)
    with pytest.raises(ConfigError, match="not fitted"):
        Denoiser().transform(x)
    assert ssim_window((1, 28, 28)) == 11 and ssim_window((1, 8, 8)) == 7 and ssim_window((3, 4, 6)) == 3


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_denoise_end_to_end(tmp_path, digits, capsys):
    np.savez(tmp_path / "clean.npz", x=digits[1][:64])
    out = tmp_path / "o"
    args = ["denoise", str(tmp_path / "clean.npz"), "--add-noise", "--noise", "salt_pepper", "--level", "0.2",
            "--epochs", "2", "--out", str(out), "--save", str(tmp_path / "est")]
    assert main(args) == 0
    z = np.load(out / "denoised.npz")
    assert z["x"].shape == (64, 1, 8, 8) and z["noisy"].shape == (64, 1, 8, 8)
    m = json.loads((out / "metrics.json").read_text())
    assert m["noise"] == "salt_pepper" and m["trained_on"] == "input (clean)" and "psnr_denoised" in m
    assert m["psnr_noisy"] == pytest.approx(psnr(z["noisy"], digits[1][:64]), abs=1e-6)
    assert (out / "denoise.png").is_file() and (out / "report.html").is_file()
    assert "psnr_denoised" in capsys.readouterr().out
    # reuse the saved estimator on the noisy file with a clean reference
    np.savez(tmp_path / "noisy.npz", x=z["noisy"])
    out2 = tmp_path / "o2"
    assert main(["denoise", str(tmp_path / "noisy.npz"), "--run", str(tmp_path / "est"), "--clean",
                 str(tmp_path / "clean.npz"), "--out", str(out2)]) == 0
    m2 = json.loads((out2 / "metrics.json").read_text())
    assert m2["trained_on"] == "--run" and m2["psnr_denoised"] == pytest.approx(m["psnr_denoised"], abs=1e-4)


def test_cli_bad_input_exits_2(tmp_path, digits, capsys):
    np.savez(tmp_path / "clean.npz", x=digits[1][:8])
    for extra, msg in [(["--level", "1.5", "--noise", "mask"], "level (mask probability) must be in (0, 1)"),
                       (["--noise", "blur"], "noise must be one of"),
                       (["--clean", str(tmp_path / "clean.npz"), "--add-noise"], "--add-noise makes INPUT")]:
        assert main(["denoise", str(tmp_path / "clean.npz"), "--out", str(tmp_path / "o"), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_keep_clean_returns_pixels_the_noise_cannot_have_written(den, digits):
    import copy

    from genlab.apps.denoise import clean_entries
    test = digits[1][:50]
    noisy = den.add_noise(test, random_state=1)  # mask p=0.3: only zeros are written
    out = den.transform(noisy)
    kept = noisy != 0
    assert np.array_equal(out[kept], noisy[kept]) and np.array_equal(out[kept], test[kept])  # clean for sure
    raw = copy.deepcopy(den).set_params(keep_clean=False).transform(noisy)
    assert np.array_equal(out[~kept], raw[~kept]) and not np.array_equal(out[kept], raw[kept])
    assert psnr(out, test) > psnr(raw, test)
    x = torch.tensor([0.0, 1.0, 0.5, 0.25])
    assert clean_entries(x, "salt_pepper", "image").tolist() == [False, False, True, True]
    assert clean_entries(x, "mask", "image").tolist() == [False, True, True, True]
    assert clean_entries(x, "gaussian", "image") is None and clean_entries(x, "mask", "tabular") is None
    with pytest.raises(ConfigError, match="keep_clean must be True or False"):
        Denoiser(keep_clean="yes", epochs=1).fit(digits[0][:8])
