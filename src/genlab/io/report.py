"""Run-folder figures (samples, reconstructions, interpolation, training curves) and ``report.html``.

The matplotlib figures are drawn by :mod:`genlab.io.plots`; the image grids by :mod:`genlab.io.images`.
"""
from __future__ import annotations

import html
import json
import logging
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..latent import lerp
from .atomic import write_bytes_atomic
from .images import save_grid

log = logging.getLogger(__name__)


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


@torch.no_grad()
def write_figures(model, test_x: torch.Tensor, out_dir: str | Path, *, test_y: torch.Tensor | None = None,
                  n_samples: int = 64, n_recon: int = 16, steps: int = 10, seed: int = 0) -> dict[str, str]:
    """Write the PNG figures a run folder shows; returns ``{figure name: file name}``.

    For image models, by the model's declared capabilities: ``reconstructions.png`` (inputs above outputs;
    ``can_reconstruct``), ``samples.png`` (``can_sample``) and ``interpolation.png``: decoded points on the line
    between the codes of two test images (``has_encoder`` and ``has_decoder``), or between two random latents
    (``has_decoder`` only, GANs); one row per pair. Conditional models use ``test_y`` (the true labels) for the
    reconstructions and each interpolation row keeps the label of its first image; without ``test_y`` the rows
    get labels drawn from ``seed``.
    """
    from ..models.base import capabilities

    out_dir = Path(out_dir)
    figs: dict[str, str] = {}
    if model.kind != "image":
        return figs
    caps = capabilities(model)
    cond = caps["conditional"]
    model.eval()
    dev = model.device
    g = torch.Generator().manual_seed(seed)  # fixed noise: the same seed gives the same z batch every run
    labels = None if test_y is None or not cond else test_y.to(dev)
    if caps["can_reconstruct"] and len(test_x):
        x = test_x[:n_recon].to(dev)
        rec = model.reconstruct(x, labels[:n_recon]) if labels is not None else model.reconstruct(x)
        save_grid(torch.cat([x, rec]).cpu(), out_dir / "reconstructions.png", nrow=len(x))
        figs["Reconstructions (inputs above, outputs below)"] = "reconstructions.png"
    if caps["can_sample"]:
        save_grid(model.sample(n_samples, generator=g).cpu(), out_dir / "samples.png")
        figs["Samples from the prior"] = "samples.png"
    if not caps["has_decoder"]:
        return figs
    if caps["has_encoder"] and len(test_x) >= 2:
        pairs = min(4, len(test_x) // 2)
        a = test_x[:pairs].to(dev)
        b = test_x[pairs:2 * pairs].to(dev)
        ya = labels[:pairs] if labels is not None else (
            torch.randint(model.num_classes, (pairs,), generator=g).to(dev) if cond else None)
        za, zb = model.encode(a, ya), model.encode(b, ya)  # (pairs, latent_dim) codes
        _save_interpolation(model, za, zb, ya, steps, out_dir / "interpolation.png")
        figs["Latent interpolation (linear, between the codes of two test images)"] = "interpolation.png"
    elif not caps["has_encoder"]:
        # GANs: no encoder; interpolate between pairs of random z (conditional: one random label per row)
        pairs = 4
        za = torch.randn(pairs, model.latent_dim, generator=g).to(dev)
        zb = torch.randn(pairs, model.latent_dim, generator=g).to(dev)
        ya = torch.randint(model.num_classes, (pairs,), generator=g).to(dev) if cond else None
        _save_interpolation(model, za, zb, ya, steps, out_dir / "interpolation.png")
        figs["Latent interpolation (linear, between two random z)"] = "interpolation.png"
    return figs


def write_loss_curves(history: list[dict], out_dir: str | Path) -> dict[str, str]:
    """``loss_curves.png``: every numeric key of the log (:func:`genlab.io.plots.plot_history`); returns
    ``{figure name: file name}`` (empty when the log holds nothing to plot)."""
    from .plots import plot_history

    keys = plot_history(history, Path(out_dir) / "loss_curves.png")
    return {"Training curves (every logged key)": "loss_curves.png"} if keys else {}


def _save_interpolation(model, za: torch.Tensor, zb: torch.Tensor, ya: torch.Tensor | None, steps: int,
                        path: Path) -> None:
    """Decode ``steps`` points on each line from ``za[i]`` to ``zb[i]`` (one row per pair; row label ``ya[i]``)."""
    z = lerp(za, zb, steps).transpose(0, 1).reshape(len(za) * steps, -1)  # (steps, pairs, L) -> (pairs*steps, L)
    yz = None if ya is None else ya.repeat_interleave(steps)
    save_grid(model.decode(z, yz).cpu(), path, nrow=steps)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return html.escape(str(v))


def write_report(out_dir: str | Path, *, title: str, metrics: dict, figures: dict[str, str],
                 config: dict) -> Path:
    """``report.html``: the figures, the loss curves and a table of final metrics (self-contained HTML
    linking the PNGs beside it)."""
    out_dir = Path(out_dir)
    rows = "\n".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in metrics.items())
    imgs = "\n".join(f"<figure><img src='{html.escape(f)}' alt='{html.escape(t)}'><figcaption>{html.escape(t)}"
                     f"</figcaption></figure>" for t, f in figures.items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:left}}
figure{{display:inline-block;margin:1em}}img{{image-rendering:pixelated;max-width:100%}}
pre{{background:#f4f4f4;padding:1em;overflow:auto}}</style></head>
<body><h1>{html.escape(title)}</h1>
<h2>Final metrics</h2><table><tr><th>metric</th><th>value</th></tr>
{rows}
</table>
<h2>Figures</h2>
{imgs}
<h2>Config</h2><pre>{html.escape(json.dumps(config, indent=2))}</pre>
</body></html>
"""
    path = out_dir / "report.html"
    write_bytes_atomic(path, page.encode())
    return path
