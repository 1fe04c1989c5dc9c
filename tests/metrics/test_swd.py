"""SWD on Laplacian-pyramid patches: against scipy's 1-D Wasserstein distance, its filters and closed forms."""
import importlib
import math

import numpy as np
import pytest
import torch
from scipy.ndimage import convolve
from scipy.stats import wasserstein_distance

from genlab.errors import ConfigError, DataError
from genlab.metrics import sliced_wasserstein, swd
from genlab.metrics.swd import (laplacian_pyramid, patch_descriptors, pyramid_down, pyramid_sizes, pyramid_up,
                                wasserstein_1d_sorted)

swd_module = importlib.import_module("genlab.metrics.swd")  # the attribute genlab.metrics.swd is the function


def blobs(n, size=24, seed=0, sigma=2.5):
    """Images of one bright Gaussian blob each, at random centres, plus a little noise: a smooth image family."""
    g = torch.Generator().manual_seed(seed)
    c = 4 + torch.rand(n, 2, generator=g) * (size - 8)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                            indexing="ij")
    d2 = (yy[None] - c[:, 0, None, None]) ** 2 + (xx[None] - c[:, 1, None, None]) ** 2
    x = torch.exp(-d2 / (2 * sigma ** 2)) + 0.02 * torch.randn(n, size, size, generator=g, dtype=torch.float64)
    return x[:, None]


@pytest.mark.parametrize("n,m", [(50, 50), (37, 101), (1, 9)])
def test_1d_wasserstein_matches_scipy_for_any_sizes(n, m):
    g = torch.Generator().manual_seed(n + m)
    a = torch.randn(4, n, generator=g, dtype=torch.float64)
    b = 1.7 * torch.randn(4, m, generator=g, dtype=torch.float64) + 0.3
    got = wasserstein_1d_sorted(a.sort(1).values, b.sort(1).values)
    want = [wasserstein_distance(a[i].numpy(), b[i].numpy()) for i in range(4)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


def test_sliced_wasserstein_gaussian_closed_forms():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 10, generator=g)
    b = 2.0 * torch.randn(20000, 10, generator=g)
    # every unit projection: N(0, 1) vs N(0, 4); W1 = |2 - 1| * E|Z| = sqrt(2 / pi)
    assert sliced_wasserstein(a, b, directions=256) == pytest.approx(math.sqrt(2 / math.pi), rel=0.02)
    # a shift mu in 3-D: W1 of a projection on v is |v . mu|; E over the sphere |v_1| = 1/2, so the mean is |mu| / 2
    c = torch.randn(20000, 3, generator=g)
    d = c + torch.tensor([0.0, 2.0, 0.0])
    assert sliced_wasserstein(c, d, directions=4096) == pytest.approx(1.0, rel=0.03)
    assert sliced_wasserstein(c, c, directions=64) == 0.0


