"""Every matplotlib figure genlab draws lives here (the image grids are Pillow, in :mod:`genlab.io.images`):
a run's training curves, the latent-space figures of :class:`~genlab.apps.LatentExplorer` (interpolation,
traversal and 2-D map; tabular rows as heat maps) and ``genlab detect``'s score histogram.

:func:`plot_history` draws a run's ``metrics.jsonl``: every numeric key the log holds, whatever model wrote it.
Panels: one per key (``loss``, ``rec``, ``kl``, ``d_loss``, ``fid``, ``cond_acc``, a model's own ``my_loss``
...), and one per key family written as ``family/name`` (``lr/main``, ``lr/d``; ``grad_norm/g``). Every panel
uses the same legend: the colour is the split (train blue: thin and light per step, solid per epoch mean;
validation orange), plain lines without markers; in a panel of several keys the dash pattern is the key.
:func:`labelled_grid` draws image grids with labelled rows and columns (class per row, interpolation ``t``,
traversal offsets).
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .atomic import write_bytes_atomic

#: record keys that say where a record sits, not what was measured
RECORD_KEYS = ("step", "epoch", "split")
#: how each split of ``metrics.jsonl`` is drawn and named, the same in every panel: the colour says the split
#: (train blue, validation orange), plain lines without per-point markers (a series of one or two points gets
#: small dots, or it would not show)
SPLIT_STYLES = {
    "train": {"label": "train (each step)", "style": dict(color="#1f77b4", lw=0.8, alpha=0.35)},
    "train_epoch": {"label": "train (epoch mean)", "style": dict(color="#1f77b4", lw=1.8)},
    "val": {"label": "validation", "style": dict(color="#ff7f0e", lw=1.8)},
}
#: in a panel of several keys (``loss/d`` and ``loss/g``) the key sets the dash pattern, the split still the colour
MEMBER_DASHES = ("-", "--", ":", "-.")
#: at most this many points per line (long runs log many steps; the line is thinned evenly, keeping the last)
MAX_POINTS = 4000


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (figures go to files, never to a window)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def figure_png(fig, *, dpi: int = 110, tight: bool = False) -> bytes:
    """``fig`` as PNG bytes; the figure is closed."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, **({"bbox_inches": "tight"} if tight else {}))
    plt.close(fig)
    return buf.getvalue()


def save_figure(fig, path: str | Path, *, dpi: int = 110, tight: bool = False) -> Path:
    """Write ``fig`` as a PNG atomically (a crash leaves the previous file) and close it."""
    write_bytes_atomic(path, figure_png(fig, dpi=dpi, tight=tight))
    return Path(path)


