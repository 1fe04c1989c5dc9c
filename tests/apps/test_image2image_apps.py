"""Image-to-image estimators (genlab.apps.image2image): Upscaler, Inpainter, Colorizer, Translator.

Tiny models (width 4-8, 1 epoch) on 96 digits / 48 photo patches: the tests check the plumbing (pairs made by the
transform, shapes and layouts, refusals, save/load, metrics against independent references), not quality
(that is bench/image2image.py's job)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone

from genlab.apps import Colorizer, Inpainter, Translator, Upscaler
from genlab.apps.image2image import colourfulness, masked_psnr, masked_ssim
from genlab.data import load_dataset
from genlab.data.paired import box_mask
from genlab.errors import ConfigError, DataError

TRAINER = {"precision": "fp32", "channels_last": False, "log_every": 100}
TINY = dict(epochs=1, batch_size=32, verbose=False, trainer_config=TRAINER)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits").x[:96].numpy()  # (96, 1, 8, 8) in [0, 1]


@pytest.fixture(scope="module")
def upscaler(digits):
    return Upscaler(factor=2, model_config={"width": 4, "n_blocks": 1, "d_width": 4}, **TINY).fit(digits)


@pytest.fixture(scope="module")
def inpainter(digits):
    return Inpainter(mask="box", model_config={"width": 4, "d_width": 4}, **TINY).fit(digits)


# ---------------------------------------------------------------------------------------------- Upscaler
def test_upscaler_shapes_layouts_and_report(upscaler, digits):
    assert upscaler.src_shape_ == (1, 4, 4) and upscaler.input_shape_ == (1, 8, 8) and upscaler.factor_ == 2
    assert upscaler.pair_ == "downsample:2"
    low = upscaler.downscale(digits[:5, 0])  # (N, H, W) in, (N, H, W) out
    assert low.shape == (5, 4, 4)
    np.testing.assert_allclose(low, digits[:5, 0].reshape(5, 4, 2, 4, 2).mean(axis=(2, 4)), atol=1e-6)
    up = upscaler.transform(low)
    assert up.shape == (5, 8, 8) and up.dtype == np.float32 and up.min() >= 0 and up.max() <= 1
    assert upscaler.transform(low[:, None]).shape == (5, 1, 8, 8)
    rep = upscaler.score_report(digits[:20])
    # PSNR: per image, then averaged, against scikit-image's reference implementation
    from skimage.metrics import peak_signal_noise_ratio
    out = upscaler.transform(upscaler.downscale(digits[:20]))
    ref = np.mean([peak_signal_noise_ratio(digits[i], out[i], data_range=1.0) for i in range(20)])
    assert rep["psnr"] == pytest.approx(ref, abs=1e-4)
    assert rep["baseline"] == "bicubic" and np.isfinite(rep["baseline_psnr"]) and 0 < rep["ssim"] <= 1
    assert upscaler.score(digits[:20]) == rep["psnr"]


def test_upscaler_refuses_other_sizes_factor_and_colour(upscaler, digits):
    with pytest.raises(DataError, match=r"x4 upscale of 2x2 .*not tiled") as e:
        upscaler.transform(np.zeros((3, 1, 2, 2), np.float32))
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="greyscale model given colour input"):
        upscaler.transform(np.zeros((3, 3, 4, 4), np.float32))
    with pytest.raises(DataError, match=r"x2\) but factor=4"):
        Upscaler(factor=4, model=upscaler.model_).fit(None)
    with pytest.raises(ConfigError, match="factor must be an integer >= 2"):
        Upscaler(factor=1).fit(digits)
    with pytest.raises(DataError, match="do not divide by 3"):
        Upscaler(factor=3, **TINY).fit(digits)


def test_upscaler_save_load_clone_and_given_model(upscaler, digits, tmp_path):
    low = upscaler.downscale(digits[:4])
    upscaler.save(tmp_path / "up")
    again = Upscaler.load(tmp_path / "up")
    np.testing.assert_array_equal(again.transform(low), upscaler.transform(low))
    assert again.src_shape_ == (1, 4, 4) and again.factor_ == 2
    assert clone(upscaler).get_params() == upscaler.get_params()
    given = Upscaler(factor=2, model=upscaler.model_).fit(None)
    np.testing.assert_array_equal(given.transform(low), upscaler.transform(low))


# ---------------------------------------------------------------------------------------------- Inpainter
def test_inpainter_fills_nan_keeps_known_pixels(inpainter, digits):
    x = digits[:6].copy()
    m = inpainter.make_mask(x)
    assert m.shape == (6, 1, 8, 8) and float(m.mean()) == 0.25
    holed = x.copy()
    holed[np.broadcast_to(m > 0, x.shape)] = np.nan
    out_nan = inpainter.transform(holed)
    out_mask = inpainter.transform(x, m)
    out_default = inpainter.transform(x)  # mask="box": the centre box
    np.testing.assert_allclose(out_nan, out_mask, atol=1e-6)
    np.testing.assert_allclose(out_default, out_mask, atol=1e-6)
    known = m == 0
    np.testing.assert_allclose(out_mask[np.broadcast_to(known, x.shape)], x[np.broadcast_to(known, x.shape)],
                               atol=1e-6)  # known pixels returned exactly
    rep = inpainter.score_report(digits[:10])
    assert {"psnr_missing", "ssim_missing", "baseline_psnr_missing"} <= set(rep)
    assert rep["baseline"].startswith("biharmonic")


def test_inpainter_refuses_bad_masks(inpainter, digits):
    x = digits[:4]
    with pytest.raises(DataError, match="only 0 .* and 1 .*found 0.5"):
        inpainter.transform(x, np.full((4, 1, 8, 8), 0.5, np.float32))
    with pytest.raises(DataError, match=r"mask of shape \(4, 1, 4, 4\)"):
        inpainter.transform(x, np.ones((4, 1, 4, 4), np.float32))
    free = Inpainter(mask="free", model=inpainter.model_).fit(None)
    with pytest.raises(DataError, match="needs mask="):
        free.transform(x)
    with pytest.raises(ConfigError, match="mask must be box or free"):
        Inpainter(mask="circle").fit(x)


def test_masked_metrics_against_references():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 3, 12, 12, generator=g), torch.rand(3, 3, 12, 12, generator=g)
    m = box_mask((12, 12)).expand(3, 1, 12, 12)
    sel = m.expand_as(a).bool()
    mse = float(((a.double() - b.double())[sel] ** 2).mean())
    assert masked_psnr(a, b, m) == pytest.approx(10 * np.log10(1 / mse), rel=1e-9)
    from skimage.metrics import structural_similarity
    ref = []
    for i in range(3):
        _, s = structural_similarity(a[i].numpy().astype(np.float64), b[i].numpy().astype(np.float64), data_range=1,
                                     channel_axis=0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     win_size=11, full=True)
        ref.append(s.mean(0)[3:9, 3:9].mean())
    assert masked_ssim(a, b, m) == pytest.approx(float(np.mean(ref)), abs=1e-9)


# ---------------------------------------------------------------------------------------------- Colorizer
def test_colourfulness_reference_values():
    red = torch.zeros(1, 3, 4, 4)
    red[:, 0] = 1.0
    assert colourfulness(red) == pytest.approx(0.3 * np.hypot(255.0, 127.5), rel=1e-9)  # uniform: no spread
    assert colourfulness(torch.rand(2, 1, 4, 4).expand(-1, 3, -1, -1)) == 0.0  # grey


def test_colorizer_round_trip_and_refuses_colour_input():
    ph = load_dataset("photos32", split="test").x[::20][:48].numpy()  # (48, 3, 32, 32)
    col = Colorizer(model_config={"width": 4, "d_width": 4}, **TINY).fit(ph)
    grey = col.to_grey(ph[:5])
    assert grey.shape == (5, 1, 32, 32)
    out = col.transform(grey)
    assert out.shape == (5, 3, 32, 32)
    rep = col.score_report(ph[:8])
    assert rep["colourfulness_baseline"] == 0.0 and rep["colourfulness_target"] > 0
    with pytest.raises(DataError, match="greyscale model given colour input"):
        col.transform(ph[:2])
    with pytest.raises(DataError, match=r"needs colour images \(C=3\)"):
        Colorizer(**TINY).fit(load_dataset("digits").x[:8].numpy())


# ---------------------------------------------------------------------------------------------- Translator
def test_translator_edges_and_folder_pairs(digits, tmp_path):
    tr = Translator(pair="edges", model_config={"width": 4, "d_width": 4}, **TINY).fit(digits)
    src = tr.make_sources(digits[:5])
    assert src.shape == (5, 1, 8, 8) and tr.transform(src).shape == (5, 1, 8, 8)
    assert np.isfinite(tr.score(digits[:10]))
    # a paired data set is used as it is (folder pairs A/ -> B/)
    from PIL import Image
    for i in range(12):
        for side, arr in (("A", src[i % 5, 0]), ("B", digits[i % 5, 0])):
            (tmp_path / side).mkdir(exist_ok=True)
            Image.fromarray((arr * 255).round().astype(np.uint8)).save(tmp_path / side / f"{i:03d}.png")
    pairs = load_dataset(f"pairs:{tmp_path}")
    tr2 = Translator(model_config={"width": 4, "d_width": 4}, **TINY).fit(pairs)
    assert tr2.pair_ is None and tr2.src_shape_ == (1, 8, 8)
    with pytest.raises(DataError, match="unknown pair spec"):
        Translator(pair="blur").fit(digits)
