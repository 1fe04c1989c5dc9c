"""stylegan: modulated convolution against its closed form, truncation, style mixing, w_avg tracking, lazy R1 and
path-length terms, PPL in Z and W, padding, bad input. (The shared contract checks run in test_contract.py.)"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genlab.config import from_dict
from genlab.data import TensorDataset
from genlab.errors import ConfigError
from genlab.metrics.ppl import perceptual_path_length
from genlab.nn.style_blocks import ModulatedConv2d
from genlab.registry import get_model_entry
from genlab.training import Trainer, seed_everything
from tests.conftest import tiny_trainer

SMALL = {"latent_dim": 4, "w_dim": 6, "width": 16, "mapping_layers": 2}


def build(data, **cfg):
    entry = get_model_entry("stylegan")
    return entry.cls(from_dict(entry.config_cls, {**SMALL, **cfg}), data.info())


@pytest.mark.parametrize("up", [False, True])
def test_demodulated_weights_have_unit_norm_and_forward_matches_grouped_conv(up):
    """Closed form: every output channel of the modulated, demodulated weight has L2 norm 1 over (in, k, k) for
    every sample; the layer's fast path equals convolving each sample with its own weight (grouped conv)."""
    torch.manual_seed(0)
    conv = ModulatedConv2d(5, 7, 3, 4, up=up)
    w = torch.randn(3, 4) * 2
    wt = conv.modulated_weight(w)  # (3, 7, 5, 3, 3)
    norms = wt.pow(2).sum((2, 3, 4)).sqrt()
    assert torch.allclose(norms, torch.ones(3, 7), atol=1e-5)
    x = torch.randn(3, 5, 6, 6)
    xin = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False) if up else x
    ref = torch.cat([F.conv2d(xin[i:i + 1], wt[i], padding=1) for i in range(3)])
    assert torch.allclose(conv(x, w), ref, atol=1e-5)
    plain = ModulatedConv2d(5, 2, 1, 4, demodulate=False)
    assert not torch.allclose(plain.modulated_weight(w).pow(2).sum((2, 3, 4)), torch.ones(3, 2))


