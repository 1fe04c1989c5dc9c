"""Image-to-image models (pix2pix, srgan, context-encoder, colorizer): the contract checks on paired data, the
networks' shapes and receptive fields, the training step, and the promises each model makes (known pixels kept,
luma kept, bad input refused in one line)."""
import pytest
import torch
import torch.nn.functional as F

from genlab import testing
from genlab.data import TensorDataset
from genlab.errors import ConfigError, DataError
from genlab.models import capabilities
from genlab.nn.i2i_blocks import (PatchDiscriminator, SRResNet, UNetGenerator, chroma_to_rgb_in_gamut,
                                  patch_output_side, patch_receptive_field, rgb_to_ycbcr, unet_depth)

TINY = {"width": 8, "d_width": 8}


def _images(n=48, c=1, h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    base = torch.rand(4, c, h, w, generator=g)
    x = (base[y] * 0.8 + 0.2 * torch.rand(n, c, h, w, generator=g)).clamp(0, 1)
    return x, y


def sr_data(factor=2, h=8):
    x, y = _images(h=h, w=h)
    return TensorDataset(x, y, extras={"src": F.avg_pool2d(x, factor)}, name="tiny-sr")


def mask_data():
    x, y = _images()
    mask = torch.zeros(len(x), 1, 8, 8)
    mask[:, :, 2:6, 2:6] = 1
    mask[::2, :, 0, :] = 1  # not all the same
    return TensorDataset(x, y, extras={"src": x * (1 - mask), "mask": mask}, name="tiny-mask")


def grey_data():
    x, y = _images(c=3)
    return TensorDataset(x, y, extras={"src": rgb_to_ycbcr(x)[:, :1]}, name="tiny-colour")


DATA = {"pix2pix": sr_data, "srgan": sr_data, "context-encoder": mask_data, "colorizer": grey_data}


# -- contract checks (genlab.testing) on paired data, adversarial and L1-only ----------------------------------
@pytest.mark.parametrize("name, adv", [(n, 1.0) for n in DATA] + [("pix2pix", 0.0)])  # 0: no discriminator
def test_contract(name, adv, tmp_path):
    data, cfg = DATA[name](), {**TINY, "adv_weight": adv}
    testing.check_declarations(name)
    testing.check_inference(name, data, cfg)
    testing.check_one_step_lowers_loss(name, data, cfg)
    testing.check_save_load_round_trip(name, data, tmp_path, cfg)


def test_seeded_training_and_train_end_to_end():
    testing.check_seeded_training("pix2pix", sr_data(), TINY)
    testing.check_trains("context-encoder", mask_data(), TINY)


def test_capabilities():
    for name in DATA:
        caps = capabilities(testing.build(name, DATA[name](), TINY))
        assert caps["translates"] and not caps["can_sample"] and not caps["has_encoder"]
        assert not caps["can_reconstruct"]
    assert not capabilities(testing.build("vae", testing.tiny_image_data(), {}))["translates"]


# -- the networks -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(28, 28), (25, 25), (8, 8), (25, 31)])
def test_unet_output_shape_odd_sizes(size):
    net = UNetGenerator(2, 3, size, width=4)
    assert net(torch.rand(2, 2, *size)).shape == (2, 3, *size)
    assert net.depth == unet_depth(*size)


def test_unet_skip_connections_carry_the_input():
    """With the bottleneck's output zeroed, the output still follows the input: only skips can carry it."""
    torch.manual_seed(0)
    net = UNetGenerator(1, 1, (28, 28), width=4).eval()
    assert len(net.ups) == len(net.downs) == 3
    net.downs[-1].register_forward_hook(lambda m, i, o: torch.zeros_like(o))
    a, b = net(torch.zeros(1, 1, 28, 28)), net(torch.rand(1, 1, 28, 28))
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_patchgan_receptive_field(n_layers):
    """The analytic receptive field equals the span of input pixels one central logit depends on."""
    torch.manual_seed(0)
    side = 160
    d = PatchDiscriminator(1, width=4, n_layers=n_layers, norm="none")
    with torch.no_grad():  # positive weights: no cancellation can hide a dependence
        for p in d.parameters():
            p.copy_(p.abs() + 0.01)
    x = torch.rand(1, 1, side, side, requires_grad=True)
    out = d(x)
    s = patch_output_side(side, n_layers)
    assert out.shape == (1, 1, s, s)
    out[0, 0, s // 2, s // 2].backward()
    rows = x.grad[0, 0].abs().sum(1).nonzero()
    assert int(rows.max() - rows.min() + 1) == patch_receptive_field(n_layers)
    assert [patch_receptive_field(k) for k in (1, 2, 3)] == [16, 34, 70]  # 70: the pix2pix PatchGAN


@pytest.mark.parametrize("factor", [2, 4])
def test_pixel_shuffle_upscales(factor):
    net = SRResNet(3, factor, width=8, n_blocks=1)
    assert net(torch.rand(2, 3, 7, 5)).shape == (2, 3, 7 * factor, 5 * factor)
    assert sum(isinstance(m, torch.nn.PixelShuffle) for m in net.modules()) == {2: 1, 4: 2}[factor]


def test_srgan_factor_from_shapes():
    assert testing.build("srgan", sr_data(4, h=16), TINY).factor == 4
    assert testing.build("srgan", sr_data(2), TINY).factor == 2


# -- training ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(DATA))
def test_generator_step_lowers_loss(name):
    """One Adam step of G lowers G's loss on a fixed batch (the contract check steps the first optimizer, D)."""
    torch.manual_seed(0)
    data = DATA[name]()
    m = testing.build(name, data, {**TINY, "adv_weight": 1.0})
    batch = {"x": data.x[:32], **{k: v[:32] for k, v in data.extras.items()}}
    opt = m.configure_optimizers()["g"].optimizer
    m.eval()  # BatchNorm in eval mode: the same function before and after the step
    before = m.training_step(batch, -1, "g")["loss"]
    opt.zero_grad()
    before.backward()
    opt.step()
    after = m.training_step(batch, -1, "g")["loss"]
    assert after.item() < before.item()


def test_l1_only_is_adv_weight_zero():
    data = sr_data()

    def run(cfg):
        torch.manual_seed(0)
        m = testing.build("pix2pix", data, {**TINY, **cfg})
        specs = m.configure_optimizers()
        b = {"x": data.x[:16], "src": data.extras["src"][:16]}
        for step in range(2):
            for name, spec in specs.items():
                spec.optimizer.zero_grad()
                m.training_step(b, step, name)["loss"].backward()
                spec.optimizer.step()
        return m, specs

    a, sa = run({"l1_only": True})
    b, sb = run({"adv_weight": 0.0})
    assert list(sa) == list(sb) == ["g"] and not hasattr(a, "discriminator")
    sd_a, sd_b = a.state_dict(), b.state_dict()
    assert sd_a.keys() == sd_b.keys() and all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    c, sc = run({"adv_weight": 1.0})
    assert list(sc) == ["d", "g"] and any(k.startswith("discriminator.") for k in c.state_dict())


def test_validation_logs_l1_and_psnr():
    data = sr_data()
    m = testing.build("srgan", data, TINY).eval()  # the Trainer validates in eval mode
    assert m.default_monitor == ("val/l1", "min")
    out = m.validation_step({"x": data.x, "src": data.extras["src"]})
    t = m.translate(data.extras["src"])
    assert torch.allclose(out["l1"], (t - data.x).abs().mean(), atol=1e-6)
    mse = ((t - data.x) ** 2).flatten(1).mean(1)
    assert torch.allclose(out["psnr"], (-10 * torch.log10(mse)).mean(), atol=1e-4)


def test_srgan_starts_at_bicubic_and_feature_loss():
    x = torch.rand(16, 1, 28, 28)
    data = TensorDataset(x, extras={"src": F.avg_pool2d(x, 2)}, name="sr28")
    m = testing.build("srgan", data, {**TINY, "feature_weight": 1.0})
    out = m.training_step({"x": x[:4], "src": data.extras["src"][:4]}, -1, "g")
    assert out["feat"] > 0 and "feature" not in "".join(m.state_dict())
    bic = F.interpolate(data.extras["src"], scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)
    assert (m.translate(data.extras["src"]) - bic).abs().mean() < 0.05  # the residual starts small
    with pytest.raises(ConfigError, match="feature net"):
        testing.build("srgan", sr_data(h=16), {**TINY, "feature_weight": 1.0})  # no shipped net for 1x16x16


# -- what each model promises -----------------------------------------------------------------------------------
def test_inpainting_keeps_known_pixels_exactly():
    data = mask_data()
    m = testing.build("context-encoder", data, TINY)
    src, mask = data.extras["src"], data.extras["mask"]
    out = m.translate(src, mask)
    known = mask.expand_as(out) == 0
    assert torch.equal(out[known], data.x[known])
    assert not torch.equal(out[~known], data.x[~known])  # the missing pixels are the model's


def test_inpainting_loss_is_over_the_missing_region():
    data = mask_data()
    m = testing.build("context-encoder", data, {**TINY, "adv_weight": 0.0})
    x, src, mask = data.x[:8], data.extras["src"][:8], data.extras["mask"][:8]
    out = m.generate(src, mask)
    m_ = mask.expand_as(x)
    want = ((out - x).abs() * m_).sum() / m_.sum()
    assert torch.allclose(m.training_step({"x": x, "src": src, "mask": mask}, -1)["rec"], want)


def test_colorizer_keeps_the_luma():
    data = grey_data()
    m = testing.build("colorizer", data, TINY)
    src = data.extras["src"]
    out = m.translate(src)
    assert out.shape == data.x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    luma = 0.299 * out[:, 0] + 0.587 * out[:, 1] + 0.114 * out[:, 2]
    assert (luma - src[:, 0]).abs().max() < 1e-5
    assert (out[:, 0] - out[:, 2]).abs().max() > 1e-3  # colour, not grey


def test_gamut_fit_is_exact_on_real_colours_and_keeps_luma_on_wild_chroma():
    """YCbCr of in-gamut colours maps back to them (t = 1); out-of-gamut chroma is desaturated, luma kept."""
    rgb = torch.rand(4, 3, 5, 5, dtype=torch.float64)
    ycc = rgb_to_ycbcr(rgb)
    assert torch.allclose(chroma_to_rgb_in_gamut(ycc[:, :1], ycc[:, 1:]), rgb, atol=1e-12)
    y, cbcr = torch.rand(4, 1, 5, 5), torch.rand(4, 2, 5, 5) * 3 - 1  # chroma far outside the gamut
    out = chroma_to_rgb_in_gamut(y, cbcr)
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert (rgb_to_ycbcr(out)[:, :1] - y).abs().max() < 1e-5


# -- bad input: one line naming both shapes ---------------------------------------------------------------------
def test_bad_input_is_refused_in_one_line():
    sr = testing.build("srgan", sr_data(), TINY)
    with pytest.raises(DataError, match=r"src of shape \(1, 8, 8\) but the model was trained on \(1, 4, 4\)"):
        sr.translate(torch.rand(2, 1, 8, 8))
    with pytest.raises(DataError, match="trained without masks"):
        sr.translate(torch.rand(2, 1, 4, 4), torch.zeros(2, 1, 8, 8))
    col = testing.build("colorizer", grey_data(), TINY)
    with pytest.raises(DataError, match="a greyscale model given colour input"):
        col.translate(torch.rand(2, 3, 8, 8))
    ce = testing.build("context-encoder", mask_data(), TINY)
    src = torch.rand(2, 1, 8, 8)
    with pytest.raises(DataError, match="binary"):
        ce.translate(src, torch.full((2, 1, 8, 8), 0.5))
    with pytest.raises(DataError, match=r"mask of shape \(2, 1, 4, 4\)"):
        ce.translate(src, torch.zeros(2, 1, 4, 4))
    with pytest.raises(DataError, match="needs mask="):
        ce.translate(src)
    with pytest.raises(DataError) as e:
        col.translate(torch.rand(2, 1, 9, 9))
    assert "\n" not in str(e.value) and "(1, 9, 9)" in str(e.value) and "(1, 8, 8)" in str(e.value)


def test_bad_data_is_refused_when_built():
    with pytest.raises(ConfigError, match="pix2pix needs paired data"):
        testing.build("pix2pix", testing.tiny_image_data(), TINY)
    with pytest.raises(ConfigError, match="needs masks"):
        testing.build("context-encoder", sr_data(), TINY)
    with pytest.raises(DataError, match=r"\(1, 4, 4\).*\(3, 8, 8\)"):
        testing.build("colorizer", TensorDataset(torch.rand(8, 3, 8, 8), extras={"src": torch.rand(8, 1, 4, 4)}),
                      TINY)
    with pytest.raises(DataError, match="not an integer upscale"):
        testing.build("srgan", TensorDataset(torch.rand(8, 1, 8, 8), extras={"src": torch.rand(8, 1, 3, 3)}), TINY)
    with pytest.raises(DataError, match="differ in channels"):
        testing.build("srgan", TensorDataset(torch.rand(8, 3, 8, 8), extras={"src": torch.rand(8, 1, 4, 4)}), TINY)
    with pytest.raises(ConfigError, match="sample"):
        testing.build("pix2pix", sr_data(), TINY).sample(2)
