"""Latent tools (genlab.apps.latent): LatentExplorer, figures, ``genlab interpolate`` and ``genlab latent-map``
(the interpolation maths has its closed-form tests in tests/test_latent_math.py)."""
import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.base import clone

from genlab.apps import LatentExplorer, lerp, slerp
from genlab.apps.latent import knn_accuracy, plot_interpolation, plot_latent_map, plot_traversal
from genlab.cli import main
from genlab.errors import CheckpointError, ConfigError, DataError
from tests.conftest import run_cli, tiny_trainer

TRAINER = tiny_trainer(batch_size=32)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """These tiny models gain nothing from a second thread, and on a loaded 2-core box torch's busy-waiting
    OpenMP workers made each backward pass ~30x slower; restored after the module."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _images(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(4, 1, 8, 8, generator=g)
    y = torch.arange(n) % 4
    x = (base[y] * 0.8 + 0.2 * torch.rand(n, 1, 8, 8, generator=g)).clamp(0, 1)
    return x.numpy(), y.numpy()


@pytest.fixture(scope="module")
def data():
    return _images()


def _fit(model, data, latent_dim=3, **kw):
    x, y = data
    return LatentExplorer(model=model, epochs=2, model_config={"latent_dim": latent_dim}, trainer_config=TRAINER,
                          **kw).fit(x, y)


@pytest.fixture(scope="module")
def vae(data):
    return _fit("vae", data)


@pytest.fixture(scope="module")
def ae(data):
    return _fit("ae", data)


@pytest.fixture(scope="module")
def cvae(data):
    return _fit("cvae", data)


@pytest.fixture(scope="module")
def gan(data):
    return _fit("gan", data, latent_dim=4)


# ---------------------------------------------------------------------------- the estimator
def test_interpolation_endpoints_are_the_reconstructions(vae, ae, data):
    x, _ = data
    for ex in (vae, ae):
        for method in ("linear", "spherical"):
            frames, codes = ex.interpolate(x[0], x[5], steps=6, method=method, return_codes=True)
            assert frames.shape == (6, 1, 8, 8) and codes.shape == (6, 3)
            np.testing.assert_allclose(frames[0], ex.decode(ex.encode(x[:1]))[0], atol=1e-6)
            np.testing.assert_allclose(frames[-1], ex.decode(ex.encode(x[5:6]))[0], atol=1e-6)
            fn = lerp if method == "linear" else slerp
            z = ex.encode(x[[0, 5]])
            np.testing.assert_allclose(codes, fn(z[0], z[1], 6), atol=1e-6)
            np.testing.assert_allclose(frames, ex.decode(codes), atol=1e-6)
    # a VAE's code is the posterior mean
    with torch.no_grad():
        mu = vae.model_.posterior(torch.tensor(x[:4]))[0].numpy()
    np.testing.assert_allclose(vae.encode(x[:4]), mu, atol=1e-6)
    # (H, W) single images are accepted for 1-channel data
    frames = vae.interpolate(x[0], x[5], steps=6)
    np.testing.assert_array_equal(vae.interpolate(x[0, 0], x[5, 0], steps=6), frames)
    assert frames.min() >= 0 and frames.max() <= 1


def test_traversal_varies_only_the_chosen_dim(vae, ae, data):
    x, _ = data
    frames, codes = vae.traverse(x[3], dims=[2, 0], span=2.0, steps=5, return_codes=True)
    assert frames.shape == (2, 5, 1, 8, 8) and codes.shape == (2, 5, 3)
    z0 = vae.encode(x[3:4])[0]
    for i, d in enumerate([2, 0]):
        others = [k for k in range(3) if k != d]
        np.testing.assert_allclose(codes[i][:, others], np.tile(z0[others], (5, 1)), atol=1e-6)
        np.testing.assert_allclose(codes[i][:, d], z0[d] + np.linspace(-2, 2, 5), atol=1e-6)  # prior std = 1
    np.testing.assert_allclose(frames.reshape(10, 1, 8, 8), vae.decode(codes.reshape(10, 3)), atol=1e-6)
    # no x: around the prior mean 0 for a VAE
    _, codes = vae.traverse(steps=3, return_codes=True)
    assert codes.shape == (3, 3, 3)
    np.testing.assert_allclose(codes[1][:, [0, 2]], 0.0)
    np.testing.assert_allclose(codes[1][:, 1], [-3, 0, 3], atol=1e-6)
    # an AE: around the mean training code, in training-code std units
    zt = ae.encode(x)
    np.testing.assert_allclose(ae.code_center_, zt.mean(0), atol=1e-5)
    np.testing.assert_allclose(ae.code_scale_, zt.std(0), atol=1e-5)
    _, codes = ae.traverse(dims=1, span=1.0, steps=3, return_codes=True)
    np.testing.assert_allclose(codes[0][:, 1], zt.mean(0)[1] + np.array([-1, 0, 1]) * zt.std(0)[1], atol=1e-5)
    np.testing.assert_allclose(codes[0][:, [0, 2]], np.tile(zt.mean(0)[[0, 2]], (3, 1)), atol=1e-5)


def test_arithmetic_is_decode_of_the_hand_computed_code(vae, data):
    x, _ = data
    out, z = vae.arithmetic(x[0], x[1], x[2], return_codes=True)
    za, zb, zc = vae.encode(x[:3])
    np.testing.assert_allclose(z, za - zb + zc, atol=1e-6)
    np.testing.assert_allclose(out, vae.decode((za - zb + zc)[None])[0], atol=1e-6)
    assert out.shape == (1, 8, 8)
    # groups: the mean code of each group
    out = vae.arithmetic(x[0:4], x[4:6], x[6])
    zz = vae.encode(x[:7])
    np.testing.assert_allclose(out, vae.decode((zz[0:4].mean(0) - zz[4:6].mean(0) + zz[6])[None])[0], atol=1e-6)


def test_latent_map_pca_equals_an_independent_svd(vae, data):
    x, y = data
    xy = vae.latent_map(x, y, method="pca")
    assert xy.shape == (48, 2)
    z = vae.encode(x).astype(np.float64)
    zc = z - z.mean(0)
    _, _, vt = np.linalg.svd(zc, full_matrices=False)
    ref = zc @ vt[:2].T
    for j in range(2):  # components are defined up to sign
        s = np.sign(ref[:, j] @ xy[:, j])
        np.testing.assert_allclose(xy[:, j], s * ref[:, j], atol=1e-5)
    n_threads = torch.get_num_threads()
    ts = vae.latent_map(x, method="tsne", random_state=0)
    assert torch.get_num_threads() == n_threads  # scikit-learn ran with one torch thread, then restored
    assert ts.shape == (48, 2) and np.isfinite(ts).all()
    np.testing.assert_array_equal(ts, vae.latent_map(x, method="tsne", random_state=0))  # seeded


def test_tsne_map_standardizes_the_codes(ae, vae, data):
    """By default the codes (AE and VAE) are standardised per dimension before t-SNE: the map equals t-SNE of
    the hand-standardised codes; standardize=False gives t-SNE of the raw codes; bad values refused."""
    from sklearn.manifold import TSNE

    from genlab.apps.latent import standardize_codes
    x, _ = data
    z = ae.encode(x).astype(np.float64) * np.array([100.0, 1.0, 0.01])  # wildly different scales
    s = standardize_codes(z)
    np.testing.assert_allclose(s.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(s.std(0), 1, rtol=1e-9)
    np.testing.assert_array_equal(standardize_codes(np.ones((5, 2))), np.zeros((5, 2)))  # constant: centred only

    def tsne(c):
        return TSNE(n_components=2, init="pca", perplexity=min(30.0, 47 / 3), random_state=0).fit_transform(c)
    for est in (ae, vae):
        zz = est.encode(x).astype(np.float64)
        np.testing.assert_allclose(est.latent_map(x, method="tsne"), tsne(standardize_codes(zz)), atol=1e-6)
        np.testing.assert_allclose(est.latent_map(x, method="tsne", standardize=False), tsne(zz), atol=1e-6)
    with pytest.raises(ConfigError, match="standardize must be 'auto', True or False"):
        ae.latent_map(x, method="tsne", standardize="yes")


def test_tsne_map_of_a_distance_preserving_model_keeps_its_codes_as_they_are(data):
    """standardize="auto" (the default): a distance-ae's codes are mapped as they are (its distances were trained),
    the other models' codes standardised; True / False force either."""
    from sklearn.manifold import TSNE

    from genlab.apps.latent import standardize_codes
    x, _ = data
    dist = _fit("distance-ae", data)
    assert dist.model_.distance_preserving and not dist.standardizes_codes() and dist.standardizes_codes(True)
    z = dist.encode(x).astype(np.float64)

    def tsne(c):
        return TSNE(n_components=2, init="pca", perplexity=min(30.0, 47 / 3), random_state=0).fit_transform(c)
    raw = tsne(z)
    np.testing.assert_allclose(dist.latent_map(x, method="tsne"), raw, atol=1e-6)
    np.testing.assert_allclose(dist.latent_map(x, method="tsne", standardize="auto"), raw, atol=1e-6)
    np.testing.assert_allclose(dist.latent_map(x, method="tsne", standardize=True), tsne(standardize_codes(z)),
                               atol=1e-6)
    assert not np.allclose(raw, tsne(standardize_codes(z)), atol=1e-3)  # the two maps differ on these codes
    plain = LatentExplorer(model="distance-ae", epochs=1, model_config={"latent_dim": 3, "distance_weight": 0.0},
                           trainer_config=TRAINER, verbose=False).fit(x)
    assert not plain.model_.distance_preserving and plain.standardizes_codes()  # weight 0: a plain ae
    with pytest.raises(ConfigError, match="standardize must be 'auto', True or False, got 'yes'"):
        dist.standardizes_codes("yes")


