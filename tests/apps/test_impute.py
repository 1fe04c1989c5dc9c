"""Imputer (genlab.apps.impute), mask-aware training in the AE/VAE models, and ``genlab impute``."""
import csv
import json
import math

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline

from genlab.apps import Imputer
from genlab.apps.impute import gaussian_conditional, gaussian_em, missing_dataset, with_half_masked_copies
from genlab.cli import main
from genlab.config import from_dict
from genlab.data import TensorDataset
from genlab.errors import ConfigError, DataError
from genlab.models.common import split_missing
from genlab.registry import get_model_entry
from genlab.training import Trainer
from tests.conftest import tiny_trainer

TRAINER = {"precision": "fp32", "channels_last": False, "log_every": 50}  # epochs come from the estimator


def _build(name, kind="tabular", shape=(3,), **cfg):
    entry = get_model_entry(name)
    info = {"kind": kind, "shape": list(shape), "norm": {"shift": 0.0, "scale": 1.0}, "num_classes": None}
    torch.manual_seed(0)
    return entry.cls(from_dict(entry.config_cls, cfg, "model"), info)


def _correlated(n=240, d=6, seed=0, noise=0.05):
    """Rows on a 1-D curve in 6-D: every column is a function of one latent value (strongly correlated)."""
    g = np.random.default_rng(seed)
    t = g.uniform(-1.5, 1.5, size=(n, 1))
    w = g.uniform(0.5, 2.0, size=(1, d)) * np.sign(g.normal(size=(1, d)))
    return (t @ w + noise * g.normal(size=(n, d))) * 3.0 + 10.0  # raw units: mean 10, spread ~ 3-6


def _holes(x, rate, seed=1):
    m = np.random.default_rng(seed).random(x.shape) < rate
    return np.where(m, np.nan, x), m


@pytest.fixture(scope="module")
def table():
    return _correlated()


@pytest.fixture(scope="module")
def fitted(table):
    xm, _ = _holes(table, 0.2)
    return Imputer(model="vae", epochs=3, batch_size=32, trainer_config=TRAINER).fit(xm)


# ---------------------------------------------------------------------------------------------- model level
def test_split_missing_fills_with_zero_and_returns_mask():
    x = torch.tensor([[1.0, float("nan")], [float("nan"), 4.0]])
    filled, obs = split_missing(x)
    assert torch.equal(filled, torch.tensor([[1.0, 0.0], [0.0, 4.0]]))
    assert torch.equal(obs, torch.tensor([[True, False], [False, True]]))
    y = torch.ones(2, 2)
    same, none = split_missing(y)
    assert same is y and none is None


def test_ae_masked_loss_equals_hand_computation_over_observed_entries():
    """Linear AE (hidden=[]): loss = sum_obs (W_d (W_e x0 + b_e) + b_d - x)^2 / #obs, in float64 by hand."""
    m = _build("ae", latent_dim=2, hidden=[])
    x = torch.tensor([[0.5, float("nan"), -1.0], [float("nan"), float("nan"), 2.0],
                      [1.5, 0.25, float("nan")], [-0.5, 1.0, 0.75]])
    out = m.training_step({"x": x}, 0)
    lin_e, lin_d = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)]
    we, be = lin_e.weight.detach().double().numpy(), lin_e.bias.detach().double().numpy()
    wd, bd = lin_d.weight.detach().double().numpy(), lin_d.bias.detach().double().numpy()
    xn = x.double().numpy()
    obs = ~np.isnan(xn)
    x0 = np.where(obs, xn, 0.0)
    rec = (x0 @ we.T + be) @ wd.T + bd
    hand = ((rec - x0) ** 2)[obs].sum() / obs.sum()
    assert math.isfinite(float(out["loss"].detach()))
    assert float(out["loss"].detach()) == pytest.approx(hand, rel=1e-5, abs=1e-7)
    assert float(out["mse"]) == pytest.approx(hand, rel=1e-5, abs=1e-7)


def test_vae_masked_elbo_equals_hand_computation():
    """Linear gaussian VAE, fixed sigma: rec = -sum_obs log N(x | mean, sigma^2) with the same eps draw."""
    m = _build("vae", latent_dim=2, hidden=[], sigma=0.7)
    x = torch.tensor([[0.5, float("nan"), -1.0], [1.5, 0.25, float("nan")], [-0.5, 1.0, 0.75]])
    torch.manual_seed(5)
    out = m.training_step({"x": x}, 0)
    lin_e, lin_d = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)]
    xn = x.double().numpy()
    obs = ~np.isnan(xn)
    x0 = np.where(obs, xn, 0.0)
    h = x0 @ lin_e.weight.detach().double().numpy().T + lin_e.bias.detach().double().numpy()
    mu, logvar = h[:, :2], np.clip(h[:, 2:], -30, 20)
    torch.manual_seed(5)
    eps = torch.randn(3, 2).double().numpy()  # the draw training_step made (randn_like after the same seed)
    z = mu + np.exp(0.5 * logvar) * eps
    mean = z @ lin_d.weight.detach().double().numpy().T + lin_d.bias.detach().double().numpy()
    s = 0.7
    lp = -0.5 * ((x0 - mean) ** 2 / s ** 2 + 2 * math.log(s) + math.log(2 * math.pi))
    rec = -(lp * obs).sum(1)
    kl = 0.5 * (mu ** 2 + np.exp(logvar) - 1 - logvar).sum(1)
    assert float(out["rec"]) == pytest.approx(rec.mean(), rel=1e-5)
    assert float(out["loss"].detach()) == pytest.approx((rec + kl).mean(), rel=1e-5)


