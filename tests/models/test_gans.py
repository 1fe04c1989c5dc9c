"""The GAN family: training through the one Trainer, loss formulas, gradient penalty, clipping, DCGAN sizes,
conditioning and input errors."""
import copy
import logging
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import genlab
from genlab.config import from_dict
from genlab.data import TensorDataset
from genlab.errors import ConfigError, DataError
from genlab.io.report import write_figures
from genlab.models.gan_losses import D_LOSSES, G_LOSSES, d_loss, g_loss, gradient_penalty
from genlab.registry import get_model_entry
from genlab.training import Trainer, seed_everything
from tests.conftest import tiny_trainer

GANS = ["gan", "dcgan", "wgan", "wgan-gp", "cgan", "acgan"]


def build(name, data, **cfg):
    entry = get_model_entry(name)
    return entry.cls(from_dict(entry.config_cls, {"latent_dim": 4, **cfg}), data.info())


def _updates(opt) -> int:
    """How many times ``opt`` (Adam or RMSprop) stepped: the per-parameter step count it keeps."""
    steps = {int(st["step"]) for st in opt.state.values()}
    assert len(steps) <= 1
    return steps.pop() if steps else 0


@pytest.mark.parametrize("kind", ["image", "tabular"])
@pytest.mark.parametrize("name", GANS)
def test_trains_through_trainer_d_every_batch_g_every_n_critic(name, kind, image_data, tabular_data):
    """One Trainer step = one batch: D updates on every batch, G after it on every n_critic-th batch; one record
    per step holds both players' figures."""
    data = image_data if kind == "image" else tabular_data.standardized()
    if name == "dcgan" and kind == "tabular":
        with pytest.raises(DataError, match="does not take tabular data"):
            build(name, data)
        return
    n_critic = 5 if name.startswith("wgan") else 2
    torch.manual_seed(0)
    model = build(name, data, n_critic=n_critic, width=8)
    tr = Trainer(tiny_trainer(epochs=3, seed=0))
    res = tr.fit(model, data)
    nb = data.num_batches(16)
    train = [r for r in res.history if r["split"] == "train"]
    assert [r["step"] for r in train] == list(range(1, 3 * nb + 1))
    assert all("d_loss" in r for r in train)
    assert [r["step"] for r in train if "g_loss" in r] == [s for s in range(1, 3 * nb + 1) if s % n_critic == 0]
    assert _updates(tr.specs["d"].optimizer) == 3 * nb
    assert _updates(tr.specs["g"].optimizer) == 3 * nb // n_critic
    for r in train:
        assert all(math.isfinite(v) for k, v in r.items() if isinstance(v, float))
        assert "d_real" in r and "d_fake" in r and r["loss/d"] == r["d_loss"] and "loss" not in r
        assert ("wasserstein" in r) == name.startswith("wgan")
        assert ("gp" in r) == (name == "wgan-gp")
        assert ("d_cls" in r) == (name == "acgan")
        if "g_loss" in r:
            assert r["loss/g"] == r["g_loss"] and "d_fake_after" in r
    s = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, *data.sample_shape) and torch.isfinite(s).all()
    if kind == "image":
        assert s.min() >= 0 and s.max() <= 1


@pytest.mark.parametrize("n_critic", [1, 5])
def test_update_counts_and_lr_schedules_follow_each_optimizer(n_critic, image_data):
    """For n_critic = k, B batches make B D updates and B // k G updates, counted over the run (5 epochs of 4
    batches with k = 5: G updates after batches 5, 10, 15, 20, so the first epoch has none); each cosine
    schedule is sized to its own optimizer's updates, so both learning rates reach 0 exactly at the end."""
    torch.manual_seed(0)
    model = build("wgan-gp", image_data, n_critic=n_critic, width=8)
    tr = Trainer(tiny_trainer(epochs=5, lr_schedule="cosine", log_every=100))
    res = tr.fit(model, image_data)
    assert res.step == 20 and res.epoch == 5
    assert _updates(tr.specs["d"].optimizer) == 20 and _updates(tr.specs["g"].optimizer) == 20 // n_critic
    for spec in tr.specs.values():
        assert spec.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
        assert spec.scheduler.last_epoch == _updates(spec.optimizer)
    epochs = [r for r in res.history if r["split"] == "train_epoch"]
    assert len(epochs) == 5 and all("d_loss" in r for r in epochs)
    assert ["g_loss" in r for r in epochs] == ([True] * 5 if n_critic == 1 else [False, True, True, True, True])