def test_shapes_padding_and_num_ws(image_data):
    m = build(image_data)  # 8x8: sides 4, 8 -> 3 convs + final RGB
    assert m.side == 8 and m.num_ws == 4
    assert m.sample(3, generator=torch.Generator().manual_seed(0)).shape == (3, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    odd = TensorDataset(torch.rand(8, 3, 12, 12, generator=g), torch.zeros(8, dtype=torch.long), name="odd")
    m2 = build(odd)
    assert m2.side == 16 and m2.num_ws == 6  # 2 log2(16) - 2
    s = m2.sample(2, generator=torch.Generator().manual_seed(1))
    assert s.shape == (2, 3, 12, 12) and 0 <= s.min() and s.max() <= 1


def test_truncation_psi_one_is_no_truncation_and_psi_to_zero_collapses_to_w_avg(image_data):
    m = build(image_data).eval()
    m.w_avg.copy_(torch.linspace(-1, 1, 6))
    a = m.sample(4, generator=torch.Generator().manual_seed(3))
    b = m.sample(4, generator=torch.Generator().manual_seed(3), psi=1.0)
    assert torch.equal(a, b)
    c = m.sample(4, generator=torch.Generator().manual_seed(3), psi=0.7)
    assert not torch.equal(a, c)
    z = torch.randn(5, 4)
    w = m.mapping(z)
    assert torch.allclose(m.mapping(z, psi=0.5), m.w_avg + 0.5 * (w - m.w_avg), atol=1e-6)
    tiny = m.mapping(z, psi=1e-6)
    assert torch.allclose(tiny, m.w_avg.expand(5, -1), atol=1e-5)
    # with constant noise, psi -> 0 gives (almost) one image: the image of w_avg
    imgs = m.synthesize(tiny)
    assert torch.allclose(imgs, m.synthesize(m.w_avg[None]).expand(5, -1, -1, -1), atol=1e-4)


def test_w_avg_follows_training_batches_only(image_data):
    """w_avg <- lerp(w_avg, mean w of the D step's batch, 1 - beta) on training D steps; validation, G steps and
    no-grad calls leave it alone."""
    seed_everything(0)
    m = build(image_data, w_avg_beta=0.5, mixing_prob=0.0)
    batch = {"x": image_data.x[:8], "y": image_data.y[:8]}
    with torch.no_grad():
        m.training_step(batch, -1)
        m.validation_step(batch)
    assert torch.count_nonzero(m.w_avg) == 0
    torch.manual_seed(5)
    m.training_step(batch, 0, "d")
    torch.manual_seed(5)
    z = torch.randn(8, 4)
    assert torch.allclose(m.w_avg, 0.5 * m.mapping(z).mean(0).detach(), atol=1e-6)
    before = m.w_avg.clone()
    m.training_step(batch, 0, "g")
    assert torch.equal(m.w_avg, before)


def test_style_mixing_grid_and_mixing_regularisation(image_data):
    m = build(image_data).eval()
    z = torch.randn(3, 4)
    grid = m.style_mix(z, z, cut=2)  # (3, 3, 1, 8, 8); the diagonal is unmixed
    assert grid.shape == (3, 3, 1, 8, 8)
    plain = m.synthesize(m.mapping(z))
    assert torch.allclose(torch.stack([grid[i, i] for i in range(3)]), plain, atol=1e-6)
    mixed = build(image_data, mixing_prob=1.0)
    torch.manual_seed(0)
    ws = mixed._ws(torch.randn(4, 4))  # (4, num_ws, w_dim): two different w's, split at one index
    distinct = [not torch.equal(ws[:, i], ws[:, 0]) for i in range(mixed.num_ws)]
    assert distinct[0] is False and any(distinct) and distinct == sorted(distinct)
    with pytest.raises(ConfigError, match=r"cut must be in \[1, 3\]"):
        m.style_mix(z, z, cut=0)


def test_trains_with_lazy_r1_and_path_length(image_data):
    """R1 on D steps 0, 2, ... (r1_every=2) and path length on G steps 0, 2, ... (pl_every=2): logged, finite."""
    seed_everything(0)
    m = build(image_data, r1_every=2, pl_weight=2.0, pl_every=2)
    res = Trainer(tiny_trainer(epochs=1)).fit(m, image_data)
    recs = [r for r in res.history if r.get("split") == "train"]
    assert ["r1" in r for r in recs] == [True, False, True, False]
    assert ["pl" in r for r in recs] == [True, False, True, False]
    assert all(np.isfinite(r["loss/d"]) and np.isfinite(r["loss/g"]) for r in recs)
    assert float(m.pl_mean) > 0 and torch.count_nonzero(m.w_avg) > 0
    # lazy regularisation adjusts Adam: lr * c, betas ** c with c = 2 / 3
    opt = m.configure_optimizers()["d"].optimizer
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-3 * 2 / 3)
    assert opt.param_groups[0]["betas"][1] == pytest.approx(0.99 ** (2 / 3))


@pytest.mark.parametrize("r1_every, pl_every", [(1, 1), (16, 4)])
def test_adam_adjusted_only_for_lazy_terms(image_data, r1_every, pl_every):
    """R1 / path length every step are added to that step's loss: Adam keeps lr and betas (r = 1). Lazy every k
    steps: StyleGAN2's lr * r, betas ** r with r = k / (k + 1), per player (the twin of GAN._adam gave r = 1/2 at
    k = 1 before)."""
    m = build(image_data, r1_every=r1_every, pl_weight=2.0, pl_every=pl_every)
    opts = m.configure_optimizers()
    for player, k, lr in (("d", r1_every, m.config.lr_d), ("g", pl_every, m.config.lr_g)):
        r = k / (k + 1) if k > 1 else 1.0
        group = opts[player].optimizer.param_groups[0]
        assert group["lr"] == pytest.approx(lr * r)
        assert group["betas"] == pytest.approx((m.config.beta1 ** r, m.config.beta2 ** r))


def test_ppl_in_z_and_w(image_data):
    """PPL runs in Z (slerp) and in W (lerp of mapped endpoints); the W figure equals a direct computation with
    the same draws (z0, z1, t from one CPU generator, mapped, lerped in float64, decode_w with fixed noise)."""
    m = build(image_data).eval()
    feat = lambda x: x.flatten(1)  # noqa: E731 (identity features: the check is about the latent path)
    pz = perceptual_path_length(m, feat, n=16, batch_size=8, space="z", interpolation="slerp")
    pw, d = perceptual_path_length(m, feat, n=16, batch_size=8, space="w", return_distances=True)
    assert np.isfinite(pz) and pz > 0 and np.isfinite(pw) and pw > 0
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(16, 4, generator=g, dtype=torch.float64)
    z1 = torch.randn(16, 4, generator=g, dtype=torch.float64)
    t = torch.rand(16, 1, generator=g, dtype=torch.float64)
    with torch.no_grad():
        w0, w1 = m.mapping(z0.float()).double(), m.mapping(z1.float()).double()
        a = m.decode_w((w0 + (w1 - w0) * t).float()).flatten(1).double()
        b = m.decode_w((w0 + (w1 - w0) * (t + 1e-4)).float()).flatten(1).double()
    ref = ((a - b) ** 2).sum(1) / 1e-8
    assert np.allclose(d, ref.numpy(), rtol=1e-6)
    with pytest.raises(ConfigError, match="space='w' interpolates linearly"):
        perceptual_path_length(m, feat, n=4, space="w", interpolation="slerp")


