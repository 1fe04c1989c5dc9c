"""WaveNet (``wavenet``): the model contract on sequence data, causality and the receptive field checked by
gradients, a likelihood that normalises (every sequence of a tiny alphabet enumerated), mu-law against an
independent NumPy formula, exact cached sampling, forecasts, bad input, learning a periodic series, and the CLI end
to end on the built-in sunspots."""
import itertools
import json
import math

import numpy as np
import pytest
import torch

import genlab
from genlab import testing
from genlab.cli import main
from genlab.data import TensorDataset
from genlab.errors import ConfigError, DataError
from genlab.models.wavenet import WaveNet, mu_law_decode, mu_law_edges, mu_law_encode

SMALL = {"channels": 8, "skip_channels": 8, "layers": 3, "bins": 32}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def seq_data(n=48, c=2, t=24) -> TensorDataset:
    """Noisy sines of random phase, 2 classes (labels only so the contract can check labels are refused)."""
    g = torch.Generator().manual_seed(0)
    phase = torch.rand(n, c, 1, generator=g) * 2 * math.pi
    x = torch.sin(torch.arange(t) * 0.7 + phase) + 0.1 * torch.randn(n, c, t, generator=g)
    return TensorDataset(x, torch.arange(n) % 2, name="tiny-seq").standardized()


def build(config=None, *, c=2, t=24) -> WaveNet:
    torch.manual_seed(0)
    return testing.build("wavenet", seq_data(8, c, t), {**SMALL, **(config or {})}).eval()


class TestWaveNetContract(testing.ModelContractTests):
    model = "wavenet"
    config = SMALL

    def datasets(self):
        return [seq_data()]


def test_declared_capabilities():
    caps = genlab.models.capabilities(WaveNet)
    assert caps["has_likelihood"] and caps["can_sample"] and not caps["has_encoder"]
    assert caps["input_kinds"] == ("sequence",)


# -- mu-law ------------------------------------------------------------------------------------------------------
def _np_mu_law(x, mu, v):
    """The textbook companding (ITU-T G.711 mu-law, WaveNet's 8-bit quantisation), written independently."""
    u = np.clip(x / v, -1, 1)
    f = np.sign(u) * np.log(1 + mu * np.abs(u)) / np.log(1 + mu)
    return np.minimum(np.floor((f + 1) / 2 * (mu + 1)), mu).astype(np.int64)


def test_mu_law_matches_numpy_and_round_trips():
    x = np.linspace(-8.5, 8.5, 20001)
    k = mu_law_encode(torch.from_numpy(x), 256, 8.0).numpy()
    ref = _np_mu_law(x, 255, 8.0)
    assert (k == ref).mean() > 0.9999 and np.abs(k - ref).max() <= 1   # float rounding exactly at an edge only
    levels = torch.arange(256)
    assert torch.equal(mu_law_encode(mu_law_decode(levels)), levels)      # every bin centre encodes to its bin
    edges = mu_law_edges(256, 8.0)
    assert edges[0] == -8.0 and edges[-1] == 8.0 and bool((edges[1:] > edges[:-1]).all())
    xs = torch.from_numpy(x[np.abs(x) <= 8.0]).float()
    kk = mu_law_encode(xs)
    lo, hi = edges[kk].float(), edges[kk + 1].float()
    assert bool(((xs >= lo - 1e-5) & (xs <= hi + 1e-5)).all())           # each value lies in its bin
    dec = mu_law_decode(kk)
    assert bool(((dec - xs).abs() <= (hi - lo) + 1e-5).all())           # decode within one bin width
    width = (edges[1:] - edges[:-1])
    fine, coarse = 8 * math.expm1(2 / 256 * math.log(256)) / 255, 8 - 8 * math.expm1(254 / 256 * math.log(256)) / 255
    assert math.isclose(width[128], fine, rel_tol=1e-9) and math.isclose(width[-1], coarse, rel_tol=1e-9)
    assert fine < 0.0015 and coarse > 0.3                                  # fine near 0, coarse in the tails


