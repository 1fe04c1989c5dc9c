"""Paired image-to-image data (genlab.data.paired) and the scikit-image built-ins (photos32/64, lfw).

References are independent of the code under test: block means by numpy reshapes, luma by Pillow's own
``convert("L")`` (ITU-R 601-2, integer arithmetic), Sobel by scikit-image's filter, box geometry by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.data import TensorDataset, load_dataset
from genlab.data.paired import (FREE_COVERAGE, check_mask, free_masks, load_pairs, make_pairs, parse_spec)
from genlab.errors import DataError


def _images(n=6, c=1, h=16, w=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.rand(n, c, h, w, generator=g), torch.arange(n) % 3, name="toy")


# ---------------------------------------------------------------------------------------------- specs
@pytest.mark.parametrize("spec,want", [("downsample:2", ("downsample", (2, "area"))),
                                       ("downsample:4:bicubic", ("downsample", (4, "bicubic"))),
                                       ("grey", ("grey", ())), ("gray", ("grey", ())),
                                       ("mask:box", ("mask", ("box",))), ("mask:free", ("mask", ("free",))),
                                       ("edges", ("edges", ("sobel",))), ("edges:canny", ("edges", ("canny",)))])
def test_parse_spec(spec, want):
    assert parse_spec(spec) == want


@pytest.mark.parametrize("spec", ["", "blur", "downsample", "downsample:1", "downsample:x", "downsample:2:nearest",
                                  "mask", "mask:circle", "edges:prewitt", "grey:2", None, 3])
def test_bad_spec_one_line(spec):
    with pytest.raises(DataError) as e:
        make_pairs(_images(), spec)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------- transforms
def test_downsample_area_is_block_mean_and_keeps_labels():
    ds = _images(c=3, h=12, w=8)
    p = make_pairs(ds, "downsample:4")
    ref = ds.x.numpy().reshape(6, 3, 3, 4, 2, 4).mean(axis=(3, 5))  # (N, C, H/4, W/4)
    np.testing.assert_allclose(p.extras["src"].numpy(), ref, atol=1e-6)
    assert torch.equal(p.x, ds.x) and torch.equal(p.y, ds.y) and p.classes == ds.classes
    assert p.info()["extras"] == {"src": [3, 3, 2]}


def test_downsample_bicubic_range_and_constants():
    x = torch.full((2, 1, 16, 16), 0.3)
    x[1] = torch.rand(1, 16, 16)
    p = make_pairs(TensorDataset(x), "downsample:2:bicubic")
    src = p.extras["src"]
    assert src.shape == (2, 1, 8, 8) and float(src.min()) >= 0 and float(src.max()) <= 1
    np.testing.assert_allclose(src[0].numpy(), 0.3, atol=1e-6)  # a constant image stays constant
    assert not torch.allclose(src[1], make_pairs(TensorDataset(x), "downsample:2").extras["src"][1])


def test_downsample_factor_must_divide():
    with pytest.raises(DataError, match=r"28x28 do not divide by 3.*27x27") as e:
        make_pairs(_images(h=28, w=28), "downsample:3")
    assert "\n" not in str(e.value)


def test_grey_is_bt601_luma_like_pillow():
    rng = np.random.default_rng(1)
    u8 = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    ds = TensorDataset(torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255)
    src = make_pairs(ds, "grey").extras["src"]  # (N, 1, H, W)
    ref = np.stack([np.asarray(Image.fromarray(a).convert("L")) for a in u8]) / 255.0  # Pillow: L = R*299/1000 + ...
    np.testing.assert_allclose(src[:, 0].numpy(), ref, atol=1.0 / 255 + 1e-6)


def test_grey_needs_colour():
    with pytest.raises(DataError, match=r"needs colour images \(C=3\), got C=1"):
        make_pairs(_images(c=1), "grey")


def test_box_mask_geometry():
    ds = _images(h=28, w=20)
    p = make_pairs(ds, "mask:box")
    m, src = p.extras["mask"], p.extras["src"]
    assert m.shape == (6, 1, 28, 20) and set(m.unique().tolist()) == {0.0, 1.0}
    box = torch.zeros(28, 20)
    box[7:21, 5:15] = 1  # centre 14x10 box
    assert torch.equal(m[:, 0], box.expand(6, 28, 20))
    assert float(m.mean()) == 0.25
    assert torch.equal(src, ds.x * (1 - m))


def test_free_masks_seeded_coverage():
    a, b = free_masks(64, (28, 28), seed=3), free_masks(64, (28, 28), seed=3)
    assert torch.equal(a, b) and not torch.equal(a, free_masks(64, (28, 28), seed=4))
    cov = a.flatten(1).mean(1)
    assert float(cov.min()) >= FREE_COVERAGE[0]  # every image reaches its drawn target
    assert 0.2 < float(cov.mean()) < 0.45
    assert not torch.equal(a[0], a[1])
    p = make_pairs(_images(n=8, c=3, h=32, w=32), "mask:free", seed=0)
    assert torch.equal(p.extras["src"], p.x * (1 - p.extras["mask"]))


def test_edges_sobel_matches_skimage_and_step_is_one():
    from skimage import filters
    ds = _images(n=3, c=1, h=16, w=16)
    src = make_pairs(ds, "edges").extras["src"]
    ref = np.stack([np.clip(filters.sobel(im.astype(np.float64)) * math.sqrt(2), 0, 1) for im in ds.x[:, 0].numpy()])
    np.testing.assert_allclose(src[:, 0].numpy(), ref, atol=1e-6)
    step = torch.zeros(1, 1, 16, 16)
    step[..., 8:] = 1.0
    e = make_pairs(TensorDataset(step), "edges").extras["src"][0, 0]
    np.testing.assert_allclose(e[8, 7:9].numpy(), 1.0, atol=1e-6)  # the two columns beside a full step
    assert float(e[8, :6].abs().max()) == 0.0


def test_edges_canny_binary_and_small_images_refused():
    x = torch.zeros(2, 3, 20, 20)
    x[:, :, 5:15, 5:15] = 1.0
    src = make_pairs(TensorDataset(x), "edges:canny").extras["src"]
    assert set(src.unique().tolist()) == {0.0, 1.0} and src.shape == (2, 1, 20, 20)
    with pytest.raises(DataError, match="at least 16x16"):
        make_pairs(_images(h=8, w=8), "edges:canny")


def test_refusals_tabular_and_already_paired():
    with pytest.raises(DataError, match="needs image data"):
        make_pairs(TensorDataset(torch.rand(5, 4)), "grey")
    p = make_pairs(_images(), "mask:box")
    with pytest.raises(DataError, match="paired already"):
        make_pairs(p, "downsample:2")


def test_split_slices_pairs_together():
    p = make_pairs(_images(n=20, h=8, w=8), "downsample:2")
    tr, va, te = p.split(0.2, 0.2, seed=0)
    for part in (tr, va, te):
        np.testing.assert_allclose(part.extras["src"].numpy(), torch.nn.functional.avg_pool2d(part.x, 2).numpy(),
                                   atol=1e-6)


def test_check_mask():
    half = torch.zeros(2, 1, 4, 4)
    half[:, :, :2] = 1
    check_mask(half, (2, 1, 4, 4))
    check_mask(torch.stack([half[0], torch.zeros(1, 4, 4)]), (2, 1, 4, 4))  # one image with no hole is fine
    with pytest.raises(DataError, match=r"hides every pixel of image 1 \(all 1\), so nothing is known"):
        check_mask(torch.stack([half[0], torch.ones(1, 4, 4)]), (2, 1, 4, 4))
    with pytest.raises(DataError, match=r"marks no pixel missing \(all 0\), so there is nothing to inpaint"):
        check_mask(torch.zeros(2, 1, 4, 4), (2, 1, 4, 4))
    with pytest.raises(DataError, match="only 0 .* and 1 .*found 0.5"):
        check_mask(torch.full((2, 1, 4, 4), 0.5), (2, 1, 4, 4))
    with pytest.raises(DataError, match=r"mask of shape \(2, 3, 4, 4\)"):
        check_mask(torch.ones(2, 3, 4, 4), (2, 1, 4, 4))


# ---------------------------------------------------------------------------------------------- folder pairs
def _write(folder, name, arr):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(folder / name)


def test_load_pairs_matches_names_across_extensions(tmp_path):
    rng = np.random.default_rng(0)
    srcs = {n: rng.integers(0, 256, (4, 4), dtype=np.uint8) for n in ("b", "a", "a-b")}
    tgts = {n: rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for n in srcs}
    for n in srcs:
        _write(tmp_path / "A", f"{n}.png", srcs[n])
        _write(tmp_path / "B", f"{n}.png" if n != "a" else f"{n}.PNG", tgts[n])
    p = load_pairs(tmp_path)
    order = sorted(srcs)  # a, a-b, b
    np.testing.assert_allclose(p.extras["src"][:, 0].numpy() * 255, np.stack([srcs[n] for n in order]), atol=1e-3)
    np.testing.assert_allclose(p.x.permute(0, 2, 3, 1).numpy() * 255, np.stack([tgts[n] for n in order]), atol=1e-3)
    q = load_dataset(f"pairs:{tmp_path}")
    assert torch.equal(q.x, p.x) and torch.equal(q.extras["src"], p.extras["src"])


def test_load_pairs_unmatched_names_one_line(tmp_path):
    img = np.zeros((4, 4), dtype=np.uint8)
    for n in ("x1", "x2"):
        _write(tmp_path / "A", f"{n}.png", img)
    for n in ("x1", "y9"):
        _write(tmp_path / "B", f"{n}.png", img)
    with pytest.raises(DataError) as e:
        load_pairs(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "A/ has x2.png" in msg and "B/ has y9.png" in msg


def test_load_pairs_missing_folder_and_mask(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_pairs(tmp_path)
    img = np.full((4, 4), 200, dtype=np.uint8)
    _write(tmp_path / "A", "p.png", img)
    _write(tmp_path / "B", "p.png", img)
    m = np.zeros((4, 4), dtype=np.uint8)
    m[:2] = 255
    _write(tmp_path / "mask", "p.png", m)
    p = load_pairs(tmp_path)
    assert p.extras["mask"].shape == (1, 1, 4, 4) and float(p.extras["mask"].mean()) == 0.5
    assert float(p.extras["src"][0, 0, :2].abs().max()) == 0.0  # missing source pixels are 0
    with pytest.raises(DataError, match="size"):
        _write(tmp_path / "A", "q.png", np.zeros((5, 5), dtype=np.uint8))
        _write(tmp_path / "B", "q.png", img)
        _write(tmp_path / "mask", "q.png", m)
        load_pairs(tmp_path)


# ---------------------------------------------------------------------------------------------- built-ins
def test_photos32_test_split_and_disjoint_sources():
    from genlab.data import photos
    assert not set(photos.TRAIN_IMAGES) & set(photos.TEST_IMAGES)
    te = load_dataset("photos32", split="test")
    assert te.x.shape == (photos.COUNTS[32]["test"], 3, 32, 32) and te.y is None
    assert float(te.x.min()) >= 0 and float(te.x.max()) <= 1
    # every test patch is cut from coffee (first half) or chelsea (second half), pixel for pixel
    half = len(te) // 2
    for i, name in ((0, "coffee"), (half, "chelsea")):
        im = photos._photo(name)  # (H, W, 3) uint8
        patch = np.rint(te.x[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8)  # (32, 32, 3)
        tops, lefts = np.nonzero((im[:-31, :-31] == patch[0, 0]).all(-1))  # where the corner pixel matches
        assert any(np.array_equal(im[t:t + 32, l:l + 32], patch) for t, l in zip(tops, lefts))
    # the same patches on every load (fixed seed), and no flat patches
    photos._photo_patches.cache_clear()
    assert torch.equal(load_dataset("photos32", split="test").x, te.x)
    luma = (te.x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)
    assert float(luma.flatten(1).std(1, unbiased=False).min()) >= photos.MIN_STD - 0.01


def test_lfw_faces_and_labels():
    ds = load_dataset("lfw")
    assert ds.x.shape == (200, 1, 25, 25) and ds.classes == ["non-face", "face"]
    assert int(ds.y[:100].sum()) == 100 and int(ds.y[100:].sum()) == 0
    with pytest.raises(DataError, match="no official 'test' split"):
        load_dataset("lfw", split="test")