def _numeric(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def history_panels(history: list[dict]) -> dict[str, list[str]]:
    """``{panel title: [keys]}`` for every numeric key in ``history`` (records of ``metrics.jsonl``).

    A key ``family/name`` joins the panel ``family`` (with the plain key ``family`` when the log has one too,
    e.g. a GAN's validation ``loss`` beside its per-optimizer ``loss/d`` and ``loss/g``); any other key gets its
    own panel. Panels come in order of first appearance, ``loss`` first and the other families (learning rates,
    gradient norms) last. Keys whose values are never finite numbers (``null`` for a NaN, strings, booleans) are
    left out.
    """
    single: dict[str, list[str]] = {}
    families: dict[str, list[str]] = {}
    for rec in history:
        for k, v in rec.items():
            if k in RECORD_KEYS or not _numeric(v):
                continue
            family, slash, _ = k.partition("/")
            target = families.setdefault(family, []) if slash else single.setdefault(k, [])
            if k not in target:
                target.append(k)
    panels = dict(sorted(single.items(), key=lambda kv: kv[0] != "loss"))  # stable: "loss" first
    for family, keys in families.items():
        panels[family] = panels.get(family, []) + keys
    return panels


def _series(history: list[dict], key: str, split: str) -> tuple[list[float], list[float]]:
    pts = [(r["step"], r[key]) for r in history if r.get("split") == split and _numeric(r.get(key))
           and _numeric(r.get("step"))]
    if len(pts) > MAX_POINTS:
        stride = math.ceil(len(pts) / MAX_POINTS)
        pts = pts[::-1][::stride][::-1]  # keep the last point
    return ([p[0] for p in pts], [p[1] for p in pts]) if pts else ([], [])


def _steps_per_epoch(history: list[dict]) -> float | None:
    """Training steps per epoch, from the first ``train_epoch`` record (epochs count from 0)."""
    for r in history:
        if r.get("split") == "train_epoch" and _numeric(r.get("step")) and _numeric(r.get("epoch")):
            return r["step"] / (r["epoch"] + 1) if r["step"] > 0 else None
    return None


def _panel_title(panel: str, keys: list[str]) -> str:
    """``key: readable label`` from :mod:`genlab.metrics.units` (the key alone when the label adds nothing)."""
    from ..metrics.units import FAMILIES, lookup
    if len(keys) > 1 or "/" in keys[0]:
        label = FAMILIES[panel].label.split(" (")[0] if panel in FAMILIES else ""
    else:
        info = lookup(keys[0])
        label = info.label if info is not None else ""
    return f"{panel}: {label}" if label and label != panel else panel


def plot_history(history: list[dict], path: str | Path, *, columns: int = 4, title: str | None = None) -> list[str]:
    """Plot every numeric key of a run log into one PNG at ``path``; return the keys plotted (in panel order).

    ``history``: the records of ``metrics.jsonl`` (``{"step", "epoch", "split", <key>: value, ...}`` with split
    ``train``, ``train_epoch`` or ``val``). Records of other splits are drawn too, in grey. The x axis is the
    training step, with the epoch on a second axis above when the log has more than one epoch. Every panel has the
    same legend: the colour is the split (:data:`SPLIT_STYLES`: train blue, validation orange), and in a panel
    of several keys the dash pattern is the key (:data:`MEMBER_DASHES`). A panel whose values are all positive
    and span two decades or more has a log y axis. Nothing is written (and ``[]`` returned) when the log holds
    no numeric key.
    """
    panels = history_panels(history)
    if not panels:
        return []
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator
    splits = list(SPLIT_STYLES) + sorted({str(r.get("split")) for r in history} - set(SPLIT_STYLES))
    n = len(panels)
    cols = max(1, min(columns, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows + (0.4 if title else 0)), squeeze=False)
    spe = _steps_per_epoch(history)
    epochs = max((r["epoch"] for r in history if _numeric(r.get("epoch"))), default=0) + 1
    plotted: list[str] = []
    for ax, (panel, keys) in zip(axes.flat, panels.items()):
        ys_all: list[float] = []
        for i, key in enumerate(keys):
            member = (key.partition("/")[2] or key) if len(keys) > 1 else None
            drawn = False
            for split in splits:
                xs, ys = _series(history, key, split)
                if not xs:
                    continue
                spec = SPLIT_STYLES.get(split, {"label": split, "style": dict(color="0.5", lw=1.2)})
                style = dict(spec["style"], ls=MEMBER_DASHES[i % len(MEMBER_DASHES)])
                if len(xs) <= 2:
                    style.update(marker="o", ms=3)
                label = spec["label"] if member is None else f"{member}: {spec['label']}"
                ax.plot(xs, ys, label=label, **style)
                ys_all += ys
                drawn = True
            if drawn:
                plotted.append(key)
        ax.set_title(_panel_title(panel, keys), fontsize=10)
        ax.set_xlabel("training step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if ys_all and min(ys_all) > 0 and max(ys_all) / min(ys_all) >= 100:
            ax.set_yscale("log")
        if spe and epochs > 1:
            top = ax.secondary_xaxis("top", functions=(lambda s, k=spe: s / k, lambda e, k=spe: e * k))
            top.set_xlabel("epoch", fontsize=8)
            top.xaxis.set_major_locator(MaxNLocator(integer=True))
            top.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="best", frameon=True, framealpha=0.8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save_figure(fig, path)
    return plotted


def labelled_grid(images: torch.Tensor, path: str | Path, *, nrow: int, row_labels=None, col_labels=None,
                  xlabel: str | None = None, ylabel: str | None = None, title: str | None = None) -> Path:
    """Write ``images`` ``(N, C, H, W)`` in [0, 1], ``nrow`` per row, as a PNG with labelled rows and columns.

    ``row_labels``: one text per row, written at the row's left (class names, "pair 1" ...); ``col_labels``: one
    text per column, written below (``t`` of an interpolation, offsets of a traversal); ``xlabel``/``ylabel``:
    the axes' titles. The tiles are drawn pixel for pixel (nearest neighbour, no smoothing).
    """
    from .images import make_grid

    plt = pyplot()
    n, _, h, w = images.shape
    nrow = max(1, min(nrow, n))
    rows = math.ceil(n / nrow)
    scale = max(1, math.ceil(48 / h))
    grid = make_grid(images, nrow=nrow, padding=2, scale=scale)  # (H', W', C) uint8
    th, tw = h * scale + 2, w * scale + 2  # tile pitch in grid pixels
    dpi = 100
    longest = max((len(str(t)) for t in (row_labels if row_labels is not None else [""])), default=0)
    left = 0.2 + 0.075 * longest + (0.3 if ylabel else 0)
    bottom = 0.1 + (0.3 if col_labels is not None else 0) + (0.3 if xlabel else 0)
    top = 0.1 + (0.35 if title else 0)
    fw, fh = grid.shape[1] / dpi, grid.shape[0] / dpi
    W, H = fw + left + 0.15, fh + bottom + top
    fig = plt.figure(figsize=(W, H), dpi=dpi)
    ax = fig.add_axes([left / W, bottom / H, fw / W, fh / H])
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255,
              interpolation="nearest")
    ax.set_yticks([2 + r * th + (th - 2) / 2 - 0.5 for r in range(rows)])
    ax.set_yticklabels([str(t) for t in row_labels] if row_labels is not None else [""] * rows, fontsize=9)
    if col_labels is not None:
        ax.set_xticks([2 + c * tw + (tw - 2) / 2 - 0.5 for c in range(nrow)])
        ax.set_xticklabels([str(t) for t in col_labels], fontsize=8)
    else:
        ax.set_xticks([])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=9)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path, dpi=dpi, tight=True)


