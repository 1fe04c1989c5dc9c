"""Gated PixelCNN (``pixelcnn``, ``cpixelcnn``): the model contract on quantised data, an exact likelihood that
normalises (every 4x4 binary image enumerated), the autoregressive order checked by gradients (no blind spot),
exact cached sampling, bad input, AnomalyDetector(scoring="likelihood") and the CLI end to end."""
import itertools
import math

import numpy as np
import pytest
import torch

import genlab
from genlab import testing
from genlab.apps import AnomalyDetector
from genlab.data import Normalization, TensorDataset
from genlab.errors import ConfigError, DataError, GenlabError
from genlab.models.pixelcnn import PixelCNN

SMALL = {"channels": 6, "layers": 2, "head_channels": 12, "first_kernel": 7, "kernel": 3}
#: the enumeration tests' net (65,536 images per pass)
TINY = {"channels": 4, "layers": 1, "head_channels": 8}
BITS = Normalization(torch.tensor(0.0), torch.tensor(1.0))  # binarised data: raw values are bits


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def binary_data(n=64, size=8) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 4
    base = torch.rand(4, 1, size, size, generator=g)
    x = (base[y] + 0.3 * torch.rand(n, 1, size, size, generator=g) > 0.7).float()
    return TensorDataset(x, y, norm=BITS, name="tiny-bits")


def byte_data(n=64, c=1, size=8) -> TensorDataset:
    """8-bit images (levels k / 255), 4 classes."""
    g = torch.Generator().manual_seed(1)
    y = torch.arange(n) % 4
    base = torch.rand(4, c, size, size, generator=g)
    x = (base[y] * 0.8 + 0.2 * torch.rand(n, c, size, size, generator=g)).clamp(0, 1)
    return TensorDataset((x * 255).round() / 255, y, name="tiny-bytes")


class TestPixelCNNContract(testing.ModelContractTests):
    model = "pixelcnn"
    config = SMALL

    def datasets(self):  # the first one trains (seeded runs, genlab.train): 4x4 keeps the sample monitors fast
        return [binary_data(size=4), byte_data(c=3)]


class TestCPixelCNNContract(testing.ModelContractTests):
    model = "cpixelcnn"
    config = SMALL

    def datasets(self):
        return [binary_data(), byte_data()]


def _build(name, data, **cfg):
    torch.manual_seed(0)
    return testing.build(name, data, {**SMALL, **cfg}).eval()


def _sharpen(model, factor=3.0):
    """Scale the weights up so the conditionals are far from uniform (a mask leak then shows in the sums)."""
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(factor)
    return model


def _all_binary_4x4() -> torch.Tensor:
    bits = torch.tensor(list(itertools.product([0.0, 1.0], repeat=16)))  # (65536, 16)
    return bits.view(-1, 1, 4, 4)


# -- heads chosen from the data --------------------------------------------------------------------------------
def test_head_and_levels_follow_the_data():
    assert (m := _build("pixelcnn", binary_data())).head == "bernoulli" and m.levels == 2
    assert (m := _build("pixelcnn", byte_data())).head == "softmax" and m.levels == 256
    digits_like = TensorDataset(torch.randint(0, 17, (8, 1, 8, 8)) / 16.0, norm=Normalization(
        torch.tensor(0.0), torch.tensor(16.0)))
    assert (m := _build("pixelcnn", digits_like)).head == "softmax" and m.levels == 17
    # bernoulli on 8-bit data binarised to {0, 1} model values (raw 0 / 255)
    m = _build("pixelcnn", TensorDataset(binary_data().x), head="bernoulli")
    assert m.head == "bernoulli" and m.levels == 2


# -- the likelihood is exact: probabilities of all images sum to 1 --------------------------------------------
@pytest.mark.parametrize("head", ["bernoulli", "softmax", "logistic_mixture"])
def test_probabilities_of_all_binary_4x4_images_sum_to_one(head):
    data = binary_data(size=4)
    m = _sharpen(_build("pixelcnn", data, head=head, **TINY))
    assert m.head == head
    ll = m.log_likelihood(_all_binary_4x4(), batch_size=8192).double()  # (65536,)
    assert ll.shape == (65536,) and bool((ll < 0).all())
    assert abs(float(torch.logsumexp(ll, 0))) < 1e-4  # log sum_x p(x) = 0
    assert float(ll.max() - ll.min()) > 5.0  # far from uniform, so a leak would show
    # the same check catches a mask that lets a sub-pixel see itself
    for mod in m.modules():
        if hasattr(mod, "mask"):
            mod.mask.fill_(1.0)
    leaked = m.log_likelihood(_all_binary_4x4(), batch_size=8192).double()
    assert abs(float(torch.logsumexp(leaked, 0))) > 1e-2