def test_ppl_w_space_refused_for_models_without_one(image_data):
    entry = get_model_entry("dcgan")
    g = TensorDataset(torch.rand(8, 1, 8, 8), torch.zeros(8, dtype=torch.long), name="x")
    dc = entry.cls(from_dict(entry.config_cls, {"latent_dim": 4, "width": 8}), g.info())
    with pytest.raises(ConfigError, match="space='w' needs a model with a W space"):
        perceptual_path_length(dc, lambda x: x.flatten(1), n=4, space="w")


@pytest.mark.parametrize("psi", [0, -0.5, 1.5, float("nan")])
def test_bad_psi(image_data, psi):
    m = build(image_data)
    with pytest.raises(ConfigError, match=r"truncation psi must be in \(0, 1\]"):
        m.sample(2, psi=psi)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_bad_mixing_probability(image_data, p):
    with pytest.raises(ConfigError, match=r"mixing_prob must be in \[0, 1\], got"):
        build(image_data, mixing_prob=p)


def test_r1_r2_penalties_closed_form_and_options_of_every_gan(image_data):
    """grad_sq_penalty of a quadratic critic D(x) = sum(x^2) is mean ||2x||^2; any GAN with r1_gamma / r2_gamma
    adds gamma/2 times it at the reals / fakes to its D loss (logged as r1 / r2)."""
    from genlab.models.gan_losses import grad_sq_penalty
    x = torch.randn(5, 3, dtype=torch.float64)
    assert torch.allclose(grad_sq_penalty(lambda v: (v ** 2).sum(1), x), (4 * x ** 2).sum(1).mean())
    entry = get_model_entry("wgan-gp")
    m = entry.cls(from_dict(entry.config_cls, {"latent_dim": 4, "hidden": [16], "arch": "mlp", "r1_gamma": 2.0,
                                               "r2_gamma": 4.0}), image_data.info())
    torch.manual_seed(0)
    out = m.training_step({"x": image_data.x[:8], "y": image_data.y[:8]}, 0)
    x8 = image_data.x[:8]
    assert torch.allclose(out["r1"], grad_sq_penalty(m.critic, x8).detach(), rtol=1e-5)  # gamma / 2 = 1
    assert out["r2"] > 0 and torch.isclose(out["loss"], out["d_adv"] + out["gp"] + out["r1"] + out["r2"])
    with pytest.raises(ConfigError, match="r2_gamma must be >= 0"):
        from_dict(entry.config_cls, {"r2_gamma": -1.0})