def test_tsne_map_of_the_first_principal_components(ae, data):
    """pca_components=K: t-SNE of the first K principal components of the standardised codes, computed here with
    numpy's SVD (signs as scikit-learn's PCA sets them: the largest entry of each axis positive); bad values
    refused with one line."""
    from sklearn.manifold import TSNE

    x, _ = data
    s = ae.encode(x).astype(np.float64)
    s = (s - s.mean(0)) / s.std(0)
    u, sv, vt = np.linalg.svd(s - s.mean(0), full_matrices=False)
    signs = np.sign(vt[range(len(vt)), np.argmax(np.abs(vt), axis=1)])  # scikit-learn's svd_flip (Vt-based)
    pcs = (u * sv * signs)[:, :2]
    want = TSNE(n_components=2, init="pca", perplexity=min(30.0, 47 / 3), random_state=0).fit_transform(pcs)
    got = ae.latent_map(x, method="tsne", pca_components=2)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert not np.allclose(got, ae.latent_map(x, method="tsne"), atol=1e-3)  # it changes the map (3-D codes)
    for bad, msg in ((1, "integer >= 2"), (2.0, "integer >= 2"), (True, "integer >= 2"), (4, r"in \[2, 3\]")):
        with pytest.raises(ConfigError, match=msg) as e:
            ae.latent_map(x, method="tsne", pca_components=bad)
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="goes with method='tsne'"):
        ae.latent_map(x, method="pca", pca_components=2)