def test_conditional_model_normalises_per_label():
    data = binary_data(size=4)
    data = TensorDataset(data.x, data.y % 2, norm=BITS)  # 2 classes
    m = _sharpen(_build("cpixelcnn", data, **TINY))
    x = _all_binary_4x4()
    per_label = []
    for k in range(2):
        ll = m.log_likelihood(x, labels=torch.full((len(x),), k), batch_size=8192).double()
        assert abs(float(torch.logsumexp(ll, 0))) < 1e-4
        per_label.append(ll)
    assert float((per_label[0] - per_label[1]).abs().max()) > 1e-2  # the label matters
    # without labels: log p(x) = log mean_y p(x | y) (uniform label prior)
    some = torch.arange(0, len(x), 97)
    marg = m.log_likelihood(x[some]).double()
    torch.testing.assert_close(marg, torch.logsumexp(torch.stack(per_label)[:, some], 0) - math.log(2),
                               rtol=0, atol=1e-5)


def test_bits_per_dim_and_elbo_are_the_exact_likelihood():
    data = byte_data(c=3)
    m = _build("pixelcnn", data)
    x = data.x[:5]
    ll = m.log_likelihood(x)
    torch.testing.assert_close(m.bits_per_dim(x), -ll / (3 * 8 * 8 * math.log(2)))
    torch.testing.assert_close(m.elbo(x), ll)
    # batch independence: one image scores the same alone
    torch.testing.assert_close(m.log_likelihood(x[:1]), ll[:1], rtol=1e-5, atol=1e-4)
    # the training loss is the mean NLL per dimension
    out = m.training_step({"x": x, "y": data.y[:5]}, 0)
    torch.testing.assert_close(out["loss"], -ll.mean() / (3 * 64), rtol=1e-5, atol=1e-6)


# -- the autoregressive order, checked by gradients -------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 3])
def test_each_conditional_sees_exactly_the_earlier_subpixels(channels):
    """d logits(c, i, j) / d input is 0 for the sub-pixel itself and every later one (raster order, channels R,
    G, B within a pixel) and non-zero for every earlier one (no blind spot)."""
    data = byte_data(n=8, c=channels, size=4)
    m = _build("pixelcnn", data, channels=6, layers=2).double()
    C, H, W = m.shape
    order = [(i, j, c) for i in range(H) for j in range(W) for c in range(C)]  # sampling order
    for t, (i, j, c) in enumerate(order):
        x = torch.rand(1, C, H, W, dtype=torch.float64, requires_grad=True)
        m.net(x)[0, c, :, i, j].sum().backward()
        g = x.grad[0]
        for s, (i2, j2, c2) in enumerate(order):
            val = float(g[c2, i2, j2].abs())
            if s >= t:
                assert val == 0.0, f"logits of {(c, i, j)} depend on {(c2, i2, j2)}"
            else:
                assert val > 0.0, f"logits of {(c, i, j)} blind to earlier {(c2, i2, j2)}"


# -- sampling ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,data", [("pixelcnn", binary_data()), ("pixelcnn", byte_data(c=3)),
                                       ("cpixelcnn", byte_data())])
def test_cached_sampling_equals_full_recomputation(name, data):
    m = _sharpen(_build(name, data), 2.0)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a = m.sample(6, generator=g())
    b = m.sample(6, generator=g(), cache=False)
    assert torch.equal(a, b)
    assert a.shape == (6, *data.sample_shape)
    levels = a * m.level_scale
    assert torch.equal(levels, levels.round()) and float(levels.min()) >= 0 and float(levels.max()) <= m.levels - 1
    assert not torch.equal(a, m.sample(6, generator=torch.Generator().manual_seed(4)))
    # samples are data the model scores: the exact likelihood accepts them
    assert torch.isfinite(m.log_likelihood(a, labels=None)).all()