def test_lazy_r1_of_every_gan(image_data):
    """r1_every = k > 1 on a GAN: R1 only on training steps 0, k, 2k, ..., weighed k * gamma / 2 (the same
    penalty as r1_every = 1 times k), never in validation; D's Adam gets lr * r, betas ** r with r = k / (k + 1);
    r1_every = 1 keeps R1 on every step and in validation with the plain Adam."""
    from genlab.models.gan_losses import grad_sq_penalty
    entry = get_model_entry("dcgan")
    cfg = {"latent_dim": 4, "hidden": [16], "r1_gamma": 2.0}
    lazy = entry.cls(from_dict(entry.config_cls, {**cfg, "r1_every": 4}), image_data.info())
    batch = {"x": image_data.x[:8]}
    x8 = image_data.x[:8]
    due = [("r1" in lazy.training_step(batch, s, "d")) for s in range(6)]
    assert due == [True, False, False, False, True, False]
    out = lazy.training_step(batch, 8, "d")
    assert torch.allclose(out["r1"], 4 * grad_sq_penalty(lazy.critic, x8).detach(), rtol=1e-5)  # 4 * gamma / 2
    assert "r1" not in lazy.validation_step(batch)
    opt = lazy.configure_optimizers()
    d, g = opt["d"].optimizer.param_groups[0], opt["g"].optimizer.param_groups[0]
    assert d["lr"] == pytest.approx(2e-4 * 4 / 5) and d["betas"] == pytest.approx((0.5 ** 0.8, 0.999 ** 0.8))
    assert g["lr"] == pytest.approx(2e-4) and g["betas"] == pytest.approx((0.5, 0.999))
    every = entry.cls(from_dict(entry.config_cls, {**cfg, "r1_every": 1}), image_data.info())
    assert all("r1" in every.training_step(batch, s, "d") for s in range(3)) and "r1" in every.validation_step(batch)
    assert every.configure_optimizers()["d"].optimizer.param_groups[0]["lr"] == pytest.approx(2e-4)
    with pytest.raises(ConfigError, match="r1_every must be >= 1"):
        from_dict(entry.config_cls, {"r1_every": 0})
    # the defaults, each chosen in bench/gan_select.py: lazy R1 (gamma 1 every 4) for dcgan, gan, cgan, acgan; off
    # for the critics (worse with it); stylegan its own lazy R1
    defaults = {n: (lambda c: (c.r1_gamma, c.r1_every))(from_dict(get_model_entry(n).config_cls, {}))
                for n in ("dcgan", "gan", "cgan", "acgan", "wgan", "wgan-gp", "progan", "stylegan")}
    assert defaults == {"dcgan": (1.0, 4), "gan": (1.0, 4), "cgan": (1.0, 4), "acgan": (1.0, 4), "wgan": (0.0, 1),
                        "wgan-gp": (0.0, 1), "progan": (0.0, 1), "stylegan": (0.05, 16)}


def test_r1_is_taken_in_model_space_four_times_the_papers_convention(image_data):
    """R1 differentiates D with respect to the model-space image x in [0, 1] while D reads 2x - 1, so genlab's
    r1_gamma / 2 * E||grad_x D||^2 is 4 times the penalty of the papers' [-1, 1] convention with the same gamma
    (docs/models/gan.md, Options; the GPU configs of docs/models/stylegan.md divide StyleGAN2-ADA's gamma by 4)."""
    from genlab.models.gan_losses import grad_sq_penalty
    from genlab.nn.style_blocks import pad_to
    m = build(image_data, r1_gamma=2.0, r1_every=1)
    torch.manual_seed(0)
    out = m.training_step({"x": image_data.x[:8]}, 0, "d")
    papers = 2.0 / 2 * grad_sq_penalty(m.disc, 2 * pad_to(image_data.x[:8], m.side) - 1)  # D's input, in [-1, 1]
    assert torch.allclose(out["r1"], 4 * papers.detach(), rtol=1e-4)


# -- cstylegan: the conditional variant ----------------------------------------------------------------------------
def cbuild(data, **cfg):
    entry = get_model_entry("cstylegan")
    return entry.cls(from_dict(entry.config_cls, {**SMALL, **cfg}), data.info())


def test_cstylegan_contract_checks(image_data):
    """genlab.testing's contract checks on the small conditional net (test_contract.py runs them for every model)."""
    from genlab import testing
    testing.check_declarations("cstylegan")
    testing.check_inference("cstylegan", image_data, SMALL)


def test_cstylegan_labels_change_the_samples_and_bad_labels_are_one_line_errors(image_data):
    m = cbuild(image_data).eval()
    assert m.conditional and m.num_classes == 4
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731 (same z and noise for every call)
    a = m.sample(4, labels=torch.zeros(4, dtype=torch.long), generator=g())
    b = m.sample(4, labels=torch.full((4,), 3), generator=g())
    assert torch.equal(a, m.sample(4, labels=torch.zeros(4, dtype=torch.long), generator=g()))
    assert (a - b).abs().mean() > 1e-3  # the label moves w, hence the image
    z = torch.randn(3, 4)
    assert not torch.allclose(m.mapping(z, labels=torch.tensor([0, 0, 0])), m.mapping(z, labels=torch.tensor([1] * 3)))
    for bad in ([0, 4], [-1, 0]):
        with pytest.raises(ConfigError, match=r"labels must be in \[0, 3\], got") as e:
            m.sample(2, labels=torch.tensor(bad))
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"cstylegan.mapping needs labels"):
        m.mapping(z)
    with pytest.raises(ConfigError, match="labels given but the model is unconditional"):
        build(image_data).mapping(z, labels=torch.tensor([0, 1, 2]))


