"""Augmenter: shapes, labels and determinism of generated samples, folders/.npz readable by load_dataset,
fit_resample, errors, sklearn rules and the augment CLI."""
import json

import numpy as np
import pytest
import torch
from sklearn.base import clone

import genlab
from genlab.apps import Augmenter
from genlab.apps.augment import folder_names
from genlab.cli import main
from genlab.errors import ConfigError, DataError
from tests.conftest import run_cli

FAST = {"precision": "fp32", "channels_last": False}


def _data(n=64, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(k, 1, 8, 8, generator=g)
    y = torch.arange(n) % k
    x = (base[y] * 0.8 + 0.2 * torch.rand(n, 1, 8, 8, generator=g)).clamp(0, 1)
    return x.numpy(), y.numpy()


def _aug(**kw):
    """A small Augmenter; ``shift_copies=0`` (real images only) unless given: the tests of the copies and of
    ``"auto"`` are their own."""
    params = {"n_per_class": 3, "epochs": 2, "batch_size": 16, "trainer_config": FAST, "validation_fraction": 0.0,
              "model_config": {"latent_dim": 2, "arch": "mlp", "hidden": [32]},  # MLP: fast on a busy CPU
              "shift_copies": 0}
    params.update(kw)
    return Augmenter(**params)


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def aug(data):
    return _aug().fit(*data)


def test_generate_shapes_labels_and_determinism(aug):
    X, y = aug.generate()
    assert X.shape == (12, 1, 8, 8) and X.dtype == np.float32 and 0 <= X.min() and X.max() <= 1
    assert y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert aug.classes_.tolist() == [0, 1, 2, 3] and aug.class_counts_ == [16, 16, 16, 16]
    X2, _ = aug.generate()
    np.testing.assert_array_equal(X, X2)
    X3, _ = aug.generate(random_state=1)
    assert not np.allclose(X, X3)
    # class k's samples do not depend on which other classes are asked for
    X4, y4 = aug.generate(classes=[2, 0])
    assert y4.tolist() == [2, 2, 2, 0, 0, 0]
    np.testing.assert_array_equal(X4[:3], X[y == 2])
    X5, y5 = aug.generate(5, classes=[1])
    assert X5.shape == (5, 1, 8, 8) and (y5 == 1).all()
    np.testing.assert_allclose(X5[:3], X[y == 1], rtol=0, atol=1e-6)  # same noise (batch size changes rounding)
    X0, y0 = aug.generate(0)
    assert X0.shape == (0, 1, 8, 8) and y0.shape == (0,)


def test_samples_come_from_the_model_with_the_class_label(aug, data):
    from genlab.apps.augment import _class_seed
    prior = _aug(sampling="prior", model=aug.model_).fit(*data)
    assert prior.sampling_ == "prior" and prior.source_mu_ is None
    g = torch.Generator().manual_seed(_class_seed(aug.random_state, 3))
    want = aug.model_.sample(3, labels=torch.full((3,), 3), generator=g).numpy()
    X, _ = prior.generate(classes=[3])
    np.testing.assert_allclose(X, want, rtol=0, atol=1e-7)


def test_neighbourhood_samples_decode_perturbed_posteriors_of_the_real_samples(aug, data):
    """Independent computation: class k's sources in a permutation drawn first from the class's generator, then
    z = mu + scale * exp(logvar / 2) * eps with eps drawn next, decoded with label k."""
    from genlab.apps.augment import _class_seed
    x, y = data
    assert aug.sampling_ == "neighbourhood" and len(aug.source_mu_) == len(x) and aug.source_labels_ == y.tolist()
    m, k = aug.model_, 2
    src = np.flatnonzero(y == k)
    for n in (7, 20):  # fewer draws than sources, and more (round-robin over the same permutation)
        g = torch.Generator().manual_seed(_class_seed(aug.random_state, k))
        perm = torch.randperm(len(src), generator=g).numpy()
        order = src[np.concatenate([perm, perm])[:n]]
        lab = torch.full((n,), k)
        with torch.no_grad():
            mu, lv = m.posterior(torch.from_numpy(x[order]), lab)
            eps = torch.randn(mu.shape, generator=g)
            want = m.decode(mu + torch.exp(0.5 * lv) * eps, lab).numpy()
        X, yk = aug.generate(n, classes=[k])
        assert (yk == k).all()
        np.testing.assert_allclose(X, want, rtol=0, atol=1e-5)
    # a tiny scale gives the reconstructions of the sources (decoder at the posterior mean)
    near = _aug(model=aug.model_, neighbourhood_scale=1e-6).fit(x, y)
    g = torch.Generator().manual_seed(_class_seed(near.random_state, k))
    order = src[torch.randperm(len(src), generator=g).numpy()[:5]]
    rec = m.reconstruct(torch.from_numpy(x[order]), torch.full((5,), k)).numpy()
    np.testing.assert_allclose(near.generate(5, classes=[k])[0], rec, rtol=0, atol=1e-5)
    # a larger scale moves the samples further from the reconstructions
    far = _aug(model=aug.model_, neighbourhood_scale=3.0).fit(x, y)
    d1 = np.abs(aug.generate(5, classes=[k])[0] - rec).mean()
    d3 = np.abs(far.generate(5, classes=[k])[0] - rec).mean()
    assert d3 > d1 > 1e-4


def test_shift_images_against_a_reference():
    from genlab.apps.augment import shift_images
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((3, 2, 6, 7)).astype(np.float32))

    def ref(img, dx, dy):  # np.roll, then zero the wrapped-around rows/columns
        out = np.roll(img, (dy, dx), axis=(-2, -1))
        if dy > 0:
            out[:, :dy] = 0
        if dy < 0:
            out[:, dy:] = 0
        if dx > 0:
            out[:, :, :dx] = 0
        if dx < 0:
            out[:, :, dx:] = 0
        return out
    moves = [(dx, dy) for dx in range(-2, 3) for dy in range(-2, 3) if (dx, dy) != (0, 0)]
    out = shift_images(x, 5, 2, seed=3).numpy()
    assert out.shape == (15, 2, 6, 7)
    for i in range(3):
        found = []
        for j in range(5):
            hits = [mv for mv in moves if np.array_equal(out[5 * i + j], ref(x[i].numpy(), *mv))]
            assert len(hits) == 1
            found.append(hits[0])
        assert len(set(found)) == 5  # distinct shifts per image
    np.testing.assert_array_equal(out, shift_images(x, 5, 2, seed=3).numpy())
    assert not np.array_equal(out, shift_images(x, 5, 2, seed=4).numpy())
    assert shift_images(x, 24, 2, seed=0).shape[0] == 72  # every shift once