def test_bernoulli_log_px_z_sums_observed_pixels_only():
    m = _build("vae", kind="image", shape=(1, 4, 4), latent_dim=2)
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(2, 1, 4, 4, generator=g)
    x = torch.rand(2, 1, 4, 4, generator=g)
    obs = torch.rand(2, 1, 4, 4, generator=g) > 0.3
    p = torch.sigmoid(raw).double()
    hand = (x.double() * p.log() + (1 - x.double()) * (1 - p).log()) * obs
    assert torch.allclose(m.log_px_z(raw, x, obs).double(), hand.flatten(1).sum(1), atol=1e-4)


@pytest.mark.parametrize("name", ["ae", "vae", "denoising-ae"])
def test_loss_and_gradients_do_not_depend_on_values_at_missing_positions(name):
    """Targets that differ only where entries are missing give the same loss and the same gradients, and the
    NaN training step equals that computation (NaN never leaks into loss or gradients)."""
    m = _build(name, shape=(4,), latent_dim=2, **({"level": 0.0} if name == "denoising-ae" else {}))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 4, generator=g)
    miss = torch.rand(6, 4, generator=g) < 0.4
    x_nan = x.masked_fill(miss, float("nan"))

    def loss_grads(target):
        m.zero_grad()
        torch.manual_seed(3)
        x0 = x.masked_fill(miss, 0.0)  # what the encoder gets for missing entries
        if name == "vae":
            mu, logvar = m.posterior(x0)
            z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
            loss = (-m.log_px_z(m.decode_raw(z), target, ~miss) + m.kl(mu, logvar)).mean()
        else:
            loss = m.reconstruction_loss(m.decode_logits(m.encode(x0)), target, ~miss)[0]
        loss.backward()
        return float(loss.detach()), [p.grad.clone() for p in m.parameters()]

    a = loss_grads(x.masked_fill(miss, 123.0))
    b = loss_grads(x.masked_fill(miss, -7.5))
    assert a[0] == b[0] and all(torch.equal(u, v) for u, v in zip(a[1], b[1]))
    m.zero_grad()
    torch.manual_seed(3)
    step = m.training_step({"x": x_nan}, 0)["loss"]
    step.backward()
    assert float(step.detach()) == pytest.approx(a[0], rel=1e-6)
    assert all(torch.allclose(p.grad, u, atol=1e-6) for p, u in zip(m.parameters(), a[1]))


def test_trainer_trains_on_missing_only_when_asked_and_supported(tabular_data):
    t = tabular_data.standardized()
    x = t.x.clone()
    x[::3, 1] = float("nan")
    with pytest.raises(DataError, match="impute them first"):
        Trainer(tiny_trainer()).fit(_build("vae", shape=(5,)), TensorDataset(x))
    ds = TensorDataset(x, allow_missing=True)
    res = Trainer(tiny_trainer()).fit(_build("vae", shape=(5,)), ds, ds.subset(torch.arange(20)))
    assert all(math.isfinite(r["loss"]) for r in res.history if "loss" in r)
    with pytest.raises(DataError, match="cannot train on missing values"):
        Trainer(tiny_trainer()).fit(_build("gan", shape=(5,)), ds)


def test_allow_missing_survives_subset_split_standardize_and_to():
    x = torch.rand(10, 1, 4, 4)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(DataError, match="image data contains NaN"):
        TensorDataset(x)
    ds = TensorDataset(x, allow_missing=True)
    tr, va, te = ds.split(0.2, 0.2, seed=0)
    assert ds.subset(torch.arange(3)).allow_missing and tr.allow_missing and va.allow_missing and te.allow_missing
    assert ds.to("cpu").allow_missing
    tab = TensorDataset(torch.tensor([[1.0, float("nan")], [2.0, 3.0], [4.0, 5.0]]), allow_missing=True)
    assert tab.standardized().allow_missing


# ---------------------------------------------------------------------------------------------- estimator
def test_observed_entries_are_returned_bit_for_bit(fitted, table):
    xm, m = _holes(table, 0.3, seed=7)
    out = fitted.transform(xm)
    assert out.dtype == np.float64 and out.shape == xm.shape
    assert np.array_equal(out[~m], xm[~m])  # exact, not approx
    assert np.isfinite(out).all()
    out32 = fitted.transform(xm.astype(np.float32))
    assert out32.dtype == np.float32 and np.array_equal(out32[~m], xm.astype(np.float32)[~m])
    full = fitted.transform(table)
    assert np.array_equal(full, table)
    # fills stay within each column's observed range in the fit data (fitted.feature_min_/max_)
    fit_xm, _ = _holes(table, 0.2)
    lo, hi = np.nanmin(fit_xm, 0), np.nanmax(fit_xm, 0)
    tol = 1e-4 * (hi - lo)
    assert (((out >= lo - tol) & (out <= hi + tol)) | ~m).all()