def test_cstylegan_projection_discriminator_and_mapping_input(image_data):
    """D(x, y) = out(phi(x)) + <e_y, phi(x)> / sqrt(dim phi); the mapping net sees cat(pixel_norm(z),
    pixel_norm(embed(onehot(y))))."""
    from genlab.nn.style_blocks import pixel_norm
    m = cbuild(image_data, embed_dim=3).eval()
    x, y = image_data.x[:6], image_data.y[:6]
    h = m.disc.features(2 * x - 1)
    ref = m.disc.out(h).squeeze(1) + (m.d_embed.weight[y] * h).sum(1) / h.shape[1] ** 0.5
    assert torch.allclose(m.critic(x, y), ref, atol=1e-6)
    assert not torch.allclose(m.critic(x, y), m.critic(x, (y + 1) % 4))
    assert any(p is m.d_embed.weight for p in m.discriminator_parameters())
    assert not any(p is m.d_embed.weight for p in m.generator_parameters())
    z = torch.randn(6, 4)
    e = F.one_hot(y, 4).float() @ (m.label_embed.weight * m.label_embed.scale).t() + m.label_embed.bias
    assert torch.allclose(m.mapping(z, labels=y), m.mapping_net(torch.cat([pixel_norm(z), pixel_norm(e)], 1)),
                          atol=1e-6)


@pytest.mark.parametrize("mode", ["class", "global"])
def test_cstylegan_per_class_and_global_truncation(image_data, mode):
    """w_avg_class[k] follows the mean w of class k in the D steps' batches; psi truncates towards the class's
    centre ("class") or the global w_avg ("global")."""
    seed_everything(0)
    m = cbuild(image_data, w_avg_beta=0.5, mixing_prob=0.0, truncation=mode)
    x, y = image_data.x[:8], torch.tensor([0, 0, 1, 1, 1, 2, 2, 2])  # class 3 absent: its centre stays 0
    torch.manual_seed(5)
    m.training_step({"x": x, "y": y}, 0, "d")
    torch.manual_seed(5)
    w = m.mapping(torch.randn(8, 4), labels=y).detach()
    for k in range(3):
        assert torch.allclose(m.w_avg_class[k], 0.5 * w[y == k].mean(0), atol=1e-6)
    assert torch.count_nonzero(m.w_avg_class[3]) == 0
    assert torch.allclose(m.w_avg, 0.5 * w.mean(0), atol=1e-6)
    z, lab = torch.randn(4, 4), torch.tensor([0, 1, 2, 3])
    full = m.mapping(z, labels=lab)
    centre = m.w_avg_class[lab] if mode == "class" else m.w_avg.expand(4, -1)
    assert torch.allclose(m.mapping(z, 0.6, lab), centre + 0.6 * (full - centre), atol=1e-6)
    with pytest.raises(ConfigError, match=r"truncation psi must be in \(0, 1\]"):
        m.sample(2, labels=torch.tensor([0, 1]), psi=0.0)


def test_cstylegan_trains_with_r1_path_length_and_style_mixing(image_data):
    seed_everything(0)
    m = cbuild(image_data, r1_every=2, pl_weight=2.0, pl_every=2, mixing_prob=1.0)
    res = Trainer(tiny_trainer(epochs=1)).fit(m, image_data)
    recs = [r for r in res.history if r.get("split") == "train"]
    assert any("r1" in r for r in recs) and any("pl" in r for r in recs)
    assert all(np.isfinite(r["loss/d"]) and np.isfinite(r["loss/g"]) for r in recs)
    grid = m.eval().style_mix(torch.randn(2, 4), torch.randn(3, 4), cut=2)
    assert grid.shape == (2, 3, 1, 8, 8)
    with pytest.raises(ConfigError, match=r"labels must be in \[0, 3\]"):
        m.style_mix(torch.randn(2, 4), torch.randn(2, 4), cut=2, row_labels=torch.tensor([0, 9]))