def test_samples_follow_the_model_distribution():
    """A model trained on images that are all one constant pattern samples that pattern."""
    pattern = (torch.arange(16).view(1, 1, 4, 4) % 3 == 0).float()
    data = TensorDataset(pattern.repeat(16, 1, 1, 1), norm=BITS)
    torch.manual_seed(0)
    m = testing.build("pixelcnn", data, {**SMALL, "lr": 1e-2})
    opt = m.configure_optimizers()["main"].optimizer
    for _ in range(80):
        loss = m.training_step({"x": data.x, "y": None}, 0)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    s = m.sample(8, generator=torch.Generator().manual_seed(0))
    assert float((s == pattern).float().mean()) > 0.95
    assert float(m.log_likelihood(pattern).exp()) > 0.5


def test_conditional_sampling_uses_the_labels():
    m = _build("cpixelcnn", byte_data())
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = m.sample(4, labels=torch.tensor([0, 1, 2, 3]), generator=g())
    b = m.sample(4, labels=torch.tensor([3, 2, 1, 0]), generator=g())
    assert a.shape == (4, 1, 8, 8) and not torch.equal(a, b)


# -- bad input: one line each -----------------------------------------------------------------------------------
def _one_line(excinfo, *words):
    msg = str(excinfo.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_bad_input_is_one_line():
    m = _build("pixelcnn", binary_data())
    with pytest.raises(DataError) as e:
        m.log_likelihood(torch.full((2, 1, 8, 8), 0.3))
    _one_line(e, "0 or 1", "0.3")
    with pytest.raises(DataError) as e:
        m.training_step({"x": torch.full((2, 1, 8, 8), 2.0), "y": None}, 0)
    _one_line(e, "pixel values")
    m8 = _build("pixelcnn", byte_data())
    with pytest.raises(DataError) as e:
        m8.log_likelihood(torch.full((2, 1, 8, 8), 0.5))  # 127.5 is no 8-bit level
    _one_line(e, "levels k / 255")
    with pytest.raises(DataError) as e:
        m8.log_likelihood(torch.zeros(2, 1, 16, 16))  # other image size
    _one_line(e, "(1, 8, 8)")
    with pytest.raises(ConfigError) as e:
        m.sample(2, labels=torch.tensor([0, 1]))
    _one_line(e, "unconditional")
    with pytest.raises(ConfigError):
        m.sample(0)
    cm = _build("cpixelcnn", byte_data())
    with pytest.raises(ConfigError) as e:
        cm.sample(2, labels=torch.tensor([0, 4]))
    _one_line(e, "[0, 3]", "4")
    with pytest.raises(ConfigError) as e:
        cm.log_likelihood(byte_data().x[:2], labels=torch.tensor([-1, 0]))
    _one_line(e, "[0, 3]")
    # data that is not quantised at all: refused when the model is built
    cont = TensorDataset(torch.rand(4, 1, 8, 8), norm=Normalization(torch.tensor(0.5), torch.tensor(0.25)))
    with pytest.raises(ConfigError) as e:
        testing.build("pixelcnn", cont, SMALL)
    _one_line(e, "integer pixel levels")
    with pytest.raises(ConfigError) as e:
        testing.build("pixelcnn", byte_data(c=3), {**SMALL, "channels": 4})
    _one_line(e, "multiple of the image channels")
    with pytest.raises(GenlabError):
        testing.build("pixelcnn", TensorDataset(torch.rand(8, 5)), SMALL)  # tabular data


# -- applications and the CLI -----------------------------------------------------------------------------------
def test_anomaly_detector_scores_the_exact_likelihood():
    g = torch.Generator().manual_seed(0)
    stripes = (torch.arange(8) % 4 == 0).float().view(1, 1, 1, 8).expand(64, 1, 8, 8)
    normal = TensorDataset(((stripes + (torch.rand(64, 1, 8, 8, generator=g) < 0.05)) % 2), norm=BITS)
    det = AnomalyDetector(model="pixelcnn", model_config={**TINY, "lr": 1e-2}, scoring="likelihood", epochs=3,
                          batch_size=16, contamination=0.05, random_state=0, validation_fraction=0.0)
    det.fit(normal)
    assert isinstance(det.model_, PixelCNN)
    x = normal.x[:8]
    s = det.score_samples(x.numpy())
    np.testing.assert_allclose(s, det.model_.log_likelihood(x).double().numpy(), rtol=1e-6, atol=1e-4)
    noise = (torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(9)) > 0.5).float()
    assert np.median(det.score_samples(noise.numpy())) < np.median(s)  # noise is less likely than the data
    with pytest.raises(ConfigError) as e:  # nothing to reconstruct
        det.error_maps(x.numpy())
    _one_line(e, "can_reconstruct")
    with pytest.raises(ConfigError) as e:  # a VAE's likelihood is a bound: its scores are elbo/iwae
        AnomalyDetector(model="vae", scoring="likelihood").fit(normal.x.numpy())
    _one_line(e, "pixelcnn")


