"""Sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018, "Progressive Growing of GANs").

A feature-net-free image metric: at each level of a Laplacian pyramid, 7x7 neighbourhoods drawn at random from every
image are the descriptors of that level; the distance of two image sets at a level is the sliced Wasserstein-1
distance of their descriptor sets. Because it needs no trained network, it suits data too small to train a
feature net that separates generators (the 100 faces of ``lfw_subset``), and the levels say at which scale two sets
differ (fine texture at the first level, layout at the last).
"""
from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from ._common import as_feature_tensor, as_image_tensor, check_positive_int, check_same_dim

logger = logging.getLogger(__name__)

_KERNEL_1D = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float64) / 16.0
_DIRECTION_CHUNK = 128  # directions drawn at once (ProGAN: 4 repeats of 128)
_PROJECTION_ELEMENTS = 1 << 24  # projected values held at once: bounds the work memory for large sets (~0.5 GB)


def _blur(x: torch.Tensor) -> torch.Tensor:
    """The 5-tap binomial filter [1, 4, 6, 4, 1] / 16 along H and W, mirrored borders (``d c b | a b c d | c b a``,
    scipy.ndimage's ``mirror``, as ProGAN's reference code)."""
    c = x.shape[1]
    k = _KERNEL_1D.to(dtype=x.dtype, device=x.device)
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="reflect"), k.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)
    return F.conv2d(F.pad(x, (0, 0, 2, 2), mode="reflect"), k.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)


def _check_blurrable(h: int, w: int, what: str) -> None:
    if min(h, w) < 3:
        raise DataError(f"{what}: images of {h}x{w} are too small for the 5-tap pyramid filter; they need at least "
                        f"3 pixels a side")


def pyramid_down(x: torch.Tensor) -> torch.Tensor:
    """Blur, then keep every second row and column: (N, C, H, W) -> (N, C, ceil(H/2), ceil(W/2))."""
    _check_blurrable(*x.shape[-2:], "pyramid_down")
    return _blur(x)[:, :, ::2, ::2]


