"""Pieces every application command shares: model arguments, reading inputs, writing a report.

Nothing here imports torch at module level: ``genlab --help`` imports every command module."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import SEED_MAX

#: the one help wording of ``-o/--out`` (every command that writes takes both spellings)
OUT_HELP = "where to write: {what}"


def add_out_argument(p, what: str, *, dest: str = "out", required: bool = False, default=None) -> None:
    """``-o``/``--out`` (both spellings, plus the older ``--output`` where a command had it) with the one help
    wording :data:`OUT_HELP`; ``what`` says what is written (a file, or a folder and its contents)."""
    flags = ["-o", "--out"] + (["--output"] if dest == "output" else [])
    extra = f" (default {default})" if default is not None else ""
    p.add_argument(*flags, dest=dest, required=required, default=default, metavar="PATH",
                   help=OUT_HELP.format(what=what) + extra)


def seed_value(text: str) -> int:
    """argparse ``type=`` of every ``--seed``: an integer in [0, :data:`SEED_MAX`] (a one-line argument error
    otherwise; a huge seed used to reach torch's ``manual_seed`` and raise an overflow traceback)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {SEED_MAX}], got {text!r}") from None
    if not 0 <= v <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {SEED_MAX}], got {v}")
    return v


class _GivenModel(argparse.Action):
    """``--model NAME``, remembering that it was given (``args.model_given``): with ``--run`` the model comes from
    the folder, and a ``--model`` the user typed would be ignored, so :func:`fitted_estimator` refuses it."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.model = values
        namespace.model_given = True


def add_model_arguments(p, default_model: str) -> None:
    """``--run`` (a saved estimator, model or run folder) or ``--model`` trained on the fly, and the training
    settings: ``--epochs``, ``key=value`` dotted overrides (as ``genlab train``) and ``--set`` (= ``model.key``)."""
    p.add_argument("--run", help="saved estimator folder (from --save), saved model or run folder to use "
                   "instead of training")
    p.add_argument("--model", default=default_model, action=_GivenModel, help=f"registered model to train on the fly "
                   f"(default {default_model}; see: genlab models)")
    p.add_argument("--train", help="data to train on (default: the input itself); built-in name or path")
    p.add_argument("--epochs", type=int, default=None, help="training epochs when training on the fly (default: "
                   "the estimator class's own default, see docs/apps)")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                   help="dotted overrides when training, as in "
                   "genlab train: model.latent_dim=8 trainer.epochs=5 trainer.batch_size=64 data.val=0.2")
    p.add_argument("--set", action="append", default=[], metavar="key=value",
                   help="alias of model.key=value (repeatable): --set latent_dim=8 is model.latent_dim=8")
    p.add_argument("--save", help="also save the fitted estimator to this folder (reuse it with --run)")
    p.add_argument("--seed", type=seed_value, default=0, help="seed of training and of the command's random draws "
                   f"(an integer in [0, {SEED_MAX}]; default 0)")


def claim_outputs(*, folders=(), files=()) -> None:
    """Refuse, before anything is read, trained or written, output paths an app command could not write without
    touching what the user owns: it writes files only where none exist, and only into new or empty folders.
    ``folders`` / ``files``: ``(flag, path or None)`` pairs (``None``: not asked for). A path that runs through a
    file, an existing file, a non-empty folder, or one path given twice is a one-line ``ConfigError`` (exit 2)."""
    from ..errors import ConfigError
    from ..io.atomic import file_in_path
    seen: dict[Path, str] = {}
    for kind, items in (("file", files), ("folder", folders)):
        for flag, p in items:
            if p is None or p == "":
                continue
            p = Path(p)
            key = p.resolve()
            if key in seen:
                raise ConfigError(f"{flag} {p} is also the path of {seen[key]}; give each output its own path")
            seen[key] = flag
            blocker = file_in_path(p)
            if blocker is not None:
                raise ConfigError(f"{flag} {p}: {blocker} is a file, not a folder; choose another path")
            if kind == "file" and (p.exists() or p.is_symlink()):
                raise ConfigError(f"{flag} {p} already exists; give a new file name (genlab does not overwrite "
                                  "files)")
            if kind == "folder" and (p.exists() or p.is_symlink()):
                if not p.is_dir():
                    raise ConfigError(f"{flag} {p} is a file; give a new folder")
                if any(p.iterdir()):
                    raise ConfigError(f"{flag} {p} already exists and is not empty; give a new or empty folder "
                                      "(genlab does not overwrite files)")


def read_data(spec: str, *, data_dir: str | None = None):
    """A built-in name or a file/folder (images folder, .npz, .npy, .csv) as a ``TensorDataset``."""
    from ..data import load_dataset
    return load_dataset(spec, data_dir=data_dir)


def training_sections(args) -> dict:
    """The run-config sections of the app's dotted overrides: ``--set k=v`` is ``model.k=v``; only ``model``,
    ``trainer`` and ``data.val`` apply to the model an app trains (anything else is a one-line error)."""
    from ..config import apply_overrides
    from ..errors import ConfigError
    given = list(getattr(args, "overrides", None) or [])
    sets = [s if s.startswith("model.") else f"model.{s}" for s in getattr(args, "set", None) or []]
    sections = apply_overrides({}, [*sets, *given])
    for key in sections:
        if key not in ("model", "trainer", "data"):
            raise ConfigError(f"override section {key!r} does not apply to an app's model; use model.KEY=VALUE, "
                              "trainer.KEY=VALUE or data.val=FRACTION")
    data = sections.get("data") or {}
    if set(data) - {"val"}:
        bad = sorted(set(data) - {"val"})[0]
        raise ConfigError(f"data.{bad} does not apply here (the app trains on its input or --train); only data.val "
                          "(the held-out fraction) can be set")
    return sections


def model_config(args) -> dict:
    """The ``model`` section of :func:`training_sections` (``--set`` and ``model.*`` overrides)."""
    return training_sections(args).get("model", {})


def check_run_options(args, sections: dict | None = None) -> bool:
    """Refuse the training options a ``--run`` folder would ignore (it is used as it is): ``--model`` typed by the
    user, ``--epochs``, ``--set`` and ``key=value`` overrides, and ``--train`` with a fitted estimator (nothing is
    fitted; a saved model or run folder still fits the estimator's own parameters on it). One-line ``ConfigError``.
    Returns whether ``--run`` is a saved estimator. :func:`fitted_estimator` calls it; a command that reads
    ``--train`` itself calls it first with its own arguments."""
    from ..apps._base import ESTIMATOR_FILE
    from ..errors import ConfigError
    if not args.run:
        return False
    run = Path(args.run)
    if not run.is_dir():
        raise ConfigError(f"--run {args.run} {'is a file' if run.exists() else 'does not exist'}; give a folder saved "
                          "with --save, a saved model folder or a run folder (or drop --run to train with --model)")
    sections = training_sections(args) if sections is None else sections
    saved = (run / ESTIMATOR_FILE).is_file()
    what = "fitted estimator" if saved else "saved model or run folder"
    if getattr(args, "model_given", False):
        raise ConfigError(f"{args.run} is a {what}: its model is the folder's, so --model {args.model} does not "
                          "apply; drop --model (or --run to train anew)")
    if saved and getattr(args, "train", None):
        raise ConfigError(f"{args.run} is a fitted estimator: nothing is fitted, so --train {args.train} does not "
                          "apply; drop --train (or fit anew with --model)")
    if sections or args.epochs is not None:  # nothing is trained: nothing would take them
        raise ConfigError(f"{args.run} is a {what}: nothing is trained, so --epochs, --set and key=value overrides "
                          "do not apply; drop them (or use --model to train anew)")
    return saved


def fitted_estimator(cls, args, fit_data, *, explicit: dict | None = None, **params):
    """Load ``--run`` when it is a saved estimator; otherwise build ``cls`` (wrapping ``--run`` as a model
    folder, or ``--model`` trained for ``--epochs``, default the class's own) and fit it on ``--train`` or
    ``fit_data``. ``model.*``/``trainer.*``/``data.val`` overrides (and ``--set``) set the trained model's config;
    the training progress display follows the CLI's ``--progress``/auto rule.

    The model must have the capabilities the estimator declares it needs (``check_model``, through
    :func:`genlab.models.require`): ``--model`` is checked before ``--train`` is read or anything trained, a
    ``--run`` folder once loaded; a refusal is one ``ConfigError`` line (exit 2) and nothing is written.

    ``explicit``: fit-time settings the user gave on the command line (``{param: value}``, flags named after the
    params): passed to a new estimator, refused with a saved one, which keeps the settings it was fitted with."""
    from ..errors import ConfigError
    sections = training_sections(args)
    saved = check_run_options(args, sections)
    if saved:
        if args.save:
            raise ConfigError(f"{args.run} is a fitted estimator and is already saved there: nothing new to --save; "
                              "drop --save (or copy the folder)")
        if explicit:
            flags = ", ".join("--" + k.replace("_", "-") for k in explicit)
            one = len(explicit) == 1
            raise ConfigError(f"{args.run} is a fitted estimator: it keeps the settings it was fitted with, so "
                              f"{flags} {'does' if one else 'do'} not apply; drop {'it' if one else 'them'} (or fit "
                              "anew with --model)")
        return cls.load(args.run)
    params.update(explicit or {})
    est = build_estimator(cls, args, sections, **params).check_model()
    data = read_data(args.train) if args.train else fit_data
    if data is None:
        raise ConfigError("nothing to fit on; give --train DATA or --run with a saved estimator")
    est.fit(data, data.y) if _takes_y(est) else est.fit(data)  # estimators accept a TensorDataset as X
    if args.save:
        est.save(args.save)
    return est


def build_estimator(cls, args, sections: dict | None = None, **params):
    """The unfitted ``cls`` of an app command: ``--run``/``--model``, ``--seed``, ``--epochs`` only when given
    (else the class's own default, so the CLI and the class cannot disagree), the ``model.*``/``trainer.*``/
    ``data.val`` overrides and ``--set`` (:func:`training_sections`), and ``verbose`` from ``--progress``."""
    sections = training_sections(args) if sections is None else sections
    kw = dict(params)
    if args.epochs is not None:
        kw["epochs"] = args.epochs
    if sections.get("trainer"):
        kw["trainer_config"] = sections["trainer"]
    if "val" in (sections.get("data") or {}):
        kw["validation_fraction"] = float(sections["data"]["val"])
    return cls(model=args.run or args.model, model_config=sections.get("model") or None, random_state=args.seed,
               verbose=getattr(args, "progress", None), **kw)


def _takes_y(est) -> bool:
    import inspect
    params = list(inspect.signature(est.fit).parameters)
    return len(params) >= 2 and params[1] == "y"


def metrics_table(title: str, rows, headers: tuple[str, ...] = ("metric", "value"), *, units: bool | None = None,
                  context: dict | None = None):
    """A rich table of ``rows`` (tuples; floats shown with 6 significant digits).

    A metric table (headers ``("metric", "value")``, two-item rows) gets a third column, the unit, from
    :mod:`genlab.metrics.units` (the same table the run report uses), and its values are shown in that unit (KID
    ×10³: unit ``x10^-3``). ``units=False`` leaves it out, ``units=True`` forces it; ``context`` fills the
    conventions (``{"evaluation": True}`` reads ``precision``/``recall`` as ``genlab evaluate``'s metrics)."""
    from rich.table import Table
    rows = [tuple(r) for r in rows]
    if units is None:
        units = tuple(headers) == ("metric", "value") and all(len(r) == 2 for r in rows)
    t = Table(title=title)
    for h in (*headers, "unit") if units else headers:
        t.add_column(h)
    if units:
        from ..metrics.units import describe, display_value, format_value  # only for metric tables
        for key, value in rows:
            info = describe(str(key), context)
            t.add_row(str(key), format_value(display_value(str(key), value, context)), info.unit)
        return t
    for r in rows:
        t.add_row(*[f"{v:.6g}" if isinstance(v, float) else str(v) for v in r])
    return t


def print_metrics(metrics: dict, title: str, report: Path | None = None, *, context: dict | None = None) -> None:
    """Print ``metrics`` as a metric / value / unit table (and the report path) on the terminal."""
    from rich.console import Console
    Console().print(metrics_table(title, list(metrics.items()), context=context))
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