def test_imputer_beats_mean_imputation_on_correlated_data(table):
    xm, m = _holes(table, 0.3, seed=2)
    imp = Imputer(model="vae", epochs=80, batch_size=64, trainer_config=TRAINER).fit(xm)
    out = imp.transform(xm)
    sd = table.std(0)
    rmse = np.sqrt((((out - table) / sd)[m] ** 2).mean())
    mean_fill = np.where(m, np.nanmean(xm, 0), table)
    rmse_mean = np.sqrt((((mean_fill - table) / sd)[m] ** 2).mean())
    assert rmse < 0.6 * rmse_mean, (rmse, rmse_mean)


def test_pipeline_and_clone(table):
    xm, _ = _holes(table, 0.2)
    y = table[:, 0] * 2.0 - table[:, 1]
    imp = Imputer(model="ae", epochs=2, n_iter=3, trainer_config=TRAINER, model_config={"latent_dim": 2})
    c = clone(imp)
    assert c.get_params() == imp.get_params() and not hasattr(c, "model_")
    pipe = make_pipeline(imp, Ridge()).fit(xm, y)
    pred = pipe.predict(xm)
    assert pred.shape == (len(xm),) and np.isfinite(pred).all()
    assert clone(pipe).steps[0][1].get_params()["n_iter"] == 3


def test_save_load_gives_identical_outputs(fitted, table, tmp_path):
    xm, _ = _holes(table, 0.3, seed=9)
    fitted.save(tmp_path / "imp")
    back = Imputer.load(tmp_path / "imp")
    assert np.array_equal(back.transform(xm), fitted.transform(xm))
    assert back.n_features_in_ == table.shape[1]
    # a saved model folder as `model`: used as it is (fit trains nothing), same fills
    again = Imputer(model=str(tmp_path / "imp" / "model")).fit(_holes(table, 0.2)[0])
    assert np.array_equal(again.transform(xm), fitted.transform(xm))


def test_folder_saved_before_the_gaussian_component_loads_as_miwae_alone(fitted, table, tmp_path):
    """A folder written before ``gaussian_weight``/``mask_copies`` existed (no Gaussian arrays in the state file,
    no such params): it loads, and fills exactly as the model alone (``gaussian_weight=0``) did."""
    from safetensors.torch import load_file, save_file

    xm, _ = _holes(table, 0.3, seed=9)
    fitted.save(tmp_path / "old")
    state = load_file(str(tmp_path / "old" / "state.safetensors"))
    save_file({k: v for k, v in state.items() if not k.startswith("gaussian")},
              str(tmp_path / "old" / "state.safetensors"))
    rec = json.loads((tmp_path / "old" / "estimator.json").read_text())
    del rec["params"]["gaussian_weight"], rec["params"]["mask_copies"]
    (tmp_path / "old" / "estimator.json").write_text(json.dumps(rec))
    back = Imputer.load(tmp_path / "old")
    assert back.gaussian_weight == 0.0 and back.mask_copies == 0 and back.gaussian_mean_.size == 0
    alone = clone(fitted).set_params(gaussian_weight=0.0)
    alone.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_") and not k.startswith("__")})
    assert fitted.gaussian_mean_.size and not np.allclose(back.transform(xm), fitted.transform(xm))
    assert np.array_equal(back.transform(xm), alone.transform(xm))


def test_inpainting_images_keeps_layout_and_observed_pixels(image_data):
    x = image_data.x.numpy()  # (64, 1, 8, 8) in [0, 1]
    imp = Imputer(model="ae", epochs=2, trainer_config=TRAINER, model_config={"latent_dim": 4}).fit(x)
    holes = x.copy()
    holes[:, :, 4:, :] = np.nan  # bottom half
    out = imp.transform(holes)
    obs = ~np.isnan(holes)
    assert out.shape == x.shape and np.array_equal(out[obs], x[obs])
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    grey = holes[:, 0]  # (N, H, W)
    out3 = imp.transform(grey)
    assert out3.shape == grey.shape and np.array_equal(out3[~np.isnan(grey)], grey[~np.isnan(grey)])
    chl = holes.transpose(0, 2, 3, 1)  # channels-last (N, H, W, 1)
    out_cl = imp.transform(chl)
    assert out_cl.shape == chl.shape and np.allclose(out_cl[..., 0], out3)
    # fitting on images with holes (mask-aware) works too
    fit_holes = x.copy()
    fit_holes[np.random.default_rng(0).random(x.shape) < 0.2] = np.nan
    imp2 = Imputer(model="vae", epochs=2, trainer_config=TRAINER, model_config={"latent_dim": 4}).fit(fit_holes)
    assert np.isfinite(imp2.transform(fit_holes)).all()