def test_shift_copies_train_the_generator_and_are_sources(data, tmp_path):
    x, y = data
    a = _aug(shift_copies=3, max_shift=1).fit(x, y)
    assert a.class_counts_ == [16, 16, 16, 16]  # real samples only
    assert len(a.source_mu_) == 4 * len(x) and a.source_labels_ == y.tolist() + np.repeat(y, 3).tolist()
    from genlab.apps.augment import shift_images
    copies = shift_images(torch.from_numpy(x), 3, 1, a.random_state)
    with torch.no_grad():
        mu, _ = a.model_.posterior(copies, torch.from_numpy(np.repeat(y, 3)))
    np.testing.assert_allclose(np.asarray(a.source_mu_[len(x):]), mu.numpy(), rtol=0, atol=1e-5)
    X, yg = a.generate(4)
    assert X.shape == (16, 1, 8, 8) and yg.tolist() == np.repeat([0, 1, 2, 3], 4).tolist()
    a.save(tmp_path / "s")
    b = Augmenter.load(tmp_path / "s")
    assert b.sampling_ == "neighbourhood"
    np.testing.assert_array_equal(b.generate(4)[0], X)


def test_shift_copies_auto_every_1px_shift_for_a_cvae_on_images_else_0(data, tabular_data, tmp_path):
    x, y = data
    assert Augmenter().shift_copies == "auto" and Augmenter().max_shift == 1
    auto = _aug(shift_copies="auto", epochs=1).fit(x, y)
    assert auto.shift_copies_ == 8 and len(auto.source_mu_) == 9 * len(x)
    explicit = _aug(shift_copies=8, max_shift=1, epochs=1).fit(x, y)  # what "auto" resolves to: the same fit
    assert auto.source_labels_ == explicit.source_labels_
    np.testing.assert_allclose(auto.generate(5)[0], explicit.generate(5)[0], rtol=0, atol=1e-6)
    assert _aug(shift_copies="auto", max_shift=2, epochs=1).fit(x, y).shift_copies_ == 24  # every shift <= 2 px
    # 0 where copies were not measured to help or cannot apply: tabular data, prior sampling, a GAN, a given model
    tab = _aug(shift_copies="auto", epochs=1).fit(tabular_data)
    assert tab.shift_copies_ == 0 and tab.generate(2)[0].shape == (4, 5)
    assert _aug(shift_copies="auto", epochs=1, sampling="prior").fit(x, y).shift_copies_ == 0
    gan = _aug(shift_copies="auto", model="cgan", epochs=1, model_config={"latent_dim": 4}).fit(x, y)
    assert gan.shift_copies_ == 0
    given = _aug(shift_copies="auto", model=auto.model_).fit(x, y)
    assert given.shift_copies_ == 0 and len(given.source_mu_) == len(x)
    auto.save(tmp_path / "auto")
    back = Augmenter.load(tmp_path / "auto")
    assert back.shift_copies == "auto" and back.shift_copies_ == 8
    np.testing.assert_array_equal(back.generate(5)[0], auto.generate(5)[0])