def _textbook_dcgan(model, x, *, epochs, batch_size, data_seed, criterion):
    """The pytorch/examples DCGAN loop (main.py), on genlab's networks: per batch, D on real then on
    ``fake = netG(noise)`` detached, one D step; then G through the updated D on the *same* fake, one G step."""
    netG, feats, head = model.generator, model.features, model.head

    def netD(v):
        return head(feats(v)).squeeze(1)

    c = model.config
    optimizerD = torch.optim.Adam(list(feats.parameters()) + list(head.parameters()), lr=c.lr_d,
                                  betas=(c.beta1, c.beta2))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=c.lr_g, betas=(c.beta1, c.beta2))
    order = torch.Generator().manual_seed(data_seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=order)
        for i in range(0, len(x), batch_size):
            real = x.index_select(0, perm[i:i + batch_size])
            b = len(real)
            # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
            feats.zero_grad()
            head.zero_grad()
            errD_real = criterion(netD(real), torch.ones(b))
            errD_real.backward()
            noise = torch.randn(b, c.latent_dim)
            fake = netG(noise)
            errD_fake = criterion(netD(fake.detach()), torch.zeros(b))
            errD_fake.backward()
            optimizerD.step()
            # (2) Update G network: maximize log(D(G(z)))
            netG.zero_grad()
            errG = criterion(netD(fake), torch.ones(b))
            errG.backward()
            optimizerG.step()


@pytest.mark.parametrize("criterion", ["softplus", "BCEWithLogitsLoss"])
def test_dcgan_equals_the_textbook_loop(criterion, image_data):
    """genlab's dcgan (n_critic=1) and the pytorch/examples loop on the same networks, initial weights, batches
    and noise give the same weights. With the loss written as genlab writes it (``softplus``) they are equal
    bit for bit; with ``nn.BCEWithLogitsLoss`` (which computes the gradient ``sigmoid(r) - 1`` where genlab's
    ``softplus(-r)`` gives ``-sigmoid(-r)``, equal up to rounding) they agree to float32 rounding. R1 is off here
    (dcgan's default adds a lazy R1 term every 4 D steps, which the textbook loop does not have)."""
    seed_everything(0)
    model = build("dcgan", image_data, width=8, r1_gamma=0.0)
    ref = copy.deepcopy(model)
    torch.manual_seed(1)
    Trainer(tiny_trainer(epochs=2, seed=5, num_threads=torch.get_num_threads(), fid_samples=0,
                         monitor_every=0)).fit(model, image_data)
    if criterion == "softplus":
        def crit(out, target):
            return F.softplus(-out).mean() if bool(target[0] == 1) else F.softplus(out).mean()
    else:
        crit = nn.BCEWithLogitsLoss()
    torch.manual_seed(1)
    _textbook_dcgan(ref, image_data.x, epochs=2, batch_size=16, data_seed=5, criterion=crit)
    a, b = model.state_dict(), ref.state_dict()
    if criterion == "softplus":
        assert all(torch.equal(a[k], b[k]) for k in a)
    else:
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
        assert any(not torch.equal(a[k], b[k]) for k in a)  # the rounding difference is real


def test_bce_probabilities_and_generator_step_leaves_d_unchanged(image_data):
    torch.manual_seed(0)
    model = build("gan", image_data)
    specs = model.configure_optimizers()
    batch = {"x": image_data.x[:16], "y": image_data.y[:16]}
    out = model.training_step(batch, 0, "d")
    assert 0 < float(out["d_real"]) < 1 and 0 < float(out["d_fake"]) < 1
    d_before = [p.detach().clone() for p in model.discriminator_parameters()]
    g_before = [p.detach().clone() for p in model.generator_parameters()]
    out = model.training_step(batch, 1, "g")
    for s in specs.values():
        s.optimizer.zero_grad()
    out["loss"].backward()
    specs["g"].optimizer.step()
    assert all(torch.equal(a, p) for a, p in zip(d_before, model.discriminator_parameters()))
    assert any(not torch.equal(a, p) for a, p in zip(g_before, model.generator_parameters()))
    with pytest.raises(ConfigError, match="optimizer must be 'd' or 'g'"):
        model.training_step(batch, 0, "main")