def test_shifted_copies_match_a_numpy_roll_reference():
    from genlab.apps.latent import shifted_copies
    x = torch.rand(3, 2, 5, 6)
    got = shifted_copies(x).numpy()
    a = x.numpy()
    want = [a]
    for axis, step in ((2, 1), (2, -1), (3, 1), (3, -1)):
        r = np.roll(a, step, axis=axis)
        idx = [slice(None)] * 4
        idx[axis] = 0 if step > 0 else -1  # the wrapped row / column is zero
        r[tuple(idx)] = 0
        want.append(r)
    np.testing.assert_array_equal(got, np.concatenate(want))


def test_shift_copies_trains_on_the_shifted_copies(data, tmp_path):
    """shift_copies=True = fitting the same explorer on shifted_copies(X) by hand (same seed: the same model);
    codes and the traversal centre are of X itself; bad uses refused with one line."""
    from genlab.apps.latent import shifted_copies
    x, _ = data
    kw = {"model": "ae", "epochs": 1, "model_config": {"latent_dim": 3}, "trainer_config": TRAINER}
    a = LatentExplorer(shift_copies=True, **kw).fit(x)
    b = LatentExplorer(**kw).fit(shifted_copies(torch.as_tensor(x)).numpy())
    plain = LatentExplorer(**kw).fit(x)
    np.testing.assert_allclose(a.encode(x), b.encode(x), atol=1e-5)
    assert not np.allclose(a.encode(x), plain.encode(x), atol=1e-3)
    np.testing.assert_allclose(a.code_center_, a.encode(x).mean(0), atol=1e-5)
    a.save(tmp_path / "s")
    loaded = LatentExplorer.load(tmp_path / "s")
    assert loaded.shift_copies is True
    np.testing.assert_allclose(loaded.encode(x), a.encode(x), atol=1e-6)
    for bad, kwargs, msg in (("yes", {}, "shift_copies must be True or False"),
                             (True, {"model": a.model_}, "registered model name"),):
        with pytest.raises(ConfigError, match=msg) as e:
            LatentExplorer(**{**kw, **kwargs, "shift_copies": bad}).fit(x)
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="shifts images") as e:
        LatentExplorer(**{**kw, "shift_copies": True}).fit(np.random.default_rng(0).normal(size=(30, 4)))
    assert "\n" not in str(e.value)


