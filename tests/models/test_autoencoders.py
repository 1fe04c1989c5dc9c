"""The autoencoder family: ae (overcomplete warning), sparse-ae, denoising-ae, contractive-ae, distance-ae."""
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

import genlab
from genlab.config import from_dict
from genlab.errors import ConfigError, ConfigWarning
from genlab.models.ae_family import distance_stress, input_distances, kl_sparsity
from genlab.registry import get_model_entry
from genlab.training import Trainer, seed_everything
from tests.conftest import tiny_trainer

FAMILY = ["ae", "sparse-ae", "denoising-ae", "contractive-ae", "distance-ae"]


def build(name, data, **cfg):
    entry = get_model_entry(name)
    return entry.cls(from_dict(entry.config_cls, {"latent_dim": 4, **cfg}), data.info())


def _data(kind, image_data, tabular_data):
    return image_data if kind == "image" else tabular_data.standardized()


# ------------------------------------------------------------------------------ every member
@pytest.mark.parametrize("kind", ["image", "tabular"])
@pytest.mark.parametrize("name", FAMILY)
def test_trains_through_trainer_and_round_trips(name, kind, image_data, tabular_data, tmp_path):
    data = _data(kind, image_data, tabular_data)
    seed_everything(0)
    model = build(name, data)
    res = Trainer(tiny_trainer(epochs=2)).fit(model, data, data)
    epochs = [r for r in res.history if r["split"] == "train_epoch"]
    assert len(epochs) == 2 and all(math.isfinite(r["loss"]) for r in epochs)
    assert math.isfinite(res.final["loss"])
    genlab.save_model(model, tmp_path / "m")
    loaded = genlab.load(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.config == model.config
    assert torch.equal(loaded.reconstruct(data.x[:8]), model.reconstruct(data.x[:8]))


def test_logged_metrics(image_data):
    seed_everything(0)
    sparse = Trainer(tiny_trainer(epochs=1)).fit(build("sparse-ae", image_data), image_data, image_data)
    assert "mean_activation" in sparse.history[-2] and "mean_activation" in sparse.final  # train_epoch, val
    assert "active_fraction" in sparse.final
    seed_everything(0)
    cae = Trainer(tiny_trainer(epochs=1)).fit(build("contractive-ae", image_data), image_data, image_data)
    assert cae.final["jacobian_norm"] > 0 and cae.history[-2]["jacobian_norm"] > 0


# ------------------------------------------------------------------------------ overcomplete warning
@pytest.mark.parametrize("name,cfg", [
    ("ae", {}),
    ("sparse-ae", {"l1": 0.0, "sparsity_weight": 0.0}),
    ("denoising-ae", {"level": 0.0}),
    ("contractive-ae", {"lam": 0.0}),
    ("distance-ae", {}),  # the identity keeps distances exactly: the stress term does not stop it
])
@pytest.mark.parametrize("latent", [5, 8])
def test_overcomplete_without_regulariser_warns(name, cfg, latent, tabular_data):
    with pytest.warns(ConfigWarning, match="overcomplete.*sparse-ae, denoising-ae or contractive-ae"):
        build(name, tabular_data, latent_dim=latent, **cfg)  # 5 input columns


def test_overcomplete_warning_not_repeated_on_load(tabular_data, tmp_path):
    """The advice is for the one who configures a training; loading the trained model (every ``--run``, every
    estimator load) stays silent, so a CLI error after a load is still one line."""
    with pytest.warns(ConfigWarning):
        model = build("ae", tabular_data, latent_dim=8)
    genlab.save_model(model, tmp_path / "m")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = genlab.load(tmp_path / "m")
    assert back.latent_dim == 8


@pytest.mark.parametrize("name,cfg", [
    ("ae", {"latent_dim": 4}),
    ("sparse-ae", {"latent_dim": 8}),
    ("sparse-ae", {"latent_dim": 8, "sparsity_weight": 0.0, "k_sparse": 2}),
    ("denoising-ae", {"latent_dim": 8}),
    ("contractive-ae", {"latent_dim": 8}),
])
def test_no_warning_when_undercomplete_or_regularised(name, cfg, tabular_data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build(name, tabular_data, **cfg)


# ------------------------------------------------------------------------------ sparse
def test_kl_sparsity_drives_mean_activation_to_rho(tabular_data):
    data = tabular_data.standardized()
    seed_everything(0)
    model = build("sparse-ae", data, latent_dim=8, rho=0.05, sparsity_weight=1.0, lr=1e-2)
    res = Trainer(tiny_trainer(epochs=10)).fit(model, data, data)
    epochs = [r for r in res.history if r["split"] == "train_epoch"]
    assert epochs[0]["mean_activation"] > 0.3  # sigmoid codes start near 0.5
    assert res.final["mean_activation"] < 0.1  # measured 0.048-0.060 over seeds 0-2
    h = model.encode(data.x)
    assert h.min() >= 0 and h.max() <= 1  # sigmoid codes


def test_kl_and_l1_terms_enter_the_loss(tabular_data):
    data = tabular_data.standardized()
    model = build("sparse-ae", data, l1=0.3, rho=0.2, sparsity_weight=0.7)
    x = data.x[:16]
    out = model.training_step({"x": x}, 0)
    h = model.encode(x)
    rho_hat = h.mean(0)
    kl = (0.2 * torch.log(0.2 / rho_hat) + 0.8 * torch.log(0.8 / (1 - rho_hat))).sum()
    rec = F.mse_loss(model.decode(h), x)
    expected = rec + 0.3 * h.abs().sum(1).mean() + 0.7 * kl
    torch.testing.assert_close(out["loss"], expected)
    torch.testing.assert_close(out["kl_sparsity"], kl.detach())
    torch.testing.assert_close(out["mean_activation"], h.mean().detach())
    assert kl_sparsity(0.2, torch.full((3,), 0.2)).abs() < 1e-6  # zero at the target


@pytest.mark.parametrize("sigmoid", [True, False])
def test_k_sparse_codes_have_exactly_k_nonzeros(sigmoid, image_data):
    k = 3
    model = build("sparse-ae", image_data, latent_dim=8, k_sparse=k, sparsity_weight=0.5 if sigmoid else 0.0)
    x = image_data.x[:16]
    dense = model.encoder(x)
    dense = torch.sigmoid(dense) if sigmoid else dense
    h = model.encode(x)
    assert ((h != 0).sum(1) == k).all()
    kept = h != 0
    assert torch.equal(h[kept], dense[kept])  # kept entries untouched
    assert torch.equal(kept, torch.zeros_like(dense).scatter(1, dense.abs().topk(k, 1).indices, 1.0).bool())
    seen = []
    hook = model.decoder.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach()))
    model.training_step({"x": x}, 0)
    hook.remove()
    assert len(seen) == 1 and ((seen[0] != 0).sum(1) == k).all()  # training decodes k-sparse codes too