# -- loss formulas ---------------------------------------------------------------------------------------
R = torch.tensor([2.0, -1.0, 0.5])
Fk = torch.tensor([-0.5, 1.5, 0.0])


def _sig(v):
    return 1 / (1 + math.exp(-v))


def test_bce_losses_match_hand_computation():
    want_d = -sum(math.log(_sig(v)) for v in R.tolist()) / 3 - sum(math.log(1 - _sig(v)) for v in Fk.tolist()) / 3
    for kind in ("minimax", "nonsaturating"):
        assert d_loss(kind, R, Fk).item() == pytest.approx(want_d, rel=1e-6)
    assert g_loss("minimax", Fk).item() == pytest.approx(sum(math.log(1 - _sig(v)) for v in Fk.tolist()) / 3,
                                                         rel=1e-6)
    assert g_loss("nonsaturating", Fk).item() == pytest.approx(-sum(math.log(_sig(v)) for v in Fk.tolist()) / 3,
                                                               rel=1e-6)


def test_loss_tables_name_every_loss_and_refuse_others():
    from genlab.models.gan_losses import LOSSES

    assert set(D_LOSSES) == set(G_LOSSES) == {*LOSSES, "wasserstein"}
    for kind in D_LOSSES:
        assert d_loss(kind, R, Fk).item() == D_LOSSES[kind](R, Fk).item()
        assert g_loss(kind, Fk).item() == G_LOSSES[kind](Fk).item()
    with pytest.raises(ConfigError, match="loss must be one of minimax, nonsaturating, lsgan, hinge or wasserstein"):
        d_loss("bce", R, Fk)


def test_lsgan_hinge_wasserstein_losses_match_hand_computation():
    # lsgan: 0.5 mean (r-1)^2 + 0.5 mean f^2 ; G: 0.5 mean (f-1)^2
    assert d_loss("lsgan", R, Fk).item() == pytest.approx(0.5 * (1 + 4 + 0.25) / 3 + 0.5 * (0.25 + 2.25 + 0) / 3)
    assert g_loss("lsgan", Fk).item() == pytest.approx(0.5 * (2.25 + 0.25 + 1) / 3)
    # hinge: mean relu(1-r) + mean relu(1+f) ; G: -mean f
    assert d_loss("hinge", R, Fk).item() == pytest.approx((0 + 2 + 0.5) / 3 + (0.5 + 2.5 + 1) / 3)
    assert g_loss("hinge", Fk).item() == pytest.approx(-1.0 / 3)
    assert d_loss("wasserstein", R, Fk).item() == pytest.approx(1.0 / 3 - 1.5 / 3)
    assert g_loss("wasserstein", Fk).item() == pytest.approx(-1.0 / 3)


@pytest.mark.parametrize("loss", ["minimax", "nonsaturating", "lsgan", "hinge"])
def test_gan_uses_configured_loss(loss, image_data):
    torch.manual_seed(0)
    model = build("gan", image_data, loss=loss)
    batch = {"x": image_data.x[:8]}
    torch.manual_seed(3)
    out = model.training_step(batch, 0, "g")
    torch.manual_seed(3)
    z = torch.randn(8, 4)
    f = model.critic(model.generate(z))
    assert out["loss"].item() == pytest.approx(g_loss(loss, f).item(), rel=1e-5)


# -- gradient penalty and clipping ------------------------------------------------------------------------
def test_gradient_penalty_zero_for_unit_norm_linear_critic_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(16, 1, 3, 3, generator=g), torch.randn(16, 1, 3, 3, generator=g)
    w = torch.randn(9, generator=g)
    unit = w / w.norm()
    gp = gradient_penalty(lambda x: x.flatten(1) @ unit, real, fake, torch.Generator().manual_seed(1))
    assert gp.item() < 1e-10
    gp2 = gradient_penalty(lambda x: x.flatten(1) @ (2 * unit), real, fake, torch.Generator().manual_seed(1))
    assert gp2.item() == pytest.approx(1.0, rel=1e-5)  # (||2 w|| - 1)^2 = 1
    gp3 = gradient_penalty(lambda x: (x.flatten(1) ** 2).sum(1), real, fake)  # nonlinear critic
    assert gp3.item() > 0.1
    with torch.no_grad():  # works in validation too, and keeps a graph when gradients are on
        assert gradient_penalty(lambda x: x.flatten(1) @ unit, real, fake).item() < 1e-10
    lin = nn.Linear(9, 1)
    gp4 = gradient_penalty(lambda x: lin(x.flatten(1)).squeeze(1), real, fake)
    gp4.backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


