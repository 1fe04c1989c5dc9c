"""Run-folder figures (samples, reconstructions, interpolation, training curves) and ``report.html``.

``report.html`` is one self-contained file: every figure is embedded as a base64 PNG ``data:`` URI and the CSS
is inline, so the file renders alone (mail it, attach it to an issue). It shows a header (model, data, date,
genlab version, git commit, host, device, precision, wall time), the metrics grouped (test / validation, last
and best / run facts) with units and conventions from :mod:`genlab.metrics.units`, the training curves, the
figures, the per-epoch sample grids as a strip and the config as a table with the values that differ from the
defaults highlighted.

The matplotlib figures are drawn by :mod:`genlab.io.plots`; the image grids by :mod:`genlab.io.images`.
"""
from __future__ import annotations

import base64
import datetime
import html
import json
import logging
import platform
import re
import socket
import subprocess
from pathlib import Path

import torch

from .. import __version__
from ..errors import CheckpointError
from ..latent import lerp
from .atomic import write_bytes_atomic
from .images import save_grid

log = logging.getLogger(__name__)

#: at most this many per-epoch sample grids in the report's strip (evenly spaced, the last one always kept)
MAX_STRIP = 12


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a run's ``metrics.jsonl`` (``[]`` when the file does not exist).

    A line that is not a JSON object is a one-line :class:`~genlab.errors.CheckpointError` naming the line.
    A last line without its newline (a write cut short by a kill) is dropped, as the Trainer drops it on resume.
    """
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_text(errors="replace")
    lines = text.split("\n")
    if lines and lines[-1].strip():  # no trailing newline: the last record's write did not finish
        lines = lines[:-1]
    out = []
    for i, ln in enumerate(lines, 1):
        if not ln.strip():
            continue
        try:
            rec = json.loads(ln)
        except ValueError:
            rec = None
        if not isinstance(rec, dict):
            raise CheckpointError(f"{path}: line {i} is not a JSON record ({ln[:40]!r}); the log is damaged, "
                                  "restore it or delete the line")
        out.append(rec)
    return out


def _translation_figure(model, x: torch.Tensor, extras: dict, path: Path) -> dict[str, str]:
    """Image-to-image models (``translates``): held-out sources, their translations and the targets, one row each
    (sources shown at the target size, nearest neighbour; grey sources of colour targets repeated over RGB)."""
    from .plots import labelled_grid

    n = len(x)
    src = extras["src"][:n]
    mask = extras["mask"][:n] if "mask" in extras and getattr(model, "with_mask", False) else None
    out = model.translate(src, mask).float().cpu()
    shown = torch.nn.functional.interpolate(src.float(), size=x.shape[2:], mode="nearest")
    if shown.shape[1] != x.shape[1]:
        shown = shown.mean(1, keepdim=True).expand(-1, x.shape[1], -1, -1)
    labelled_grid(torch.cat([shown, out, x.float()]).cpu(), path, nrow=n, row_labels=["source", "output", "target"])
    return {"Translations of held-out sources (source, output, target)": path.name}


@torch.no_grad()
def write_figures(model, test_x: torch.Tensor, out_dir: str | Path, *, test_y: torch.Tensor | None = None,
                  n_samples: int = 64, n_recon: int = 16, steps: int = 10, seed: int = 0,
                  test_extras: dict | None = None) -> dict[str, str]:
    """Write the PNG figures a run folder shows; returns ``{figure name: file name}``.

    For image models, by the model's declared capabilities: ``reconstructions.png`` (inputs above outputs, rows
    labelled; ``can_reconstruct``), ``samples.png`` (``can_sample``; conditional models: one class per row, the
    class written at the row's left) and ``interpolation.png``: decoded points on the line between the codes of
    two test images (``has_encoder`` and ``has_decoder``), or between two random latents (``has_decoder`` only,
    GANs); one labelled row per pair, columns labelled with ``t``. Conditional models use ``test_y`` (the true
    labels) for the reconstructions and each interpolation row keeps the label of its first image; without
    ``test_y`` the rows get labels drawn from ``seed``.
    """
    from ..models.base import capabilities
    from .plots import labelled_grid

    out_dir = Path(out_dir)
    figs: dict[str, str] = {}
    if model.kind != "image":
        return figs
    caps = capabilities(model)
    cond = caps["conditional"]
    names = class_names(model)
    model.eval()
    dev = model.device
    g = torch.Generator().manual_seed(seed)  # fixed noise: the same seed gives the same z batch every run
    labels = None if test_y is None or not cond else test_y.to(dev)
    if caps["can_reconstruct"] and len(test_x):
        x = test_x[:n_recon].to(dev)
        rec = model.reconstruct(x, labels[:n_recon]) if labels is not None else model.reconstruct(x)
        cols = [names[int(c)] for c in labels[:n_recon]] if labels is not None else None
        labelled_grid(torch.cat([x, rec]).float().cpu(), out_dir / "reconstructions.png", nrow=len(x),
                      row_labels=["input", "output"], col_labels=cols, xlabel="true class" if cols else None)
        figs["Reconstructions of held-out images (inputs above, outputs below)"] = "reconstructions.png"
    if caps["translates"] and test_extras and "src" in test_extras and len(test_x):
        figs.update(_translation_figure(model, test_x[:n_recon], test_extras, out_dir / "translations.png"))
    if caps["can_sample"]:
        k = len(names) if cond else 0
        if k and k <= 26:
            per = max(8, min(12, n_samples // k))
            y = torch.arange(k).repeat_interleave(per)  # (k*per,) one class per row
            x = model.sample(len(y), labels=y.to(dev), generator=g).float().cpu()
            labelled_grid(x, out_dir / "samples.png", nrow=per, row_labels=names, ylabel="class")
            figs["Samples, one class per row"] = "samples.png"
        else:
            save_grid(model.sample(n_samples, generator=g).float().cpu(), out_dir / "samples.png")
            figs["Samples from the prior"] = "samples.png"
    if getattr(type(model), "has_w_space", False):  # style-based generators (stylegan, cstylegan)
        figs.update(style_mixing_figure(model, out_dir / "style_mixing.png", seed=seed))
    if not caps["has_decoder"]:
        return figs
    if caps["has_encoder"] and len(test_x) >= 2:
        pairs = min(4, len(test_x) // 2)
        a = test_x[:pairs].to(dev)
        b = test_x[pairs:2 * pairs].to(dev)
        ya = labels[:pairs] if labels is not None else (
            torch.randint(model.num_classes, (pairs,), generator=g).to(dev) if cond else None)
        za, zb = model.encode(a, ya), model.encode(b, ya)  # (pairs, latent_dim) codes
        _save_interpolation(model, za, zb, ya, steps, out_dir / "interpolation.png", names)
        figs["Latent interpolation (linear, between the codes of two test images)"] = "interpolation.png"
    elif not caps["has_encoder"]:
        # GANs: no encoder; interpolate between pairs of random z (conditional: one random label per row)
        pairs = 4
        za = torch.randn(pairs, model.latent_dim, generator=g).to(dev)
        zb = torch.randn(pairs, model.latent_dim, generator=g).to(dev)
        ya = torch.randint(model.num_classes, (pairs,), generator=g).to(dev) if cond else None
        _save_interpolation(model, za, zb, ya, steps, out_dir / "interpolation.png", names)
        figs["Latent interpolation (linear, between two random z)"] = "interpolation.png"
    return figs


# -- style mixing (models with a W space: has_w_space; issue 17) ------------------------------------------------
def style_mixing_figure(model, path: Path, *, seed: int = 0, rows: int = 4, cols: int = 5) -> dict[str, str]:
    """``style_mixing.png``, the StyleGAN paper's style-mixing grid: the top row holds the images of ``cols`` random
    sources B, the left column those of ``rows`` sources A, and cell ``(i, j)`` takes the coarse styles (the first
    half of the style inputs, the low resolutions) from A ``i`` and the fine ones from B ``j``, through
    ``model.style_mix`` (no truncation, the fixed noise maps). Conditional models: A ``i`` and B ``j`` keep the
    labels ``i`` and ``j`` (cycled over the classes). ``seed`` draws the sources' ``z``."""
    from .plots import labelled_grid

    g = torch.Generator().manual_seed(seed + 1)
    za = torch.randn(rows, model.latent_dim, generator=g)
    zb = torch.randn(cols, model.latent_dim, generator=g)
    cut = max(1, model.num_ws // 2)
    kw = {}
    if getattr(model, "conditional", False):
        k = model.num_classes
        kw = {"row_labels": torch.arange(rows) % k, "col_labels": torch.arange(cols) % k}
    mix = model.style_mix(za, zb, cut, **kw).float().cpu()  # (rows, cols, C, H, W)
    dev = model.device
    la, lb = (kw["row_labels"].to(dev), kw["col_labels"].to(dev)) if kw else (None, None)
    a_img = model.synthesize(model.mapping(za.to(dev), labels=la)).float().cpu()  # every style from A i
    b_img = model.synthesize(model.mapping(zb.to(dev), labels=lb)).float().cpu()
    blank = torch.zeros_like(b_img[:1])
    tiles = [blank, b_img] + [torch.cat([a_img[i:i + 1], mix[i]]) for i in range(rows)]
    labelled_grid(torch.cat(tiles), path, nrow=cols + 1, row_labels=["B"] + [f"A{i + 1}" for i in range(rows)],
                  col_labels=["A"] + [f"B{j + 1}" for j in range(cols)],
                  xlabel=f"cell (Ai, Bj): styles 0-{cut - 1} (coarse) from Ai, {cut}-{model.num_ws - 1} (fine) from Bj")
    return {f"Style mixing: coarse styles (inputs 0-{cut - 1} of {model.num_ws}) from the row's source A, fine "
            "styles from the column's source B (top row: the B images, left column: the A images)": path.name}


def class_names(model) -> list[str]:
    """The class names of a model's data (``data_info["classes"]``, else ``"0"``, ``"1"``, ...; ``[]`` without
    classes)."""
    info = getattr(model, "data_info", {}) or {}
    k = int(info.get("num_classes") or 0)
    classes = info.get("classes")
    if classes and len(classes) == k:
        return [str(c) for c in classes]
    return [str(i) for i in range(k)]


def write_loss_curves(history: list[dict], out_dir: str | Path) -> dict[str, str]:
    """``loss_curves.png``: every numeric key of the log (:func:`genlab.io.plots.plot_history`); returns
    ``{figure name: file name}`` (empty when the log holds nothing to plot)."""
    from .plots import plot_history

    keys = plot_history(history, Path(out_dir) / "loss_curves.png", columns=3)  # 3 per row: legible in the report
    return {"Training curves (every logged key)": "loss_curves.png"} if keys else {}


def _save_interpolation(model, za: torch.Tensor, zb: torch.Tensor, ya: torch.Tensor | None, steps: int,
                        path: Path, names: list[str] | None = None) -> None:
    """Decode ``steps`` points on each line from ``za[i]`` to ``zb[i]`` (one row per pair; row label ``ya[i]``)."""
    from .plots import labelled_grid

    z = lerp(za, zb, steps).transpose(0, 1).reshape(len(za) * steps, -1)  # (steps, pairs, L) -> (pairs*steps, L)
    yz = None if ya is None else ya.repeat_interleave(steps)
    rows = [f"pair {i + 1}" + (f", class {names[int(ya[i])]}" if ya is not None and names else "")
            for i in range(len(za))]
    labelled_grid(model.decode(z, yz).float().cpu(), path, nrow=steps, row_labels=rows,
                  col_labels=[f"{i / max(1, steps - 1):.2g}" for i in range(steps)],
                  xlabel="t: position on the line from the first code (0) to the second (1)")


# ---------------------------------------------------------------------------------------------- the header
def git_commit(path: str | Path | None = None) -> str | None:
    """The short commit hash of the git checkout holding ``path`` (default: the working directory), with
    ``-dirty`` when tracked files are modified; ``None`` when it is not a checkout or git is missing."""
    cwd = str(path or Path.cwd())
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0 or not head.stdout.strip():
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def _duration(seconds) -> str:
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(round(s), 60)
    return f"{m} min {sec} s" if m < 60 else f"{m // 60} h {m % 60} min"


def environment_header() -> dict[str, str]:
    """What every report states about where it was made: date (local time with offset), genlab version, git
    commit of the working directory (when it is a checkout) and host."""
    out = {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %z"),
           "genlab": __version__}
    commit = git_commit()
    if commit:
        out["git commit"] = commit
    out["host"] = f"{socket.gethostname()} ({platform.system()} {platform.machine()}, Python " \
                  f"{platform.python_version()}, torch {torch.__version__})"
    return out


def run_header(model, split_sizes: dict, metrics: dict) -> dict[str, str]:
    """The report header of a training run: model (name, parameters), data (name, kind, sample shape, classes,
    split sizes), device, precision, wall time and steps/epochs, from the trained ``model``, the split sizes
    and the run's final ``metrics``."""
    info = dict(getattr(model, "data_info", {}) or {})
    n_params = sum(p.numel() for p in model.parameters())
    shape = "x".join(str(s) for s in info.get("shape", ()))
    k = info.get("num_classes")
    data = f"{info.get('name', metrics.get('data', '?'))}: {info.get('kind', '?')} {shape}" + \
        (f", {k} classes" if k else "")
    splits = ", ".join(f"{n} {role}" for role, n in split_sizes.items())
    device = str(metrics.get("device", model.device))
    if device.startswith("cuda") and torch.cuda.is_available():
        device += f" ({torch.cuda.get_device_name(torch.device(device))})"
    out = {"model": f"{metrics.get('model', getattr(model, 'registry_name', type(model).__name__))} "
                    f"({n_params:,} parameters)",
           "data": data, "splits": splits, "device": device}
    if "precision" in metrics:
        out["precision"] = str(metrics["precision"]) + (", channels last" if metrics.get("channels_last") else "")
    if "train_seconds" in metrics:
        out["wall time"] = _duration(metrics["train_seconds"]) + (
            f" ({metrics['samples_per_sec']:,} samples/s)" if "samples_per_sec" in metrics else "")
    if "epochs" in metrics:
        out["epochs / steps"] = f"{metrics['epochs']} / {metrics.get('steps', '?')}"
    return out


def sample_strip(folder: str | Path, limit: int = MAX_STRIP) -> list[tuple[int, Path]]:
    """``[(epoch, path)]`` of the per-epoch sample grids ``epoch-NNNN.png`` in ``folder`` (SampleGrid writes
    them in ``RUN/samples/``): at most ``limit``, evenly spaced, first and last kept."""
    found = []
    for f in Path(folder).glob("epoch-*.png") if Path(folder).is_dir() else []:
        m = re.fullmatch(r"epoch-(\d+)\.png", f.name)
        if m:
            found.append((int(m.group(1)), f))
    found.sort()
    if len(found) > limit:
        idx = sorted({round(i * (len(found) - 1) / (limit - 1)) for i in range(limit)})
        found = [found[i] for i in idx]
    return found


# ---------------------------------------------------------------------------------------------- the page
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1200px;margin:1.5em auto;
padding:0 1.2em;color:#1d1d1f;background:#fff;line-height:1.4}
h1{font-size:1.6em;margin:.2em 0 .5em}h2{font-size:1.25em;margin:1.6em 0 .5em;border-bottom:2px solid #e5e5ea;
padding-bottom:.2em}h3{font-size:1.02em;margin:1.1em 0 .4em;color:#333}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:.45em .9em;margin:.6em 0}
.fact{background:#f5f5f7;border-radius:6px;padding:.4em .7em}.fact b{display:block;font-size:.72em;
text-transform:uppercase;letter-spacing:.04em;color:#6e6e73}.fact span{font-size:.93em;word-break:break-word}
table{border-collapse:collapse;width:100%;margin:.3em 0 .8em;font-size:.9em}
th,td{border-bottom:1px solid #e5e5ea;padding:5px 9px;text-align:left;vertical-align:top}
th{background:#f5f5f7;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.conv{color:#555;font-size:.88em}td.unit{white-space:nowrap;color:#333}
tr.changed td{background:#fff6d6}tr.monitored td{background:#eaf4ff}
.tag{font-size:.75em;background:#0a84ff;color:#fff;border-radius:4px;padding:1px 5px;margin-left:.4em}
figure{margin:.8em 0 1.4em}figure img{max-width:100%;height:auto;border:1px solid #e5e5ea}
figcaption{font-size:.9em;color:#444;margin-top:.3em}
img.px{image-rendering:pixelated}
.strip{display:flex;flex-wrap:wrap;gap:.6em;padding-bottom:.4em}.strip figure{margin:0;flex:0 0 auto;
text-align:center}.strip img{height:210px;width:auto;image-rendering:auto}
.note{color:#6e6e73;font-size:.88em}code{background:#f5f5f7;padding:0 3px;border-radius:3px}
"""


def _esc(v) -> str:
    return html.escape(str(v))


_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml",
         ".gif": "image/gif", ".webp": "image/webp"}


def data_uri(path: str | Path) -> str:
    """An image file as a ``data:<mime>;base64,...`` URI (PNG unless the suffix says otherwise)."""
    mime = _MIME.get(Path(path).suffix.lower(), "image/png")
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _img(path: Path, alt: str, cls: str = "") -> str:
    return (f"<img src=\"{data_uri(path)}\" alt=\"{_esc(alt)}\" data-file=\"{_esc(path.name)}\""
            f"{f' class={chr(34)}{cls}{chr(34)}' if cls else ''}>")


def _num(key: str, v, context: dict | None) -> str:
    from ..metrics.units import display_value, format_value
    return _esc(format_value(display_value(key, v, context)))


def _metric_rows(rows: list[tuple[str, object]], context: dict | None) -> str:
    from ..metrics.units import describe
    out = []
    for key, v in rows:
        info = describe(key, context)
        out.append(f"<tr><td title=\"{_esc(key)}\">{_esc(info.label)}</td><td class=num>{_num(key, v, context)}</td>"
                   f"<td class=unit>{_esc(info.unit)}</td><td class=conv>{_esc(info.convention)}</td></tr>")
    return "\n".join(out)


def _numeric(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def validation_rows(metrics: dict, history: list[dict] | None) -> list[dict]:
    """One row per validation key: ``{"key", "last", "best", "best_step", "monitored"}``.

    ``last`` is the last validation record (``val_<key>`` of the final metrics, else the log); ``best`` the best
    value in the log by the key's direction (:class:`~genlab.metrics.units.MetricInfo` ``better``; ``None`` for
    keys without one) and its step. The monitored key (``best_val_<key>`` in the final metrics) takes the
    Trainer's own best value and ``best_step`` (what ``checkpoints/best`` holds).
    """
    from ..metrics.units import describe
    val_recs = [r for r in (history or []) if r.get("split") == "val"]
    keys: list[str] = [k[4:] for k in metrics if k.startswith("val_")]
    for r in val_recs:
        keys += [k for k, v in r.items() if k not in ("step", "epoch", "split") and _numeric(v) and k not in keys]
    rows = []
    for key in keys:
        series = [(r["step"], r[key]) for r in val_recs if _numeric(r.get(key)) and _numeric(r.get("step"))]
        last = metrics.get(f"val_{key}", series[-1][1] if series else None)
        best = best_step = None
        better = describe(key).better
        if series and better:
            pick = min if better == "lower" else max
            best_step, best = pick(series, key=lambda sv: sv[1])  # the first such step on ties
        monitored = f"best_val_{key.replace('/', '_')}" in metrics
        if monitored:
            best, best_step = metrics[f"best_val_{key.replace('/', '_')}"], metrics.get("best_step", best_step)
        rows.append({"key": key, "last": last, "best": best, "best_step": best_step, "monitored": monitored})
    return rows


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_rows(config: dict, defaults: dict | None = None) -> list[tuple[str, str, object, object, bool]]:
    """``[(section, key, value, default, changed)]`` of a config: a run config (``{"model": name, "sections":
    {...}}``) by section, any other mapping by its first dotted component (top-level keys in section ``""``).
    ``changed`` is true where ``defaults`` (the same shape) holds another value; ``default`` is ``None`` then
    when the key has no default."""
    def split(cfg):
        if isinstance(cfg.get("sections"), dict):
            flat = {"run.model": cfg.get("model"), **_flatten(cfg["sections"])}
        else:
            flat = _flatten(cfg)
        return flat
    flat = split(config)
    dflat = split(defaults) if defaults else {}
    rows = []
    for dotted, v in flat.items():
        section, dot, key = dotted.partition(".")
        if not dot:
            section, key = "", dotted
        has_default = dotted in dflat
        changed = bool(defaults) and has_default and dflat[dotted] != v and dotted != "run.model"
        rows.append((section, key, v, dflat.get(dotted), changed))
    return rows


def _json(v) -> str:
    return json.dumps(v) if not isinstance(v, str) or not v else v  # an empty string shows as ""


def write_report(out_dir: str | Path, *, title: str, metrics: dict, figures: dict[str, str], config: dict,
                 header: dict | None = None, history: list[dict] | None = None, defaults: dict | None = None,
                 context: dict | None = None, strip_folder: str | Path | None = None,
                 conditional: bool = False) -> Path:
    """Write ``report.html`` in ``out_dir``: one self-contained page (images embedded, CSS inline).

    Parameters
    ----------
    out_dir : path
        The folder holding the figures; the report is written there (atomically).
    title : str
        The page title.
    metrics : dict
        Final numbers, grouped by :func:`genlab.metrics.units.describe` into test / validation / run facts /
        other, each with its unit and convention.
    figures : dict
        ``{caption: PNG file name in out_dir}``; each is embedded as a ``data:`` URI (a missing file is named in
        a note, nothing else).
    config : dict
        A run config (``{"model", "sections"}``) or any mapping: shown as a section / key / value table.
    header : dict, optional
        Facts shown at the top (model, data, device ...; :func:`run_header`); the date, genlab version, git
        commit and host (:func:`environment_header`) are always added.
    history : list of dict, optional
        The run's ``metrics.jsonl`` records: validation best values and their steps.
    defaults : dict, optional
        ``config`` with every value at its default: changed values are highlighted.
    context : dict, optional
        Fills the metric conventions (``space``, ``n_real``, ``n_fake``; see :mod:`genlab.metrics.units`).
    strip_folder : path, optional
        A folder of per-epoch sample grids (``epoch-NNNN.png``): shown as a strip (:func:`sample_strip`).
    conditional : bool
        Whether the per-epoch grids hold one class per row (SampleGrid's layout for conditional models).
    """
    from ..metrics.units import describe

    out_dir = Path(out_dir)
    facts = {**(header or {}), **environment_header()}
    parts = [f"<h1>{_esc(title)}</h1>", "<div class=facts>"]
    parts += [f"<div class=fact><b>{_esc(k)}</b><span>{_esc(v)}</span></div>" for k, v in facts.items()]
    parts.append("</div>")

    # metrics, grouped
    groups: dict[str, list] = {"test": [], "validation": [], "run": [], "other": []}
    for k, v in metrics.items():
        groups[describe(k, context).group].append((k, v))
    thead = "<tr><th>metric</th><th>value</th><th>unit</th><th>convention</th></tr>"
    parts.append("<h2>Metrics</h2>")
    if groups["test"]:
        parts.append(f"<h3>Test (held-out data)</h3><table>{thead}"
                     f"{_metric_rows(groups['test'], context)}</table>")
    vrows = validation_rows(metrics, history)
    if vrows:
        body = []
        for r in vrows:
            info = describe(r["key"], context)
            best = "" if r["best"] is None else _num(r["key"], r["best"], context) + (
                f" <span class=note>@ step {r['best_step']}</span>" if r["best_step"] is not None else "")
            tag = "<span class=tag title='trainer.monitor: checkpoints/best holds this step'>monitored</span>" \
                if r["monitored"] else ""
            body.append(f"<tr{' class=monitored' if r['monitored'] else ''}><td title=\"val/{_esc(r['key'])}\">"
                        f"{_esc(info.label)}{tag}</td><td class=num>"
                        f"{'' if r['last'] is None else _num(r['key'], r['last'], context)}</td><td class=num>{best}"
                        f"</td><td class=unit>{_esc(info.unit)}</td><td class=conv>{_esc(info.convention)}</td></tr>")
        parts.append("<h3>Validation (last record, and best over the run)</h3><table><tr><th>metric</th><th>last"
                     "</th><th>best</th><th>unit</th><th>convention</th></tr>" + "\n".join(body) + "</table>")
    if groups["other"]:
        parts.append(f"<h3>Results</h3><table>{thead}{_metric_rows(groups['other'], context)}</table>")
    run_facts = [(k, v) for k, v in groups["run"]]
    if run_facts:
        parts.append(f"<h3>Run facts</h3><table>{thead}{_metric_rows(run_facts, context)}</table>")

    # figures
    if figures:
        parts.append("<h2>Figures</h2>")
        order = sorted(figures.items(), key=lambda cf: cf[1] != "loss_curves.png")  # the curves first
        for caption, name in order:
            f = out_dir / name
            if not f.is_file():
                parts.append(f"<p class=note>{_esc(caption)}: {_esc(name)} is missing</p>")
                continue
            cls = "" if name == "loss_curves.png" else "px"
            parts.append(f"<figure>{_img(f, caption, cls)}<figcaption>{_esc(caption)} <span class=note>"
                         f"({_esc(name)})</span></figcaption></figure>")
    strip = sample_strip(strip_folder) if strip_folder is not None else []
    if strip:
        total = len(list(Path(strip_folder).glob("epoch-*.png")))
        parts.append("<h2>Samples during training</h2><p class=note>The same noise every epoch (a fixed seed), "
                     "so the grids are comparable" + ("; one class per row" if conditional else "") +
                     (f"; {len(strip)} of {total} grids shown, evenly spaced" if total > len(strip) else "") +
                     f". The files: <code>{_esc(Path(strip_folder).name)}/epoch-NNNN.png</code>.</p><div class=strip>")
        parts += [f"<figure>{_img(p, f'samples after epoch {e}')}<figcaption>epoch {e}</figcaption></figure>"
                  for e, p in strip]
        parts.append("</div>")

    # config
    rows = config_rows(config, defaults)
    if rows:
        n_changed = sum(r[4] for r in rows)
        parts.append("<h2>Config</h2>" + (f"<p class=note>{n_changed} value(s) differ from the defaults "
                                          "(highlighted).</p>" if defaults else ""))
        head = "<tr><th>section</th><th>key</th><th>value</th>" + ("<th>default</th>" if defaults else "") + "</tr>"
        body = []
        for section, key, v, d, changed in rows:
            dcell = f"<td>{_esc(_json(d)) if changed else ''}</td>" if defaults else ""
            body.append(f"<tr{' class=changed' if changed else ''}><td>{_esc(section)}</td><td>{_esc(key)}</td>"
                        f"<td>{_esc(_json(v))}</td>{dcell}</tr>")
        parts.append(f"<table>{head}{''.join(body)}</table>")
    parts.append(f"<p class=note>Written by genlab {_esc(__version__)}. Everything is embedded in this one file; "
                 "the PNGs and JSON files beside it in the run folder hold the same figures and numbers.</p>")
    page = ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_esc(title)}</title><style>{_CSS}</style></head>\n<body>\n" + "\n".join(parts) +
            "\n</body></html>\n")
    path = out_dir / "report.html"
    write_bytes_atomic(path, page.encode())
    return path
