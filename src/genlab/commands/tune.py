"""``genlab tune``: hyper-parameter search on Optuna (:func:`genlab.tune`) with a progress bar and a summary."""
from __future__ import annotations

import os
import sys
import time

PROGRESS_ENV = "GENLAB_PROGRESS"  # genlab.training.progress.ENV_VAR (not imported: --help stays light)

NAME = "tune"
HELP = ("Tune a model's hyper-parameters with Optuna (pruning, a resumable SQLite study, parallel workers); writes "
        "best.yaml, tune_report.html and the trials, and retrains the best config to score it on the test split.")
EXAMPLE = ("example: genlab tune vae --data digits --trials 20 trainer.epochs=10 --out runs/tune-vae\n"
           "example: genlab tune dcgan --data digits --space space.yaml --trials 40 --workers 2 --timeout 3600\n"
           "example: genlab train vae --data digits --config runs/tune-vae/best.yaml   (the tuned config)")


def add_arguments(p) -> None:
    p.add_argument("model", help="model name (see: genlab models)")
    p.add_argument("--data", help="built-in data set or path (default digits, or the config's data.name)")
    p.add_argument("--data-dir", help="folder of downloaded data sets")
    p.add_argument("--config", help="base run config (YAML/JSON, sections model, trainer, data, test)")
    p.add_argument("--space", help="search space YAML/JSON (default: the model family's space, see docs/tune.md)")
    p.add_argument("--trials", type=int, default=20, help="trials to run now, at most 100000 (a continued study adds "
                   "them; 0 = only write the outputs of an existing study as it is; default 20)")
    p.add_argument("--timeout", type=float, help="seconds after which no new trial starts")
    p.add_argument("--objective", help="validation key to optimise, val/<key> (default: the model's monitor, "
                   "val/loss or val/fid)")
    p.add_argument("--direction", choices=("min", "max"), help="default: the monitor's mode")
    p.add_argument("--storage", help="Optuna RDB URL (sqlite:///x.db, postgresql://...) or a SQLite file "
                   "(default OUT/study.db)")
    p.add_argument("--study", help="study name (default MODEL-DATA); an existing study is continued")
    from ._common import add_out_argument, seed_value
    add_out_argument(p, "tune folder (default runs/tune-MODEL-DATA)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes on the study, each with "
                   "cores/K threads, at most twice the cores (default 1)")
    p.add_argument("--pruner", default="median", choices=("median", "halving", "hyperband", "none"),
                   help="Optuna pruner (default median)")
    p.add_argument("--sampler", default="tpe", choices=("tpe", "random"), help="Optuna sampler (default tpe)")
    p.add_argument("--keep", default="5", help="keep the run folders of the best K completed trials, or 'all' "
                   "(default 5)")
    p.add_argument("--seed", type=seed_value, default=0, help="sampler seed, 0 to 2**32 - 1 (default 0)")
    p.add_argument("--no-retrain", action="store_true", help="do not retrain the best config on train and score it "
                   "on test")
    p.add_argument("--no-trial-figures", action="store_true", help="trial run folders without figures and report "
                   "(saves time on very short trials)")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                   help="base config overrides, e.g. trainer.epochs=5")


def _keep(text: str) -> int | None:
    from ..errors import ConfigError
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--keep must be a number of trials or 'all', got {text!r}") from None