def test_wgan_gp_critic_has_no_batch_norm():
    info = {"kind": "image", "shape": [1, 16, 16], "num_classes": None}

    def bn_in_critic(name):
        entry = get_model_entry(name)
        model = entry.cls(entry.config_cls(latent_dim=4, width=4), info)
        assert model.arch == "dcgan"
        return any(isinstance(m, nn.BatchNorm2d) for m in model.features.modules())

    assert not bn_in_critic("wgan-gp")
    assert bn_in_critic("wgan") and bn_in_critic("dcgan")


def test_wgan_gp_penalty_is_the_papers_with_twice_the_weight_for_critics_that_read_2x_minus_1(image_data):
    """The penalty differentiates the critic D with respect to the model-space image x in [0, 1]; the DCGAN critic
    reads u = 2x - 1. With f(u) = 2 D((u + 1) / 2), the critic of the papers' [-1, 1] convention,
    ||grad_x D|| = ||grad_u f||, so genlab's gp equals the paper's penalty of f at the same interpolates, while the
    Wasserstein term E D(fake) - E D(real) is half of f's: genlab's critic loss is half the paper's with
    gp_weight doubled (docs/models/gan.md, wgan-gp)."""
    m = build("wgan-gp", image_data, width=4, gp_weight=10.0)
    assert m.arch == "dcgan"
    x = image_data.x[:8]
    fake = m.sample(8, generator=torch.Generator().manual_seed(0)).detach()
    torch.manual_seed(3)
    ours = m.d_extra(x, fake, None, None, None)["gp"]
    f = lambda u: 2 * m.critic((u + 1) / 2)  # noqa: E731
    torch.manual_seed(3)  # the same interpolation weights
    papers = gradient_penalty(f, 2 * x - 1, 2 * fake - 1)
    assert ours.item() > 1e-3 and torch.allclose(ours, 10.0 * papers, rtol=1e-5)
    w_ours = m.critic(fake).mean() - m.critic(x).mean()
    w_papers = f(2 * fake - 1).mean() - f(2 * x - 1).mean()
    assert torch.allclose(w_ours, w_papers / 2, rtol=1e-5, atol=1e-7)


def test_weight_clipping_keeps_critic_in_box_after_training(image_data):
    torch.manual_seed(0)
    c = 0.02
    model = build("wgan", image_data, clip_value=c, width=8, lr_d=1e-2)
    Trainer(tiny_trainer(epochs=3)).fit(model, image_data)
    params = torch.cat([p.detach().flatten() for p in model.discriminator_parameters()])
    assert params.abs().max() <= c
    assert (params.abs() == c).float().mean() > 0.2  # clipping was active, not vacuous
    # the hook clips right after a critic step
    opt = model.configure_optimizers()["d"].optimizer
    with torch.no_grad():
        model.head.weight.fill_(1.0)
    model.head.weight.grad = torch.zeros_like(model.head.weight)
    opt.step()
    assert model.head.weight.abs().max() <= c


# -- DCGAN sizes -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 64, 64), (1, 25, 25), (3, 20, 30),
                                   (1, 5, 5)])