def test_missing_dataset_marks_nan_pixels():
    x = np.full((3, 4, 4), 0.5, np.float32)
    x[1, 2, 3] = np.nan
    ds = missing_dataset(x)
    assert ds.allow_missing and ds.x.shape == (3, 1, 4, 4) and bool(torch.isnan(ds.x[1, 0, 2, 3]))
    assert int(torch.isnan(ds.x).sum()) == 1
    bad = x.copy()
    bad[0, 0, 0] = 2.0
    with pytest.raises(DataError, match=r"expected \[0, 1\]"):
        missing_dataset(bad)


def test_bad_input_errors(fitted, table):
    xm, _ = _holes(table, 0.2)
    allnan = xm.copy()
    allnan[:, 2] = np.nan
    with pytest.raises(DataError, match="column 2 has no observed value"):
        Imputer(epochs=1, trainer_config=TRAINER).fit(allnan)
    with pytest.raises(DataError, match="X has 5 features, but Imputer is expecting 6 features as input; give data with the columns"):
        fitted.transform(xm[:, :5])  # scikit-learn's n_features_in_ check
    inf = xm.copy()
    inf[0, 0] = np.inf
    with pytest.raises(DataError, match="infinite"):
        fitted.transform(inf)
    with pytest.raises(ConfigError, match="not fitted"):
        Imputer().transform(xm)
    with pytest.raises(ConfigError, match=r"n_iter must be an integer in \[1, 10000\]"):
        Imputer(n_iter=0).fit(xm)
    with pytest.raises(ConfigError, match=r"n_iter must be an integer in \[1, 10000\]"):  # hostile: not an endless fill
        Imputer(n_iter=10**11).fit(xm)
    with pytest.raises(ConfigError, match="model 'gan' lacks the capability 'supports_missing' .* that Imputer "
                                          "needs; use one of: ae, contractive-ae, denoising-ae, distance-ae, sparse-ae, vae"):
        Imputer(model="gan", epochs=1).fit(xm)
    with pytest.raises(ConfigError, match="Imputer does not support conditional models such as 'cvae'"):
        Imputer(model="cvae", epochs=1).fit(xm)
    with pytest.raises(DataError, match="could not convert string to float"):  # scikit-learn's check_array
        Imputer(epochs=1).fit(np.array([["a", None]], dtype=object))
    img = np.full((4, 1, 8, 8), np.nan, np.float32)
    img[:, :, :4] = 0.5
    with pytest.raises(DataError, match=r"pixel \(channel 0, row 4, col 0\) has no observed value"):
        Imputer(epochs=1).fit(img)


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_csv_round_trip_keeps_header_labels_and_observed_cells(tmp_path, capsys):
    data = _correlated(n=80, d=4, seed=3)
    rows = [["a", "label", "b", "c", "d"]]
    for i, r in enumerate(data):
        cells = [repr(float(v)) for v in r]
        if i % 4 == 0:
            cells[i % 3] = "" if i % 8 else "NA"
        rows.append([cells[0], str(i % 2), *cells[1:]])
    src = tmp_path / "t.csv"
    with open(src, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    out = tmp_path / "o"
    assert main(["impute", str(src), "--out", str(out), "--model", "ae", "--epochs", "2", "--set", "latent_dim=2"]) == 0
    got = list(csv.reader((out / "imputed.csv").read_text().splitlines()))
    assert got[0] == rows[0] and len(got) == len(rows)
    n_filled = 0
    for a, b in zip(rows[1:], got[1:]):
        for ca, cb in zip(a, b):
            if ca in ("", "NA"):
                n_filled += 1
                assert math.isfinite(float(cb))
            else:
                assert ca == cb  # observed cells (and the label column) are copied as text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["missing_entries"] == n_filled == 20 and metrics["filled_entries"] == 20
    assert (out / "report.html").is_file()
    assert "missing_entries" in capsys.readouterr().out


def test_cli_npz_images_with_mask_and_nan(tmp_path, image_data, capsys):
    x = image_data.x.numpy()[:, 0]  # (N, 8, 8)
    xn = x.copy()
    xn[0, 0, 0] = np.nan
    np.savez(tmp_path / "img.npz", x=xn)
    np.savez(tmp_path / "clean.npz", x=x)
    mask = np.zeros((8, 8), bool)
    mask[6:] = True  # the bottom two rows of every image
    np.savez(tmp_path / "mask.npz", mask=mask)
    out = tmp_path / "o"
    args = ["impute", str(tmp_path / "img.npz"), "--mask", str(tmp_path / "mask.npz"), "--out", str(out),
            "--model", "ae", "--epochs", "2", "--set", "latent_dim=4", "--n-iter", "2"]
    assert main(args) == 2  # those rows are never observed in the input: training on it cannot learn them
    assert "pixel (channel 0, row 6, col 0) has no observed value" in capsys.readouterr().err
    assert main([*args, "--train", str(tmp_path / "clean.npz")]) == 0
    z = np.load(out / "imputed.npz")
    assert z["x"].shape == x.shape and np.isfinite(z["x"]).all()
    assert z["mask"].sum() == 64 * 16 + 1
    keep = ~z["mask"]
    assert np.array_equal(z["x"][keep], xn[keep])
    assert (out / "inpaint.png").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["filled_entries"] == 64 * 16 + 1 and metrics["n_iter"] == 2


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    src = tmp_path / "t.csv"
    src.write_text("a,b\n1,\n2,\n3,\n")
    assert main(["impute", str(src), "--out", str(tmp_path / "o"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "column 1 has no observed value" in err and len(err.splitlines()) == 1
    np.savez(tmp_path / "img.npz", x=np.zeros((4, 8, 8), np.float32))
    np.savez(tmp_path / "mask.npz", mask=np.zeros((7, 7), bool))
    assert main(["impute", str(tmp_path / "img.npz"), "--mask", str(tmp_path / "mask.npz"),
                 "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip()
    assert "mask shape (7, 7) does not match" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists() and not (tmp_path / "o2").exists()
    np.savetxt(tmp_path / "ok.csv", _correlated(n=20, d=3), delimiter=",", header="a,b,c", comments="")
    for src, flag, value, name in (("ok.csv", "--gaussian-weight", "1.5", "gaussian_weight"),
                                   ("img.npz", "--mask-copies", "-1", "mask_copies")):  # each on its kind of data
        assert main(["impute", str(tmp_path / src), "--out", str(tmp_path / "o3"), "--epochs", "1",
                     flag, value]) == 2
        err = capsys.readouterr().err.strip()
        assert name in err and len(err.splitlines()) == 1 and not (tmp_path / "o3").exists()


def test_cli_gaussian_weight_and_mask_copies_reach_the_imputer(tmp_path):
    x, _ = _holes(_correlated(n=60, d=4, seed=5), 0.2, seed=2)
    np.savez(tmp_path / "t.npz", x=x.astype(np.float32))
    assert main(["impute", str(tmp_path / "t.npz"), "--out", str(tmp_path / "o"), "--model", "ae", "--epochs", "1",
                 "--set", "latent_dim=2", "--gaussian-weight", "0.25", "--save", str(tmp_path / "est")]) == 0
    back = Imputer.load(tmp_path / "est")
    assert back.gaussian_weight == 0.25 and back.gaussian_mean_.size == 4
    img = np.random.default_rng(3).random((20, 1, 6, 6)).astype(np.float32)
    img[:10, :, 3:, :] = np.nan  # (tables take no --mask-copies; images no --gaussian-weight)
    np.savez(tmp_path / "img.npz", x=img)
    assert main(["impute", str(tmp_path / "img.npz"), "--out", str(tmp_path / "o2"), "--model", "ae", "--epochs", "1",
                 "--mask-copies", "0", "--save", str(tmp_path / "est2")]) == 0
    assert Imputer.load(tmp_path / "est2").mask_copies == 0


# ---------------------------------------------------------------------------------------------- MIWAE
def _linear_gaussian_vae(d=5, latent=2, sigma=0.8, seed=0):
    """A VAE whose decoder is x = W z + b + N(0, sigma^2 I), z ~ N(0, I), and whose encoder is the prior
    (q(z|x) = N(0, I)): then p(x_mis | x_obs) is Gaussian in closed form."""
    model = _build("vae", shape=(d,), latent_dim=latent, hidden=[], likelihood="gaussian", learn_sigma=True,
                   sigma=sigma)
    g = torch.Generator().manual_seed(seed)
    w, b = 0.8 * torch.randn(d, latent, generator=g), torch.randn(d, generator=g)
    enc = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Linear)]
    dec = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)]
    assert len(enc) == 1 and len(dec) == 1  # hidden=[]: one affine layer each
    with torch.no_grad():
        enc[0].weight.zero_(), enc[0].bias.zero_()
        dec[0].weight.copy_(w), dec[0].bias.copy_(b)
    w, b = w.double().numpy(), b.double().numpy()
    return model.eval(), w, b, w @ w.T + sigma ** 2 * np.eye(d)


def _conditional(x, obs, b, cov):
    """Exact mean and covariance of x[~obs] given x[obs] under N(b, cov)."""
    o, m = obs, ~obs
    k = cov[np.ix_(m, o)] @ np.linalg.inv(cov[np.ix_(o, o)])
    return b[m] + k @ (x[o] - b[o]), cov[np.ix_(m, m)] - k @ cov[np.ix_(o, m)]


def test_miwae_weights_match_the_closed_form_linear_gaussian_case():
    from scipy.stats import multivariate_normal
    model, w, b, cov = _linear_gaussian_vae()
    g = np.random.default_rng(0)
    full = g.multivariate_normal(b, cov, size=1000)  # fit data: only sets the clipping range
    imp = Imputer(model=model, n_samples=20_000, random_state=0, gaussian_weight=0).fit(full)  # MIWAE alone
    rows = g.multivariate_normal(b, cov, size=4)
    obs = np.array([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1], [1, 0, 0, 1, 1], [1, 1, 1, 1, 0]], bool)
    holes = np.where(obs, rows, np.nan)
    out = imp.transform(holes)
    # log-mean of the importance weights: log p(x_obs) (the IWAE estimate; exact in the limit)
    with torch.no_grad():
        logw, _ = model.importance_log_weights(torch.as_tensor(holes, dtype=torch.float32), 200_000,
                                               generator=torch.Generator().manual_seed(1))
    est = (torch.logsumexp(logw.double(), 0) - math.log(200_000)).numpy()
    for i in range(len(rows)):
        mean, _ = _conditional(rows[i], obs[i], b, cov)
        assert np.allclose(out[i, ~obs[i]], mean, atol=0.05), (i, out[i, ~obs[i]], mean)
        exact = multivariate_normal(b[obs[i]], cov[np.ix_(obs[i], obs[i])]).logpdf(rows[i, obs[i]])
        assert est[i] == pytest.approx(exact, abs=0.05)
    # a wrong model (other bias) would be far off: the test can tell
    assert not np.allclose(out[0, ~obs[0]], _conditional(rows[0], obs[0], b + 1.0, cov)[0], atol=0.05)


def test_multiple_imputation_draws_from_the_exact_conditional():
    model, w, b, cov = _linear_gaussian_vae(seed=1)
    g = np.random.default_rng(1)
    imp = Imputer(model=model, n_samples=20_000, gaussian_weight=0).fit(g.multivariate_normal(b, cov, size=4000))
    row = g.multivariate_normal(b, cov, size=1)
    obs = np.array([[True, False, True, True, False]])
    res = imp.multiple_imputation(np.where(obs, row, np.nan), n_imputations=3000, random_state=0)
    assert res.imputations.shape == (3000, 1, 5) and res.mean.shape == res.between_variance.shape == (1, 5)
    assert np.array_equal(res.imputations[:, obs], np.broadcast_to(row[obs], (3000, int(obs.sum()))))
    assert (res.between_variance[obs] == 0).all()
    mean, var = _conditional(row[0], obs[0], b, cov)
    assert np.allclose(res.mean[0, ~obs[0]], mean, atol=0.1), (res.mean, mean)
    assert np.allclose(res.between_variance[0, ~obs[0]], np.diag(var), rtol=0.15), (res.between_variance, var)
    again = imp.multiple_imputation(np.where(obs, row, np.nan), n_imputations=3000, random_state=0)
    assert np.array_equal(again.imputations, res.imputations)  # seeded


def test_miwae_training_bound_and_defaults(table):
    model = _build("vae", shape=(6,), latent_dim=2, iw_samples=7, learn_sigma=True)
    x = torch.as_tensor(_holes(_correlated(n=32), 0.3)[0], dtype=torch.float32)
    out = model.training_step({"x": x}, 0)
    torch.manual_seed(5)
    logw, raw = model.importance_log_weights(x, 7)
    assert logw.shape == (7, 32) and raw.shape == (7, 32, 6) and torch.isfinite(logw).all()
    torch.manual_seed(5)
    out = model.training_step({"x": x}, 0)
    bound = torch.logsumexp(logw, 0) - math.log(7)
    assert float(out["loss"]) == pytest.approx(-float(bound.mean()), rel=1e-5)
    out["loss"].backward()  # differentiable
    with pytest.raises(ConfigError, match="iw_samples > 1 trains the IWAE bound"):
        _build("vae", shape=(6,), iw_samples=5, beta=2.0)
    xm, m = _holes(table, 0.3, seed=2)
    imp = Imputer(epochs=2, batch_size=64, trainer_config=TRAINER, n_samples=50).fit(xm)
    assert imp.model_.config.iw_samples == 20 and imp._method() == "importance"
    assert imp.model_.config.hidden == [128, 128]  # MIWAE_HIDDEN, the tabular MIWAE default
    out = imp.transform(xm)
    assert np.array_equal(out, imp.transform(xm)) and np.array_equal(out[~m], xm[~m])  # seeded, observed kept
    it = Imputer(epochs=2, trainer_config=TRAINER, method="iterative").fit(xm)
    assert it.model_.config.iw_samples == 1 and it._method() == "iterative" and it.model_.config.hidden is None
    assert Imputer(model_config={"hidden": [8]})._defaults(missing_dataset(xm)).get("hidden") is None  # user's kept
    with pytest.raises(ConfigError, match="method must be one of auto, importance, iterative"):
        Imputer(method="em").fit(xm)
    with pytest.raises(ConfigError, match=r"n_samples must be an integer in \[1, 1000000\]"):
        Imputer(n_samples=0).fit(xm)
    with pytest.raises(ConfigError, match=r"n_samples must be an integer in \[1, 1000000\]"):
        Imputer(n_samples=10**11).fit(xm)
    ae = Imputer(model="ae", epochs=1, trainer_config=TRAINER, method="importance")
    with pytest.raises(ConfigError, match="method='importance' needs a VAE"):
        ae.fit(xm).transform(xm)
    with pytest.raises(ConfigError, match="n_imputations must be an integer >= 2"):
        imp.multiple_imputation(xm, n_imputations=1)


# ---------------------------------------------------------------------------------------------- Gaussian component
def _random_gaussian(d=5, seed=0):
    g = np.random.default_rng(seed)
    a = g.normal(size=(d, d))
    return g.normal(size=d), a @ a.T + 0.5 * np.eye(d), g


def test_gaussian_conditional_matches_the_closed_form():
    from scipy.stats import multivariate_normal
    mu, cov, g = _random_gaussian()
    rows = g.multivariate_normal(mu, cov, size=4)
    obs = np.array([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1], [1, 0, 0, 1, 1], [1, 1, 1, 1, 1]], bool)
    cm, cc, ll = gaussian_conditional(torch.tensor(np.where(obs, rows, np.nan)), torch.tensor(mu), torch.tensor(cov),
                                      rows=3)  # two batched solves
    for i in range(4):
        o, m = obs[i], ~obs[i]
        mean, var = _conditional(rows[i], o, mu, cov)
        assert np.allclose(cm[i, m].numpy(), mean, atol=1e-10) and np.array_equal(cm[i, o].numpy(), rows[i, o])
        assert np.allclose(cc[i].numpy()[np.ix_(m, m)], var, atol=1e-10)
        assert (cc[i].numpy()[o] == 0).all() and (cc[i].numpy()[:, o] == 0).all()
        assert float(ll[i]) == pytest.approx(multivariate_normal(mu[o], cov[np.ix_(o, o)]).logpdf(rows[i, o]), abs=1e-9)
    xt = torch.tensor(np.where(obs, rows, np.nan))
    cm2, csum, _ = gaussian_conditional(xt, torch.tensor(mu), torch.tensor(cov), rows=3, cond_cov="sum")
    cm3, none, ll3 = gaussian_conditional(xt, torch.tensor(mu), torch.tensor(cov), cond_cov="none")
    assert torch.allclose(csum, cc.sum(0)) and none is None and torch.equal(cm2, cm) and torch.allclose(cm3, cm)
    assert torch.allclose(ll3, ll)


