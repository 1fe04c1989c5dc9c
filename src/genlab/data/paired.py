"""Paired image-to-image data: (source, target[, mask]) made on the fly from any image data set, or read from
two folders.

A paired data set is a :class:`~genlab.data.TensorDataset` whose ``x`` is the TARGET ``(N, C, H, W)`` in
[0, 1] and whose ``extras`` hold ``"src"`` ``(N, Cs, Hs, Ws)`` in [0, 1] and, for inpainting, ``"mask"``
``(N, 1, H, W)`` (float, 1 = missing; ``src`` has the missing pixels set to 0). Labels, classes, name and
normalisation of the original data are kept.

Transforms (:func:`make_pairs`, the ``data.pair`` key of a run, ``--pair`` of the apps):

``downsample:K`` / ``downsample:K:bicubic``
    Super-resolution: ``src`` is the target shrunk by ``K`` in both sides (``H`` and ``W`` must divide by ``K``).
    Default ``area``: the mean of each ``K x K`` block (exact box filter). ``bicubic``: torch's antialiased
    bicubic resize (``F.interpolate(..., mode="bicubic", antialias=True)``), clamped to [0, 1].
``grey``
    Colourisation: ``src`` is the ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` ``(N, 1, H, W)``; needs
    colour (``C = 3``) targets.
``mask:box``
    Inpainting, centre box: the missing region is the centre ``ceil(H/2) x ceil(W/2)`` rectangle (a quarter of
    the image, 25 % of the pixels when H and W are even), the same for every image.
``mask:free``
    Inpainting, free-form strokes (seeded by ``seed``: the same data size and seed give the same masks): each
    image gets strokes until at least a coverage drawn uniformly from
    [:data:`FREE_COVERAGE` ``[0]``, :data:`FREE_COVERAGE` ``[1]``] = [15 %, 35 %] of its pixels is missing.
    A stroke is a polyline of 2-4 segments (random angles, each ``H/8 .. H/2`` long) drawn with a round brush
    of diameter ``max(1, H/8) .. max(2, H/4)`` (H = the shorter side).
``edges`` / ``edges:sobel`` / ``edges:canny``
    Sketch -> image: ``src`` is an edge map ``(N, 1, H, W)`` of the target's luma (colour targets) or grey
    value. ``sobel`` (default): scikit-image's ``filters.sobel`` magnitude (``sqrt((Gx^2 + Gy^2) / 2)`` with
    kernels normalised to weight 1/4 per side, so a 0 -> 1 step gives 1/sqrt(2)), times ``sqrt(2)`` and clipped
    to [0, 1] (a full black/white step is 1). ``canny``: scikit-image's ``feature.canny`` with ``sigma=1``
    (binary 0/1), for images of at least 16 x 16 pixels.

Folder pairs (:func:`load_pairs`, or the data spec ``pairs:PATH`` anywhere a data set is named): ``PATH/A/``
holds the sources and ``PATH/B/`` the targets, PNG/JPEG files directly in each folder, matched by file name
without the extension (``A/0001.png`` <-> ``B/0001.jpg``). Each folder's images share one size; the two sizes
may differ (super-resolution pairs). Optional ``PATH/mask/`` (same names, grey, non-zero = missing) becomes the
mask.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from .dataset import TensorDataset

logger = logging.getLogger(__name__)

#: the transforms :func:`make_pairs` understands (the first word of a spec)
TRANSFORMS = ("downsample", "grey", "mask", "edges")
#: the spellings shown in error messages
SPEC_FORMS = "downsample:K[:area|bicubic], grey, mask:box, mask:free, edges[:sobel|canny]"
#: free-form masks: the range the target coverage of each image is drawn from
FREE_COVERAGE = (0.15, 0.35)
#: BT.601 luma weights (R, G, B)
LUMA = (0.299, 0.587, 0.114)
#: the data-spec prefix of folder pairs (``pairs:PATH``)
PAIRS_PREFIX = "pairs:"


# ---------------------------------------------------------------------------- parsing
def parse_spec(spec) -> tuple[str, tuple]:
    """``(transform, arguments)`` of a pair spec; one-line :class:`DataError` for anything else.

    ``"downsample:4"`` -> ``("downsample", (4, "area"))``, ``"grey"`` -> ``("grey", ())``, ``"mask:free"`` ->
    ``("mask", ("free",))``, ``"edges"`` -> ``("edges", ("sobel",))``. ``gray`` is accepted for ``grey``.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"pair spec must be a string ({SPEC_FORMS}), got {spec!r}")
    parts = [p.strip().lower() for p in spec.strip().split(":")]
    head, args = parts[0], parts[1:]
    if head == "gray":
        head = "grey"
    if head == "downsample":
        if len(args) not in (1, 2) or not args[0].isdigit() or int(args[0]) < 2:
            raise DataError(f"pair spec {spec!r}: give the factor as an integer >= 2, e.g. downsample:2 or "
                            "downsample:4:bicubic")
        method = args[1] if len(args) == 2 else "area"
        if method not in ("area", "bicubic"):
            raise DataError(f"pair spec {spec!r}: downsampling method must be area or bicubic, got {method!r}")
        return "downsample", (int(args[0]), method)
    if head == "grey" and not args:
        return "grey", ()
    if head == "mask" and len(args) == 1 and args[0] in ("box", "free"):
        return "mask", (args[0],)
    if head == "edges" and len(args) <= 1 and (not args or args[0] in ("sobel", "canny")):
        return "edges", (args[0] if args else "sobel",)
    raise DataError(f"unknown pair spec {spec!r}; use one of: {SPEC_FORMS}")