def test_dcgan_output_shapes(shape):
    info = {"kind": "image", "shape": list(shape), "num_classes": None}
    model = get_model_entry("dcgan").cls(from_dict(get_model_entry("dcgan").config_cls,
                                                   {"latent_dim": 8, "width": 4}), info).eval()
    s = model.sample(2, generator=torch.Generator().manual_seed(0))
    assert s.shape == (2, *shape) and s.min() >= 0 and s.max() <= 1
    assert model.critic(s).shape == (2,)
    assert any(isinstance(m, nn.ConvTranspose2d) for m in model.generator.modules())
    convs = [m for m in model.generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert 0.01 < float(convs[0].weight.detach().std()) < 0.03  # N(0, 0.02) init
    opt = model.configure_optimizers()["g"].optimizer
    assert opt.defaults["lr"] == 2e-4 and opt.defaults["betas"] == (0.5, 0.999)


@pytest.mark.parametrize("shape,side", [((1, 25, 25), 28), ((3, 20, 30), 32), ((1, 5, 5), 8), ((1, 28, 28), 28),
                                        ((1, 33, 33), 64)])
def test_dcgan_other_sizes_run_on_the_next_dcgan_side_cropped_and_padded(shape, side):
    """The generator makes ``side x side`` and returns its centred ``H x W`` window; the discriminator reads the
    input edge-padded back to ``side x side``: its features equal those of the explicitly padded input, and a
    DCGAN size passes through untouched."""
    from genlab.nn.style_blocks import pad_to
    info = {"kind": "image", "shape": list(shape), "num_classes": None}
    model = get_model_entry("dcgan").cls(from_dict(get_model_entry("dcgan").config_cls,
                                                   {"latent_dim": 8, "width": 4}), info).eval()
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        raw = (model.generator.net(z[:, :, None, None]) + 1) / 2
        x = model.generator(z)
        assert raw.shape[2:] == (side, side) and x.shape[1:] == shape
        top, left = (side - shape[1]) // 2, (side - shape[2]) // 2
        assert torch.equal(x, raw[:, :, top:top + shape[1], left:left + shape[2]])
        padded = pad_to(x, side)
        assert padded.shape[2:] == (side, side)
        assert torch.equal(padded[:, :, :top, left:left + shape[2]],
                           x[:, :, :1].expand(-1, -1, top, -1))  # edges replicated
        assert torch.equal(model.features(x), model.features.net(2 * padded - 1).flatten(1))
        if shape[1:] == (side, side):
            assert torch.equal(x, raw)


def test_dcgan_trains_on_25x25_faces_and_a_conditional_one_too():
    """A few steps of ``dcgan`` and ``cgan`` (labels as extra input channels, padded with the image) on
    lfw_subset-sized 25x25 images: finite losses, samples of the data's size."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(48, 1, 25, 25, generator=g)
    y = torch.arange(48) % 2
    for name, labels in (("dcgan", None), ("cgan", y)):
        data = TensorDataset(x, labels, name="faces-25")
        cfg = {"latent_dim": 8, "width": 4} if name == "dcgan" else {"latent_dim": 8, "width": 4, "arch": "dcgan"}
        model = get_model_entry(name).cls(from_dict(get_model_entry(name).config_cls, cfg), data.info())
        assert model.arch == "dcgan"
        res = Trainer({"epochs": 2, "batch_size": 16, "precision": "fp32", "channels_last": False}).fit(model, data)
        losses = [v for r in res.history for k, v in r.items() if k.endswith("loss") and isinstance(v, float)]
        assert res.step == 6 and losses and all(math.isfinite(v) for v in losses)
        s = model.sample(4, labels=None if labels is None else torch.tensor([0, 1, 0, 1]))
        assert s.shape == (4, 1, 25, 25)


@pytest.mark.parametrize("shape", [(1, 65, 65), (1, 32, 100)])
def test_dcgan_impossible_size_is_a_data_error(shape):
    info = {"kind": "image", "shape": list(shape), "num_classes": None}
    with pytest.raises(DataError, match=rf"{shape[1]}x{shape[2]} is larger than the DCGAN networks' largest side, "
                                        "64x64; resize"):
        get_model_entry("dcgan").cls(get_model_entry("dcgan").config_cls(), info)


def test_auto_arch_falls_back_to_mlp_for_other_sizes():
    info = {"kind": "image", "shape": [1, 10, 10], "num_classes": None}
    model = get_model_entry("wgan").cls(get_model_entry("wgan").config_cls(latent_dim=4), info)
    assert model.arch == "mlp"
    assert model.sample(2).shape == (2, 1, 10, 10)


# -- conditioning ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("d_cond", ["projection", "concat"])
@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_cgan_labels_change_samples_and_d_scores(d_cond, arch, image_data):
    torch.manual_seed(0)
    model = build("cgan", image_data, d_cond=d_cond, arch=arch, width=8).eval()
    a = model.sample(4, labels=torch.tensor([0, 0, 0, 0]), generator=torch.Generator().manual_seed(1))
    b = model.sample(4, labels=torch.tensor([3, 3, 3, 3]), generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(a, b)
    x = image_data.x[:4]
    assert not torch.allclose(model.critic(x, torch.zeros(4, dtype=torch.long)),
                              model.critic(x, torch.full((4,), 3)))


def test_acgan_classifier_head_and_losses(image_data):
    torch.manual_seed(0)
    model = build("acgan", image_data, width=8)
    batch = {"x": image_data.x[:16], "y": image_data.y[:16]}
    out = model.training_step(batch, 0, "d")
    torch.manual_seed(0)
    assert out["r1"].item() > 0  # the default lazy R1 is due on step 0
    assert out["loss"].item() == pytest.approx((out["d_adv"] + out["d_cls"] + out["r1"]).item(), rel=1e-5)
    assert "r1" not in model.training_step(batch, 1, "d")  # ... and not on step 1 (every 4)
    assert out["d_cls"].item() > 2 * math.log(4) * 0.5  # two cross-entropies near log K at init
    g = model.training_step(batch, 0, "g")
    assert g["loss"].item() == pytest.approx((g["g_adv"] + g["g_cls"]).item(), rel=1e-5)
    _, cls = model.discriminate(batch["x"])
    assert cls.shape == (16, 4)


def test_acgan_d_classifier_on_real_only():
    """d_cls_fake=False: D's class loss is the cross-entropy of the real batch alone (hand computation)."""
    g = torch.Generator().manual_seed(3)
    data = TensorDataset(torch.rand(32, 1, 8, 8, generator=g), torch.arange(32) % 4, name="t")
    batch = {"x": data.x[:16], "y": data.y[:16]}
    both = build("acgan", data, width=8)
    real_only = build("acgan", data, width=8, d_cls_fake=False)
    real_only.load_state_dict(both.state_dict())
    for m in (both, real_only):
        m.train()
    torch.manual_seed(0)
    out_both = both.training_step(batch, 0, "d")
    torch.manual_seed(0)
    out_real = real_only.training_step(batch, 0, "d")
    with torch.no_grad():
        _, real_cls = real_only.discriminate(batch["x"])
    expect = torch.nn.functional.cross_entropy(real_cls, batch["y"])
    # BatchNorm in training mode: the D step scores the real batch on its own, like discriminate() here
    assert out_real["d_cls"].item() == pytest.approx(expect.item(), rel=1e-4)
    assert out_both["d_cls"].item() > out_real["d_cls"].item()  # adds the (positive) fake cross-entropy
    assert out_both["d_adv"].item() == pytest.approx(out_real["d_adv"].item(), rel=1e-6)


def test_conditional_errors(image_data):
    unlabelled = TensorDataset(image_data.x, name="nolabels")
    for name in ("cgan", "acgan"):
        with pytest.raises(ConfigError, match=f"{name} needs labelled data"):
            build(name, unlabelled)
    model = build("cgan", image_data)
    with pytest.raises(ConfigError, match=r"labels must be in \[0, 3\], got 4"):
        model.sample(2, labels=torch.tensor([0, 4]))
    with pytest.raises(ConfigError, match=r"labels must be in \[0, 3\], got -1"):
        model.sample(2, labels=torch.tensor([-1, 0]))
    with pytest.raises(ConfigError, match="needs labelled data: every batch needs 'y'"):
        model.training_step({"x": image_data.x[:4]}, 0, "d")
    with pytest.raises(ConfigError, match="labels given but the model is unconditional"):
        build("gan", image_data).sample(2, labels=torch.tensor([0, 1]))


# -- config errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,cfg,msg", [
    ("wgan", {"n_critic": 0}, "n_critic must be >= 1, got 0"),
    ("gan", {"n_critic": -1}, "n_critic must be >= 1, got -1"),
    ("wgan", {"clip_value": 0.0}, "clip_value must be > 0, got 0.0"),
    ("wgan", {"clip_value": -0.01}, "clip_value must be > 0, got -0.01"),
    ("wgan-gp", {"gp_weight": -1.0}, "gp_weight must be >= 0"),
    ("dcgan", {"beta1": 1.0}, r"beta1 must be in \[0, 1\)"),
    ("gan", {"loss": "bogus"}, "loss: expected one of"),
    ("gan", {"latent_dim": 0}, "latent_dim must be >= 1"),
])
def test_config_errors_are_one_line(name, cfg, msg):
    with pytest.raises(ConfigError, match=msg) as e:
        from_dict(get_model_entry(name).config_cls, cfg, "model")
    assert "\n" not in str(e.value)