class _TrialProgress:
    """Progress over trials: done/total, time left, best value so far, pruned and failed counts. A line of the one
    progress display (:mod:`genlab.training.progress`): the training of each in-process trial and the final
    retraining show as nested lines under it."""

    def __init__(self, total: int, progress: bool | None = None):
        from ..training.progress import progress_enabled
        self.total = total
        self.enabled = progress_enabled(progress)
        self.progress = None
        self._cm = None
        self.objective = "objective"
        self.counts = {"pruned": 0, "fail": 0}

    def start(self, study) -> None:
        """Show the bar once the study is open (errors found before that print alone)."""
        from ..training.progress import live_progress
        self.objective = study.user_attrs.get("genlab", {}).get("objective", "objective")
        if self.enabled and self._cm is None:
            self._cm = live_progress()
            self.progress = self._cm.__enter__()
            self.task = self.progress.add_task("trials", total=self.total, info="")

    def __call__(self, study, trial) -> None:
        state = trial.state.name.lower()
        if state in self.counts:
            self.counts[state] += 1
        if self.progress is None:
            return
        try:
            best = f"best {self.objective} {study.best_value:.5g} (#{study.best_trial.number})"
        except ValueError:  # no completed trial yet
            best = "no completed trial yet"
        self.progress.update(self.task, advance=1, info=f"{best}, {self.counts['pruned']} pruned, "
                                                        f"{self.counts['fail']} failed")

    def stop(self) -> None:
        if self._cm is not None:
            cm, self._cm, self.progress = self._cm, None, None
            cm.__exit__(None, None, None)


def run(args) -> int:
    from rich.console import Console

    from ..config import apply_overrides, read_config_file
    from ..errors import ConfigError
    from ..tuning.search import require_optuna, tune
    from ._common import metrics_table

    optuna = require_optuna()
    if not args.verbose:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    sections = read_config_file(args.config) if args.config else {}
    if args.data_dir:
        sections.setdefault("data", {})["data_dir"] = args.data_dir
    given = apply_overrides({}, args.overrides)
    other = given.get("data", {}).get("name") if isinstance(given.get("data"), dict) else None
    if args.data and other is not None and str(other) != args.data:
        raise ConfigError(f"--data {args.data} and data.name={other} disagree; give the data set once")
    sections = apply_overrides(sections, args.overrides)
    bar = _TrialProgress(args.trials, args.progress)
    t0 = time.perf_counter()
    saved_env = os.environ.get(PROGRESS_ENV)
    if args.progress is not None:  # the trials' own training lines follow --progress/--no-progress too
        os.environ[PROGRESS_ENV] = "1" if args.progress else "0"
    try:
        res = tune(args.model, args.data, config=sections, space=args.space, trials=args.trials, timeout=args.timeout,
                   objective=args.objective, direction=args.direction, storage=args.storage, study=args.study,
                   out=args.out, workers=args.workers, pruner=args.pruner, sampler=args.sampler, keep=_keep(args.keep),
                   seed=args.seed, retrain=not args.no_retrain, figures=not args.no_trial_figures, callbacks=[bar],
                   on_start=bar.start)  # the retraining shows its own (nested) training line
    except KeyboardInterrupt:
        bar.stop()
        print("genlab: interrupted; the running trial is marked failed and the study is kept: run the same command "
              "to continue it", file=sys.stderr)
        return 130
    finally:
        bar.stop()
        if args.progress is not None:
            if saved_env is None:
                os.environ.pop(PROGRESS_ENV, None)
            else:
                os.environ[PROGRESS_ENV] = saved_env
    c = res.counts
    rows = [("study", res.study.study_name), ("trials", f"{sum(c.values())} ({c['complete']} complete, "
                                                       f"{c['pruned']} pruned, {c['fail']} failed)"),
            ("this call", f"{time.perf_counter() - t0:.1f} s"), ("best trial", res.best_trial),
            (f"best {res.objective} (validation)", res.best_value)]
    rows += [(k, v) for k, v in res.best_values.items()]
    Console().print(metrics_table(f"genlab tune {args.model}: {res.direction} {res.objective}", rows,
                                  ("item", "value")))
    if res.final:
        Console().print(metrics_table("best config retrained: held-out test split", list(res.final.items())))
    print(f"best config: {res.best_yaml}")
    print(f"train it: genlab train {args.model} --data {res.best_config['data']['name']} --config {res.best_yaml}")
    print(f"report: {res.report.resolve()}")
    return 0