def test_folders_saved_before_auto_load_and_refit_as_before(data, tmp_path):
    """An estimator.json without shift_copies / max_shift (saved before they existed) or without shift_copies_
    (saved with an integer, before "auto") loads, generates as saved, and a clone refits with its old settings."""
    x, y = data
    for kw, params_gone, copies, shift in (({}, ("shift_copies", "max_shift"), 0, 2),
                                           ({"shift_copies": 3, "max_shift": 2}, (), 3, 2)):
        a = _aug(**kw).fit(x, y)
        a.save(tmp_path / "old")
        f = tmp_path / "old" / "estimator.json"
        rec = json.loads(f.read_text())
        for k in params_gone:
            del rec["params"][k]
        del rec["state"]["shift_copies_"]
        f.write_text(json.dumps(rec))
        old = Augmenter.load(tmp_path / "old")
        assert (old.shift_copies, old.max_shift, old.shift_copies_) == (copies, shift, copies)
        np.testing.assert_array_equal(old.generate(4)[0], a.generate(4)[0])
        assert clone(old).get_params()["shift_copies"] == copies


def test_sampling_errors_and_gans_fall_back_to_the_prior(data, tabular_data):
    x, y = data
    for kw, msg in (({"sampling": "posterior"}, "sampling must be 'auto', 'neighbourhood' or 'prior'"),
                    ({"neighbourhood_scale": 0}, "neighbourhood_scale must be a number > 0"),
                    ({"neighbourhood_scale": float("nan")}, "neighbourhood_scale must be a number > 0"),
                    ({"shift_copies": -1, "max_shift": 2}, r"shift_copies must be 'auto' or an integer in \[0, 24\]"),
                    ({"shift_copies": 9}, r"an integer in \[0, 8\] .*got 9; pass max_shift=2 for up to 24"),
                    ({"shift_copies": "all"}, r"shift_copies must be 'auto' or an integer in \[0, 8\]"),
                    ({"max_shift": 0}, "max_shift must be an integer >= 1"),
                    # data's images are 8x8: a hostile shift is refused before its (2m+1)^2 moves are listed
                    ({"max_shift": 100000, "shift_copies": "auto"},
                     r"max_shift=100000 is not smaller than the images' side \(8 pixels\); use max_shift in \[1, 7\]"),
                    ({"max_shift": 8, "shift_copies": 3}, r"max_shift=8 is not smaller")):
        with pytest.raises(ConfigError, match=msg) as e:
            _aug(**kw).fit(x, y)
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="sampling='neighbourhood' needs a model with a posterior"):
        _aug(model="cgan", epochs=1, sampling="neighbourhood", model_config={"latent_dim": 4}).fit(x, y)
    assert _aug(model="cgan", epochs=1, model_config={"latent_dim": 4}).fit(x, y).sampling_ == "prior"
    with pytest.raises(ConfigError, match="shift_copies needs image data"):
        _aug(shift_copies=2, epochs=1).fit(tabular_data)


