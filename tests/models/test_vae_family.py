"""The VAE family: KL schedules, capacity control, free bits, learned sigma, active units and the cVAE."""
import math

import pytest
import torch

import genlab
from genlab.config import from_dict
from genlab.data import TensorDataset
from genlab.errors import ConfigError
from genlab.models.cvae import CVAE, CVAEConfig
from genlab.models.vae import LOG_SIGMA_MAX, VAE, VAEConfig
from genlab.training import Trainer, seed_everything
from tests.conftest import tiny_trainer

TAB = {"kind": "tabular", "shape": [5], "norm": {"shift": 0.0, "scale": 1.0}}


# -- schedules -----------------------------------------------------------------------------------
def test_linear_warmup_weights():
    c = VAEConfig(beta=2.0, kl_schedule="linear", kl_warmup_steps=10)
    assert [c.kl_weight(t) for t in (0, 1, 5, 10, 20)] == pytest.approx([0.0, 0.2, 1.0, 2.0, 2.0])
    assert c.kl_weight(-1) == 2.0  # validation: full beta


def test_cyclical_weights():
    # 100 steps, 4 cycles of 25 steps, ramp over the first half (12.5 steps) of each cycle
    c = VAEConfig(kl_schedule="cyclical", kl_total_steps=100, kl_cycles=4, kl_ramp=0.5)
    steps = [0, 5, 12, 13, 24, 25, 30, 99, 100, 1000]
    want = [0.0, 0.4, 0.96, 1.0, 1.0, 0.0, 0.4, 1.0, 1.0, 1.0]
    assert [c.kl_weight(t) for t in steps] == pytest.approx(want)
    # a period that is not a whole number of steps: P = 10 / 3; step 4 -> tau = 0.2 -> weight 0.4 * beta
    c = VAEConfig(beta=0.5, kl_schedule="cyclical", kl_total_steps=10, kl_cycles=3, kl_ramp=0.5)
    assert c.kl_weight(4) == pytest.approx(0.5 * 0.4)


def test_capacity_schedule_and_loss():
    c = VAEConfig(capacity_start=0.5, capacity_max=5.0, capacity_steps=100, gamma=10.0, latent_dim=2)
    assert [c.capacity(t) for t in (0, 50, 100, 200, -1)] == pytest.approx([0.5, 2.75, 5.0, 5.0, 5.0])
    assert VAEConfig().capacity(3) is None
    torch.manual_seed(0)
    model = VAE(c, TAB)
    out = model.training_step({"x": torch.randn(16, 5)}, step=50)
    assert float(out["capacity"]) == pytest.approx(2.75) and "kl_weight" not in out
    want = out["rec"] + 10.0 * (out["kl"] - 2.75).abs()
    assert float(out["loss"].detach()) == pytest.approx(float(want), rel=1e-6)


def test_training_step_logs_kl_weight():
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=2, kl_schedule="linear", kl_warmup_steps=4), TAB)
    out = model.training_step({"x": torch.randn(8, 5)}, step=1)
    assert float(out["kl_weight"]) == 0.25
    assert float(out["loss"].detach()) == pytest.approx(float(out["rec"] + 0.25 * out["kl"]), rel=1e-6)


# -- free bits -------------------------------------------------------------------------------------
def test_free_bits_floor_and_zero_gradient():
    """Linear encoder: dims 0, 1 carry information (KL > lambda), dims 2, 3 are at the prior (KL = 0 < lambda).
    With the decoder weights zeroed, encoder gradients come from the KL term alone."""
    lam, L = 0.5, 4
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=L, hidden=[], free_bits=lam), TAB)
    enc, dec = model.encoder.mlp[0], model.decoder.mlp[0]
    with torch.no_grad():
        enc.weight.zero_()
        enc.bias.zero_()
        enc.weight[0, 0], enc.weight[1, 1] = 3.0, -2.0  # mu_0, mu_1 vary with x; logvar = 0 everywhere
        dec.weight.zero_()
    x = torch.randn(64, 5)
    out = model.training_step({"x": x}, step=0)
    kl_dims = VAE.kl_per_dim(*model.posterior(x)).detach().mean(0)  # (L,)
    assert float(kl_dims[0]) > lam and float(kl_dims[1]) > lam and float(kl_dims[2:].abs().max()) == 0
    kl_term = float(out["loss"].detach() - out["rec"])
    assert kl_term == pytest.approx(float(kl_dims[0] + kl_dims[1]) + 2 * lam, rel=1e-6)
    out["loss"].backward()
    g = enc.weight.grad  # rows 0..L-1: mu, rows L..2L-1: logvar
    assert g[[2, 3, L + 2, L + 3]].abs().max() == 0  # below the floor: no gradient
    assert g[0].abs().max() > 0 and g[1].abs().max() > 0
    assert float(out["kl"]) == pytest.approx(float(kl_dims.sum()), rel=1e-6)  # logged KL is the raw one