def test_sliced_wasserstein_does_not_depend_on_how_many_directions_are_projected_at_once(monkeypatch):
    # large sets project fewer directions at a time (bounded memory); the directions drawn and the value stay the same
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(300, 12, generator=g), 1.5 * torch.randn(200, 12, generator=g) + 0.2
    whole = sliced_wasserstein(a, b, directions=300, generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(swd_module, "_PROJECTION_ELEMENTS", 7 * 500)  # 7 directions at a time
    assert sliced_wasserstein(a, b, directions=300, generator=torch.Generator().manual_seed(1)) == pytest.approx(
        whole, rel=1e-6)
    monkeypatch.setattr(swd_module, "_PROJECTION_ELEMENTS", 1)  # one direction at a time
    assert sliced_wasserstein(a, b, directions=300, generator=torch.Generator().manual_seed(1)) == pytest.approx(
        whole, rel=1e-6)


def test_patch_descriptors_against_direct_slicing():
    g = torch.Generator().manual_seed(0)
    level = torch.randn(3, 2, 11, 9, generator=g, dtype=torch.float64)
    p, k = 4, 5
    got = patch_descriptors(level, p, k, torch.Generator().manual_seed(7))
    draw = torch.Generator().manual_seed(7)  # the positions patch_descriptors draws: all rows, then all columns
    ys = torch.randint(0, 11 - p + 1, (3 * k,), generator=draw)
    xs = torch.randint(0, 9 - p + 1, (3 * k,), generator=draw)
    raw = torch.stack([level[i // k, :, ys[i]:ys[i] + p, xs[i]:xs[i] + p] for i in range(3 * k)])  # (M, C, p, p)
    mean = raw.mean(dim=(0, 2, 3), keepdim=True)
    std = raw.std(dim=(0, 2, 3), keepdim=True, correction=0)
    want = ((raw - mean) / std).reshape(3 * k, -1)
    assert got.shape == (3 * k, 2 * p * p)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("h,w,levels", [(24, 24, 3), (25, 25, 3), (13, 20, 2), (8, 9, 3)])
def test_pyramid_levels_sum_back_to_the_image(h, w, levels):
    x = torch.rand(3, 2, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    pyr = laplacian_pyramid(x, levels)
    assert len(pyr) == levels and pyr[0].shape == x.shape
    back = pyr[-1]
    for lv in reversed(pyr[:-1]):
        back = lv + pyramid_up(back, lv.shape[-2:])
    torch.testing.assert_close(back, x, rtol=0, atol=1e-12)
    # a constant image has no band-pass content anywhere, borders included (mirrored borders)
    const = laplacian_pyramid(torch.full((1, 1, h, w), 0.3, dtype=torch.float64), levels)
    assert all(float(lv.abs().max()) < 1e-12 for lv in const[:-1])
    torch.testing.assert_close(const[-1], torch.full_like(const[-1], 0.3))


def test_pyramid_filters_match_scipy_mirror_convolution():
    """ProGAN's reference computes pyr_down / pyr_up with scipy.ndimage.convolve(mode='mirror') and the 5x5 binomial
    kernel (x4 for pyr_up); the same here, for odd and even sizes."""
    k1 = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
    k2 = np.outer(k1, k1)[None, None]
    x = torch.rand(2, 3, 11, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    want_down = convolve(x.numpy(), k2, mode="mirror")[:, :, ::2, ::2]
    np.testing.assert_allclose(pyramid_down(x).numpy(), want_down, rtol=0, atol=1e-14)
    small = pyramid_down(x)
    up = np.zeros((2, 3, 11, 8))
    up[:, :, ::2, ::2] = small.numpy()
    np.testing.assert_allclose(pyramid_up(small, (11, 8)).numpy(), convolve(up, 4 * k2, mode="mirror"), atol=1e-14)


def test_pyramid_sizes_and_down_up_shapes():
    assert pyramid_sizes(25, 25, 8) == [(25, 25), (13, 13)]
    assert pyramid_sizes(32, 32, 8) == [(32, 32), (16, 16), (8, 8)]
    assert pyramid_sizes(28, 28, 16) == [(28, 28)]
    assert pyramid_down(torch.rand(1, 1, 25, 24)).shape[-2:] == (13, 12)
    with pytest.raises(DataError, match="2x or 2x - 1"):
        pyramid_up(torch.rand(1, 1, 4, 4), (10, 8))
    with pytest.raises(DataError, match="at least 3 pixels a side"):
        pyramid_down(torch.rand(1, 1, 2, 9))
    with pytest.raises(ConfigError, match="min_res must be at least 2"):
        pyramid_sizes(5, 5, 1)


def test_swd_sees_the_scale_at_which_two_sets_differ():
    real = blobs(200, seed=0)
    same = blobs(200, seed=1)  # another draw of the same family
    blurred = pyramid_up(pyramid_down(same), (24, 24))  # fine detail (the noise) removed, layout kept
    wide = blobs(200, seed=1, sigma=5.0)  # a coarser structure
    s_same, s_blur, s_wide = (swd(real, f, seed=0) for f in (same, blurred, wide))
    assert [lv[:2] for lv in s_same["levels"]] == [(24, 24), (12, 12)]
    fine = lambda r: r["levels"][0][2]  # noqa: E731
    coarse = lambda r: r["levels"][-1][2]  # noqa: E731
    # blurring removes fine detail: the fine level grows far more than the coarse one
    assert fine(s_blur) > 5 * fine(s_same) and fine(s_blur) / fine(s_same) > 2 * coarse(s_blur) / coarse(s_same)
    assert coarse(s_wide) > 3 * coarse(s_same)  # a wider layout shows at the coarse level
    assert s_same["mean"] == pytest.approx(np.mean([lv[2] for lv in s_same["levels"]]))
    # each level is 1,000 x the sliced Wasserstein distance of that level's descriptors (the paper's unit)
    from genlab.metrics.swd import patch_descriptors
    g = torch.Generator().manual_seed(0)
    lr, lf = laplacian_pyramid(real, 2)[0].float(), laplacian_pyramid(same, 2)[0].float()
    dr, df = patch_descriptors(lr, 7, 128, g), patch_descriptors(lf, 7, 128, g)
    assert s_same["levels"][0][2] == pytest.approx(1e3 * sliced_wasserstein(dr, df, generator=g), rel=1e-9)
    assert s_same["mean"] < min(s_blur["mean"], s_wide["mean"]) / 3


def test_swd_conventions_seed_scale_offset_and_unequal_sizes():
    real, fake = blobs(40, seed=0), blobs(90, seed=2)
    a = swd(real, fake, seed=3)
    assert swd(real, fake, seed=3) == a  # the seed fixes the patch positions and the directions
    # each set's descriptors are standardised by their own statistics: a scale and offset of either set alone does
    # not count (a documented limitation: a generator off in global contrast scores the same)
    b = swd(real, 4.0 * fake - 1.0, seed=3)
    assert b["mean"] == pytest.approx(a["mean"], rel=1e-5)
    assert swd(real, fake, seed=4)["mean"] != a["mean"]
    rgb = swd(real.expand(-1, 3, -1, -1), fake.expand(-1, 3, -1, -1), patches_per_image=16, directions=64)
    assert rgb["mean"] > 0


@pytest.mark.parametrize("kwargs,fake,err,match", [
    ({}, torch.rand(5, 1, 20, 20), DataError, "image shapes differ"),
    ({}, torch.rand(5, 3, 24, 24), DataError, "image shapes differ"),
    ({"min_res": 30, "patch": 7}, torch.rand(5, 1, 24, 24), DataError, "smaller than min_res=30"),
    ({"min_res": 5, "patch": 7}, torch.rand(5, 1, 24, 24), ConfigError, "at least the patch size"),
    ({"patches_per_image": 0}, torch.rand(5, 1, 24, 24), ConfigError, "patches_per_image must be an integer >= 1"),
    ({}, torch.full((5, 1, 24, 24), float("nan")), DataError, "NaN"),
    ({}, torch.rand(5, 24, 24), DataError, "4-D"),
    ({}, torch.rand(0, 1, 24, 24), DataError, "generated images: the set is empty"),
    ({"min_res": 2, "patch": 1}, torch.rand(5, 1, 24, 24), ConfigError, "min_res must be an integer >= 3"),
])
def test_swd_bad_input_one_line_errors(kwargs, fake, err, match):
    with pytest.raises(err, match=match) as e:
        swd(torch.rand(5, 1, 24, 24), fake, **kwargs)
    assert "\n" not in str(e.value)