# ---------------------------------------------------------------------------------------------- latent space
def _images(a: np.ndarray) -> torch.Tensor:
    """``(N, C, H, W)`` or ``(N, H, W)`` images in [0, 1] as an ``(N, C, H, W)`` tensor."""
    t = torch.as_tensor(np.asarray(a, dtype=np.float32))
    return t.unsqueeze(1) if t.ndim == 3 else t


def _standardise(a: np.ndarray, feature_scale) -> tuple[np.ndarray, str]:
    """Rows ``(..., D)`` shifted by each feature's mean over the figure and divided by ``feature_scale``
    (e.g. the training std per feature), or else by each feature's std over the figure."""
    flat = a.reshape(-1, a.shape[-1]).astype(np.float64)
    if feature_scale is not None:
        s = np.broadcast_to(np.asarray(feature_scale, dtype=np.float64), (a.shape[-1],))
        what = "(value - feature mean) / training std"
    else:
        s = flat.std(0)
        what = "(value - feature mean) / std in figure"
    s = np.where(s > 0, s, 1.0)
    return (a - flat.mean(0)) / s, what


def _heat(ax, a: np.ndarray, lim: float):
    return ax.imshow(a, aspect="auto", cmap="coolwarm", vmin=-lim, vmax=lim, interpolation="nearest")


def plot_interpolation(frames, path, *, feature_scale=None) -> Path:
    """Write an interpolation as a PNG.

    ``frames``: images ``(steps, C, H, W)`` / ``(steps, H, W)`` in [0, 1] (one row), or ``(rows, steps, C, H,
    W)`` (one row per pair). Tabular rows ``(steps, D)`` become a heat map (step by feature) of each feature's
    deviation from its mean over the figure, divided by ``feature_scale`` (``(D,)``, e.g. the training std;
    default: the feature's std over the figure) so features of any scale are visible.
    """
    a = np.asarray(frames)
    if a.ndim == 2:
        plt = pyplot()
        v, what = _standardise(a, feature_scale)
        fig, ax = plt.subplots(figsize=(max(4.0, 0.25 * a.shape[1] + 2.5), 0.3 * a.shape[0] + 1.8))
        im = _heat(ax, v, max(1e-12, float(np.abs(v).max())))
        ax.set_xlabel("feature")
        ax.set_ylabel("step (a at top, b at bottom)")
        fig.colorbar(im, ax=ax, label=what)
        fig.tight_layout()
        return save_figure(fig, path, tight=True)
    if a.ndim in (3, 4, 5):
        if a.ndim == 3:
            a = a[:, None]  # (steps, H, W) -> (steps, 1, H, W)
        if a.ndim == 4:
            a = a[None]  # one row: (1, steps, C, H, W)
        rows, steps = a.shape[:2]
        return labelled_grid(_images(a.reshape(-1, *a.shape[2:])), path, nrow=steps,
                             row_labels=[f"pair {i + 1}" for i in range(rows)] if rows > 1 else ["a to b"],
                             col_labels=[f"{t:.2g}" for t in np.linspace(0, 1, steps)],
                             xlabel="t: position on the path (0 = a, 1 = b)")
    raise DataError(f"plot_interpolation: expected (steps, C, H, W), (rows, steps, C, H, W) images or "
                    f"(steps, D) rows, got shape {a.shape}")