def test_folder_round_trip_through_load_dataset(aug, tmp_path):
    X, y = aug.generate()
    aug.write(tmp_path / "gen", random_state=0)
    back = genlab.load_dataset(str(tmp_path / "gen"))
    assert back.classes == ["0", "1", "2", "3"]
    np.testing.assert_array_equal(back.y.numpy(), y)
    np.testing.assert_allclose(back.x.numpy(), np.rint(X * 255) / 255, rtol=0, atol=1e-6)  # 8-bit PNG pixels
    with pytest.raises(ConfigError, match="already exists"):
        aug.write(tmp_path / "gen")
    aug.write(tmp_path / "gen", n_per_class=1, overwrite=True)
    assert len(genlab.load_dataset(str(tmp_path / "gen"))) == 4
    aug.write(tmp_path / "gen.npz")
    z = np.load(tmp_path / "gen.npz")
    assert z["x"].dtype == np.uint8 and z["classes"].tolist() == ["0", "1", "2", "3"]
    back = genlab.load_dataset(str(tmp_path / "gen.npz"))
    np.testing.assert_array_equal(back.y.numpy(), y)
    np.testing.assert_allclose(back.x.numpy(), np.rint(X * 255) / 255, rtol=0, atol=1e-6)


def test_string_and_sparse_labels(data, tmp_path):
    x, y = data
    names = np.array(["cat", "ant", "dog", "bee"])[y]
    a = _aug(epochs=1).fit(x, names)
    assert a.classes_.tolist() == ["ant", "bee", "cat", "dog"]
    _, yy = a.generate(2, classes=["dog"])
    assert yy.tolist() == ["dog", "dog"]
    a.write(tmp_path / "s")
    back = genlab.load_dataset(str(tmp_path / "s"))
    assert back.classes == ["ant", "bee", "cat", "dog"] and back.y.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    sparse = _aug(epochs=1).fit(x, y * 4 + 2)  # labels 2, 6, 10, 14
    assert sparse.classes_.tolist() == [2, 6, 10, 14]
    sparse.write(tmp_path / "p")
    back = genlab.load_dataset(str(tmp_path / "p"))
    assert back.classes == ["02", "06", "10", "14"] and back.y.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3


def test_folder_names_sort_in_label_order():
    assert folder_names([str(i) for i in range(12)])[:3] == ["00", "01", "02"]
    assert folder_names(["b", "a"]) == ["0_b", "1_a"]
    assert folder_names(["a/b", ".x"]) == ["0_a_b", "1__.x"]
    assert folder_names(["ant", "bee"]) == ["ant", "bee"]
    for names in (["b", "a", "c"], [str(i) for i in range(12)], ["x", "y"], ["9", "10", "3"]):
        out = folder_names(names)
        assert sorted(out) == out and len(set(out)) == len(out)


def test_fit_resample_keeps_input_format(data):
    x, y = data
    xu8 = np.rint(x[:, 0] * 255).astype(np.uint8)  # (N, H, W) uint8
    Xr, yr = _aug(epochs=1, n_per_class=2).fit_resample(xu8, y)
    assert Xr.shape == (64 + 8, 8, 8) and Xr.dtype == np.uint8
    np.testing.assert_array_equal(Xr[:64], xu8)
    assert yr.tolist()[:64] == y.tolist() and yr.tolist()[64:] == [0, 0, 1, 1, 2, 2, 3, 3]
    keep = np.r_[np.flatnonzero(y == 0), np.flatnonzero(y != 0)[::4]]  # class 0: 16, others: 4 each
    Xb, yb = _aug(epochs=1, n_per_class="balance").fit_resample(x[keep], y[keep])
    assert np.bincount(yb).tolist() == [16, 16, 16, 16] and Xb.dtype == np.float32 and Xb.shape[1:] == (1, 8, 8)


def test_tabular(tabular_data, tmp_path):
    a = _aug(epochs=1, n_per_class=4).fit(tabular_data)
    X, y = a.generate()
    assert X.shape == (8, 5) and y.tolist() == [0] * 4 + [1] * 4
    with pytest.raises(ConfigError, match="image folder needs image data"):
        a.write(tmp_path / "t")
    a.write(tmp_path / "t.npz")
    back = genlab.load_dataset(str(tmp_path / "t.npz"))
    np.testing.assert_allclose(back.x.numpy(), X, rtol=1e-6, atol=1e-6)


