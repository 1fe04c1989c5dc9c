"""The outputs of a tune: ``best.yaml``, Optuna's matplotlib plots (PNG), ``trials.csv`` and
``tune_report.html`` (the plots embedded, the held-out scores of the retrained best config, a table of trials)."""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
import warnings
from pathlib import Path

import yaml

from ..io.atomic import write_bytes_atomic

log = logging.getLogger(__name__)

#: plot file -> (title, Optuna's matplotlib function name)
PLOTS = {
    "optimization_history.png": ("Optimisation history (objective of each trial, best so far)",
                                 "plot_optimization_history"),
    "param_importances.png": ("Parameter importances (fANOVA)", "plot_param_importances"),
    "parallel_coordinate.png": ("Parallel coordinates (one line per completed trial)", "plot_parallel_coordinate"),
    "intermediate_values.png": ("Objective after each validation (pruned trials stop early)",
                                "plot_intermediate_values"),
}


def write_best_yaml(path: Path, result, setup) -> None:
    """``best.yaml``: the best trial's run config, which ``genlab train MODEL --config best.yaml`` takes as is."""
    data = setup.base["data"]["name"]
    head = (f"# genlab tune: best config of study {setup.study_name} (trial {result.best_trial}: {setup.objective} "
            f"{result.best_value:.6g}, {setup.direction})\n"
            f"# train it: genlab train {setup.model} --data {data} --config {path.name}\n")
    body = yaml.safe_dump(result.best_config, sort_keys=False, default_flow_style=False)
    write_bytes_atomic(path, (head + body).encode())


def _figure(ax):
    """The matplotlib figure of what an Optuna plot function returned (Axes or an array of them)."""
    import numpy as np
    return np.asarray(ax, dtype=object).flat[0].figure


def write_plots(study, out_dir: Path) -> dict[str, str]:
    """Optuna's matplotlib visualisations of ``study`` as PNGs in ``out_dir``; returns ``{title: file}``.

    The history and the intermediate values need one finished trial, the importances and the parallel
    coordinates two completed trials (with a parameter that varies); a plot Optuna cannot draw for this study
    is left out with a log line."""
    import optuna.visualization.matplotlib as ovm
    from optuna.trial import TrialState

    from ..io.plots import pyplot, save_figure

    plt = pyplot()
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    out = {}
    for fname, (title, fn) in PLOTS.items():
        (out_dir / fname).unlink(missing_ok=True)
        need = 2 if fn in ("plot_param_importances", "plot_parallel_coordinate") else 1
        if len(complete if fn != "plot_intermediate_values" else finished) < need:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib backend experimental
                ax = getattr(ovm, fn)(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as e:  # e.g. importances when no parameter varies
            log.info("tune report: no %s (%s)", fname, e)
            plt.close("all")
            continue
        fig = _figure(ax)
        fig.set_size_inches(8, 5)
        save_figure(fig, out_dir / fname, tight=True)
        out[title] = fname
    return out


def importances(study) -> dict:
    """Optuna's parameter importances (fANOVA), ``{}`` when they cannot be computed (fewer than 2 completed trials,
    no parameter that varies)."""
    import optuna
    from optuna.trial import TrialState

    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except (ValueError, RuntimeError, ZeroDivisionError) as e:
        log.info("tune report: no importances (%s)", e)
        return {}


def trial_rows(study, out_dir: Path, keys: list[str]) -> list[dict]:
    """One row per trial: number, state, value, the searched values, validations run, seconds, run folder or error."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        values = t.user_attrs.get("values") if isinstance(t.user_attrs.get("values"), dict) else t.params
        run = t.user_attrs.get("run")
        rows.append({"trial": t.number, "state": t.state.name.lower(),
                     "value": t.value if t.value is not None else (
                         t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None),
                     **{k: values.get(k) for k in keys},
                     "validations": t.user_attrs.get("epochs"), "seconds": t.user_attrs.get("seconds"),
                     "run": run if isinstance(run, str) and (out_dir / run).is_dir() else "",
                     "worker": t.user_attrs.get("worker", ""), "error": t.user_attrs.get("error", "")})
    return rows


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict)):
        return html.escape(json.dumps(v))
    return html.escape("" if v is None else str(v))


def _table(rows: list[dict] | list[tuple], headers: list[str] | None = None) -> str:
    if rows and isinstance(rows[0], dict):
        headers = list(rows[0])
        rows = [tuple(r.values()) for r in rows]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers or [])
    body = "\n".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>\n{body}\n</table>"


def write_all(result, setup, *, figures: dict | None = None) -> dict:
    """``trials.csv``, the plots (unless ``figures`` gives those already drawn) and ``tune_report.html`` of the tune
    ``result``; returns the figures (``{title: file}``)."""
    study, out_dir = result.study, setup.out_dir
    keys = list(dict.fromkeys([*setup.space.keys(), *result.best_values]))
    rows = trial_rows(study, out_dir, keys)
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows([{k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()} for r in rows])
    write_bytes_atomic(out_dir / "trials.csv", buf.getvalue().encode())
    if figures is None:
        figures = write_plots(study, out_dir)
    imp = importances(study)
    c = result.counts
    summary = [("study", setup.study_name), ("storage", result_storage(setup)), ("model", setup.model),
               ("data", setup.base["data"]["name"]), ("objective", f"{setup.objective} ({setup.direction})"),
               ("trials", f"{sum(c.values())}: {c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed"
                          + (f", {c['running']} running" if c.get("running") else "")),
               ("best trial", result.best_trial if result.best_trial is not None else "none completed"),
               ("best value (validation)", result.best_value)]
    summary += [(f"best {k}", v) for k, v in result.best_values.items()]
    space_rows = [(p.key, p.describe(), imp.get(p.key)) for p in setup.space.params]
    final = (_table(list(result.final.items()), ["metric", "value"]) +
             f"<p>The best config retrained as a normal run in <code>best/</code>; the test split was used for "
             f"these numbers only, never during the search.</p>") if result.final else \
        "<p>Not retrained (retrain off, or no trial completed).</p>"
    imgs = "\n".join(
        f"<figure><img alt='{html.escape(t)}' src='data:image/png;base64,"
        f"{base64.b64encode((out_dir / f).read_bytes()).decode()}'><figcaption>{html.escape(t)}</figcaption></figure>"
        for t, f in figures.items())
    best_yaml = (out_dir / "best.yaml").read_text() if (out_dir / "best.yaml").is_file() else ""
    title = f"genlab tune: {setup.model} on {setup.base['data']['name']}"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;margin-bottom:1em}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}
figure{{display:inline-block;margin:0.5em;max-width:48%}}img{{max-width:100%}}
pre{{background:#f4f4f4;padding:1em;overflow:auto}}</style></head>
<body><h1>{html.escape(title)}</h1>
<h2>Search (validation split)</h2>{_table(summary, ["", ""])}
<h2>Held-out test scores of the best config</h2>{final}
<h2>Search space</h2>{_table(space_rows, ["key", "distribution", "importance"])}
<h2>Figures</h2>
{imgs or "<p>No figures yet (they need finished trials).</p>"}
<h2>best.yaml</h2><pre>{html.escape(best_yaml) or "none (no trial completed)"}</pre>
<h2>Trials</h2>{_table(rows) if rows else "<p>No trials.</p>"}
</body></html>
"""
    write_bytes_atomic(out_dir / "tune_report.html", page.encode())
    return figures


def result_storage(setup) -> str:
    from .search import shown_url
    return shown_url(setup.url)