# -- causality, receptive field, normalisation -------------------------------------------------------------------
def test_causal_and_receptive_field_by_gradients():
    m = build({"layers": 3, "stacks": 2, "kernel": 3, "first_kernel": 2}, c=2, t=40)
    R = m.receptive_field
    assert R == (2 - 1) + (3 - 1) * 2 * (1 + 2 + 4) + 1 == 30
    T = 40
    u = torch.randn(1, 2, T, requires_grad=True)    # network input: position s holds step s - 1
    out = m.net(u)                                  # (1, C, bins, T)
    for t in (0, 5, 20, 39):
        g, = torch.autograd.grad(out[0, :, :, t].sum(), u, retain_graph=True)
        seen = g[0].abs().sum(0) != 0               # (T,) input positions that reach output t
        assert not bool(seen[t + 1:].any()), f"output {t} sees the future"
        assert bool(seen[max(0, t - R + 1):t + 1].all()), f"output {t} misses part of its receptive field"
        assert not bool(seen[:max(0, t - R + 1)].any()), f"output {t} sees beyond its receptive field"


def test_step_t_does_not_depend_on_steps_at_or_after_t():
    m = build()
    x = seq_data(4).x
    y = x.clone()
    y[:, :, 10:] = torch.randn(4, 2, 14)
    a, b = m.bin_log_probs(x), m.bin_log_probs(y)
    assert torch.equal(a[..., :11], b[..., :11]) and not torch.equal(a[..., 11:], b[..., 11:])


@pytest.mark.parametrize("head", ["softmax", "logistic_mixture"])
def test_likelihood_normalises_over_every_sequence(head):
    """bins=4, C=2, T=3: the 4^6 sequences' probabilities sum to 1 (the factorisation is a distribution)."""
    m = build({"bins": 4, "layers": 1, "channels": 4, "skip_channels": 4, "head": head, "n_mix": 2}, c=2, t=3)
    codes = torch.tensor(list(itertools.product(range(4), repeat=6))).view(-1, 2, 3)
    x = mu_law_decode(codes, 4, m.config.value_range)
    total = torch.logsumexp(m.log_likelihood(x).double(), 0).exp()
    assert abs(float(total) - 1.0) < 1e-5
    per_step = m.step_log_probs(x)
    assert torch.allclose(per_step.flatten(1).sum(1), m.log_likelihood(x))
    # density = probability / bin width on the standardised scale
    width = (m.edges[1:] - m.edges[:-1])[codes]
    assert torch.allclose(m.step_log_probs(x, density=True), per_step - width.log(), atol=1e-5)
    assert torch.equal(m.elbo(x), m.log_likelihood(x))
    assert torch.allclose(m.bin_log_probs(x).gather(2, codes.unsqueeze(2)).squeeze(2), per_step, atol=1e-5)


# -- sampling and forecasts --------------------------------------------------------------------------------------
@pytest.mark.parametrize("head", ["softmax", "logistic_mixture"])
def test_cached_sampling_equals_full_passes(head):
    m = build({"layers": 3, "stacks": 2, "kernel": 3, "first_kernel": 3, "bins": 64, "head": head}, c=2, t=40)
    a = m.sample(5, generator=torch.Generator().manual_seed(3), length=45)
    b = m.sample(5, generator=torch.Generator().manual_seed(3), length=45, cache=False)
    c = m.sample(5, generator=torch.Generator().manual_seed(4), length=45)
    assert a.shape == (5, 2, 45) and torch.equal(a, b) and not torch.equal(a, c)
    prefix = m.quantize(a[:, :, :20])   # continuing a given prefix: cached == full passes too
    p1 = m._sample_steps(5, 30, torch.Generator().manual_seed(1), cache=True, prefix=prefix)
    p2 = m._sample_steps(5, 30, torch.Generator().manual_seed(1), cache=False, prefix=prefix)
    assert torch.equal(p1, p2) and torch.equal(p1[:, :, :20], prefix)
    assert bool(torch.isin(a, m.centres).all())