def test_cli_trains_pixelcnn_end_to_end(tmp_path):
    from genlab.cli import main
    out = tmp_path / "run"
    rc = main(["train", "pixelcnn", "--data", "digits", "-o", str(out), "trainer.epochs=1", "model.channels=8",
               "model.layers=1", "model.head_channels=16", "data.limit=300"])
    assert rc in (0, None)
    import json
    assert json.loads((out / "config.json").read_text())["model"] == "pixelcnn"
    assert (out / "report.html").exists() and (out / "samples.png").exists()
    assert (out / "model" / "model.safetensors").exists()
    metrics = json.loads((out / "final_metrics.json").read_text())
    assert metrics["test_nll"] > 0 and metrics["test_bpd"] == pytest.approx(
        metrics["test_nll"] / (64 * math.log(2)))  # held-out exact NLL of the 8x8 digits
    loaded = genlab.load(out)
    assert isinstance(loaded, PixelCNN) and loaded.levels == 17  # digits: levels 0..16


# -- inpainting the bottom rows ----------------------------------------------------------------------------------
def test_complete_keeps_the_top_and_equals_sample_from_row_0():
    data = binary_data(size=4)
    m = _build("pixelcnn", data)
    x = data.x[:5]
    out = m.complete(x, 2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out[:, :, :2], x[:, :, :2]) and set(out.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(m.complete(x, 4), x)  # every row kept: nothing to sample
    s = m.sample(5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(m.complete(x, 0, generator=torch.Generator().manual_seed(4)), s)
    with pytest.raises(ConfigError, match="rows must be an integer in 0..4"):
        m.complete(x, 5)
    with pytest.raises(DataError, match="pixel values"):
        m.complete(x * 0.5 + 0.25, 2)


def test_complete_draws_from_the_exact_conditional_of_the_bottom_given_the_top():
    """4x4 binary images, the top 2 rows fixed: the 256 possible bottoms have the exact conditional probabilities
    p(x) / sum p over the completions (by enumeration); 20,000 inpaintings match them within a total-variation
    distance of 0.06 (expected ~0.03 for this sample size), while the bottoms of unconditional samples do not."""
    data = binary_data(size=4)
    m = _sharpen(_build("pixelcnn", data, **TINY))
    top = data.x[:1, :, :2]  # (1, 1, 2, 4)
    bottoms = torch.tensor(list(itertools.product([0.0, 1.0], repeat=8))).view(-1, 1, 2, 4)  # (256, 1, 2, 4)
    full = torch.cat([top.expand(256, -1, -1, -1), bottoms], dim=2)
    exact = torch.softmax(m.log_likelihood(full).double(), 0)  # (256,)

    def freq(images):
        code = (images[:, 0, 2:].reshape(-1, 8) * (2 ** torch.arange(7, -1, -1))).sum(1).long()
        return torch.bincount(code, minlength=256).double() / len(images)

    n = 20_000
    got = freq(m.complete(full[:1].expand(n, -1, -1, -1).contiguous(), 2, generator=torch.Generator().manual_seed(0)))
    tv = 0.5 * float((got - exact).abs().sum())
    assert tv < 0.06, tv
    marginal = freq(m.sample(n, generator=torch.Generator().manual_seed(1)))
    assert 0.5 * float((marginal - exact).abs().sum()) > 0.15  # the check tells the conditional from the marginal


# -- the discretised logistic mixture head (PixelCNN++) ---------------------------------------------------------
def _mixture_reference(params: torch.Tensor, levels: int) -> torch.Tensor:
    """Probabilities (..., L) of all levels straight from the definition, in float64: CDF differences over the
    bins [x_q - h, x_q + h], with -inf / +inf as the outer edges of the first and last level."""
    w, mu, ls = params.double().chunk(3, dim=-1)
    s = ls.clamp(-7, 7).exp()
    h = 1.0 / (levels - 1)
    x = torch.arange(levels, dtype=torch.float64) * 2 * h - 1  # (L,)
    hi = torch.sigmoid((x[:, None] + h - mu[..., None, :]) / s[..., None, :])  # (..., L, M)
    lo = torch.sigmoid((x[:, None] - h - mu[..., None, :]) / s[..., None, :])
    hi[..., -1, :] = 1.0
    lo[..., 0, :] = 0.0
    return ((hi - lo) * torch.softmax(w, -1)[..., None, :]).sum(-1)


@pytest.mark.parametrize("levels", [2, 17, 256])
def test_logistic_mixture_probabilities_sum_to_one_and_match_the_cdf_differences(levels):
    from genlab.models.pixelcnn import logistic_mixture_log_prob
    g = torch.Generator().manual_seed(0)
    m = 4
    params = torch.randn(64, 3 * m, generator=g) * torch.tensor([2.0] * m + [1.5] * m + [3.0] * m)
    params[:2, 2 * m:] = -3.0
    params[0, m:2 * m] = -5.0  # all mass in the first level (the edge at 0)
    params[1, m:2 * m] = 5.0  # ... in the last one (the edge at 255)
    params[2, 2 * m:] = -9.0  # below the log-scale clamp: needle-sharp components between levels
    params[3, 2 * m:] = 9.0  # above it: flat
    q = torch.arange(levels)
    for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-12)):
        lp = logistic_mixture_log_prob(params.to(dtype)[:, None, :], q[None, :], levels)  # (64, L)
        assert lp.shape == (64, levels) and bool(torch.isfinite(lp).all())
        total = lp.double().exp().sum(1)
        assert float((total - 1).abs().max()) < tol, (dtype, total)
    ref = _mixture_reference(params, levels)  # independent: plain sigmoid differences in float64
    got = logistic_mixture_log_prob(params.double()[:, None, :], q[None, :], levels).exp()
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-12)
    assert float(got[0, 0]) > 0.99 and float(got[1, -1]) > 0.99
    # gradients stay finite at the clamps and edges
    p = params.clone().requires_grad_(True)
    logistic_mixture_log_prob(p[:, None, :], q[None, :], levels).sum().backward()
    assert bool(torch.isfinite(p.grad).all())