# -- learned sigma ---------------------------------------------------------------------------------
def test_learned_sigma_log_prob_matches_torch_normal():
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=2, learn_sigma=True, sigma=0.7), TAB)
    assert model.log_sigma.shape == (5,) and torch.allclose(model.log_sigma, torch.full((5,), math.log(0.7)))
    with torch.no_grad():
        model.log_sigma.copy_(torch.tensor([-2.0, -0.5, 0.0, 0.3, 100.0]))  # the last is clamped to log 10
    raw, x = torch.randn(6, 5), torch.randn(6, 5)
    sd = torch.tensor([math.exp(-2.0), math.exp(-0.5), 1.0, math.exp(0.3), math.exp(LOG_SIGMA_MAX)])
    ref = torch.distributions.Normal(raw, sd).log_prob(x).sum(1)
    assert torch.allclose(model.log_px_z(raw, x), ref, atol=1e-5)
    out = model.training_step({"x": x}, step=0)
    out["loss"].backward()
    assert model.log_sigma.grad[:4].abs().min() > 0 and model.log_sigma.grad[4] == 0  # clamped: no gradient
    assert "sigma" in out


def test_learn_sigma_needs_gaussian(image_data):
    with pytest.raises(ConfigError, match="learn_sigma"):
        VAE(VAEConfig(learn_sigma=True), image_data.info())  # images default to bernoulli
    VAE(VAEConfig(learn_sigma=True, likelihood="gaussian", latent_dim=2), image_data.info())


# -- active units ----------------------------------------------------------------------------------
@pytest.mark.parametrize("m", [0, 2, 3])
def test_active_units_counts_varying_dims(m):
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=4, hidden=[]), TAB)
    enc = model.encoder.mlp[0]
    with torch.no_grad():
        enc.weight.zero_()
        enc.bias.copy_(torch.randn(8))  # constant means on every dim: Var_x = 0
        for j in range(m):
            enc.weight[j, j] = 0.5  # Var(mu_j) = 0.25 Var(x_j) >> 0.01
        enc.weight[3, 4] = 0.05  # dim 3 varies a little: 0.0025 Var(x_4) < 0.01 -> inactive
    x = torch.randn(200, 5)
    assert model.active_units(x) == m
    assert model.active_units(x, threshold=0.0) == m + 1
    with pytest.raises(ConfigError, match="threshold"):
        model.active_units(x, threshold=-1)


def test_active_units_logged_each_validation(tabular_data):
    data = tabular_data.standardized()
    seed_everything(0)
    model = VAE(VAEConfig(latent_dim=3), data.info())
    res = Trainer(tiny_trainer(epochs=2)).fit(model, data, data.subset(torch.arange(40)))
    vals = [r for r in res.history if r.get("split") == "val"]
    assert len(vals) == 2 and all(0 <= r["active_units"] <= 3 for r in vals)
    assert vals[-1]["active_units"] == model.eval().active_units(data.x[:40])


# -- bad settings ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg, name", [
    ({"beta": -1}, "beta"), ({"gamma": -0.1}, "gamma"), ({"capacity_max": -1.0}, "capacity_max"),
    ({"capacity_start": -1.0}, "capacity_start"), ({"capacity_steps": -5}, "capacity_steps"),
    ({"free_bits": -0.5}, "free_bits"), ({"kl_warmup_steps": -1}, "kl_warmup_steps"),
    ({"kl_schedule": "linear"}, "kl_warmup_steps"), ({"kl_ramp": 0.0}, "kl_ramp"), ({"kl_ramp": 1.5}, "kl_ramp"),
    ({"kl_cycles": 0}, "kl_cycles"), ({"kl_schedule": "cyclical"}, "kl_total_steps"),
    ({"kl_total_steps": -1}, "kl_total_steps"), ({"latent_dim": 0}, "latent_dim"),
    ({"capacity_max": 5.0, "kl_schedule": "linear", "kl_warmup_steps": 3}, "kl_schedule"),
    ({"learn_sigma": True, "likelihood": "bernoulli"}, "learn_sigma"),
])
@pytest.mark.parametrize("cls", [VAEConfig, CVAEConfig])
def test_bad_settings_are_one_line_errors(cls, cfg, name):
    with pytest.raises(ConfigError, match=name) as e:
        from_dict(cls, cfg)
    assert "\n" not in str(e.value) and ("must be" in str(e.value) or "needs" in str(e.value))