def test_ppl_w_of_cstylegan_maps_both_ends_with_the_labels_and_sampling_crop_conventions(image_data):
    """PPL in W of the conditional model equals a direct computation (both ends mapped with the same label);
    sampling="end" puts t = 0; crop=True keeps rows [3c, 7c) and columns [2c, 6c), c = H // 8."""
    m = cbuild(image_data).eval()
    feat = lambda x: x.flatten(1)  # noqa: E731
    labels = torch.arange(8) % 4
    _, d = perceptual_path_length(m, feat, n=8, batch_size=4, space="w", labels=labels, return_distances=True)
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(8, 4, generator=g, dtype=torch.float64)
    z1 = torch.randn(8, 4, generator=g, dtype=torch.float64)
    t = torch.rand(8, 1, generator=g, dtype=torch.float64)
    with torch.no_grad():
        w0, w1 = m.mapping(z0.float(), labels=labels).double(), m.mapping(z1.float(), labels=labels).double()
        a = m.decode_w((w0 + (w1 - w0) * t).float()).flatten(1).double()
        b = m.decode_w((w0 + (w1 - w0) * (t + 1e-4)).float()).flatten(1).double()
    # rtol 1e-2: the images are float32 and differenced at eps = 1e-4, so their rounding (~6e-8 near 0.5; it depends
    # on how the convolutions are blocked, hence on batch size and thread count) is up to ~1e-3 of a difference; a
    # wrong convention (t, the label on one end only) changes the distances by O(1)
    assert np.allclose(d, (((a - b) ** 2).sum(1) / 1e-8).numpy(), rtol=1e-2)
    u = build(image_data).eval()
    seen = []
    crop_feat = lambda x: seen.append(x.shape) or x.flatten(1)  # noqa: E731
    _, de = perceptual_path_length(u, feat, n=8, batch_size=8, space="w", sampling="end", return_distances=True)
    with torch.no_grad():
        w0, w1 = u.mapping(z0.float()).double(), u.mapping(z1.float()).double()
        a = u.decode_w(w0.float()).flatten(1).double()
        b = u.decode_w((w0 + (w1 - w0) * 1e-4).float()).flatten(1).double()
    assert np.allclose(de, (((a - b) ** 2).sum(1) / 1e-8).numpy(), rtol=1e-2)
    perceptual_path_length(u, crop_feat, n=4, batch_size=4, crop=True)
    assert seen == [(8, 1, 4, 4)]  # 8x8: rows 3..6, columns 2..5
    with pytest.raises(ConfigError, match="sampling must be 'full'"):
        perceptual_path_length(u, feat, n=4, sampling="middle")


def test_style_mixing_figure_in_the_report_of_a_stylegan_run(tmp_path, image_data):
    """A tiny stylegan run writes style_mixing.png and report.html embeds it; the figure of a cstylegan is drawn
    by the same function (one labelled row per source A under the row of sources B)."""
    import genlab
    from genlab.io.report import style_mixing_figure
    run = genlab.train("stylegan", image_data, out=tmp_path / "run",
                       config={"model": SMALL, "trainer": tiny_trainer(epochs=1, fid_samples=0)})
    png = run.out_dir / "style_mixing.png"
    assert png.is_file() and png.stat().st_size > 0
    page = (run.out_dir / "report.html").read_text()
    assert 'data-file="style_mixing.png"' in page and "Style mixing: coarse styles (inputs 0-1 of 4)" in page
    figs = style_mixing_figure(cbuild(image_data).eval(), tmp_path / "c.png", rows=3, cols=2)
    assert list(figs.values()) == ["c.png"] and (tmp_path / "c.png").stat().st_size > 0


# -- bad input through the CLI: exit 2, one line naming the parameter and its range, nothing written ----------------
def test_cli_bad_mixing_probability_and_resolution_exit_2(tmp_path, capsys):
    from tests.cli.test_cli import _bad
    out = tmp_path / "run"
    for p in ("1.5", "-0.1"):
        _bad(["train", "stylegan", "--data", "digits", f"model.mixing_prob={p}", "--out", str(out)], capsys,
             f"mixing_prob must be in [0, 1], got {p}")
    _bad(["train", "cstylegan", "--data", "digits", "model.resolution=4", "--out", str(out)], capsys,
         "resolution=4 cannot be reached by growing", "power of two >= 8 (8, 16, ...)")
    assert not out.exists()