def test_forecast_one_step_is_the_predictive_mean():
    m = build()
    x = seq_data(3).x
    f = m.forecast(x[:, :, :10], 1)
    p = m.bin_log_probs(x)[..., 10].double().exp()                  # (B, C, bins): p(x_10 | x_<10)
    assert torch.allclose(f[:, :, 0].double(), p @ m.centres.double(), atol=1e-5)
    assert torch.allclose(m.one_step_mean(x)[:, :, 10], f[:, :, 0], atol=1e-5)
    f3 = m.forecast(x[:, :, :10], 3, samples=20, generator=torch.Generator().manual_seed(0))
    assert f3.shape == (3, 2, 3) and torch.equal(f3[:, :, :1], f) and bool(torch.isfinite(f3).all())


# -- bad input ---------------------------------------------------------------------------------------------------
def test_bad_input_is_one_line():
    m = build()
    x = seq_data(2).x
    with pytest.raises(DataError, match="quantisation range"):
        m.log_likelihood(x * 100)
    assert torch.isfinite(build({"clip": True}).log_likelihood(x * 100)).all()   # clip=true: edge bins instead
    for bad in (float("nan"), float("inf")):
        y = x.clone()
        y[0, 0, 3] = bad
        with pytest.raises(DataError, match="NaN or infinite"):
            m.log_likelihood(y)
    with pytest.raises(DataError, match="channel"):
        m.log_likelihood(x[:, :1])
    with pytest.raises(ConfigError, match="receptive field"):
        testing.build("wavenet", seq_data(4, 2, 8), {**SMALL, "layers": 4})
    with pytest.raises(ConfigError, match="unconditional"):
        m.sample(2, labels=torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match="length"):
        m.sample(2, length=0)
    with pytest.raises(DataError, match="does not take image"):
        testing.build("wavenet", testing.tiny_image_data(), SMALL)


def test_learns_a_periodic_series():
    """A period-6 pattern: after 150 Adam steps the model predicts it almost surely (nats per step << ln 256)."""
    torch.manual_seed(0)
    pattern = torch.tensor([0.0, 1.0, 1.5, 0.5, -1.0, -2.0])
    x = pattern.repeat(6)[None, None, :].expand(16, 1, 36).clone()
    for i in range(16):
        x[i] = torch.roll(x[i], i % 6, dims=1)
    data = TensorDataset(x, name="period6")
    m = testing.build("wavenet", data, {"channels": 16, "skip_channels": 16, "layers": 3, "lr": 3e-3})
    opt = m.configure_optimizers()["main"].optimizer
    for step in range(150):
        loss = m.training_step({"x": x}, step)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    lp = m.step_log_probs(x)[:, :, 8:]       # past the first steps, whose phase is not yet determined
    assert float(-lp.mean()) < 0.3, float(-lp.mean())
    assert float((m.one_step_mean(x)[:, :, 8:] - x[:, :, 8:]).abs().max()) < 0.1


# -- end to end --------------------------------------------------------------------------------------------------
def test_cli_trains_on_sunspots_and_refuses_short_windows(tmp_path, capsys):
    out = tmp_path / "wn"
    code = main(["train", "wavenet", "--data", "sunspots", "data.window=40", "model.layers=3", "model.channels=8",
                 "model.skip_channels=8", "trainer.epochs=1", "--no-progress", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "final_metrics.json").read_text())
    assert math.isfinite(metrics["test_nll"]) and (out / "report.html").is_file()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["sections"]["data"]["window"] == 40 and cfg["data_info"]["kind"] == "sequence"
    assert main(["sample", str(out), "-n", "2", "-o", str(tmp_path / "s.npz"), "--no-progress"]) == 0
    s = np.load(tmp_path / "s.npz")
    assert s["x"].shape == (2, 1, 40) and np.isfinite(s["raw"]).all()
    capsys.readouterr()
    assert main(["train", "wavenet", "--data", "sunspots", "data.window=20", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "receptive field" in err[0]
    assert not (tmp_path / "bad").exists()


def test_mixture_head_contract_checks(tmp_path):
    cfg = {**SMALL, "head": "logistic_mixture", "n_mix": 3}
    data = seq_data()
    testing.check_inference("wavenet", data, cfg)
    testing.check_one_step_lowers_loss("wavenet", data, cfg)
    testing.check_save_load_round_trip("wavenet", data, tmp_path, cfg)
