"""Run-folder figures (samples, reconstructions, interpolation, loss curves) and ``report.html``."""
from __future__ import annotations

import html
import json
import logging
from pathlib import Path

import torch

from .atomic import write_bytes_atomic
from .images import save_grid

log = logging.getLogger(__name__)


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def plot_loss_curves(history: list[dict], path: str | Path) -> Path | None:
    """Training loss per logged step and per-epoch train/validation means, one panel per key."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("loss", "rec", "kl", "mse", "d_loss", "g_loss", "wasserstein") if any(k in r for r in history)]
    if not keys:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for split, style in (("train", dict(alpha=0.35, lw=1)), ("train_epoch", dict(marker="o", lw=1.5)),
                             ("val", dict(marker="s", lw=1.5))):
            pts = [(r["step"], r[key]) for r in history if r.get("split") == split and key in r]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, label={"train": "train (step)", "train_epoch": "train (epoch)",
                                       "val": "validation"}[split], **style)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if key in ("loss", "rec") and all(y > 0 for r in history for y in [r.get(key, 1)]):
            ax.set_yscale("log")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
    return Path(path)


@torch.no_grad()
def write_figures(model, test_x: torch.Tensor, out_dir: str | Path, *, n_samples: int = 64, n_recon: int = 16,
                  steps: int = 10, seed: int = 0) -> dict[str, str]:
    """Write the PNG figures a run folder shows; returns ``{figure name: file name}``.

    For image models: ``reconstructions.png`` (inputs above outputs), ``samples.png`` and
    ``interpolation.png`` (decoded points on the line between the codes of two test images; one row
    per pair) when the model can sample/decode.
    """
    out_dir = Path(out_dir)
    figs: dict[str, str] = {}
    if model.kind != "image":
        return figs
    model.eval()
    if getattr(model, "can_reconstruct", True) and len(test_x):
        x = test_x[:n_recon].to(model.device)
        rec = model.reconstruct(x)
        save_grid(torch.cat([x, rec]).cpu(), out_dir / "reconstructions.png", nrow=len(x))
        figs["Reconstructions (inputs above, outputs below)"] = "reconstructions.png"
    g = torch.Generator().manual_seed(seed)  # fixed noise: the same seed gives the same z batch every run
    if model.can_sample:
        save_grid(model.sample(n_samples, generator=g).cpu(), out_dir / "samples.png")
        figs["Samples from the prior"] = "samples.png"
    if not hasattr(model, "encode") and hasattr(model, "decode") and hasattr(model, "latent_dim"):
        # GANs: no encoder; interpolate between pairs of random z (conditional: one random label per row)
        pairs = 4
        dev = model.device
        za = torch.randn(pairs, model.latent_dim, generator=g).to(dev)
        zb = torch.randn(pairs, model.latent_dim, generator=g).to(dev)
        ya = torch.randint(model.num_classes, (pairs,), generator=g).to(dev) if model.conditional else None
        _save_interpolation(model, za, zb, ya, steps, out_dir / "interpolation.png")
        figs["Latent interpolation (linear, between two random z)"] = "interpolation.png"
    if hasattr(model, "encode") and hasattr(model, "decode") and len(test_x) >= 2:
        pairs = min(4, len(test_x) // 2)
        a = test_x[:pairs].to(model.device)
        b = test_x[pairs:2 * pairs].to(model.device)
        # conditional models: each row keeps the (inferred) label of its first image
        ya = model.infer_labels(a) if getattr(model, "conditional", False) else None
        za, zb = _codes(model, a, ya), _codes(model, b, ya)
        _save_interpolation(model, za, zb, ya, steps, out_dir / "interpolation.png")
        figs["Latent interpolation (linear, between the codes of two test images)"] = "interpolation.png"
    return figs


def _save_interpolation(model, za: torch.Tensor, zb: torch.Tensor, ya: torch.Tensor | None, steps: int,
                        path: Path) -> None:
    """Decode ``steps`` points on each line from ``za[i]`` to ``zb[i]`` (one row per pair; row label ``ya[i]``)."""
    t = torch.linspace(0, 1, steps, device=za.device).view(1, steps, 1)
    z = (za.unsqueeze(1) * (1 - t) + zb.unsqueeze(1) * t).reshape(len(za) * steps, -1)  # (pairs*steps, L)
    yz = None if ya is None else ya.repeat_interleave(steps)
    save_grid(model.decode(z, yz).cpu(), path, nrow=steps)


def _codes(model, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    z = model.encode(x) if labels is None else model.encode(x, labels)
    return z[0] if isinstance(z, tuple) else z  # VAEs: posterior mean


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
