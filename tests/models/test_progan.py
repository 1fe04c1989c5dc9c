"""progan: growth schedule, shapes at every stage, fade-in blending, padding of other sides, exact resume in the
middle of a fade-in, bad input. (The shared contract checks run in test_contract.py.)"""
import json

import pytest
import torch

from genlab.config import from_dict
from genlab.data import TensorDataset
from genlab.errors import ConfigError, DataError
from genlab.registry import get_model_entry
from genlab.training import Trainer, seed_everything
from tests.conftest import tiny_trainer
from tests.training.test_trainer import InterruptAt

SMALL = {"latent_dim": 4, "width": 16}


def build(data, **cfg):
    entry = get_model_entry("progan")
    return entry.cls(from_dict(entry.config_cls, {**SMALL, **cfg}), data.info())


def images(side, n=32, channels=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.rand(n, channels, side, side, generator=g), torch.arange(n) % 2, name="rand")


def test_schedule_stable_then_fade_per_stage(image_data):
    """16x16 data: stages 4, 8, 16; stable 10 images, fade 20: stage 0 on [0, 10), fade to 8x8 on [10, 30)
    (alpha = (i - 10) / 20), stable on [30, 40), fade to 16x16 on [40, 60), then 16x16 for good."""
    m = build(images(16), stable_images=10, fade_images=20)
    assert m.sides == [4, 8, 16] and m.stages == 3
    got = {i: m.schedule(i) for i in (0, 9, 10, 15, 29, 30, 39, 40, 50, 59, 60, 10**6)}
    assert got == {0: (0, 1.0), 9: (0, 1.0), 10: (1, 0.0), 15: (1, 0.25), 29: (1, 0.95), 30: (1, 1.0),
                   39: (1, 1.0), 40: (2, 0.0), 50: (2, 0.5), 59: (2, 0.95), 60: (2, 1.0), 10**6: (2, 1.0)}
    # alpha is non-decreasing within a stage and the stage never goes back
    seq = [m.schedule(i) for i in range(80)]
    assert seq == sorted(seq)


def test_shapes_at_every_stage_and_sampling_shape():
    data = images(16)
    m = build(data)
    z = torch.randn(5, 4)
    for stage, side in enumerate(m.sides):
        for alpha in (0.0, 0.5, 1.0):
            x = m.generator(z, stage, alpha)
            assert x.shape == (5, 1, side, side)
            assert m.critic_net(x, stage, alpha).shape == (5,)
            assert m.real_at_stage(data.x[:5], stage, alpha).shape == (5, 1, side, side)
    m.seen.fill_(0)  # stage 0 (4x4): samples are still of the data shape, in [0, 1]
    s = m.sample(3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 1, 16, 16) and 0 <= s.min() and s.max() <= 1


def test_fade_in_blends_the_two_resolutions():
    """alpha=0 gives exactly the previous stage's output upsampled (nearest); alpha=1 the new block alone; the
    critic at alpha=0 reads only the 2x-averaged input through the previous from-RGB layer."""
    data = images(8)
    m = build(data)
    z = torch.randn(4, 4)
    low = m.generator(z, 0, 1.0)  # (4, 1, 4, 4)
    at0 = m.generator(z, 1, 0.0)
    assert torch.allclose(at0, low.repeat_interleave(2, 2).repeat_interleave(2, 3), atol=1e-6)
    half, full = m.generator(z, 1, 0.5), m.generator(z, 1, 1.0)
    assert torch.allclose(half, (at0 + full) / 2, atol=1e-6)
    x = data.x[:4]
    assert torch.allclose(m.critic_net(x, 1, 0.0), m.critic_net(torch.nn.functional.avg_pool2d(x, 2), 0, 1.0),
                          atol=1e-5)
    # real images fade the same way: alpha=0 is the 4x4 average upsampled
    r0 = m.real_at_stage(x, 1, 0.0)
    assert torch.allclose(r0, torch.nn.functional.avg_pool2d(x, 2).repeat_interleave(2, 2).repeat_interleave(2, 3))


def test_other_sides_are_padded_and_cropped_back():
    data = images(12, channels=3)
    m = build(data)
    assert m.side == 16 and m.sides == [4, 8, 16]
    assert m.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 3, 12, 12)
    padded = m.real_at_stage(data.x[:2], 2, 1.0)
    assert padded.shape == (2, 3, 16, 16) and torch.equal(padded[:, :, 2:14, 2:14], data.x[:2])


def test_trains_and_logs_growth(image_data):
    """8x8 data, 64 images, batch 16: 16 stable images (1 batch), fade over 32 (2 batches), then 8x8. The logged
    stage/alpha follow the images seen before each batch; ``seen`` counts every training image."""
    m = build(image_data, stable_images=16, fade_images=32, loss="nonsaturating")
    res = Trainer(tiny_trainer(epochs=2)).fit(m, image_data)
    recs = [r for r in res.history if r.get("split") == "train"]
    assert [(r["stage"], r["alpha"]) for r in recs] == [(0, 1), (1, 0), (1, 0.5), (1, 1), (1, 1), (1, 1), (1, 1),
                                                        (1, 1)]
    assert int(m.seen) == 128
    assert all(torch.isfinite(torch.tensor(r["loss/d"])) for r in recs)