def plot_traversal(frames, path, *, dims=None, feature_scale=None, offsets=None) -> Path:
    """Write a traversal as a PNG: one row per latent dimension, one column per offset.

    Image rows are labelled ``z[d]`` (``dims``, default 0, 1, ...) and columns by ``offsets`` (the values added
    to the code, e.g. ``numpy.linspace(-span, span, steps)`` in prior standard deviations; default: the step
    number).

    ``frames``: images ``(dims, steps, C, H, W)`` / ``(dims, steps, H, W)`` in [0, 1], or tabular rows
    ``(dims, steps, D)``: one heat-map panel per dimension (titled with ``dims`` when given) showing each
    feature's deviation from its mean over the figure, in ``feature_scale`` units as in
    :func:`plot_interpolation`.
    """
    a = np.asarray(frames)
    if a.ndim == 3:
        plt = pyplot()
        v, what = _standardise(a, feature_scale)
        lim = max(1e-12, float(np.abs(v).max()))
        n = a.shape[0]
        cols = min(4, n)
        rows = math.ceil(n / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols + 1.2, 2.6 * rows), squeeze=False)
        for i, ax in enumerate(axes.flat):
            if i >= n:
                ax.axis("off")
                continue
            im = _heat(ax, v[i], lim)
            ax.set_title(f"z[{dims[i] if dims is not None else i}]", fontsize=9)
            ax.set_xlabel("feature", fontsize=8)
            ax.set_ylabel("offset step", fontsize=8)
        fig.colorbar(im, ax=axes.ravel().tolist(), label=what)
        return save_figure(fig, path, tight=True)
    if a.ndim in (4, 5):
        n, steps = a.shape[:2]
        names = list(dims) if dims is not None else list(range(n))
        cols = [f"{o:+.2g}" for o in np.asarray(offsets, dtype=float)] if offsets is not None else \
            [str(i + 1) for i in range(steps)]
        return labelled_grid(_images(a.reshape(-1, *a.shape[2:])), path, nrow=steps,
                             row_labels=[f"z[{d}]" for d in names], col_labels=cols,
                             xlabel="offset added to the code (prior std)" if offsets is not None else
                             "offset step (lowest to highest)", ylabel="latent dimension")
    raise DataError(f"plot_traversal: expected (dims, steps, C, H, W) images or (dims, steps, D) rows, got "
                    f"shape {a.shape}")


def plot_latent_map(coords, y, path, *, class_names=None, title: str | None = None) -> Path:
    """Scatter plot of 2-D coordinates ``(N, 2)`` coloured by label ``y`` (``None``: one colour).

    Up to 20 integer classes get a categorical palette and a legend (``class_names[k]`` for label ``k``);
    other labels (many classes, or continuous values) get a colour bar.
    """
    plt = pyplot()
    xy = np.asarray(coords, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise DataError(f"plot_latent_map: coords must be (N, 2), got shape {xy.shape}")
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    size = max(2.0, min(20.0, 4000.0 / max(1, len(xy))))
    if y is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, alpha=0.7)
    else:
        yy = np.asarray(y).reshape(-1)
        if len(yy) != len(xy):
            raise DataError(f"plot_latent_map: {len(xy)} points but {len(yy)} labels; give one label per point")
        classes = np.unique(yy)
        discrete = yy.dtype.kind in "iub" or np.all(yy == np.round(yy))
        if discrete and len(classes) <= 20:
            cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
            for i, c in enumerate(classes):
                m = yy == c
                name = class_names[int(c)] if class_names is not None and 0 <= int(c) < len(class_names) else c
                ax.scatter(xy[m, 0], xy[m, 1], s=size, alpha=0.75, color=cmap(i), label=str(name))
            ax.legend(markerscale=max(1.0, 24.0 / size) ** 0.5, fontsize=8, loc="best", title="label")
        else:
            sc = ax.scatter(xy[:, 0], xy[:, 1], s=size, alpha=0.75, c=yy.astype(np.float64), cmap="viridis")
            fig.colorbar(sc, ax=ax, label="label")
    ax.set_xlabel("map x")
    ax.set_ylabel("map y")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path, tight=True)


# ---------------------------------------------------------------------------------------------- anomaly scores
def score_histogram_png(scores: np.ndarray, threshold: float, normal: np.ndarray | None = None,
                        normal_class: int | None = None) -> bytes:
    """Histogram of anomaly scores (higher = more normal) with the threshold, as PNG bytes; with ``normal``
    (a boolean mask of the inputs of class ``normal_class``) the normal and other inputs in two colours."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    bins = np.histogram_bin_edges(scores, bins=min(60, max(10, len(scores) // 10)))
    if normal is None:
        ax.hist(scores, bins=bins, color="tab:blue", alpha=0.8, label="inputs")
    else:
        ax.hist(scores[normal], bins=bins, color="tab:blue", alpha=0.6, label=f"class {normal_class} (normal)")
        ax.hist(scores[~normal], bins=bins, color="tab:red", alpha=0.6, label="other classes")
    ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:.4g}")
    ax.set_xlabel("score (higher = more normal; below the threshold = outlier)")
    ax.set_ylabel("count")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig, dpi=100)