def pyramid_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`pyramid_down`'s subsampling: zeros between the samples, then the blur times 4, to ``size``
    (which must be (2h - 1 or 2h, 2w - 1 or 2w) for an (h, w) input)."""
    n, c, h, w = x.shape
    if not (2 * h - 1 <= size[0] <= 2 * h and 2 * w - 1 <= size[1] <= 2 * w):
        raise DataError(f"pyramid_up: cannot bring {h}x{w} to {size[0]}x{size[1]}; the size must be 2x or 2x - 1")
    _check_blurrable(*size, "pyramid_up")
    out = x.new_zeros(n, c, *size)
    out[:, :, ::2, ::2] = 4.0 * x
    return _blur(out)


def laplacian_pyramid(x: Any, levels: int) -> list[torch.Tensor]:
    """``levels`` band-pass images, finest first: ``G_i - up(G_{i+1})`` for the Gaussian pyramid ``G_0 = x``,
    ``G_{i+1} = pyramid_down(G_i)``; the last level is the low-pass ``G_{levels-1}`` itself, so the levels sum back to
    ``x`` exactly (each upsampled to the size above it)."""
    x = as_image_tensor(x, "images")
    return _laplacian(x, check_positive_int(levels, "levels"))


def _laplacian(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """:func:`laplacian_pyramid` of an already checked float tensor (:func:`swd` checks its inputs once)."""
    gauss = [x]
    for _ in range(levels - 1):
        if min(gauss[-1].shape[-2:]) < 3:
            raise DataError(f"images of {x.shape[-2]}x{x.shape[-1]} are too small for {levels} pyramid levels; "
                            f"ask for fewer levels")
        gauss.append(pyramid_down(gauss[-1]))
    return [g - pyramid_up(gn, g.shape[-2:]) for g, gn in zip(gauss, gauss[1:])] + [gauss[-1]]


def pyramid_sizes(height: int, width: int, min_res: int) -> list[tuple[int, int]]:
    """The sizes of the pyramid levels that :func:`swd` scores: every halving (rounded up) of ``height`` x ``width``
    whose shorter side is still at least ``min_res`` (>= 2)."""
    if min_res < 2:
        raise ConfigError(f"min_res must be at least 2 (halving a 1-pixel side never ends), got {min_res}")
    sizes = [(height, width)]
    while True:
        half = (-(-sizes[-1][0] // 2), -(-sizes[-1][1] // 2))  # halved, rounded up
        if min(half) < min_res:
            return sizes
        sizes.append(half)


def patch_descriptors(level: torch.Tensor, patch: int, per_image: int, generator: torch.Generator) -> torch.Tensor:
    """``per_image`` ``patch`` x ``patch`` neighbourhoods of each image at uniformly drawn positions, as rows
    (N * per_image, C * patch * patch), each channel standardised by the mean and standard deviation of all of the
    set's descriptors (ProGAN's ``finalize_descriptors``: each set by its own statistics)."""
    n, c, h, w = level.shape
    img = torch.arange(n).repeat_interleave(per_image)
    ys = torch.randint(0, h - patch + 1, (n * per_image,), generator=generator)
    xs = torch.randint(0, w - patch + 1, (n * per_image,), generator=generator)
    d = torch.arange(patch)
    hwc = level.permute(0, 2, 3, 1)
    desc = hwc[img[:, None, None], ys[:, None, None] + d[None, :, None], xs[:, None, None] + d[None, None, :]]
    # (M, p, p, C): standardised in place, then one copy to rows ordered (C, p, p); large sets hold two copies at most
    std, mean = torch.std_mean(desc, dim=(0, 1, 2), keepdim=True, correction=0)
    desc.sub_(mean).div_(std.clamp_min(1e-12))
    return desc.permute(0, 3, 1, 2).reshape(desc.shape[0], -1)


def wasserstein_1d_sorted(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Wasserstein-1 distance between the empirical distributions of the rows of ``a`` (K, n) and ``b`` (K, m),
    each row sorted ascending: ``integral_0^1 |Qa(u) - Qb(u)| du`` over the quantile functions, exact for any n
    and m (for n = m, the mean absolute difference of the sorted values). Returns (K,) in float64."""
    return _wasserstein_on_grid(a, b, _quantile_grid(a.shape[1], b.shape[1], a.device))