def test_resume_in_the_middle_of_a_fade_in_is_exact(image_data, tmp_path):
    """WGAN-GP loss, 2 epochs of 4 batches: stage 0 for 16 images, fade-in over 64 (batches 1-4); a run killed
    after batch 3 (alpha = 0.5 next) and resumed equals the uninterrupted run bit for bit (weights, growth
    counter, metrics log)."""
    cfg = tiny_trainer(epochs=2)

    def make(seed=0):
        seed_everything(seed)
        return build(image_data, stable_images=16, fade_images=64)

    full = make()
    Trainer(cfg, out_dir=tmp_path / "full").fit(full, image_data)
    part = make()
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, out_dir=tmp_path / "part", callbacks=[InterruptAt(3)]).fit(part, image_data)
    assert part.growth() == (1, 0.5)  # stopped inside the fade-in
    seed_everything(999)
    resumed = make(seed=123)
    Trainer(cfg, out_dir=tmp_path / "part").fit(resumed, image_data, resume=tmp_path / "part")
    a, b = full.state_dict(), resumed.state_dict()
    assert int(b["seen"]) == 128
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed progan differs from the uninterrupted run"
    la = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert la == lb


def test_lazy_r1_adjusts_adam_as_for_every_gan(image_data):
    """progan takes GAN's optimisers: Adam(lr, betas) without R1 or with R1 every step; lazy R1 every k D steps
    gives D StyleGAN2's lr * r, betas ** r with r = k / (k + 1), as docs/models/gan.md says for every GAN (progan's
    own copy of configure_optimizers left D's Adam unadjusted)."""
    for cfg, r in (({}, 1.0), ({"r1_gamma": 1.0, "r1_every": 1}, 1.0), ({"r1_gamma": 1.0, "r1_every": 4}, 0.8)):
        m = build(image_data, **cfg)
        opts = m.configure_optimizers()
        d, g = (opts[p].optimizer.param_groups[0] for p in ("d", "g"))
        c = m.config
        assert d["lr"] == pytest.approx(c.lr_d * r) and d["betas"] == pytest.approx((c.beta1 ** r, c.beta2 ** r))
        assert g["lr"] == pytest.approx(c.lr_g) and g["betas"] == pytest.approx((c.beta1, c.beta2))
        assert opts["g"].every == c.n_critic


def test_bad_input_one_line_errors():
    with pytest.raises(ConfigError, match=r"fade_images \(images per fade-in\) must be >= 1, got 0"):
        build(images(8), fade_images=0)
    with pytest.raises(DataError, match=r"resolution=24 cannot be reached by growing.*power of two >= 16 "
                                        r"\(16, 32, \.\.\.\)"):
        build(images(16), resolution=24)
    with pytest.raises(DataError, match=r"resolution=8 cannot be reached"):
        build(images(16), resolution=8)
    with pytest.raises(ConfigError, match=r"loss: expected one of 'wgan-gp' \| 'nonsaturating'"):
        build(images(8), loss="hinge")
    assert build(images(12), resolution=32).sides == [4, 8, 16, 32]


def test_cli_bad_fade_in_and_unreachable_resolution_exit_2(tmp_path, capsys):
    """Through the CLI: exit 2, one line naming the parameter and its valid range, no run folder."""
    from tests.cli.test_cli import _bad
    out = tmp_path / "run"
    _bad(["train", "progan", "--data", "digits", "model.fade_images=0", "--out", str(out)], capsys,
         "fade_images (images per fade-in) must be >= 1, got 0")
    _bad(["train", "progan", "--data", "digits", "model.resolution=12", "--out", str(out)], capsys,
         "resolution=12 cannot be reached by growing from 4x4 for images of 8x8",
         "resolution must be a power of two >= 8 (8, 16, ...)")
    assert not out.exists()


def test_critic_keeps_the_signal_scale_at_initialisation():
    """ProGAN's He gain: every hidden activation of the critic is LeakyReLU(0.2) times sqrt(2) (second moment x1.04
    for a unit Gaussian, closed form in test_stylegan.py), where a plain LeakyReLU(0.2) halves it (x0.52) at each of
    the critic's 7 activations at 16x16. Measured on white-noise images at initialisation: the features reaching
    the output layer have rms 0.28 with the gain (the 2x2 average pools shrink white noise too) and 0.025 without
    it, so the critic's gradients started ~11x smaller than the paper's and WGAN-GP's penalty (aimed at norm 1)
    dominated the first steps of every stage. Bound: rms > 0.1 (4x the old value, 0.36x the current one)."""
    torch.manual_seed(0)
    m = build(images(16))
    seen = {}
    m.critic_net.out.register_forward_hook(lambda mod, inp, out: seen.setdefault("h", inp[0].detach()))
    x = torch.randn(256, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    m.critic_net(x, m.stages - 1, 1.0)
    assert 0.1 < float(seen["h"].pow(2).mean().sqrt()) < 2.5