def test_gaussian_em_is_the_maximum_likelihood_fit():
    mu, cov, g = _random_gaussian(seed=1)
    full = g.multivariate_normal(mu, cov, size=400)
    # complete data: one EM step gives the sample mean and the biased sample covariance (+ ridge)
    m0, c0 = gaussian_em(torch.tensor(full), ridge=0.01)
    assert np.allclose(m0.numpy(), full.mean(0)) and np.allclose(c0.numpy(), np.cov(full.T, bias=True) + 0.01 * np.eye(5))
    # with holes: the EM fixed point maximises the observed-data likelihood (higher than nearby parameters)
    holes = np.where(g.random(full.shape) < 0.3, np.nan, full)
    m1, c1 = gaussian_em(torch.tensor(holes), ridge=0.0, tol=1e-10, max_iter=500)
    x = torch.tensor(holes)

    def loglik(m, c):
        return float(gaussian_conditional(x, m, c)[2].sum())
    best = loglik(m1, c1)
    assert best > loglik(m1 + 0.05, c1) and best > loglik(m1, c1 * 1.05) and best > loglik(m1, c1 * 0.95)
    assert best > loglik(torch.tensor(np.nanmean(holes, 0)), torch.tensor(np.diag(np.nanvar(holes, 0))))
    big = g.multivariate_normal(mu, cov, size=20_000)
    m2, c2 = gaussian_em(torch.tensor(np.where(g.random(big.shape) < 0.3, np.nan, big)), ridge=0.0)
    assert np.abs(m2.numpy() - mu).max() < 0.1 and np.abs(c2.numpy() - cov).max() < 0.35  # sampling error