def _quantile_grid(n: int, m: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pieces on which both empirical quantile functions are constant: the sorted index into each set on each
    piece, and the pieces' widths (summing to 1)."""
    kw = {"dtype": torch.float64, "device": device}
    u = torch.cat([torch.arange(1, n + 1, **kw) / n, torch.arange(1, m + 1, **kw) / m]).unique(sorted=True)
    width = torch.diff(u, prepend=u.new_zeros(1))
    mid = u - width / 2
    return (mid * n).floor().long().clamp(0, n - 1), (mid * m).floor().long().clamp(0, m - 1), width


def _wasserstein_on_grid(a: torch.Tensor, b: torch.Tensor, grid) -> torch.Tensor:
    ia, ib, width = grid
    return (a[:, ia] - b[:, ib]).abs().double() @ width


def sliced_wasserstein(a: Any, b: Any, *, directions: int = 512, generator: torch.Generator | None = None) -> float:
    """Sliced Wasserstein-1 distance of two sample sets (n, D) and (m, D): the mean, over ``directions`` random unit
    vectors (normal draws, normalised), of the exact 1-D Wasserstein-1 distance of the two sets' projections. Sample
    sizes may differ. Monte Carlo over directions: its standard error falls as ``1 / sqrt(directions)``."""
    a = as_feature_tensor(a, "first set", dtype=torch.float32)
    b = as_feature_tensor(b, "second set", dtype=torch.float32)
    check_same_dim(a, b, "first set", "second set")
    directions = check_positive_int(directions, "directions")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    total = 0.0
    step = max(1, _PROJECTION_ELEMENTS // (len(a) + len(b)))  # directions projected at once (fewer for large sets)
    grid = _quantile_grid(len(a), len(b), a.device)
    for lo in range(0, directions, _DIRECTION_CHUNK):
        k = min(_DIRECTION_CHUNK, directions - lo)
        v = torch.randn(a.shape[1], k, generator=g, dtype=torch.float64)  # drawn on the CPU: the same on any device
        v = (v / v.norm(dim=0, keepdim=True)).float().T.contiguous().to(a.device)  # (k, D)
        for vs in v.split(step):
            pa, _ = torch.sort(vs @ a.T, dim=1)  # (step, n): rows contiguous, sorted along them
            pb, _ = torch.sort(vs @ b.T, dim=1)
            total += float(_wasserstein_on_grid(pa, pb, grid).sum())
    return total / directions


def swd(real: Any, fake: Any, *, patch: int = 7, patches_per_image: int = 128, min_res: int = 8,
        directions: int = 512, seed: int = 0) -> dict[str, Any]:
    """Multi-scale sliced Wasserstein distance between two image sets (N, C, H, W) and (M, C, H, W), values in any
    range (the per-set standardisation of the descriptors removes a scale and offset of either set).

    Conventions (ProGAN's, except where said): a Laplacian pyramid of each set (5-tap binomial filter, mirrored
    borders), levels from the full size down to the last size whose shorter side is at least ``min_res`` (ProGAN
    stops at 16 for its 64-1024 px images; 8 here by default, so 25-32 px images get two or three levels);
    ``patches_per_image`` random ``patch`` x ``patch`` neighbourhoods per image and level, standardised per channel
    by their own set's statistics; sliced Wasserstein-1 over ``directions`` random directions (ProGAN: 4 x 128);
    reported times 1,000, as the paper does. The sets may have different sizes (the 1-D distances are exact for
    unequal sizes); the draws of positions and directions come from ``seed``.

    Returns ``{"levels": [(height, width, swd_x1e3), ...] finest first, "mean": the mean over levels,
    "convention": these settings in words}``.
    """
    real = as_image_tensor(real, "real images")
    fake = as_image_tensor(fake, "generated images")
    patch = check_positive_int(patch, "patch", minimum=1)
    patches_per_image = check_positive_int(patches_per_image, "patches_per_image")
    min_res = check_positive_int(min_res, "min_res", minimum=3)  # the 5-tap filter needs 3 pixels a side
    for t, what in ((real, "real images"), (fake, "generated images")):
        if len(t) == 0:
            raise DataError(f"{what}: the set is empty; pass at least one image")
    if real.shape[1:] != fake.shape[1:]:
        raise DataError(f"image shapes differ: real {tuple(real.shape[1:])}, generated {tuple(fake.shape[1:])}; "
                        f"bring both to the same (C, H, W) before scoring")
    h, w = real.shape[-2:]
    if min_res < patch:
        raise ConfigError(f"min_res ({min_res}) must be at least the patch size ({patch}): a level smaller than a "
                          f"patch has no neighbourhood to draw")
    if min(h, w) < min_res:
        raise DataError(f"images of {h}x{w} are smaller than min_res={min_res}, the smallest pyramid level scored; "
                        f"score larger images (in Python: lower min_res and patch)")
    sizes = pyramid_sizes(h, w, min_res)
    g = torch.Generator().manual_seed(int(seed))
    out = []
    for (lh, lw), lr, lf in zip(sizes, _laplacian(real, len(sizes)), _laplacian(fake, len(sizes))):
        dr = patch_descriptors(lr.float(), patch, patches_per_image, g)
        df = patch_descriptors(lf.float(), patch, patches_per_image, g)
        out.append((lh, lw, 1e3 * sliced_wasserstein(dr, df, directions=directions, generator=g)))
    convention = (f"x1e3, mean over Laplacian-pyramid levels down to {min_res} px (5-tap binomial, mirrored "
                  f"borders), {patches_per_image} random {patch}x{patch} patches per image and level, each set "
                  f"standardised per channel, {directions} random directions, seed {seed}; on the images, no "
                  "feature net")
    result = {"levels": out, "mean": sum(v for *_, v in out) / len(out), "convention": convention}
    logger.debug("SWD x1e3 per level %s, mean %.4g", [(f"{a}x{b}", round(v, 3)) for a, b, v in out], result["mean"])
    return result