def test_cli_sample_psi_truncates_and_bad_psi_exits_2(tmp_path, capsys, image_data):
    """``genlab sample RUN --psi 0.7`` writes model.sample(n, psi=0.7) of the seed's generator; psi outside (0, 1]
    and --psi for a model without a W space are one-line errors (exit 2) that write nothing."""
    from genlab.cli import main
    from genlab.io import save_model
    from tests.cli.test_cli import _bad
    m = build(image_data).eval()
    m.w_avg.copy_(torch.linspace(-1, 1, 6))
    save_model(m, tmp_path / "m")
    png = tmp_path / "s.png"
    for psi in ("0", "1.5", "-0.2", "nan"):
        _bad(["sample", str(tmp_path / "m"), "--psi", psi, "-o", str(png)], capsys,
             "--psi (truncation) must be in (0, 1] (1 = no truncation)")
    assert not png.exists()
    assert main(["sample", str(tmp_path / "m"), "-n", "4", "--psi", "0.7", "-o", str(tmp_path / "s.npz")]) == 0
    got = torch.from_numpy(np.load(tmp_path / "s.npz")["x"])
    ref = m.sample(4, generator=torch.Generator().manual_seed(0), psi=0.7)
    assert torch.allclose(got, ref, atol=1e-6) and not torch.allclose(got, m.sample(
        4, generator=torch.Generator().manual_seed(0)), atol=1e-4)
    entry = get_model_entry("dcgan")
    save_model(entry.cls(from_dict(entry.config_cls, {"latent_dim": 4, "width": 8}), image_data.info()),
               tmp_path / "d")
    _bad(["sample", str(tmp_path / "d"), "--psi", "0.7", "-o", str(png)], capsys, "'dcgan' has no W space")
    assert not png.exists()


def test_evaluate_ppl_of_a_conditional_model_keeps_each_path_in_one_class(image_data):
    """evaluate_model's PPL for a conditional model (cstylegan) gives both ends of path i the label i % K: it equals
    perceptual_path_length with those labels (before the fix, decode drew each end's label apart)."""
    from genlab.evaluation import evaluate_model
    m = cbuild(image_data).eval()
    feat = torch.nn.Flatten()
    res = evaluate_model(m, image_data, data_key="tiny", metrics=["ppl"], n=8, features=feat, ppl_n=8,
                         use_cache=False)
    ref = perceptual_path_length(m, feat, n=8, seed=0, labels=torch.arange(8) % 4)
    assert res["raw"]["ppl"] == pytest.approx(ref, rel=1e-9)
    assert "path i in class i mod K" in res["conventions"]["ppl"]


@pytest.mark.parametrize("conditional", [False, True])
def test_trains_under_bf16_autocast_with_fp32_running_centres(image_data, conditional):
    """precision=bf16 (what precision=auto picks on a CPU with native bf16): the running w centre(s) and the
    path-length mean are fp32 buffers updated from bf16 activations; the lerp of a bf16 mean into them raised
    'expected dtype float for `end`' in the precision probe before."""
    seed_everything(0)
    m = (cbuild if conditional else build)(image_data, r1_every=2, pl_weight=2.0, pl_every=2, mixing_prob=0.5)
    res = Trainer(tiny_trainer(epochs=1, precision="bf16")).fit(m, image_data)
    recs = [r for r in res.history if r.get("split") == "train"]
    assert res.precision == "bf16" and all(np.isfinite(r["loss/d"]) and np.isfinite(r["loss/g"]) for r in recs)
    centres = [m.w_avg, m.pl_mean] + ([m.w_avg_class] if conditional else [])
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in centres)
    assert torch.count_nonzero(m.w_avg) > 0 and float(m.pl_mean) > 0


def test_lrelu_gain_keeps_the_second_moment_and_the_mapping_keeps_w_at_unit_scale(image_data):
    """Closed form: for x ~ N(0, 1), E[(sqrt(2) LeakyReLU_0.2(x))^2] = 1 + 0.2^2 = 1.04 (a plain LeakyReLU(0.2) gives
    0.52). So the default 4-layer mapping network (unit-variance equalised weights, zero biases) keeps w's root mean
    square near 1.04^2 ~ 1.08 at initialisation; without the gain it was ~0.52^2 ~ 0.27 and the styles barely varied
    with z. Tolerances: 0.01 on 10^6 draws (the estimate's sd is ~0.002); w's rms within [0.8, 1.4] (width 128,
    4 layers: the layer-to-layer spread of a random init is a few percent)."""
    from genlab.nn.style_blocks import lrelu_gain
    x = torch.randn(10**6, generator=torch.Generator().manual_seed(0))
    assert float(lrelu_gain(x).pow(2).mean()) == pytest.approx(1.04, abs=0.01)
    torch.manual_seed(0)
    m = build(image_data, latent_dim=128, w_dim=128, mapping_layers=4)
    w = m.mapping(torch.randn(4096, 128, generator=torch.Generator().manual_seed(1)))
    assert 0.8 < float(w.pow(2).mean().sqrt()) < 1.4
    # the styles of the first layer vary with z on the scale of their bias (1), not a quarter of it
    s = m.synthesis.layers[0].conv.affine(w)  # (4096, c0) styles, bias 1
    assert float(s.std(0).mean()) > 0.5