def test_gaussian_weight_blends_the_fills_and_draws(table):
    xm, m = _holes(table, 0.3, seed=4)
    imp = Imputer(epochs=2, batch_size=64, trainer_config=TRAINER, n_samples=50).fit(xm)
    assert imp.gaussian_weight == 0.75 and imp.gaussian_mean_.shape == (6,) and imp.gaussian_cov_.shape == (6, 6)
    # the Gaussian alone: its conditional mean, computed here in numpy from the fitted parameters (model space =
    # columns standardised by the model's training statistics), clipped to the observed range
    gauss = imp.set_params(gaussian_weight=1.0).transform(xm)
    norm = imp.model_.data_info["norm"]
    mu, sd = np.asarray(norm["shift"]), np.asarray(norm["scale"])
    z = (xm - mu) / sd
    lo, hi = np.nanmin(z, 0), np.nanmax(z, 0)
    for i in np.flatnonzero(m.any(1))[:20]:
        o = ~m[i]
        if not o.any():
            continue
        mean, _ = _conditional(z[i], o, imp.gaussian_mean_, imp.gaussian_cov_)
        assert np.allclose(gauss[i, ~o], np.clip(mean, lo[~o], hi[~o]) * sd[~o] + mu[~o], rtol=1e-4, atol=1e-4)
    model_only = imp.set_params(gaussian_weight=0.0).transform(xm)
    blend = imp.set_params(gaussian_weight=0.75).transform(xm)
    span = np.nanmax(xm, 0) - np.nanmin(xm, 0)
    inside = m & (gauss > np.nanmin(xm, 0) + 1e-3 * span) & (gauss < np.nanmax(xm, 0) - 1e-3 * span)  # not clipped
    assert np.allclose(blend[inside], 0.75 * gauss[inside] + 0.25 * model_only[inside], rtol=1e-4, atol=1e-4)
    assert not np.allclose(gauss[m], model_only[m], atol=1e-3)  # the two components differ: the test can tell
    # draws: with weight 1 they come from the Gaussian conditional (mean and variance), seeded
    row = np.where(np.arange(6) % 2 == 0, table[:1], np.nan)  # columns 1, 3, 5 missing
    res = imp.set_params(gaussian_weight=1.0).multiple_imputation(row, n_imputations=4000, random_state=0)
    zr = (row[0] - mu) / sd
    o = ~np.isnan(zr)
    mean, var = _conditional(zr, o, imp.gaussian_mean_, imp.gaussian_cov_)
    assert np.allclose((res.mean[0, ~o] - mu[~o]) / sd[~o], mean, atol=0.1 * np.sqrt(np.diag(var)).max() + 0.02)
    ratio = res.between_variance[0, ~o] / (np.diag(var) * sd[~o] ** 2)
    assert ((ratio > 0.8) & (ratio < 1.15)).all(), ratio  # clipping can only shrink the spread
    # weight 0.5: about half the draws of a row come from each component
    mix = imp.set_params(gaussian_weight=0.5).multiple_imputation(row, n_imputations=400, random_state=0)
    only_model = imp.set_params(gaussian_weight=0.0).multiple_imputation(row, n_imputations=400, random_state=0)
    same = (mix.imputations == only_model.imputations).all(-1)[:, 0]  # (400,) draws taken from the model
    assert 0.4 < same.mean() < 0.6, same.mean()
    assert np.array_equal(mix.imputations[:, 0, o], np.broadcast_to(row[0, o], (400, int(o.sum()))))