def _iid_bytes(n: int, seed: int = 0) -> tuple[TensorDataset, torch.Tensor]:
    """8-bit 4x4 images of independent pixels from a known histogram: 30% at 0, 15% at 255, 55% a discretised
    normal (128, 20)."""
    levels = torch.arange(256, dtype=torch.float64)
    bump = torch.exp(-0.5 * ((levels - 128) / 20) ** 2)
    p = 0.55 * bump / bump.sum()
    p[0] += 0.30
    p[255] += 0.15
    q = torch.multinomial(p, n * 16, replacement=True, generator=torch.Generator().manual_seed(seed))
    return TensorDataset((q.float() / 255).view(n, 1, 4, 4)), p


def test_fitted_logistic_mixture_recovers_a_known_histogram():
    """Fitted to 1,250 4x4 images of independent pixels (20,000 draws of a histogram with spikes at 0 and 255 and
    a bump), the first pixel's conditional (it sees no input: the model's marginal of that pixel) sums to 1 over
    the 256 levels and is within TV 0.06 of the true histogram (the empirical histogram of 20,000 draws is itself
    ~0.03 from it; the untrained model is > 0.2 away); the NLL per pixel is within 0.05 nats of the histogram's
    entropy; levels drawn by the sampler's CDF inversion follow the model's probabilities (TV < 0.05)."""
    from genlab.models.pixelcnn import logistic_mixture_log_prob
    data, p = _iid_bytes(1250)
    torch.manual_seed(0)
    m = testing.build("pixelcnn", data, {**TINY, "head": "logistic_mixture", "n_mix": 3, "lr": 5e-2})
    assert m.head == "logistic_mixture" and m.levels == 256

    def first_pixel():
        with torch.no_grad():
            params = m.net(torch.zeros(1, 1, 4, 4))[0, 0, :, 0, 0].double()  # (3 M,): the first pixel's mixture
        return params, logistic_mixture_log_prob(params[None, :], torch.arange(256), 256).exp()  # (256,)

    assert 0.5 * float((first_pixel()[1] - p).abs().sum()) > 0.2
    opt = m.configure_optimizers()["main"].optimizer
    for _ in range(150):
        loss = m.training_step({"x": data.x, "y": None}, 0)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    params, model_p = first_pixel()
    assert abs(float(model_p.sum()) - 1) < 1e-5
    tv = 0.5 * float((model_p - p).abs().sum())
    assert tv < 0.06, tv
    entropy = float(-(p * p.log()).sum())
    nll = float(-m.log_likelihood(data.x).double().mean()) / 16
    assert abs(nll - entropy) < 0.05, (nll, entropy)
    n = 20_000
    drawn = m._draw(params.float().expand(n, -1), m._uniform(n, torch.Generator().manual_seed(1)))  # (n,) levels
    freq = torch.bincount(drawn, minlength=256).double() / n
    assert 0.5 * float((freq - model_p).abs().sum()) < 0.05