def test_pretrained_model_clone_save_load(aug, data, tmp_path):
    from genlab.io.serialize import save_model
    save_model(aug.model_, tmp_path / "m")
    x, y = data
    b = Augmenter(model=str(tmp_path / "m"), n_per_class=3).fit(x, y)
    assert b.classes_.tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(b.generate()[0], aug.generate()[0])
    with pytest.raises(DataError, match="label 7 is outside the model's classes 0..3"):
        Augmenter(model=str(tmp_path / "m")).fit(x, np.where(y == 3, 7, y))
    c = clone(aug)
    assert c.get_params() == aug.get_params() and not hasattr(c, "model_")
    aug.save(tmp_path / "est")
    loaded = Augmenter.load(tmp_path / "est")
    assert isinstance(loaded.classes_, np.ndarray) and loaded.class_names_ == aug.class_names_
    np.testing.assert_array_equal(loaded.generate()[0], aug.generate()[0])


@pytest.mark.parametrize("name", ["cgan", "acgan"])
def test_gan_generators(data, name):
    a = _aug(model=name, epochs=1, n_per_class=2, model_config={"latent_dim": 4}).fit(*data)
    X, y = a.generate()
    assert X.shape == (8, 1, 8, 8) and y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    np.testing.assert_array_equal(a.generate()[0], X)


def test_errors(aug, data):
    x, y = data
    with pytest.raises(DataError, match="requires y to be passed") as e:
        _aug().fit(x)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="model 'vae' lacks the capability 'conditional' .* that Augmenter needs; "
                                          "use one of: acgan, cgan, .*cvae"):
        _aug(model="vae").fit(x, y)
    with pytest.raises(ConfigError, match="label 9 is not one of the fitted classes"):
        aug.generate(classes=[1, 9])
    for bad in (-1, 2.5, "all"):
        with pytest.raises(ConfigError, match="n_per_class"):
            aug.generate(bad)
    with pytest.raises(ConfigError, match="random_state"):
        aug.generate(random_state=-1)
    with pytest.raises(DataError, match="1-D"):
        _aug().fit(x, y[:, None])
    with pytest.raises(DataError, match="labels"):
        _aug().fit(x, y[:10])
    with pytest.raises(ConfigError, match="not fitted"):
        _aug().generate()
    with pytest.raises(ConfigError, match="nothing to write"):
        aug.write("unused.npz", n_per_class=0)
    with pytest.raises(DataError, match="one label per sample"):
        aug.write("unused.npz", x[:4], y[:3])
    with pytest.raises(ConfigError, match="label 5 is not one of the fitted classes"):
        aug.write("unused.npz", x[:2], np.array([0, 5]))


def test_cli_augment(data, tmp_path, capsys):
    x, y = data
    np.savez(tmp_path / "d.npz", x=np.rint(x * 255).astype(np.uint8), y=y)
    r = run_cli("augment", "d.npz", "--out", "aug", "-n", "3", "--epochs", "1", "--set", "latent_dim=2", "--set",
                "arch=mlp", "--set", "hidden=[32]", "--save", "est", cwd=tmp_path, env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    back = genlab.load_dataset(str(tmp_path / "aug" / "generated"))
    assert len(back) == 12 and back.y.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    m = json.loads((tmp_path / "aug" / "metrics.json").read_text())
    assert m["generated"] == 12 and m["generated_per_class"] == {"0": 3, "1": 3, "2": 3, "3": 3}
    for f in ("samples.png", "report.html"):
        assert (tmp_path / "aug" / f).is_file()
    # reuse the saved estimator, npz output with the real samples, two classes only
    assert main(["augment", str(tmp_path / "d.npz"), "--out", str(tmp_path / "a3"), "-n", "2", "--run",
                 str(tmp_path / "est"), "--format", "npz", "--classes", "1,3", "--include-real"]) == 0
    back = genlab.load_dataset(str(tmp_path / "a3" / "generated.npz"))
    assert len(back) == 64 + 4 and back.y[64:].tolist() == [1, 1, 3, 3]
    capsys.readouterr()
    np.save(tmp_path / "nolabels.npy", x)
    np.savez(tmp_path / "tab.npz", x=np.random.default_rng(0).normal(size=(20, 3)), y=np.arange(20) % 2)
    cases = [(["augment", str(tmp_path / "nolabels.npy"), "--out", str(tmp_path / "b")], "no class labels"),
             (["augment", str(tmp_path / "tab.npz"), "--out", str(tmp_path / "b")], "use --format npz"),
             (["augment", str(tmp_path / "d.npz"), "--out", str(tmp_path / "b"), "--run", str(tmp_path / "est"),
               "--classes", "1,9"], "label 9 is not one of the fitted classes"),
             (["augment", str(tmp_path / "d.npz"), "--out", str(tmp_path / "b"), "-n", "-1"], "-n must be >= 0")]
    for argv, msg in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "b").exists()