def test_gaussian_component_parameters_and_images(image_data, table):
    xm, _ = _holes(table, 0.2)
    with pytest.raises(ConfigError, match=r"gaussian_weight must be a number in \[0, 1\]"):
        Imputer(gaussian_weight=1.5).fit(xm)
    with pytest.raises(ConfigError, match="mask_copies must be an integer >= 0"):
        Imputer(mask_copies=-1).fit(xm)
    off = Imputer(epochs=1, trainer_config=TRAINER, gaussian_weight=0, n_samples=10).fit(xm)
    assert off.gaussian_mean_.shape == (0,) and off._gaussian_weight() == 0.0
    x = image_data.x.numpy()  # (64, 1, 8, 8)
    imp = Imputer(model="ae", epochs=1, trainer_config=TRAINER, model_config={"latent_dim": 4}).fit(x)
    assert imp.gaussian_mean_.shape == (0,)  # images: the model alone


def test_half_masked_copies():
    x = torch.rand(50, 2, 6, 8)
    x[0, 1, 0, 0] = float("nan")
    ds = TensorDataset(x, torch.arange(50), allow_missing=True)
    out = with_half_masked_copies(ds, 2, seed=3)
    assert out.x.shape == (150, 2, 6, 8) and out.allow_missing and torch.equal(out.y, torch.arange(50).repeat(3))
    assert torch.equal(torch.nan_to_num(out.x[:50], nan=-1), torch.nan_to_num(x, nan=-1))  # originals unchanged
    halves = {"top": (slice(0, 3), slice(None)), "bottom": (slice(3, 6), slice(None)),
              "left": (slice(None), slice(0, 4)), "right": (slice(None), slice(4, 8))}
    seen = set()
    for i in range(50, 150):
        own = torch.isnan(x[i % 50])  # (C, H, W) the image's own holes stay
        sides = []
        for k, (r, c) in halves.items():
            half = torch.zeros(2, 6, 8, dtype=torch.bool)
            half[:, r, c] = True
            if torch.equal(torch.isnan(out.x[i]), half | own):
                sides.append(k)
        assert len(sides) == 1, i  # exactly one half, in every channel, on top of the image's own holes
        seen.add(sides[0])
        kept = ~torch.isnan(out.x[i])
        assert torch.equal(out.x[i][kept], x[i % 50][kept])
    assert seen == set(halves)


def test_half_masked_copies_too_many_fail_at_once():
    """A hostile ``mask_copies`` is one ConfigError line naming the copies and the memory they need, before any
    copy is made; the kernel used to kill the process part-way through, then the allocator's error was raised."""
    ds = TensorDataset(torch.rand(20, 1, 8, 8), None)
    with pytest.raises(ConfigError, match=r"^100,000,000,000 half-masked copies of 20 images need [\d,.]+ GiB, more "
                                          r"than this machine's .*; lower mask_copies"):
        with_half_masked_copies(ds, 10**11, seed=0)