def test_reconstruct_is_a_config_error(image_data):
    model = build("dcgan", image_data)
    assert not model.can_reconstruct
    with pytest.raises(ConfigError, match="no encoder and cannot reconstruct"):
        model.reconstruct(image_data.x[:2])


# -- options ---------------------------------------------------------------------------------------------
def test_spectral_norm_bounds_discriminator_layers(image_data, tmp_path):
    torch.manual_seed(0)
    model = build("gan", image_data, spectral_norm=True, hidden=[32, 16])
    lin = [m for m in model.features.modules() if isinstance(m, nn.Linear)]
    assert lin and all(hasattr(m, "parametrizations") for m in lin)
    model.train()
    for _ in range(30):  # power iterations run in train mode
        model.critic(image_data.x[:4])
    for m in lin:
        assert torch.linalg.matrix_norm(m.weight.detach(), ord=2).item() == pytest.approx(1.0, abs=0.05)
    model.eval()
    genlab.save_model(model, tmp_path / "m")
    loaded = genlab.load(tmp_path / "m")
    assert torch.equal(loaded.critic(image_data.x[:4]), model.critic(image_data.x[:4]))


def test_generator_ema_through_trainer(image_data):
    torch.manual_seed(0)
    model = build("gan", image_data, hidden=[16])
    res = Trainer(tiny_trainer(epochs=1, ema_decay=0.5)).fit(model, image_data)
    assert res.step == 4 and torch.isfinite(model.sample(2)).all()