def test_validation_epoch_metrics_is_whole_set_mean(image_data):
    model = build("sparse-ae", image_data, latent_dim=6, k_sparse=2, sparsity_weight=0.0).eval()
    m = model.validation_epoch_metrics(image_data)
    with torch.no_grad():
        h = model.encode(image_data.x)
    assert m["mean_activation"] == pytest.approx(float(h.abs().mean()), rel=1e-5)
    assert m["active_fraction"] == pytest.approx(2 / 6)


# ------------------------------------------------------------------------------ denoising
def _images(n=2000, value=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.8 + 0.1  # strictly inside (0, 1)
    return x.fill_(value) if value is not None else x


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_mask_fraction_matches_p(p, image_data):
    model = build("denoising-ae", image_data, noise="mask", level=p)
    x = _images()
    xt = model.corrupt(x, generator=torch.Generator().manual_seed(1))
    zero = xt == 0
    assert abs(zero.float().mean().item() - p) < 0.01  # 128k entries: 8+ standard errors
    assert torch.equal(xt[~zero], x[~zero])


def test_salt_pepper_statistics(image_data, tabular_data):
    p = 0.3
    model = build("denoising-ae", image_data, noise="salt_pepper", level=p)
    x = _images(value=0.5)
    xt = model.corrupt(x, generator=torch.Generator().manual_seed(2))
    assert abs((xt == 0).float().mean().item() - p / 2) < 0.01
    assert abs((xt == 1).float().mean().item() - p / 2) < 0.01
    assert ((xt == 0) | (xt == 1) | (xt == 0.5)).all()
    tab = tabular_data.standardized()
    tmodel = build("denoising-ae", tab, noise="salt_pepper", level=p)
    xt = tmodel.corrupt(tab.x, generator=torch.Generator().manual_seed(3))
    lo, hi = tab.x.amin(0), tab.x.amax(0)
    changed = xt != tab.x
    assert ((xt == lo) | (xt == hi) | ~changed).all()  # column range ends only


def test_gaussian_std_matches_sigma_and_images_are_clamped(image_data, tabular_data):
    tab = tabular_data.standardized()
    model = build("denoising-ae", tab, noise="gaussian", level=0.3)
    x = torch.zeros(4000, 5)
    d = model.corrupt(x, generator=torch.Generator().manual_seed(4)) - x
    assert d.std().item() == pytest.approx(0.3, rel=0.02)  # 20k draws: SE of std ~0.5 %
    assert abs(d.mean().item()) < 0.01
    imodel = build("denoising-ae", image_data, noise="gaussian", level=0.5)
    xt = imodel.corrupt(_images(200), generator=torch.Generator().manual_seed(5))
    assert xt.min() == 0 and xt.max() == 1  # clamped, and sigma 0.5 does reach both ends


def test_corrupt_is_seeded_and_reconstruct_does_not_corrupt(image_data):
    model = build("denoising-ae", image_data, noise="mask", level=0.5).eval()
    x = image_data.x[:16]
    a = model.corrupt(x, generator=torch.Generator().manual_seed(0))
    b = model.corrupt(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and not torch.equal(a, x)
    r1, r2 = model.reconstruct(x), model.reconstruct(x)
    assert torch.equal(r1, r2)
    with torch.no_grad():
        assert torch.equal(r1, model.decode(model.encode(x)))


def test_training_reconstructs_the_clean_input_from_a_fresh_corruption(image_data):
    model = build("denoising-ae", image_data, noise="mask", level=0.5)
    x = image_data.x[:16]
    torch.manual_seed(7)
    out = model.training_step({"x": x}, 0)
    torch.manual_seed(7)
    xt = model.corrupt(x)
    expected = F.binary_cross_entropy_with_logits(model.decode_logits(model.encode(xt)), x)
    torch.testing.assert_close(out["loss"], expected)
    clean_target = F.binary_cross_entropy_with_logits(model.decode_logits(model.encode(xt)), xt)
    assert not torch.allclose(out["loss"], clean_target)  # the target is x, not x~
    torch.manual_seed(8)
    assert not torch.equal(model.training_step({"x": x}, 0)["loss"], out["loss"])  # drawn per batch


# ------------------------------------------------------------------------------ contractive
def _exact_jacobian_sq_norms(model, x):
    out = []
    for xi in x:
        jac = torch.autograd.functional.jacobian(lambda v: model.encode(v.unsqueeze(0))[0], xi)  # (L, *shape)
        out.append(jac.pow(2).sum())
    return torch.stack(out)


@pytest.mark.parametrize("kind", ["image", "tabular"])
def test_contractive_closed_form_is_exact(kind, image_data, tabular_data):
    data = _data(kind, image_data, tabular_data)
    torch.manual_seed(0)
    model = build("contractive-ae", data, arch="mlp", hidden=[], encoder_activation="sigmoid").double()
    assert model.closed_form
    x = data.x[:6].double()
    exact = _exact_jacobian_sq_norms(model, x)
    got = model.jacobian_norm(x)
    torch.testing.assert_close(got, exact, rtol=1e-5, atol=1e-8)
    out = model.training_step({"x": x}, 0)
    torch.testing.assert_close(out["jacobian_norm"], exact.mean().float())


@pytest.mark.parametrize("kind,cfg", [
    ("tabular", {"arch": "mlp", "hidden": [7]}),
    ("tabular", {"arch": "mlp", "hidden": [7, 6], "encoder_activation": "sigmoid"}),
    ("image", {"channels": [4]}),
])
def test_contractive_estimate_is_unbiased(kind, cfg, image_data, tabular_data):
    data = _data(kind, image_data, tabular_data)
    torch.manual_seed(0)
    model = build("contractive-ae", data, **cfg).double()
    assert not model.closed_form
    x = data.x[:3].double()
    exact = _exact_jacobian_sq_norms(model, x)
    g = torch.Generator().manual_seed(0)
    n = 10_000
    for i in range(len(x)):
        # n independent one-projection estimates for sample i (the batch holds n copies of it).
        single = model.jacobian_norm(x[i:i + 1].expand(n, *x.shape[1:]).clone(), generator=g).detach()
        se = single.std() / math.sqrt(n)
        assert single.std() > 0  # a random estimate, not the exact value in disguise
        # Their mean is within a few % of the exact norm (one projection's relative std is 0.7-0.9 here,
        # so 5 % is over 5 standard errors) ...
        assert abs(single.mean() / exact[i] - 1) < 0.05
        # ... and unbiased: within 4 standard errors (an estimator scaled by 1 +- 3 % fails).
        assert (single.mean() - exact[i]).abs() < 4 * se
    # n_projections=k is the mean of k successive one-projection estimates.
    many = model.jacobian_norm(x, n_projections=3, generator=torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(9)
    ones = [model.jacobian_norm(x, generator=g) for _ in range(3)]
    torch.testing.assert_close(many, sum(ones) / 3)


def test_contractive_penalty_enters_loss_and_contracts(tabular_data):
    data = tabular_data.standardized()
    x = data.x[:16]
    torch.manual_seed(0)
    model = build("contractive-ae", data, lam=2.0, arch="mlp", hidden=[], encoder_activation="sigmoid")
    out = model.training_step({"x": x}, 0)
    rec = F.mse_loss(model.decode(model.encode(x)), x)
    torch.testing.assert_close(out["loss"], rec + 2.0 * model.jacobian_norm(x).mean())

    def trained(lam):
        seed_everything(0)
        m = build("contractive-ae", data, lam=lam, arch="mlp", hidden=[8], lr=1e-2)
        Trainer(tiny_trainer(epochs=5)).fit(m, data)
        g = torch.Generator().manual_seed(0)
        return float(m.jacobian_norm(data.x, n_projections=200, generator=g).detach().mean())

    assert trained(1.0) < 0.3 * trained(0.0)  # measured ratios 0.04-0.07 over seeds 0-2


# ------------------------------------------------------------------------------ distance
def test_input_distances_match_cdist_and_a_loop_over_shared_entries():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 1, 2, 3, generator=g)  # flattened to 6 entries per row
    torch.testing.assert_close(input_distances(x), torch.cdist(x.flatten(1), x.flatten(1)))
    observed = torch.rand(6, 1, 2, 3, generator=g) > 0.4
    observed[5] = False  # a row with nothing observed
    observed[4] = False
    observed[4, 0, 0, 0] = True  # shares at most one entry with the others
    xm = x.masked_fill(~observed, 123.0)  # what sits in the missing entries must not matter
    got = input_distances(xm, observed)
    xf, of = x.flatten(1).double(), observed.flatten(1)
    for i in range(6):
        for j in range(6):
            both = of[i] & of[j]
            if not both.any():
                assert torch.isnan(got[i, j])
                continue
            ref = math.sqrt(float(((xf[i] - xf[j])[both] ** 2).sum()) * 6 / int(both.sum()))
            assert float(got[i, j]) == pytest.approx(ref, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("log", [False, True])
def test_distance_stress_is_zero_for_a_scaled_copy_and_matches_a_loop(log):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(7, 5, generator=g)
    dx = input_distances(x)
    assert float(distance_stress(3.0 * x, dx, log=log)) < 1e-8  # any scale, same ratios: no stress
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g))
    assert float(distance_stress(0.5 * x @ q, dx, log=log)) < 1e-8  # rotated too
    z = torch.randn(7, 3, generator=g)
    pairs = [(i, j) for i in range(7) for j in range(7) if i != j]
    a = [float(torch.dist(z[i], z[j])) for i, j in pairs]
    b = [float(dx[i, j]) for i, j in pairs]
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    if log:
        ref = sum((math.log(u / ma + 1e-6) - math.log(v / mb + 1e-6)) ** 2 for u, v in zip(a, b)) / len(a)
    else:
        ref = sum((u / ma - v / mb) ** 2 for u, v in zip(a, b)) / len(a)
    assert float(distance_stress(z, dx, log=log)) == pytest.approx(ref, rel=1e-4)
    dx_nan = dx.clone()
    dx_nan[0, 1] = dx_nan[1, 0] = float("nan")  # a pair with no shared entry is left out
    assert math.isfinite(float(distance_stress(z, dx_nan, log=log)))
    assert float(distance_stress(z[:1], dx[:1, :1], log=log)) == 0.0  # one row: no pair
    dup_x = x.clone()
    dup_x[1] = dup_x[0]  # identical inputs, and identical codes: cdist's zero distances must not give NaN gradients
    zg = z.clone().requires_grad_(True)
    with torch.no_grad():
        zg[3] = zg[2]
    (g,) = torch.autograd.grad(distance_stress(zg, input_distances(dup_x), log=log), zg)
    assert torch.isfinite(g).all()


def test_distance_term_enters_the_loss_and_training_keeps_distances(tabular_data):
    data = tabular_data.standardized()
    x = data.x[:16]
    model = build("distance-ae", data, latent_dim=2, distance_weight=0.7)
    out = model.training_step({"x": x}, 0)
    log_model = build("distance-ae", data, latent_dim=2, distance_weight=0.7, distance="log")
    zl = log_model.encode(x)
    torch.testing.assert_close(log_model.training_step({"x": x}, 0)["loss"],
                               F.mse_loss(log_model.decode(zl), x) + 0.7 * distance_stress(zl, input_distances(x),
                                                                                          log=True))
    z = model.encode(x)
    stress = distance_stress(z, input_distances(x))  # the default: distance="linear"
    torch.testing.assert_close(out["loss"], F.mse_loss(model.decode(z), x) + 0.7 * stress)
    torch.testing.assert_close(out["stress"], stress.detach())

    def trained(weight, seed):
        seed_everything(seed)
        m = build("distance-ae", data, latent_dim=2, distance_weight=weight, lr=1e-2)
        Trainer(tiny_trainer(epochs=40)).fit(m, data, data)
        with torch.no_grad():
            return float(distance_stress(m.encode(data.x), input_distances(data.x)))
    for seed in (0, 1):
        assert trained(3.0, seed) < 0.1 * trained(0.0, seed)  # measured ratios 0.004-0.026 over seeds 0-3


def test_distance_ae_trains_with_missing_entries(tabular_data):
    data = tabular_data.standardized()
    x = data.x.clone()
    x[::3, 1] = float("nan")
    x[1::4, 3] = float("nan")
    model = build("distance-ae", data, distance_weight=1.0)
    out = model.training_step({"x": x[:16]}, 0)
    assert math.isfinite(float(out["loss"])) and math.isfinite(float(out["stress"]))
    out["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("name,cfg,words", [
    ("sparse-ae", {"rho": 0.0}, "rho must be in (0, 1)"),
    ("sparse-ae", {"rho": 1.0}, "rho must be in (0, 1)"),
    ("sparse-ae", {"rho": 1.5}, "rho must be in (0, 1)"),
    ("sparse-ae", {"l1": -0.1}, "l1 must be >= 0"),
    ("sparse-ae", {"sparsity_weight": -1.0}, "sparsity_weight must be >= 0"),
    ("sparse-ae", {"k_sparse": 0}, "k_sparse must be null or in [1, latent_dim=4]"),
    ("sparse-ae", {"k_sparse": 5}, "k_sparse must be null or in [1, latent_dim=4]"),
    ("denoising-ae", {"level": -0.1}, "level (mask probability) must be in [0, 1)"),  # default noise: mask
    ("denoising-ae", {"noise": "gaussian", "level": -0.1}, "level (gaussian sigma) must be >= 0"),
    ("denoising-ae", {"noise": "mask", "level": 1.0}, "level (mask probability) must be in [0, 1)"),
    ("denoising-ae", {"noise": "mask", "level": -0.2}, "level (mask probability) must be in [0, 1)"),
    ("denoising-ae", {"noise": "salt_pepper", "level": 1.0}, "level (salt_pepper probability) must be in [0, 1)"),
    ("denoising-ae", {"noise": "speckle"}, "noise"),
    ("contractive-ae", {"lam": -1.0}, "lam must be >= 0"),
    ("contractive-ae", {"n_projections": 0}, "n_projections must be >= 1"),
    ("contractive-ae", {"encoder_activation": "tanh"}, "encoder_activation"),
    ("distance-ae", {"distance_weight": -0.1}, "distance_weight must be >= 0"),
    ("distance-ae", {"distance_weight": float("inf")}, "distance_weight: must be a finite number"),
    ("distance-ae", {"distance_weight": float("nan")}, "distance_weight: must be a finite number"),
    ("distance-ae", {"distance": "cosine"}, "distance: expected one of 'linear' | 'log'"),
] + [(n, {"latent_dim": 0}, "latent_dim must be >= 1") for n in FAMILY])
def test_bad_input_is_a_one_line_config_error(name, cfg, words):
    entry = get_model_entry(name)
    with pytest.raises(ConfigError) as info:
        from_dict(entry.config_cls, {"latent_dim": 4, **cfg})
    msg = str(info.value)
    assert words in msg and "\n" not in msg


def test_gaussian_level_may_exceed_one(tabular_data):
    build("denoising-ae", tabular_data.standardized(), noise="gaussian", level=1.5)  # sigma has no upper bound