# ---------------------------------------------------------------------------- filter and mixing ratio
def test_classifier_filter_keeps_the_surest_of_oversampled_draws(data, tmp_path):
    from sklearn.linear_model import LogisticRegression

    from genlab.apps.augment import _class_seed
    x, y = data
    f = _aug(filter="classifier", oversample=3, n_per_class=4, sampling="prior").fit(x, y)
    # the filter is scikit-learn's logistic regression on the same real samples (independent reference)
    ref = LogisticRegression(C=1.0, max_iter=3000).fit(x.reshape(len(x), -1), y)
    draws = f.model_.sample(12, labels=torch.full((12,), 2),
                            generator=torch.Generator().manual_seed(_class_seed(f.random_state, 2))).numpy()
    p = ref.predict_proba(draws.reshape(12, -1))[:, 2]
    np.testing.assert_allclose(f.filter_proba(draws)[:, 2], p, rtol=1e-6, atol=1e-9)
    Xg, yg = f.generate(classes=[2])
    want = draws[np.argsort(-p, kind="stable")[:4]]
    assert (yg == 2).all() and Xg.shape == (4, 1, 8, 8)
    np.testing.assert_allclose(Xg, want, rtol=0, atol=1e-6)
    assert (np.diff(f.filter_proba(Xg)[:, 2]) <= 1e-12).all()  # surest first
    # with neighbourhood sampling too: the kept ones are the surest of 3 x 4 draws, surest first
    fn = _aug(filter="classifier", oversample=3, n_per_class=4, model=f.model_).fit(x, y)
    Xn, _ = fn.generate(classes=[2])
    pn = fn.filter_proba(Xn)[:, 2]
    draws_n = _aug(n_per_class=12, model=f.model_).fit(x, y).generate(classes=[2])[0]
    np.testing.assert_allclose(pn, np.sort(fn.filter_proba(draws_n)[:, 2])[::-1][:4], rtol=1e-5, atol=1e-7)
    f.save(tmp_path / "f")
    g = Augmenter.load(tmp_path / "f")
    np.testing.assert_array_equal(g.generate()[0], f.generate()[0])
    with pytest.raises(ConfigError, match="filter must be None or 'classifier'"):
        _aug(filter="knn").fit(x, y)
    with pytest.raises(ConfigError, match="oversample must be a number >= 1"):
        _aug(filter="classifier", oversample=0.5).fit(x, y)
    with pytest.raises(ConfigError, match="has no filter"):
        _aug().fit(x, y).filter_proba(x)


def test_select_ratio_by_cross_validation_on_real_samples_only():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from genlab.apps.augment import select_ratio
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 6)) * 2
    y = np.repeat(np.arange(3), 6)
    X = centers[y] + rng.normal(size=(18, 6)) * 1.5
    yg = np.repeat(np.arange(3), 40)
    good = centers[yg] + rng.normal(size=(120, 6)) * 1.5  # more data of the same classes
    bad = good[:, ::-1].copy()  # wrong features: should not be chosen
    clf = LogisticRegression(max_iter=2000)
    best, scores = select_ratio(X, y, good, yg, clf, ratios=(0, 1, 5), cv=3)
    assert set(scores) == {0.0, 1.0, 5.0} and best == max(scores, key=lambda r: (scores[r], -r))
    # independent reference for ratio 0: plain stratified CV of the classifier on the real samples
    ref = [float((LogisticRegression(max_iter=2000).fit(X[tr], y[tr]).predict(X[va]) == y[va]).mean())
           for tr, va in StratifiedKFold(3, shuffle=True, random_state=0).split(X, y)]
    assert scores[0.0] == pytest.approx(np.mean(ref))
    best_bad, scores_bad = select_ratio(X, y, bad, yg, clf, ratios=(0, 5), cv=3)
    assert scores_bad[5.0] <= scores[5.0]
    # leak-free: the samples of each fold come from that fold's real training part only
    seen = []

    def per_fold(x_tr, y_tr):
        seen.append(len(x_tr))
        rng_f = np.random.default_rng(len(seen))
        return np.repeat(x_tr, 3, axis=0) + rng_f.normal(size=(3 * len(x_tr), 6)) * 0.3, np.repeat(y_tr, 3)
    _, scores_f = select_ratio(X, y, None, None, clf, ratios=(0, 1), cv=3, generate=per_fold)
    assert seen == [12, 12, 12] and scores_f[0.0] == pytest.approx(scores[0.0])
    with pytest.raises(ConfigError, match="either generated samples"):
        select_ratio(X, y, good, yg, clf, generate=per_fold)
    with pytest.raises(ConfigError, match="ratios must be non-negative"):
        select_ratio(X, y, good, yg, clf, ratios=(-1,))
    with pytest.raises(DataError, match="at least 2 real samples per class"):
        select_ratio(X[:4], np.array([0, 1, 2, 2]), good, yg, clf)