@pytest.mark.parametrize("name", ["gan", "cgan", "dcgan", "acgan", "wgan-gp"])
def test_ema_default_is_the_measured_one(name, image_data):
    """trainer.ema_decay='auto' (the default) keeps the EMA chosen by measurement (gan.md, "TTUR, R2 and EMA for every
    GAN"): 0.999 with ramp-up 0.05 for gan and cgan, the exported weights being that average; none for the others;
    trainer.ema_decay=null turns it off, trainer.ema_rampup overrides the ramp-up, and a ramp-up without any EMA
    is refused with the model named."""
    torch.manual_seed(0)
    model = build(name, image_data, **({"hidden": [16]} if name in ("gan", "cgan") else {}))
    tr = Trainer(tiny_trainer(epochs=1))
    tr.fit(model, image_data)
    if name in ("gan", "cgan"):
        assert (tr.ema.decay, tr.ema.rampup, tr.ema.updates) == (0.999, 0.05, 4)
        sd = model.state_dict()
        assert all(torch.equal(sd[k], tr.ema.shadow[k]) for k in tr.ema.names)
        assert Trainer(tiny_trainer(ema_rampup=0.2)).config.ema_for(model) == (0.999, 0.2)
    else:
        assert tr.ema is None
        with pytest.raises(ConfigError, match=f"model {name!r} keeps none by default"):
            Trainer(tiny_trainer(epochs=1, ema_rampup=0.05)).fit(model, image_data)
    tr = Trainer(tiny_trainer(epochs=1, ema_decay=None))
    tr.fit(build(name, image_data, **({"hidden": [16]} if name in ("gan", "cgan") else {})), image_data)
    assert tr.ema is None