def test_nearest_upsampling_in_the_modulated_convolution_matches_grouped_conv():
    """``up_mode="nearest"``: each pixel repeated 2x2 (closed form), then the per-sample modulated weights."""
    torch.manual_seed(1)
    conv = ModulatedConv2d(4, 3, 3, 5, up=True, up_mode="nearest")
    x, w = torch.randn(2, 4, 5, 5), torch.randn(2, 5)
    xin = x.repeat_interleave(2, 2).repeat_interleave(2, 3)
    wt = conv.modulated_weight(w)
    ref = torch.cat([F.conv2d(xin[i:i + 1], wt[i], padding=1) for i in range(2)])
    assert torch.allclose(conv(x, w), ref, atol=1e-5)


def test_orig_architecture_has_one_rgb_layer_reading_the_last_style(image_data, tmp_path):
    """``architecture="orig"``: one RGB layer after the last side (the output is exactly that layer's, no sum over
    sides), the same ``num_ws``; the last style input changes only that layer's output; trains, saves, loads."""
    import genlab
    seed_everything(0)
    m = build(image_data, architecture="orig", upsample="nearest").eval()
    skip = build(image_data)
    assert len(m.synthesis.to_rgb) == 1 and len(skip.synthesis.to_rgb) == 2 and m.num_ws == skip.num_ws == 4
    syn = m.synthesis
    ws = torch.randn(3, m.num_ws, 6)
    x = syn.const[None].expand(3, -1, -1, -1)
    for i, layer in enumerate(syn.layers):
        x = layer(x, ws[:, i], "const")
    ref = syn.to_rgb[0](x, ws[:, -1]) + syn.rgb_bias[0][:, None, None]
    assert torch.allclose(syn(ws, "const"), ref, atol=1e-6)
    seed_everything(0)
    res = Trainer(tiny_trainer(epochs=1)).fit(m.train(), image_data)
    assert all(np.isfinite(r["loss/g"]) for r in res.history if r.get("split") == "train")
    genlab.save_model(m.eval(), tmp_path / "m")
    loaded = genlab.load(tmp_path / "m")
    assert loaded.config.architecture == "orig" and loaded.config.upsample == "nearest"
    z = torch.randn(2, 4)
    assert torch.equal(loaded.decode(z), m.decode(z))


@pytest.mark.parametrize("key, value, message", [
    ("architecture", "resnet", "architecture: expected one of 'skip' | 'orig'"),
    ("upsample", "bicubic", "upsample: expected one of 'bilinear' | 'nearest'"),
    ("mapping_lr_mul", 0, "mapping_lr_mul must be > 0")])
def test_bad_architecture_or_upsampling_is_a_one_line_error(image_data, key, value, message):
    with pytest.raises(ConfigError, match=message.replace("|", r"\|")) as e:
        build(image_data, **{key: value})
    assert "\n" not in str(e.value)


def test_pixel_norm_option_normalises_every_synthesis_layer(image_data):
    """``pixel_norm=True``: each synthesis layer's output has mean square 1 over its channels at every pixel (closed
    form); off (StyleGAN2's default) it does not."""
    for on in (True, False):
        seed_everything(0)
        m = build(image_data, pixel_norm=on).eval()
        outs = []
        hooks = [layer.register_forward_hook(lambda mod, inp, out: outs.append(out)) for layer in m.synthesis.layers]
        m.decode(torch.randn(5, 4))
        for h in hooks:
            h.remove()
        assert len(outs) == len(m.synthesis.layers)
        norm = [torch.allclose(o.pow(2).mean(1), torch.ones_like(o[:, 0]), atol=1e-4) for o in outs]
        assert norm == [on] * len(outs)


def test_mapping_lr_mul_keeps_the_initial_mapping_and_scales_its_parameters(image_data):
    """Equalised lr: the stored weights are ``N(0, 1) / lr_mul`` scaled by ``lr_mul / sqrt(fan_in)`` at run time, so at
    one seed ``mapping_lr_mul`` 1 and 0.01 give the same initial ``w`` while the parameters differ by 100x (Adam's
    step on them is then 100x larger relative to the weight)."""
    z = torch.randn(6, 4)
    ws, params = [], []
    for mul in (1.0, 0.01):
        seed_everything(0)
        m = build(image_data, mapping_lr_mul=mul).eval()
        ws.append(m.mapping(z))
        params.append(m.mapping_net[0].weight.detach())
    assert torch.allclose(ws[0], ws[1], atol=1e-5)
    assert torch.allclose(params[1], params[0] * 100, rtol=1e-5)