def test_cli_augment_filter(data, tmp_path):
    x, y = data
    np.savez(tmp_path / "d.npz", x=np.rint(x * 255).astype(np.uint8), y=y)
    assert main(["augment", str(tmp_path / "d.npz"), "--out", str(tmp_path / "aug"), "-n", "2", "--epochs", "1",
                 "--set", "latent_dim=2", "--set", "arch=mlp", "--set", "hidden=[32]", "--filter", "classifier",
                 "--oversample", "2", "--no-progress"]) == 0
    m = json.loads((tmp_path / "aug" / "metrics.json").read_text())
    assert m["filter"] == "classifier" and m["oversample"] == 2.0 and m["generated"] == 8
    assert m["sampling"] == "neighbourhood" and m["shift_copies"] == 8 and m["max_shift"] == 1  # "auto" resolved
    assert main(["augment", str(tmp_path / "d.npz"), "--out", str(tmp_path / "aug2"), "-n", "2", "--epochs", "1",
                 "--set", "latent_dim=2", "--set", "arch=mlp", "--set", "hidden=[32]", "--sampling", "prior",
                 "--shift-copies", "2", "--max-shift", "1", "--no-progress"]) == 0
    m = json.loads((tmp_path / "aug2" / "metrics.json").read_text())
    assert m["sampling"] == "prior" and m["shift_copies"] == 2 and m["max_shift"] == 1 and m["generated"] == 8
    assert main(["augment", str(tmp_path / "d.npz"), "--out", str(tmp_path / "aug4"), "-n", "2", "--epochs", "1",
                 "--set", "latent_dim=2", "--set", "arch=mlp", "--set", "hidden=[32]", "--shift-copies", "0",
                 "--no-progress"]) == 0
    m = json.loads((tmp_path / "aug4" / "metrics.json").read_text())
    assert m["sampling"] == "neighbourhood" and m["shift_copies"] == 0
    assert main(["augment", str(tmp_path / "d.npz"), "--out", str(tmp_path / "aug3"), "-n", "2", "--epochs", "1",
                 "--shift-copies", "9", "--max-shift", "1", "--no-progress"]) == 2
    with pytest.raises(SystemExit) as e:  # argparse: neither an integer nor auto
        main(["augment", str(tmp_path / "d.npz"), "--out", str(tmp_path / "aug3"), "--shift-copies", "many"])
    assert e.value.code == 2
    assert not (tmp_path / "aug3").exists()


def test_cpixelcnn_class_conditional_samples_with_the_filter(data):
    x, y = data
    x = np.rint(x * 255).astype(np.uint8)  # 8-bit levels, as the PixelCNN models them
    a = Augmenter(model="cpixelcnn", model_config={"channels": 8, "layers": 1, "head_channels": 8}, n_per_class=2,
                  filter="classifier", oversample=2, epochs=1, batch_size=16, validation_fraction=0.0,
                  trainer_config=FAST).fit(x, y)
    Xg, yg = a.generate(classes=[1, 3])
    assert a.model_.registry_name == "cpixelcnn" and Xg.shape == (4, 1, 8, 8) and yg.tolist() == [1, 1, 3, 3]
    assert 0 <= Xg.min() and Xg.max() <= 1 and np.isfinite(Xg).all()