def test_resume_keeps_the_ema_the_run_started_with(image_data, tmp_path, monkeypatch, caplog):
    """The checkpoint records the EMA that trainer.ema_decay='auto' resolved to; if the model's default_ema changes
    before a resume (a newer genlab measured another one), the run goes on with its own EMA, warned about, and ends
    bit for bit where an uninterrupted run ends. An explicit trainer.ema_decay is kept as given."""
    import json

    import genlab.models.gan as gan_mod

    def run(epochs, out=None, resume=None, **kw):
        seed_everything(0)
        model = build("gan", image_data, hidden=[16])
        tr = Trainer(tiny_trainer(epochs=epochs, restore_best=False, fid_samples=0, **kw), out_dir=out)
        tr.fit(model, image_data, resume=resume)
        return tr, model

    straight, m_straight = run(2)
    assert (straight.ema.decay, straight.ema.rampup) == (0.999, 0.05)
    run(1, out=tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert meta["ema"] == {"decay": 0.999, "rampup": 0.05}
    monkeypatch.setattr(gan_mod, "MEASURED_EMA", {})  # gan's default is now "no EMA"
    assert build("gan", image_data, hidden=[16]).default_ema is None
    with caplog.at_level(logging.WARNING, logger="genlab.training.checkpoint"):
        resumed, m_resumed = run(2, out=tmp_path / "run", resume=tmp_path / "run")
    assert any("started with EMA decay 0.999 ramp-up 0.05" in r.getMessage() and "now no EMA" in r.getMessage()
               for r in caplog.records)
    assert (resumed.ema.decay, resumed.ema.rampup, resumed.ema.updates) == (0.999, 0.05, straight.ema.updates)
    a, b = m_straight.state_dict(), m_resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # an explicit choice on resume wins over the record, without a warning: another decay ...
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="genlab.training.checkpoint"):
        again, _ = run(3, out=tmp_path / "run", resume=tmp_path / "run", ema_decay=0.99, ema_rampup=0.05)
    assert (again.ema.decay, again.ema.rampup) == (0.99, 0.05)
    assert again.ema.updates == 3 * straight.ema.updates // 2
    assert not [r for r in caplog.records if r.name == "genlab.training.checkpoint"]
    # ... or, with ema_decay=auto, another ramp-up (the recorded decay is kept)
    monkeypatch.setattr(gan_mod, "MEASURED_EMA", {"gan": (0.9, None)})
    last, _ = run(4, out=tmp_path / "run", resume=tmp_path / "run", ema_rampup=0.2)
    assert (last.ema.decay, last.ema.rampup) == (0.99, 0.2)


def test_run_folder_has_samples_and_no_reconstructions(image_data, tmp_path):
    torch.manual_seed(0)
    run = genlab.train("dcgan", image_data, out=tmp_path / "run",
                       config={"model": {"latent_dim": 4, "width": 8}, "trainer": tiny_trainer(epochs=1)})
    files = {p.name for p in run.out_dir.iterdir()}
    assert {"samples.png", "interpolation.png", "report.html"} <= files
    assert "reconstructions.png" not in files
    assert "test_mse" not in run.metrics
    # samples.png comes from a fixed noise batch: writing the figures twice gives the same file
    a = (run.out_dir / "samples.png").read_bytes()
    write_figures(run.model, image_data.x, run.out_dir, seed=0)
    assert (run.out_dir / "samples.png").read_bytes() == a


# -- DiffAugment -----------------------------------------------------------------------------------------
def test_diff_augment_ops():
    from genlab.nn.gan_blocks import diff_augment

    torch.manual_seed(0)
    x = torch.rand(6, 3, 16, 16, requires_grad=True)
    for policy in (("color",), ("translation",), ("cutout",), ("color", "translation", "cutout")):
        y = diff_augment(x, policy)
        assert y.shape == x.shape and not torch.equal(y, x)
        y.sum().backward()  # differentiable: gradients reach the input (the generator for fakes)
        assert x.grad is not None and x.grad.abs().sum() > 0
        x.grad = None
    assert diff_augment(x, ()) is x
    # translation: every output pixel is an input pixel of the same image or the 0.5 fill
    y = diff_augment(x.detach(), ("translation",))
    for i in range(6):
        vals = set(x[i].detach().flatten().tolist()) | {0.5}
        assert set(y[i].flatten().tolist()) <= vals
    # cutout: a square of 0.5s (side up to 8 of 16), the rest unchanged
    y = diff_augment(x.detach(), ("cutout",))
    changed = (y != x.detach())
    assert torch.all(y[changed] == 0.5)
    assert 0 < changed[:, 0].sum((1, 2)).max() <= 81


def test_diffaugment_in_training_only_and_errors(image_data, tabular_data):
    torch.manual_seed(0)
    model = build("gan", image_data, diffaugment="color,translation,cutout", hidden=[16])
    x = image_data.x[:8]
    assert torch.equal(model.eval().augment(x), x)
    assert not torch.equal(model.train().augment(x), x)
    res = Trainer(tiny_trainer(epochs=1)).fit(model, image_data)
    assert res.step == 4
    with pytest.raises(ConfigError, match="diffaugment must be a comma-separated subset of color,translation"):
        from_dict(get_model_entry("gan").config_cls, {"diffaugment": "color,flip"})
    with pytest.raises(ConfigError, match="needs image data"):
        build("gan", tabular_data, diffaugment="color")