# ---------------------------------------------------------------------------- the transforms
def downsample(x: torch.Tensor, factor: int, method: str = "area") -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, C, H/factor, W/factor)``: block means (``area``) or antialiased bicubic."""
    n, c, h, w = x.shape
    if factor > min(h, w):
        raise DataError(f"downsample:{factor}: images of {h}x{w} are smaller than the factor {factor}; use a factor "
                        f"that divides both sides (e.g. 2), or larger images")
    if h % factor or w % factor:
        raise DataError(f"downsample:{factor}: images of {h}x{w} do not divide by {factor}; crop or resize them "
                        f"to a multiple of {factor} (e.g. {h - h % factor}x{w - w % factor})")
    if method == "area":
        return F.avg_pool2d(x, factor)
    out = F.interpolate(x, size=(h // factor, w // factor), mode="bicubic", antialias=True, align_corners=False)
    return out.clamp_(0.0, 1.0)


def luma(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma ``(N, 1, H, W)`` of colour images ``(N, 3, H, W)``; grey images are returned as they are."""
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise DataError(f"luma needs grey (C=1) or RGB (C=3) images, got {x.shape[1]} channels")
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def box_mask(shape: tuple[int, int]) -> torch.Tensor:
    """``(1, H, W)`` mask of the centre ``ceil(H/2) x ceil(W/2)`` box (1 = missing)."""
    h, w = shape
    bh, bw = -(-h // 2), -(-w // 2)
    top, left = (h - bh) // 2, (w - bw) // 2
    m = torch.zeros(1, h, w)
    m[:, top:top + bh, left:left + bw] = 1.0
    return m


def free_masks(n: int, shape: tuple[int, int], *, seed: int) -> torch.Tensor:
    """``(n, 1, H, W)`` free-form stroke masks (1 = missing), see the module notes.

    Drawn for all images at once, one stroke per image per round, from one ``numpy`` generator seeded by
    ``seed``: the same ``n``, shape and seed give the same masks. An image stops receiving strokes once its
    coverage reaches its target."""
    h, w = shape
    side = min(h, w)
    rng = np.random.default_rng(int(seed) & 0xFFFFFFFF)
    yy = np.arange(h, dtype=np.float32)[None, :, None]  # (1, H, 1) pixel centres
    xx = np.arange(w, dtype=np.float32)[None, None, :]  # (1, 1, W)
    target = rng.uniform(*FREE_COVERAGE, size=n)  # (n,)
    m = np.zeros((n, h, w), dtype=bool)
    for _round in range(64):  # rounds of strokes; every target is reached long before
        active = m.reshape(n, -1).mean(1) < target  # (n,)
        if not active.any():
            break
        width = rng.uniform(max(1.0, side / 8), max(2.0, side / 4), size=n)
        y0, x0 = rng.uniform(0, h, size=n), rng.uniform(0, w, size=n)
        segments = rng.integers(2, 5, size=n)
        for seg in range(4):
            ang = rng.uniform(0, 2 * math.pi, size=n)
            length = rng.uniform(side / 8, side / 2, size=n)
            y1 = np.clip(y0 + length * np.sin(ang), 0, h - 1)
            x1 = np.clip(x0 + length * np.cos(ang), 0, w - 1)
            idx = np.flatnonzero(active & (seg < segments))
            if len(idx):
                # distance of every pixel centre to the segment (y0, x0) - (y1, x1), for the images drawn on
                f32 = np.float32
                a, b = y0[idx].astype(f32)[:, None, None], x0[idx].astype(f32)[:, None, None]  # (k, 1, 1)
                dy, dx = y1[idx].astype(f32)[:, None, None] - a, x1[idx].astype(f32)[:, None, None] - b
                seg2 = np.maximum(dy * dy + dx * dx, f32(1e-12))
                t = np.clip(((yy - a) * dy + (xx - b) * dx) / seg2, f32(0), f32(1))  # (k, H, W)
                d2 = (yy - (a + t * dy)) ** 2 + (xx - (b + t * dx)) ** 2
                m[idx] |= d2 <= (width[idx].astype(f32) / 2)[:, None, None] ** 2
            y0, x0 = y1, x1
    return torch.from_numpy(m.astype(np.float32)).unsqueeze(1)


def edge_maps(x: torch.Tensor, method: str = "sobel") -> torch.Tensor:
    """``(N, 1, H, W)`` edge maps of the luma of ``x`` (see the module notes), float32 in [0, 1]."""
    from skimage import feature, filters
    g = luma(x).squeeze(1).double().cpu().numpy()  # (N, H, W)
    if method == "canny" and min(g.shape[1:]) < 16:
        raise DataError(f"edges:canny needs images of at least 16x16 pixels, got {g.shape[1]}x{g.shape[2]}; "
                        "use edges:sobel")
    out = np.empty(g.shape, dtype=np.float32)
    for i, im in enumerate(g):
        if method == "sobel":
            out[i] = np.clip(filters.sobel(im) * math.sqrt(2.0), 0.0, 1.0)
        else:
            out[i] = feature.canny(im, sigma=1.0)
    return torch.from_numpy(out).unsqueeze(1)


# ---------------------------------------------------------------------------- the paired data set
def make_pairs(ds: TensorDataset, spec: str, *, seed: int = 0) -> TensorDataset:
    """The paired data set of ``ds`` (its images are the targets) under the transform ``spec``.

    Parameters
    ----------
    ds : TensorDataset
        Image data ``(N, C, H, W)`` in [0, 1]; must not be paired already.
    spec : str
        ``downsample:K[:area|bicubic]``, ``grey``, ``mask:box``, ``mask:free`` or ``edges[:sobel|canny]``
        (see the module notes for each).
    seed : int
        Seeds the free-form masks (the other transforms are deterministic).

    Returns
    -------
    TensorDataset
        ``x`` = ``ds.x`` (the targets), labels/classes/norm/name kept, ``extras`` ``{"src": ...}`` plus
        ``"mask"`` for ``mask:*``.

    Raises
    ------
    DataError
        Unknown spec, non-image or already paired data, a factor that does not divide the image size, ``grey``
        on non-colour images (one line each).
    """
    kind, args = parse_spec(spec)
    if ds.kind != "image":
        raise DataError(f"{ds.name}: pair {spec!r} needs image data (N, C, H, W), got {ds.kind} data of shape "
                        f"{ds.sample_shape}")
    if "src" in ds.extras:
        raise DataError(f"{ds.name}: the data is paired already (it has a source image); drop pair={spec!r}")
    if ds.has_missing:
        raise DataError(f"{ds.name}: images with NaN cannot be paired; fill them first")
    x = ds.x
    extras: dict[str, torch.Tensor] = {}
    if kind == "downsample":
        extras["src"] = downsample(x, *args)
    elif kind == "grey":
        if x.shape[1] != 3:
            raise DataError(f"{ds.name}: pair 'grey' (colourisation) needs colour images (C=3), got C="
                            f"{x.shape[1]} of shape {ds.sample_shape}; use a colour data set (e.g. photos32)")
        extras["src"] = luma(x)
    elif kind == "mask":
        h, w = x.shape[-2:]
        mask = (box_mask((h, w)).expand(len(x), 1, h, w).clone() if args[0] == "box"
                else free_masks(len(x), (h, w), seed=seed)).to(x.device)
        extras["src"] = x * (1.0 - mask)
        extras["mask"] = mask
    else:
        extras["src"] = edge_maps(x, args[0]).to(x.device)
    logger.info("%s: pairs %s, source %s -> target %s", ds.name, spec, tuple(extras["src"].shape[1:]),
                ds.sample_shape)
    return TensorDataset(x, ds.y, norm=ds.norm, name=ds.name, classes=ds.classes, allow_empty=True,
                         extras=extras)


def with_pairs(x: torch.Tensor, src: torch.Tensor, mask: torch.Tensor | None = None, *, y=None,
               name: str = "pairs") -> TensorDataset:
    """A paired data set from tensors (targets ``x``, sources ``src``, optional ``mask``), checked by
    :func:`check_pair_shapes`."""
    check_pair_shapes(x, src, mask, name=name)
    extras = {"src": src} if mask is None else {"src": src, "mask": mask}
    return TensorDataset(x, y, name=name, extras=extras)


def check_pair_shapes(x: torch.Tensor, src: torch.Tensor, mask: torch.Tensor | None = None, *,
                      name: str = "pairs") -> None:
    """One-line :class:`DataError` unless ``x`` ``(N, C, H, W)`` and ``src`` ``(N, Cs, Hs, Ws)`` have the same
    N and ``mask`` (when given) is ``(N, 1, H, W)`` of 0/1 values."""
    if src.ndim != 4 or x.ndim != 4:
        raise DataError(f"{name}: source and target must be image batches (N, C, H, W), got source "
                        f"{tuple(src.shape)} and target {tuple(x.shape)}")
    if len(src) != len(x):
        raise DataError(f"{name}: {len(src)} source images but {len(x)} target images "
                        f"(source {tuple(src.shape)}, target {tuple(x.shape)}); give one source per target")
    if mask is not None:
        check_mask(mask, (len(x), 1, *x.shape[-2:]), name=name)


def check_mask(mask: torch.Tensor, shape: tuple[int, ...], *, name: str = "mask") -> None:
    """One-line :class:`DataError` unless ``mask`` has ``shape``, holds only 0 and 1, marks some pixel missing,
    and leaves some pixel of every image known (an image with no known pixel has nothing to inpaint from)."""
    if tuple(mask.shape) != tuple(shape):
        raise DataError(f"{name}: mask of shape {tuple(mask.shape)} does not fit images of shape {tuple(shape)} "
                        f"(one channel, 1 = missing); give a (N, 1, H, W) mask")
    bad = ~((mask == 0) | (mask == 1))
    if bool(bad.any()):
        v = float(mask[bad].flatten()[0])
        raise DataError(f"{name}: mask must hold only 0 (known) and 1 (missing), found {v:g}; threshold it "
                        "(e.g. mask > 0.5)")
    if len(mask) and not bool(mask.any()):
        raise DataError(f"{name}: the mask marks no pixel missing (all 0), so there is nothing to inpaint; mark the "
                        "missing pixels with 1")
    full = mask.flatten(1).all(1)
    if bool(full.any()):
        i = int(full.nonzero()[0])
        raise DataError(f"{name}: the mask hides every pixel of image {i} (all 1), so nothing is known to inpaint "
                        "from; leave some pixels known (0)")


# ---------------------------------------------------------------------------- folder pairs
def _flat_images(folder: Path) -> dict[str, Path]:
    from .files import IMAGE_EXTS
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; folder pairs need A/ (sources) and B/ (targets) with "
                        "matching file names")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS
                   and not p.name.startswith("."))
    if not files:
        raise DataError(f"{folder}: no .png/.jpg/.jpeg images directly in it; put the images in {folder.name}/ "
                        "(not in sub-folders)")
    out: dict[str, Path] = {}
    for p in files:
        if p.stem in out:
            raise DataError(f"{folder}: {out[p.stem].name} and {p.name} share the name {p.stem!r}; keep one")
        out[p.stem] = p
    return out