def test_defaults_keep_plain_vae_loss():
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=2), TAB)
    out = model.training_step({"x": torch.randn(8, 5)}, step=7)
    assert float(out["kl_weight"]) == 1.0
    assert float(out["loss"].detach()) == pytest.approx(float(out["rec"] + out["kl"]), rel=1e-6)
    assert model.log_sigma is None and "log_sigma" not in model.state_dict()


# -- conditional VAE -----------------------------------------------------------------------------
def _cvae(data, **cfg):
    return CVAE(from_dict(CVAEConfig, {"latent_dim": 2, **cfg}), data.info())


@pytest.mark.parametrize("kind", ["image", "tabular"])
def test_cvae_trains_samples_and_round_trips(kind, image_data, tabular_data, tmp_path):
    data = image_data if kind == "image" else tabular_data.standardized()
    seed_everything(0)
    model = _cvae(data)
    Trainer(tiny_trainer(epochs=1)).fit(model, data)
    model.eval()
    k = data.num_classes
    labels = torch.arange(6) % k
    s = model.sample(6, labels=labels, generator=torch.Generator().manual_seed(0))
    assert s.shape == (6, *data.sample_shape) and torch.isfinite(s).all()
    genlab.save_model(model, tmp_path / "m")
    loaded = genlab.load(tmp_path / "m")
    assert type(loaded) is CVAE and loaded.num_classes == k
    assert torch.equal(loaded.sample(6, labels=labels, generator=torch.Generator().manual_seed(0)), s)
    x, y = data.x[:8], data.y[:8]
    assert torch.equal(loaded.reconstruct(x, y), model.reconstruct(x, y))
    # the label changes the output: same z, different labels
    z = torch.zeros(k, 2)
    out = model.decode(z, torch.arange(k))
    assert not torch.allclose(out[0], out[1])


def test_cvae_learns_the_label(image_data):
    """After a short fit on 4 well-separated class templates, samples given label c look like class c."""
    seed_everything(0)
    model = _cvae(image_data, arch="mlp", hidden=[32], lr=3e-3)
    Trainer(tiny_trainer(epochs=50, batch_size=32, log_every=50)).fit(model, image_data)
    means = torch.stack([image_data.x[image_data.y == c].mean(0) for c in range(4)]).flatten(1)  # (4, 64)
    labels = torch.arange(40) % 4
    s = model.eval().sample(40, labels=labels, generator=torch.Generator().manual_seed(1)).flatten(1)
    nearest = torch.cdist(s, means).argmin(1)
    assert (nearest == labels).float().mean() >= 0.9
    # without labels, reconstruct infers them: the inferred labels are the true ones here
    assert (model.infer_labels(image_data.x) == image_data.y).float().mean() >= 0.9


def test_cvae_likelihoods_with_and_without_labels(tabular_data):
    data = tabular_data.standardized()
    torch.manual_seed(0)
    model = _cvae(data).eval()
    x, y = data.x[:10], data.y[:10]
    ll = model.log_likelihood(x, k=5, labels=y, generator=torch.Generator().manual_seed(0))
    assert ll.shape == (10,) and torch.isfinite(ll).all()
    assert model.elbo(x, labels=y).shape == (10,)
    # no labels: log p(x) = log sum_y p(y) p(x|y), the per-class estimates drawn in class order
    marg = model.log_likelihood(x, k=5, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    per = torch.stack([model.log_likelihood(x, k=5, labels=torch.full((10,), c), generator=g) for c in range(2)])
    assert torch.allclose(marg, torch.logsumexp(per, 0) - math.log(2), atol=1e-10)
    assert model.active_units(x, labels=y) >= 0


def test_cvae_bad_labels(image_data, tabular_data):
    model = _cvae(image_data)
    for bad, match in [(torch.tensor([0, 4]), r"\[0, 3\], got 4"), (torch.tensor([-1, 0]), r"\[0, 3\], got -1"),
                       (torch.tensor([0.5, 1.0]), "integers"), (torch.tensor([0, 1, 2]), r"shape \(2,\)")]:
        with pytest.raises(ConfigError, match=match) as e:
            model.sample(2, labels=bad)
        assert "\n" not in str(e.value) and "labels" in str(e.value)
    with pytest.raises(ConfigError, match="needs labels"):
        model.decode(torch.zeros(2, 2))
    with pytest.raises(ConfigError, match=r"\[0, 3\]"):
        model.training_step({"x": image_data.x[:2], "y": torch.tensor([0, 9])}, 0)
    with pytest.raises(ConfigError, match="labelled"):
        model.training_step({"x": image_data.x[:2]}, 0)
    with pytest.raises(ConfigError, match="cvae needs labelled data") as e:
        CVAE(CVAEConfig(), TensorDataset(tabular_data.x).info())
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="unconditional"):
        VAE(VAEConfig(latent_dim=2), tabular_data.info()).sample(2, labels=torch.tensor([0, 1]))