def test_ensemble_map_is_the_map_of_the_members_codes_side_by_side(ae, data, tmp_path):
    """``n_ensemble=2``: model_ is the single explorer's model (seed 0), member_1_ the seed-1 model; the t-SNE map
    is t-SNE of both models' codes side by side, standardised per dimension; PCA maps the raw side-by-side codes;
    every other method uses model_ alone; save/load keeps the member."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    from genlab.apps.latent import standardize_codes
    x, _ = data
    ens = _fit("ae", data, n_ensemble=2)
    other = _fit("ae", data, random_state=1)
    assert ens._members() == [ens.model_, ens.member_1_] and ens.member_2_ is None
    for m, single in ((ens.model_, ae.model_), (ens.member_1_, other.model_)):
        for a, b in zip(m.state_dict().values(), single.state_dict().values()):
            assert torch.equal(a, b)
    z = np.hstack([ae.encode(x), other.encode(x)]).astype(np.float64)  # (48, 6)
    tsne = TSNE(n_components=2, init="pca", perplexity=min(30.0, 47 / 3), random_state=0).fit_transform
    np.testing.assert_allclose(ens.latent_map(x, method="tsne"), tsne(standardize_codes(z)), atol=1e-6)
    np.testing.assert_allclose(ens.latent_map(x, method="tsne", standardize=False), tsne(z), atol=1e-6)
    np.testing.assert_allclose(np.abs(ens.latent_map(x, method="pca")),
                               np.abs(PCA(2, svd_solver="full").fit_transform(z)), atol=1e-5)
    np.testing.assert_array_equal(ens.encode(x), ae.encode(x))  # the first model alone
    loaded = LatentExplorer.load(ens.save(tmp_path / "ens"))
    assert loaded.member_1_ is not None
    np.testing.assert_array_equal(loaded.latent_map(x, method="tsne"), ens.latent_map(x, method="tsne"))


@pytest.mark.parametrize("n", [0, 11, 1.5, True, "2"])
def test_bad_n_ensemble(n, data):
    with pytest.raises(ConfigError, match=r"n_ensemble must be an integer in \[1, 10\]") as e:
        LatentExplorer(model="ae", n_ensemble=n).fit(data[0])
    assert "\n" not in str(e.value)


def test_n_ensemble_needs_an_unconditional_encoder_name(ae, data):
    with pytest.raises(ConfigError, match="registered model name"):
        LatentExplorer(model=ae.model_, n_ensemble=2).fit(data[0])
    for name, cap in (("gan", "has_encoder"), ("cvae", "conditional")):
        with pytest.raises(ConfigError, match=cap) as e:
            LatentExplorer(model=name, n_ensemble=2).fit(*data)
        assert "\n" not in str(e.value)


def test_knn_accuracy_matches_a_hand_checked_case():
    # two well-separated clusters: perfect; labels unrelated to position: far below 1
    rng = np.random.default_rng(0)
    pts = np.vstack([rng.normal(0, 0.1, (20, 2)), rng.normal(10, 0.1, (20, 2))])
    y = np.repeat([0, 1], 20)
    assert knn_accuracy(pts, y) == 1.0
    assert knn_accuracy(pts, np.tile([0, 1], 20)) < 0.8
    with pytest.raises(DataError, match="two classes"):
        knn_accuracy(pts, np.zeros(40))


def test_cvae_uses_labels(cvae, data):
    x, y = data
    f2 = cvae.interpolate(x[0], x[1], steps=4, labels=2)
    z = cvae.encode(x[[0, 1]], labels=2)
    np.testing.assert_allclose(f2, cvae.decode(lerp(z[0], z[1], 4), labels=2), atol=1e-6)
    inferred = cvae.infer_labels(x[:1])
    np.testing.assert_allclose(cvae.interpolate(x[0], x[1], steps=4),
                               cvae.interpolate(x[0], x[1], steps=4, labels=int(inferred[0])), atol=0)
    assert cvae.traverse(x[0], steps=3).shape == (3, 3, 1, 8, 8)
    with pytest.raises(ConfigError, match="needs labels"):
        cvae.traverse(steps=3)
    with pytest.raises(ConfigError, match="needs labels"):
        cvae.decode(np.zeros((2, 3)))
    with pytest.raises(ConfigError, match=r"labels must be in \[0, 3\]"):
        cvae.decode(np.zeros((2, 3)), labels=7)
    assert cvae.latent_map(x, y).shape == (48, 2)


def test_gan_decodes_codes_but_cannot_encode(gan, data):
    x, _ = data
    assert not gan.has_encoder_ and gan.prior_
    for call, what in ((lambda: gan.encode(x), "encode"), (lambda: gan.interpolate(x[0], x[1]), "interpolate"),
                       (lambda: gan.traverse(x[0]), r"traverse\(x=...\)"), (lambda: gan.latent_map(x), "latent_map"),
                       (lambda: gan.arithmetic(x[0], x[1], x[2]), "arithmetic")):
        with pytest.raises(ConfigError, match=f"model 'gan' lacks the capability 'has_encoder' .* that "
                                              f"LatentExplorer.{what} needs; use one of: ae, .*vae") as e:
            call()
        assert "\n" not in str(e.value)
    za, zb = np.zeros(4), np.ones(4)
    frames, codes = gan.interpolate_codes(za, zb, steps=5, method="spherical", return_codes=True)
    assert frames.shape == (5, 1, 8, 8)
    np.testing.assert_allclose(codes, slerp(za, zb, 5), atol=1e-6)
    np.testing.assert_allclose(frames, gan.decode(slerp(za, zb, 5)), atol=1e-6)
    assert gan.traverse(dims=[0, 3], steps=4).shape == (2, 4, 1, 8, 8)


def test_estimator_errors(vae, data):
    x, _ = data
    with pytest.raises(ConfigError, match=r"steps must be an integer in \[2, 10000\]"):
        vae.interpolate(x[0], x[1], steps=1)
    with pytest.raises(ConfigError, match="unknown interpolation method 'cubic'"):
        vae.interpolate(x[0], x[1], method="cubic")
    with pytest.raises(ConfigError, match="unknown map method 'umap'"):
        vae.latent_map(x, method="umap")
    with pytest.raises(ConfigError, match=r"dims must be latent dimensions in \[0, 2\]"):
        vae.traverse(dims=[3])
    with pytest.raises(ConfigError, match="span must be"):
        vae.traverse(span=0)
    with pytest.raises(DataError, match="one sample"):
        vae.interpolate(x[:2], x[1])
    with pytest.raises(DataError, match="shape"):
        vae.encode(np.zeros((2, 1, 6, 6)))
    with pytest.raises(DataError, match=r"Z must have shape \(N, 3\)"):
        vae.decode(np.zeros((2, 5)))
    with pytest.raises(ConfigError, match="unconditional"):
        vae.decode(np.zeros((2, 3)), labels=1)
    with pytest.raises(ConfigError, match="not fitted"):
        LatentExplorer().encode(x)


def test_clone_and_save_load_round_trip(ae, data, tmp_path):
    x, _ = data
    c = clone(ae)
    assert c.get_params() == ae.get_params() and not hasattr(c, "model_")
    ae.save(tmp_path / "ex")
    back = LatentExplorer.load(tmp_path / "ex")
    for k in ("latent_dim_", "has_encoder_", "prior_", "conditional_", "model_name_", "input_shape_", "kind_"):
        assert getattr(back, k) == getattr(ae, k), k
    np.testing.assert_array_equal(back.code_center_, ae.code_center_)
    np.testing.assert_array_equal(back.code_scale_, ae.code_scale_)
    np.testing.assert_array_equal(back.traverse(x[0], steps=3), ae.traverse(x[0], steps=3))
    np.testing.assert_array_equal(back.interpolate(x[0], x[1], method="spherical"),
                                  ae.interpolate(x[0], x[1], method="spherical"))
    (tmp_path / "ex" / "state.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot be read"):
        LatentExplorer.load(tmp_path / "ex")


def test_tabular_rows_in_raw_units(tmp_path):
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(60, 2, generator=g) @ torch.randn(2, 5, generator=g) * 10 + 100).numpy()
    ex = LatentExplorer(model="ae", epochs=2, model_config={"latent_dim": 2}, trainer_config=TRAINER).fit(x)
    frames = ex.interpolate(x[0], x[1], steps=4)
    assert frames.shape == (4, 5)
    np.testing.assert_allclose(frames[0], ex.decode(ex.encode(x[:1]))[0], rtol=1e-5)
    assert abs(frames.mean() - 100) < 60  # raw units, not standardised ones
    # the model standardises by the std of its training split (the 90% left after the validation split)
    train = x[torch.randperm(60, generator=torch.Generator().manual_seed(0))[6:].numpy()]
    np.testing.assert_allclose(ex.feature_scale(), train.std(0), rtol=1e-4)
    plot_interpolation(frames, tmp_path / "i.png", feature_scale=ex.feature_scale())
    plot_traversal(ex.traverse(steps=3), tmp_path / "t.png")
    for f in ("i.png", "t.png"):
        assert Image.open(tmp_path / f).size[0] > 50


def test_figures_are_loadable_pngs(vae, data, tmp_path):
    x, y = data
    plot_interpolation(vae.interpolate(x[0], x[1], steps=5), tmp_path / "i.png")
    plot_traversal(vae.traverse(steps=4), tmp_path / "t.png")
    plot_latent_map(vae.latent_map(x), y, tmp_path / "m.png", class_names=list("abcd"), title="map")
    plot_latent_map(vae.latent_map(x), None, tmp_path / "m2.png")
    plot_latent_map(vae.latent_map(x), np.linspace(0, 1, 48), tmp_path / "m3.png")  # continuous: colour bar
    assert vae.feature_scale() is None  # images
    # labelled grids (io.plots.labelled_grid): the bare grid of 8x8 tiles enlarged to 48x48 with 1-pixel padding,
    # (cols * 49 + 1, rows * 49 + 1), plus the row/column labels around it; the aspect follows the grid's
    wi, hi = Image.open(tmp_path / "i.png").size  # one row of 5 steps
    wt, ht = Image.open(tmp_path / "t.png").size  # 3 dims x 4 offsets
    assert wi >= 5 * 49 + 1 and hi >= 49 + 1 and wi > 2 * hi
    assert wt >= 4 * 49 + 1 and ht >= 3 * 49 + 1 and ht > hi
    for f in ("m.png", "m2.png", "m3.png"):
        im = Image.open(tmp_path / f)
        im.load()
        assert im.size[0] > 300
    with pytest.raises(DataError, match=r"\(N, 2\)"):
        plot_latent_map(np.zeros((4, 3)), None, tmp_path / "bad.png")


# ---------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def npz(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("lat") / "tiny.npz"
    np.savez(p, x=data[0], y=data[1])
    return p


def test_cli_interpolate_end_to_end(npz, tmp_path):
    out = tmp_path / "o"
    r = run_cli(  # a real subprocess: the entry point, the rich table on stdout and exit 0
        "interpolate", npz, "--out", out, "--a", "2", "--b", "5", "--steps", "6", "--method", "spherical",
                "--traverse", "--epochs", "2", "--set", "latent_dim=3", "--save", tmp_path / "est")
    assert r.returncode == 0, r.stderr
    for f in ("interpolation.png", "interpolation.npz", "traversal.png", "traversal.npz", "metrics.json",
              "report.html"):
        assert (out / f).is_file(), f
    m = json.loads((out / "metrics.json").read_text())
    assert m["a"] == 2 and m["b"] == 5 and m["steps"] == 6 and m["method"] == "spherical"
    assert "interpolation.png" in (out / "report.html").read_text() and "endpoint_mse_a" in r.stdout
    arr = np.load(out / "interpolation.npz")
    assert arr["x"].shape == (6, 1, 8, 8) and arr["z"].shape == (6, 3)
    assert np.load(out / "traversal.npz")["x"].shape == (3, 7, 1, 8, 8)
    Image.open(out / "interpolation.png").load()
    # the saved estimator gives the same frames (in process, reusing --run)
    ex = LatentExplorer.load(tmp_path / "est")
    x = np.load(npz)["x"]
    np.testing.assert_allclose(arr["x"], ex.interpolate(x[2], x[5], steps=6, method="spherical"), atol=1e-6)
    out2 = tmp_path / "o2"
    assert main(["interpolate", str(npz), "--out", str(out2), "--run", str(tmp_path / "est"), "--steps", "3"]) == 0
    m2 = json.loads((out2 / "metrics.json").read_text())
    assert m2["a"] == 0 and m2["b"] == 1  # default b: first sample with another label
    assert not (out2 / "traversal.png").exists()


def test_cli_latent_map_end_to_end(npz, tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["latent-map", str(npz), "--out", str(out), "--method", "pca", "-n", "40", "--epochs", "2",
                 "--set", "latent_dim=2"]) == 0
    rows = list(csv.DictReader((out / "latent_map.csv").open()))
    assert len(rows) == 40 and set(rows[0]) == {"x", "y", "label"}
    m = json.loads((out / "metrics.json").read_text())
    assert m["samples"] == 40 and 0 <= m["knn5_accuracy_2d"] <= 1 and m["chance_accuracy"] == pytest.approx(
        np.bincount([int(r["label"]) for r in rows]).max() / 40)
    Image.open(out / "latent_map.png").load()
    assert (out / "report.html").is_file() and "knn5_accuracy_2d" in capsys.readouterr().out


def test_cli_latent_map_pca_components_and_shift_copies(npz, tmp_path):
    out = tmp_path / "m"
    assert main(["latent-map", str(npz), "--out", str(out), "--method", "tsne", "--pca-components", "2",
                 "--shift-copies", "--model", "ae", "--epochs", "1", "--set", "latent_dim=3", "--save",
                 str(tmp_path / "est")]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["pca_components"] == 2 and m["shift_copies"] is True
    est = LatentExplorer.load(tmp_path / "est")
    assert est.shift_copies is True
    x = np.load(npz)["x"]
    rows = list(csv.DictReader((out / "latent_map.csv").open()))
    want = est.latent_map(x, method="tsne", random_state=0, pca_components=2)  # -n keeps all 48, seed 0
    np.testing.assert_allclose([[float(r["x"]), float(r["y"])] for r in rows], want, atol=1e-4)


@pytest.mark.parametrize("args, msg", [
    (["latent-map", "{npz}", "--pca-components", "2"], "--pca-components must be an integer >= 2 and goes with "
                                                        "--method tsne"),
    (["latent-map", "{npz}", "--method", "tsne", "--pca-components", "1"], "--pca-components must be"),
    (["latent-map", "{npz}", "--method", "tsne", "--pca-components", "9", "--epochs", "1", "--set",
      "latent_dim=3"], "in [2, 3]"),
    (["interpolate", "{npz}", "--a", "48"], "--a 48 is out of range"),
    (["interpolate", "{npz}", "--b", "-1"], "--b -1 is out of range"),
    (["interpolate", "{npz}", "--steps", "1"], "steps must be an integer in [2, 10000]"),
    (["interpolate", "{npz}", "--method", "cubic"], "unknown interpolation method 'cubic'"),
    (["interpolate", "{npz}", "--model", "gan", "--a", "1"], "model 'gan' lacks the capability 'has_encoder'"),
    (["latent-map", "{npz}", "--method", "umap"], "unknown --method 'umap'"),
    (["latent-map", "{npz}", "--model", "gan"], "model 'gan' lacks the capability 'has_encoder'"),
    (["latent-map", "{missing}"], "missing"),
    (["latent-map", "{bad}"], "expected [0, 1]"),  # float pixels outside [0, 1]
])
def test_cli_bad_input_is_one_line_exit_2(npz, tmp_path, capsys, args, msg):
    np.savez(tmp_path / "bad.npz", x=np.full((4, 8, 8), 3.5))
    argv = [a.format(npz=npz, missing=tmp_path / "missing.npz", bad=tmp_path / "bad.npz") for a in args]
    argv += ["--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("genlab: error:") and msg in err and "\n" not in err
    assert not (tmp_path / "o" / "metrics.json").exists()