def _read_images(paths: list[Path], where: Path) -> torch.Tensor:
    """``(N, C, H, W)`` in [0, 1] of the files in the order given (through the image folder reader)."""
    import shutil
    import tempfile

    from .files import load_image_folder
    # the image folder reader orders files by name; read the files from a temporary folder of numbered links
    # so the order is ours and the decoding rules (grey/RGB, 16-bit, one size) are the reader's
    with tempfile.TemporaryDirectory(prefix="genlab-pairs-") as tmp:
        for i, p in enumerate(paths):
            dst = Path(tmp) / f"{i:09d}{p.suffix.lower()}"
            try:
                dst.symlink_to(p.resolve())
            except OSError:
                shutil.copyfile(p, dst)
        try:
            return load_image_folder(Path(tmp)).x
        except DataError as e:  # name the user's files, not the temporary links
            msg = str(e)
            for i, p in enumerate(paths):
                msg = msg.replace(str(Path(tmp) / f"{i:09d}{p.suffix.lower()}"), str(p))
                msg = msg.replace(f"{i:09d}{p.suffix.lower()}", p.name)
            raise DataError(msg.replace(tmp, str(where))) from None


def load_pairs(folder) -> TensorDataset:
    """Folder pairs: sources in ``folder/A/``, targets in ``folder/B/`` (optional masks in ``folder/mask/``),
    matched by file name without the extension.

    Returns a paired :class:`TensorDataset` (``x`` = targets, ``extras["src"]`` = sources, ``extras["mask"]``
    when ``mask/`` exists, pixels > 0 meaning missing), in sorted name order, named ``folder``.

    Raises
    ------
    DataError
        Missing ``A/`` or ``B/``, names present on one side only (the message names them), images of mixed
        sizes within a folder, unreadable images, a mask that does not fit the targets.
    """
    root = Path(folder).expanduser()
    if root.exists() and not root.is_dir():
        raise DataError(f"{root} is a file, not a folder; folder pairs need a folder holding {root.name}/A/ (sources) "
                        f"and {root.name}/B/ (targets)")
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; folder pairs need {root}/A/ (sources) and {root}/B/ (targets)")
    a, b = _flat_images(root / "A"), _flat_images(root / "B")
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        def few(names, side):
            files = [side[n].name for n in names[:3]]
            return ", ".join(files) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")
        parts = ([f"A/ has {few(only_a, a)} with no match in B/"] if only_a else []) + \
                ([f"B/ has {few(only_b, b)} with no match in A/"] if only_b else [])
        raise DataError(f"{root}: unmatched file names: {'; '.join(parts)}; every source needs a target of the "
                        "same name (extension aside)")
    names = sorted(a)
    src = _read_images([a[n] for n in names], root / "A")
    tgt = _read_images([b[n] for n in names], root / "B")
    mask = None
    if (root / "mask").is_dir():
        m = _flat_images(root / "mask")
        missing = [n for n in names if n not in m]
        if missing:
            raise DataError(f"{root}/mask: no mask for {', '.join(missing[:3])}; give one mask per pair or remove "
                            "mask/")
        raw = _read_images([m[n] for n in names], root / "mask")
        mask = (raw.amax(1, keepdim=True) > 0).to(torch.float32)  # (N, 1, H, W)
        if mask.shape[-2:] != tgt.shape[-2:]:
            raise DataError(f"{root}/mask: masks of {mask.shape[-2]}x{mask.shape[-1]} do not fit targets of "
                            f"{tgt.shape[-2]}x{tgt.shape[-1]}; give masks of the target size")
        if src.shape[-2:] == mask.shape[-2:]:
            src = src * (1.0 - mask)  # the convention: missing source pixels are 0
    logger.info("%s: %d pairs, source %s -> target %s", root, len(names), tuple(src.shape[1:]),
                tuple(tgt.shape[1:]))
    return with_pairs(tgt, src, mask, name=str(root))


def is_pairs_spec(spec) -> bool:
    """Whether a data spec names folder pairs (``pairs:PATH``)."""
    return isinstance(spec, str) and spec.startswith(PAIRS_PREFIX)