def test_logistic_mixture_model_normalises_and_samples_exactly():
    """(The whole-model normalisation of this head: the 4x4 binary enumeration test above.) Cached and naive
    sampling agree on RGB 8-bit data; the training loss is the exact NLL per dimension."""
    data3 = byte_data(c=3, size=4)
    m3 = _sharpen(_build("pixelcnn", data3, head="logistic_mixture", n_mix=3), 2.0)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    a = m3.sample(4, generator=g())
    assert torch.equal(a, m3.sample(4, generator=g(), cache=False))
    assert torch.isfinite(m3.log_likelihood(a)).all()
    out = m3.training_step({"x": data3.x[:4], "y": None}, 0)
    torch.testing.assert_close(out["loss"], -m3.log_likelihood(data3.x[:4]).mean() / (3 * 16), rtol=1e-5, atol=1e-6)


def test_more_bad_input_is_one_line():
    m = _build("pixelcnn", binary_data())
    with pytest.raises(ConfigError) as e:  # sampling at another image size
        m.sample(2, size=(16, 16))
    _one_line(e, "8x8", "(16, 16)")
    assert m.sample(1, size=(8, 8)).shape == (1, 1, 8, 8)
    with pytest.raises(DataError) as e:  # inpainting images of another size
        m.complete(torch.zeros(2, 1, 16, 16), 4)
    _one_line(e, "(1, 8, 8)")
    with pytest.raises(DataError) as e:  # 8-bit data above the range
        _build("pixelcnn", byte_data(), head="logistic_mixture").log_likelihood(torch.full((1, 1, 8, 8), 256 / 255))
    _one_line(e, "levels k / 255", "0..255")
    with pytest.raises(DataError) as e:  # ... below it
        _build("pixelcnn", byte_data()).log_likelihood(torch.full((1, 1, 8, 8), -1 / 255))
    _one_line(e, "levels k / 255")
    cm = _build("cpixelcnn", byte_data())
    with pytest.raises(ConfigError) as e:  # label out of range when training
        cm.training_step({"x": byte_data().x[:2], "y": torch.tensor([0, 7])}, 0)
    _one_line(e, "[0, 3]", "7")
    with pytest.raises(ConfigError) as e:
        cm.complete(byte_data().x[:2], 2, labels=torch.tensor([0, 4]))
    _one_line(e, "[0, 3]")
    with pytest.raises(ConfigError) as e:  # the mixture needs integer levels too
        testing.build("pixelcnn", TensorDataset(torch.rand(4, 1, 8, 8), norm=Normalization(
            torch.tensor(0.5), torch.tensor(0.25))), {**SMALL, "head": "logistic_mixture"})
    _one_line(e, "integer pixel levels")
    for bad in ({"n_mix": 0}, {"dropout": 1.0}):
        with pytest.raises(ConfigError) as e:
            testing.build("pixelcnn", binary_data(), {**SMALL, **bad})
        _one_line(e, next(iter(bad)))
