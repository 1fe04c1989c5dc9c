"""Hyper-parameter tuning on Optuna: ``genlab.tune(...)`` and ``genlab tune``.

:mod:`.space` parses and checks search spaces (and holds the default space of each model family),
:mod:`.search` runs the study (samplers, pruners, RDB storage, worker processes) around :func:`genlab.train`,
:mod:`.report` writes ``best.yaml``, the plots, ``trials.csv`` and ``tune_report.html``. Optuna is an optional
dependency (``pip install 'genlab[tune]'``), imported only when a study runs.

The package is named ``tuning`` (not ``tune``) so that ``genlab.tune`` stays the function.
"""
from .search import ObjectiveNotLogged, TrialReporter, TuneError, TuneResult, resolve_objective, tune
from .space import Param, SearchSpace, apply_values, default_space

__all__ = ["tune", "TuneResult", "TuneError", "ObjectiveNotLogged", "TrialReporter", "SearchSpace", "Param",
           "default_space", "apply_values", "resolve_objective"]
