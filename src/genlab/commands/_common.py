"""Pieces every application command shares: model arguments, reading inputs, writing a report."""
from __future__ import annotations

import json
from pathlib import Path

from ..config import apply_overrides
from ..data import TensorDataset, load_dataset
from ..errors import ConfigError


def add_model_arguments(p, default_model: str) -> None:
    """``--run`` (a saved estimator, model or run folder) or ``--model`` trained on the fly."""
    p.add_argument("--run", help="saved estimator folder (from --save), saved model or run folder to use "
                   "instead of training")
    p.add_argument("--model", default=default_model, help=f"registered model to train on the fly "
                   f"(default {default_model}; see: genlab models)")
    p.add_argument("--train", help="data to train on (default: the input itself); built-in name or path")
    p.add_argument("--epochs", type=int, default=30, help="training epochs when training on the fly (default 30)")
    p.add_argument("--set", action="append", default=[], metavar="key=value",
                   help="model config override when training, e.g. --set latent_dim=8 (repeatable)")
    p.add_argument("--save", help="also save the fitted estimator to this folder (reuse it with --run)")
    p.add_argument("--seed", type=int, default=0)


def read_data(spec: str, *, data_dir: str | None = None) -> TensorDataset:
    """A built-in name or a file/folder (images folder, .npz, .npy, .csv)."""
    return load_dataset(spec, data_dir=data_dir)


def model_config(args) -> dict:
    return apply_overrides({}, list(args.set)) if args.set else {}


def fitted_estimator(cls, args, fit_data: TensorDataset | None, **params):
    """Load ``--run`` when it is a saved estimator; otherwise build ``cls`` (wrapping ``--run`` as a model
    folder, or ``--model`` trained for ``--epochs``) and fit it on ``--train`` or ``fit_data``.

    The model must have the capabilities the estimator declares it needs (``check_model``, through
    :func:`genlab.models.require`): ``--model`` is checked before ``--train`` is read or anything trained, a
    ``--run`` folder once loaded; a refusal is one ``ConfigError`` line (exit 2) and nothing is written."""
    from ..apps._base import ESTIMATOR_FILE
    if args.run and (Path(args.run) / ESTIMATOR_FILE).is_file():
        return cls.load(args.run)
    model = args.run or args.model
    est = cls(model=model, model_config=model_config(args) or None, epochs=args.epochs,
              random_state=args.seed, **params).check_model()
    data = read_data(args.train) if args.train else fit_data
    if data is None:
        raise ConfigError("nothing to fit on; give --train DATA or --run with a saved estimator")
    est.fit(data, data.y) if _takes_y(est) else est.fit(data)  # estimators accept a TensorDataset as X
    if args.save:
        est.save(args.save)
    return est


def _takes_y(est) -> bool:
    import inspect
    params = list(inspect.signature(est.fit).parameters)
    return len(params) >= 2 and params[1] == "y"


def metrics_table(title: str, rows, headers: tuple[str, ...] = ("metric", "value")):
    """A rich table of ``rows`` (tuples; floats shown with 6 significant digits)."""
    from rich.table import Table
    t = Table(title=title)
    for h in headers:
        t.add_column(h)
    for r in rows:
        t.add_row(*[f"{v:.6g}" if isinstance(v, float) else str(v) for v in r])
    return t


def print_metrics(metrics: dict, title: str, report: Path | None = None) -> None:
    """Print ``metrics`` as a two-column table (and the report path) on the terminal."""
    from rich.console import Console
    Console().print(metrics_table(title, list(metrics.items())))
    if report is not None:
        print(f"report: {Path(report).resolve()}")


def write_outputs(out_dir: str | Path, *, title: str, metrics: dict, figures: dict[str, str],
                  config: dict | None = None) -> Path:
    """``metrics.json`` and ``report.html`` (with the PNG figures already written in ``out_dir``)."""
    from ..io.atomic import write_json_atomic
    from ..io.report import write_report
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "metrics.json", metrics)
    write_report(out, title=title, metrics=metrics, figures=figures, config=json.loads(json.dumps(config or {})))
    return out / "report.html"
