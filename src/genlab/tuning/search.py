"""The study: Optuna samplers, pruners and RDB storage around :func:`genlab.train`.

One trial = one ``genlab.train`` run in ``OUT/trials/trial-NNNN`` with the trial's values set over the base config,
``test.enabled=false`` (the test split is never scored during the search) and a :class:`TrialReporter` callback
that reports the objective to Optuna after every validation and stops the run when the pruner says so. Trials are
driven with Optuna's ask-and-tell interface, so every outcome is recorded by genlab itself: complete (the value),
pruned, or failed (a diverged run, a non-finite objective, a config the combination of values makes invalid; the
study goes on). Errors that no other trial would avoid (an objective the model never logs, a bad device) stop the
study with one line.
"""
from __future__ import annotations

import json
import logging
import math
import numbers
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import SEED_MAX
from ..data import TensorDataset
from ..errors import ConfigError, GenlabError
from ..training.callbacks import Callback
from ..training.trainer import TrainingDiverged
from .space import SearchSpace, apply_values, as_space

log = logging.getLogger(__name__)

#: the file that marks a tune folder and records its study (rewritten with the results at the end)
TUNE_FILE = "tune.json"
#: default SQLite study database in the tune folder
STUDY_DB = "study.db"
#: seconds a process waits for SQLite's write lock before giving up (several workers share one file)
SQLITE_TIMEOUT = 120
#: objective keys (the part after ``val/``) where higher is better; every other key is minimised
MAXIMIZE_KEYS = ("cond_acc", "elbo", "div_entropy", "div_classes", "psnr", "ssim", "accuracy", "acc")
PRUNERS = ("median", "halving", "hyperband", "none")
SAMPLERS = ("tpe", "random")
#: most trials one call runs: a study goes on over calls, and a count beyond this is a typo that would never end
MAX_TRIALS = 100_000
INSTALL_HINT = "pip install 'genlab[tune]' (or pip install optuna)"


class TuneError(GenlabError):
    """A study that cannot give a result (no trial completed)."""


class ObjectiveNotLogged(ConfigError):
    """The objective is not among the validation figures the model logs."""


class NonFiniteObjective(TrainingDiverged):
    """The objective came out NaN or infinite: the trial failed like a diverged run."""


def require_optuna():
    """The ``optuna`` module, or a one-line :class:`ConfigError` saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise ConfigError(f"genlab tune needs Optuna, which is not installed; {INSTALL_HINT}") from None
    return optuna


def usable_cores() -> int:
    """The cores this process may run on (``os.sched_getaffinity``, else ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def max_workers() -> int:
    """Most local worker processes: twice the usable cores (each worker is a process with its own torch and data;
    more only queue for the cores and fill the memory)."""
    return 2 * usable_cores()


def check_counts(trials, workers, seed) -> None:
    """Refuse, before anything is read or written, a trial count, worker count or seed out of range (one line)."""
    def bad(value, low, high):
        return isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high

    if bad(trials, 0, MAX_TRIALS):
        raise ConfigError(f"trials must be an int from 0 to {MAX_TRIALS} (--trials; a study goes on over calls, so "
                          f"run more later), got {trials!r}")
    if bad(workers, 1, max_workers()):
        raise ConfigError(f"workers must be an int from 1 to {max_workers()} (--workers; twice the {usable_cores()} "
                          f"cores here: each worker is a process of its own and more only queue), got {workers!r}")
    if bad(seed, 0, SEED_MAX):
        raise ConfigError(f"seed must be an int from 0 to {SEED_MAX} (--seed; 2**32 - 1, what the samplers take), "
                          f"got {seed!r}")


# ---------------------------------------------------------------------------------------------- objective
def resolve_objective(model: str, base: dict, objective: str | None, direction: str | None) -> tuple[str, str]:
    """``(objective, "minimize" | "maximize")``.

    The objective defaults to the model's monitor: ``trainer.monitor`` of the base config, else the model's
    ``default_monitor`` (``val/loss`` for autoencoders and VAEs, ``val/fid`` for GANs). It must be a validation key
    ``val/<key>``. The direction: ``direction`` (``min``/``max``), else the monitor's mode when the objective is the
    monitor, else ``maximize`` for the keys in :data:`MAXIMIZE_KEYS` and ``minimize`` for the rest.
    """
    from ..registry import get_model_entry

    cls = get_model_entry(model).cls
    trainer = base.get("trainer") if isinstance(base.get("trainer"), dict) else {}
    mode = None
    if objective is None:
        if trainer.get("monitor") is not None:
            objective, mode = trainer["monitor"], trainer.get("mode") or "min"
        elif cls.default_monitor is not None:
            objective, mode = cls.default_monitor
        else:
            raise ConfigError(f"model {model!r} has no monitor to tune by default; give --objective val/<key>")
    elif objective == trainer.get("monitor") and trainer.get("mode"):
        mode = trainer["mode"]
    elif cls.default_monitor is not None and objective == cls.default_monitor[0] and trainer.get("monitor") is None:
        mode = cls.default_monitor[1]
    if not isinstance(objective, str) or not objective.startswith("val/") or len(objective) <= 4:
        raise ConfigError(f"the objective must be a validation key val/<key> (e.g. val/loss, val/fid): trials are "
                          f"compared on held-out data, never the test split; got {objective!r}")
    if direction is not None:
        d = {"min": "minimize", "minimize": "minimize", "max": "maximize", "maximize": "maximize"}.get(str(direction))
        if d is None:
            raise ConfigError(f"direction must be min or max, got {direction!r}")
        return objective, d
    if mode is not None:
        return objective, "maximize" if mode == "max" else "minimize"
    return objective, "maximize" if objective[4:] in MAXIMIZE_KEYS else "minimize"


class TrialReporter(Callback):
    """Trainer callback: after each validation, report the objective to the Optuna ``trial`` (step = epochs done)
    and raise ``optuna.TrialPruned`` when the study's pruner stops the trial.

    The trial's value (:meth:`value`) is the objective of the weights the run keeps: its best value when the
    Trainer keeps the best checkpoint by the same key and direction (``trainer.restore_best``), else the last
    validation's value.
    """

    def __init__(self, trial, objective: str, direction: str):
        self.trial, self.objective, self.direction = trial, objective, direction
        self.last: float | None = None
        self.kept: float | None = None
        self.validations = 0

    def on_epoch_end(self, trainer, logs: dict) -> None:
        import optuna

        logged = sorted(k for k in logs if k.startswith("val/"))
        if not logged:
            return  # no validation this epoch (trainer.val_every)
        if self.objective not in logs:
            raise ObjectiveNotLogged(f"the objective {self.objective} is not logged by model "
                                     f"{trainer.model.registry_name!r} here; it logs {', '.join(logged)}; pick one "
                                     "with --objective")
        value = logs[self.objective]
        if value is None or not math.isfinite(float(value)):
            raise NonFiniteObjective(f"the objective {self.objective} is {value} after epoch {trainer.epoch}")
        self.last = float(value)
        self.validations += 1
        self.trial.report(self.last, trainer.epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {trainer.epoch} ({self.objective} {self.last:.6g})")

    def on_train_end(self, trainer) -> None:
        mode = "min" if self.direction == "minimize" else "max"
        if trainer.monitor == self.objective and trainer.mode == mode and trainer.config.restore_best \
                and trainer.best_value is not None:
            self.kept = float(trainer.best_value)

    def value(self) -> float | None:
        return self.kept if self.kept is not None else self.last


# ---------------------------------------------------------------------------------------------- storage
def storage_url(storage: str | os.PathLike | None, out_dir: Path) -> str:
    """The RDB URL of ``storage``: ``None`` -> ``OUT/study.db``; a URL (``sqlite:///x.db``,
    ``postgresql://...``) as it is; any other string is a SQLite file path."""
    if storage is None:
        return f"sqlite:///{(out_dir / STUDY_DB).resolve()}"
    text = str(storage)
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def storage_label(url: str, out_dir: Path) -> str | None:
    """What ``tune.json`` records as the storage: ``None`` for the tune folder's own ``study.db`` (so the folder
    can move), else the URL with any password masked."""
    return None if url == storage_url(None, out_dir) else shown_url(url)


def shown_url(url: str) -> str:
    """``url`` with any password masked."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL (None for other databases and in-memory SQLite)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def open_storage(url: str):
    """An Optuna ``RDBStorage`` for ``url`` (SQLite waits :data:`SQLITE_TIMEOUT` s for its write lock), or a
    one-line :class:`ConfigError` saying why it cannot be opened."""
    optuna = require_optuna()
    f = sqlite_file(url)
    if f is not None and f.is_file():  # SQLite would take an empty file over (and reports others less clearly)
        with open(f, "rb") as fh:
            head = fh.read(16)
        if head != b"SQLite format 3\x00":
            raise ConfigError(f"the study storage {f} is {'an empty file' if not head else 'a file'}, not a SQLite "
                              "database; genlab leaves it as it is: give a new file name or a study database")
    kw = {"connect_args": {"timeout": SQLITE_TIMEOUT}} if url.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kw)
    except Exception as e:  # any driver's error (missing module, refused connection, unopenable file)
        why = " ".join(str(e).split()) or type(e).__name__
        raise ConfigError(f"the study storage {shown_url(url)!r} cannot be opened ({type(e).__name__}: {why[:160]}); "
                          "give a URL Optuna accepts (sqlite:///path/study.db, postgresql://user:pass@host/db) or a "
                          "path for a SQLite file in an existing folder") from None


def sampler_seed(seed: int, worker: int, trials_before: int) -> int:
    """The seed of a sampler: distinct for each worker and for each continuation of a study (a study continued
    with the same ``seed`` must not replay the suggestions of its first trials)."""
    import numpy as np
    return int(np.random.SeedSequence([seed, worker, trials_before]).generate_state(1)[0])


def make_sampler(sampler, seed: int, *, parallel: bool = False):
    """An Optuna sampler: ``"tpe"`` (``TPESampler``; with ``constant_liar`` when several workers share the study)
    or ``"random"``, seeded with ``seed``; or a sampler instance as it is."""
    optuna = require_optuna()
    if isinstance(sampler, optuna.samplers.BaseSampler):
        return sampler
    if sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=parallel)
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)} (or an optuna sampler in Python)")


def make_pruner(pruner):
    """An Optuna pruner: ``"median"`` (``MedianPruner``: stop a trial whose value is worse than the median of
    earlier trials at the same epoch, after 5 trials), ``"halving"`` (``SuccessiveHalvingPruner``),
    ``"hyperband"`` or ``"none"``; or a pruner instance as it is."""
    optuna = require_optuna()
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    table = {"median": optuna.pruners.MedianPruner, "halving": optuna.pruners.SuccessiveHalvingPruner,
             "hyperband": optuna.pruners.HyperbandPruner, "none": optuna.pruners.NopPruner}
    if pruner is None:
        return optuna.pruners.NopPruner()
    if pruner not in table:
        raise ConfigError(f"unknown pruner {pruner!r}; use one of {', '.join(PRUNERS)} (or an optuna pruner in Python)")
    return table[pruner]()


# ---------------------------------------------------------------------------------------------- setup
@dataclass
class Setup:
    """Everything a trial needs (sent to worker processes as it is)."""

    model: str
    data: str | TensorDataset | None
    base: dict
    space: SearchSpace
    objective: str
    direction: str
    out_dir: Path
    url: str
    study_name: str
    threads: int | None = None
    figures: bool = True

    def to_payload(self) -> dict:
        """JSON form for a worker process (the data by name only)."""
        if isinstance(self.data, TensorDataset):
            raise ConfigError("workers > 1 load the data in each process: give the data as a built-in name or a "
                              "path, not an in-memory data set")
        return {"model": self.model, "data": self.data, "base": self.base, "space": self.space.to_dict(),
                "objective": self.objective, "direction": self.direction, "out_dir": str(self.out_dir),
                "url": self.url, "study_name": self.study_name, "threads": self.threads, "figures": self.figures}

    @classmethod
    def from_payload(cls, d: dict) -> "Setup":
        return cls(**{**d, "space": SearchSpace.from_mapping(d["space"]), "out_dir": Path(d["out_dir"])})

    def info(self) -> dict:
        """What the study records about itself (checked when a study is continued)."""
        data = self.base.get("data", {}).get("name")
        return {"model": self.model, "data": data, "objective": self.objective, "direction": self.direction,
                "base": self.base, "space": self.space.to_dict(), "genlab_version": __version__}

    def trial_sections(self, values: dict) -> dict:
        """The run config of a trial: the base config, the trial's values, no test scoring and (with several
        workers) each process's share of the cores."""
        sections = apply_values(self.base, values)
        sections.setdefault("test", {})["enabled"] = False
        if self.threads is not None:
            sections.setdefault("trainer", {})["num_threads"] = self.threads
        return sections


def _first_difference(old: Any, new: Any, prefix: str = "") -> str | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            d = _first_difference(old.get(k), new.get(k), f"{prefix}{k}.")
            if d:
                return d
        return None
    if old != new:
        return f"{prefix.rstrip('.')}: {json.dumps(old)} -> {json.dumps(new)}"
    return None


def open_study(setup: Setup, storage, sampler, pruner):
    """Load the study ``setup.study_name`` from ``storage`` (checked: created by genlab tune for the same model,
    data, objective, direction and base config) or create it. Returns ``(study, created)``."""
    optuna = require_optuna()
    where = shown_url(setup.url)
    try:
        study = optuna.load_study(study_name=setup.study_name, storage=storage, sampler=sampler, pruner=pruner)
    except KeyError:
        try:
            study = optuna.create_study(study_name=setup.study_name, storage=storage, sampler=sampler, pruner=pruner,
                                        direction=setup.direction)
            study.set_user_attr("genlab", setup.info())
            return study, True
        except optuna.exceptions.DuplicatedStudyError:  # another process created it meanwhile
            study = optuna.load_study(study_name=setup.study_name, storage=storage, sampler=sampler, pruner=pruner)
    info = study.user_attrs.get("genlab")
    name = setup.study_name
    if not isinstance(info, dict):
        raise ConfigError(f"study {name!r} in {where} was not created by genlab tune; give another --study name")
    if info.get("model") != setup.model:
        raise ConfigError(f"study {name!r} in {where} tunes model {info.get('model')!r}, not {setup.model!r}; give "
                          "another --study name (or --out)")
    if info.get("objective") != setup.objective or study.direction.name.lower() != setup.direction:
        raise ConfigError(f"study {name!r} in {where} {study.direction.name.lower()}s {info.get('objective')}, not "
                          f"{setup.objective} ({setup.direction}); give the same --objective/--direction or another "
                          "--study name")
    diff = _first_difference(info.get("base"), setup.base)
    if diff:
        raise ConfigError(f"study {name!r} in {where} was run with another base config ({diff}); give the same "
                          "config and overrides to continue it, or another --study name")
    if info.get("space") != setup.space.to_dict():
        log.warning("study %s: the search space differs from the one it started with; Optuna's sampler works with "
                    "the trials whose parameters fit the new space", name)
    return study, False


# ---------------------------------------------------------------------------------------------- trials
def _remove(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)


def _message(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:500]


def _tell(study, trial, value=None, *, state=None):
    """``study.tell`` -> ``(FrozenTrial, stop)``. ``stop``: the sampler ended the study (Optuna's ``GridSampler``
    calls ``study.stop()`` once its grid is used up, which outside ``study.optimize`` raises a RuntimeError after
    the trial is stored)."""
    try:
        return study.tell(trial, value, state=state), False
    except RuntimeError as e:
        if "Study.stop" not in str(e):
            raise
        return next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number), True


def run_trial(setup: Setup, study):
    """Ask the study for a trial, train it, and tell the study how it ended; returns ``(FrozenTrial, stop)``
    (``stop``: the sampler has nothing more to try).

    Pruned and failed trials leave no run folder. A diverged run, a non-finite objective or a combination of
    values the config refuses mark the trial failed; any other error (and Ctrl-C) marks it failed and is raised.
    """
    import optuna
    from optuna.trial import TrialState

    from ..runs import RunSpec, train

    trial = study.ask()
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    values = setup.space.suggest(trial)
    trial.set_user_attr("values", values)
    sections = setup.trial_sections(values)
    try:
        RunSpec.from_sections(setup.model, sections)
    except ConfigError as e:
        log.warning("trial %d: the config refuses this combination (%s); marked failed", trial.number, _message(e))
        trial.set_user_attr("error", f"config refused: {_message(e)}")
        return _tell(study, trial, state=TrialState.FAIL)
    rel = f"trials/trial-{trial.number:04d}"
    folder = setup.out_dir / rel
    reporter = TrialReporter(trial, setup.objective, setup.direction)
    t0 = time.perf_counter()
    try:
        train(setup.model, setup.data, out=folder, config=sections, callbacks=[reporter], overwrite=folder.exists(),
              figures=setup.figures)
        value = reporter.value()
        if value is None:
            raise ObjectiveNotLogged(f"the objective {setup.objective} was never logged: the run validated nothing; "
                                     "give it validation data (data.val > 0) and trainer.val_every <= trainer.epochs")
    except optuna.TrialPruned as e:
        _remove(folder)
        trial.set_user_attr("epochs", reporter.validations)
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
        log.info("trial %d %s", trial.number, e)
        return _tell(study, trial, state=TrialState.PRUNED)
    except TrainingDiverged as e:
        _remove(folder)
        log.warning("trial %d failed, the study goes on: %s", trial.number, _message(e))
        trial.set_user_attr("error", _message(e))
        return _tell(study, trial, state=TrialState.FAIL)
    except KeyboardInterrupt:
        _remove(folder)  # its checkpoint is no use: a trial is not resumed, the study is
        trial.set_user_attr("error", "interrupted")
        _tell(study, trial, state=TrialState.FAIL)
        raise KeyboardInterrupt(f"interrupted during trial {trial.number}") from None
    except BaseException as e:
        _remove(folder)
        trial.set_user_attr("error", _message(e))
        _tell(study, trial, state=TrialState.FAIL)
        raise
    trial.set_user_attr("run", rel)
    trial.set_user_attr("epochs", reporter.validations)
    trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
    return _tell(study, trial, value)


def trial_loop(setup: Setup, study, n_trials: int, *, deadline: float | None = None, stop_file: Path | None = None,
               callbacks: tuple = (), keep: int | None = None) -> int:
    """Run up to ``n_trials`` trials (stopping at ``deadline`` or when ``stop_file`` appears, checked between
    trials); ``callbacks(study, frozen_trial)`` after each. Returns the number run."""
    done = 0
    while done < n_trials:
        if deadline is not None and time.time() >= deadline:
            log.info("the time budget is spent; no new trial")
            break
        if stop_file is not None and stop_file.exists():
            break
        frozen, stop = run_trial(setup, study)
        done += 1
        for cb in callbacks:
            cb(study, frozen)
        if keep is not None:
            keep_best_folders(study, setup.out_dir, keep)
        if stop:
            log.info("the sampler has nothing more to try; the study stops")
            break
    return done


#: error types a worker process reports by name and the parent raises again
_WORKER_ERRORS = {"ObjectiveNotLogged": ObjectiveNotLogged, "ConfigError": ConfigError, "TuneError": TuneError}


def run_workers(setup: Setup, study, trials: int, workers: int, *, sampler: str, pruner: str, seed: int,
                deadline: float | None, callbacks: tuple) -> None:
    """``trials`` trials shared by ``workers`` local processes on one study (``python -m genlab.tuning.worker``,
    each given its part of the job as a JSON file); the callbacks run here as the finished trials appear in the
    storage. The first error of a worker stops the others after their current trial and is raised here."""
    import subprocess
    import sys

    from optuna.trial import TrialState

    from ..io.atomic import write_json_atomic
    from ..config import read_json

    optuna = require_optuna()
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    seen = {t.number for t in study.get_trials(deepcopy=False, states=finished)}
    tmp = setup.out_dir / ".workers"
    _remove(tmp)
    tmp.mkdir()
    stop_file = tmp / "stop"
    shares = [trials // workers + (1 if i < trials % workers else 0) for i in range(workers)]
    procs = []
    env = dict(os.environ, OMP_NUM_THREADS=str(setup.threads or 1), GENLAB_PROGRESS="0")  # one display: ours
    for i, n in enumerate(shares):
        if not n:
            continue
        job = {"setup": setup.to_payload(), "index": i, "trials": n, "sampler": sampler, "pruner": pruner,
               "seed": seed, "deadline": deadline, "stop_file": str(stop_file), "result": str(tmp / f"result-{i}.json"),
               "log_level": logging.getLogger("genlab").getEffectiveLevel(),
               "optuna_verbosity": optuna.logging.get_verbosity()}
        write_json_atomic(tmp / f"job-{i}.json", job)
        procs.append((i, subprocess.Popen([sys.executable, "-m", "genlab.tuning.worker", str(tmp / f"job-{i}.json")],
                                          env=env)))

    def poll():
        for t in study.get_trials(deepcopy=False, states=finished):
            if t.number not in seen:
                seen.add(t.number)
                for cb in callbacks:
                    cb(study, t)

    errors: list[BaseException] = []
    try:
        running = list(procs)
        while running:
            time.sleep(0.5)
            for i, p in list(running):
                if p.poll() is None:
                    continue
                running.remove((i, p))
                res = read_json(tmp / f"result-{i}.json") if (tmp / f"result-{i}.json").is_file() else None
                if p.returncode != 0 or not (isinstance(res, dict) and res.get("ok")):
                    err = res.get("error") if isinstance(res, dict) else None
                    kind = res.get("type") if isinstance(res, dict) else None
                    msg = err or f"worker {i} exited with status {p.returncode} (see its output above)"
                    errors.append(_WORKER_ERRORS.get(kind, TuneError)(msg) if kind != "KeyboardInterrupt"
                                  else KeyboardInterrupt())
                    stop_file.touch()
            poll()
    except BaseException:
        stop_file.touch()
        for _, p in procs:
            try:
                p.wait(timeout=600)
            except subprocess.TimeoutExpired:
                p.kill()
        raise
    finally:
        if all(p.poll() is not None for _, p in procs):
            _remove(tmp)
    poll()
    if errors:
        raise errors[0]


def keep_best_folders(study, out_dir: Path, keep: int) -> None:
    """Remove the run folders of completed trials outside the best ``keep`` (pruned and failed trials have none)."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    sign = 1 if study.direction.name.lower() == "minimize" else -1
    done.sort(key=lambda t: (sign * t.value, t.number))
    for t in done[keep:]:
        rel = t.user_attrs.get("run")
        if isinstance(rel, str) and (out_dir / rel).is_dir():
            shutil.rmtree(out_dir / rel)


# ---------------------------------------------------------------------------------------------- the result
@dataclass
class TuneResult:
    """What :func:`genlab.tune` returns.

    Attributes
    ----------
    study : optuna.Study
        The study (all its trials, in its storage).
    best_config : dict or None
        Run-config sections of the best trial (the base config with its values): what ``best.yaml`` holds.
    best_values : dict
        The best trial's searched values, by config key.
    best_value : float or None
        Its objective (validation split).
    best_trial : int or None
        Its number.
    objective, direction : str
        What was optimised (``val/<key>``, ``minimize``/``maximize``).
    out_dir : Path
        The tune folder: ``best.yaml``, ``tune_report.html``, ``tune.json``, ``trials.csv``, the plots,
        ``trials/`` and (by default) the study database ``study.db``.
    final : dict
        Held-out test scores of the best config retrained in ``out_dir/best`` (empty without ``retrain``): the
        run's ``test_*`` figures and, for samplers of images with a genlab feature net, ``test_FID-<net>``.
    counts : dict
        Trials by state (``complete``, ``pruned``, ``fail``, ``running``).
    """

    study: Any
    best_config: dict | None
    best_values: dict
    best_value: float | None
    best_trial: int | None
    objective: str
    direction: str
    out_dir: Path
    final: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)

    @property
    def best_yaml(self) -> Path | None:
        f = self.out_dir / "best.yaml"
        return f if f.is_file() else None

    @property
    def report(self) -> Path:
        return self.out_dir / "tune_report.html"

    @property
    def final_run(self) -> Path | None:
        f = self.out_dir / "best"
        return f if self.final and f.is_dir() else None


def trial_counts(study) -> dict:
    from optuna.trial import TrialState

    names = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "fail",
             TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}
    out = {v: 0 for v in names.values()}
    for t in study.get_trials(deepcopy=False):
        out[names[t.state]] += 1
    return out


def best_values(trial) -> dict:
    """The searched values of a trial, by config key (lists of a choice as lists)."""
    values = trial.user_attrs.get("values")
    return dict(values) if isinstance(values, dict) else dict(trial.params)


def final_scores(run, *, seed: int = 0) -> dict:
    """Held-out test scores of a finished run (``genlab.train``'s ``Run``): its ``test_*`` figures and, for a
    sampler of images with a genlab feature net, the FID of ``trainer.fid_samples`` samples (at least 1000)
    against the test split (``test_FID-<net>``)."""
    from ..evaluation import evaluate_run
    from ..metrics.feature_nets import feature_net_for_shape
    from ..models.base import capabilities

    scores = {k: v for k, v in run.metrics.items() if k.startswith("test_")}
    model = run.model
    if run.spec.test.enabled and capabilities(model)["can_sample"] and model.kind == "image" \
            and feature_net_for_shape(model.shape) is not None and len(run.splits.test) >= 2:
        res = evaluate_run(run.out_dir, split="test", metrics=["fid"], n=max(1000, run.spec.trainer.fid_samples),
                           seed=seed, use_cache=False)
        scores.update({f"test_{k}": v for k, v in res["metrics"].items()})
    return scores


# ---------------------------------------------------------------------------------------------- tune
def _sections(model: str, data, config: dict | None) -> dict:
    from ..runs import RunSpec

    if config is not None and not isinstance(config, dict):
        raise ConfigError(f"config must be a mapping of sections (model, trainer, data, test), got "
                          f"{type(config).__name__}")
    sections = json.loads(json.dumps(config or {}))
    dsec = sections.setdefault("data", {})
    if not isinstance(dsec, dict):
        raise ConfigError(f"config section 'data' must be a mapping, got {str(dsec)[:40]!r}")
    if isinstance(data, (str, os.PathLike)):
        dsec["name"] = str(data)
    elif isinstance(data, TensorDataset):
        dsec["name"] = data.name
    elif data is not None:
        raise ConfigError(f"data must be a data set name, a path or a TensorDataset, got {type(data).__name__}")
    dsec.setdefault("name", "digits")
    spec = RunSpec.from_sections(model, sections)  # the base config must be valid as it is
    if not spec.data.val and spec.data.val_data is None:
        raise ConfigError("tuning compares trials on the validation split, and data.val=0 leaves none; set data.val "
                          "(e.g. 0.1) or data.val_data")
    return sections


def _check_out(out_dir: Path, study_name: str, url: str) -> None:
    from ..config import read_json
    from ..io.atomic import file_in_path

    blocker = file_in_path(out_dir)
    if blocker is not None:
        raise ConfigError(f"--out {out_dir}: {blocker} is a file, not a folder; choose another path for the tune "
                          "outputs")
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file; give a folder for the tune outputs")
    if not out_dir.is_dir():
        return
    marker = out_dir / TUNE_FILE
    if marker.is_file():
        rec = read_json(marker, fix="it is damaged: remove it or give another --out")
        if not isinstance(rec, dict):
            raise ConfigError(f"{marker} is not a genlab tune record; remove it or give another --out")
        if rec.get("study") != study_name:
            raise ConfigError(f"{out_dir} holds the tune of study {rec.get('study')!r}; give --study "
                              f"{rec.get('study')} to continue it, or another --out")
        if rec.get("storage") != storage_label(url, out_dir):
            where = rec.get("storage") or f"{out_dir / STUDY_DB} (the default)"
            raise ConfigError(f"{out_dir} holds a study stored in {where}; give that --storage to continue it, or "
                              "another --out")
    elif any(out_dir.iterdir()):
        raise ConfigError(f"--out {out_dir} exists and is not a genlab tune folder; give a new or empty folder")


def _check_data(model: str, base: dict, data) -> None:
    """Load the base config's data (and its ``val_data``/``test_data``) once, as every trial will: a missing,
    unreadable or ill-formed data set (NaN in images, ...) is a one-line error before anything is written."""
    from ..runs import RunSpec, prepare_data

    spec = RunSpec.from_sections(model, base)
    prepare_data(spec.data, data if isinstance(data, TensorDataset) else None)


def tune(model: str, data: str | os.PathLike | TensorDataset | None = None, *, config: dict | None = None,
         space: SearchSpace | dict | str | os.PathLike | None = None, trials: int = 20, timeout: float | None = None,
         objective: str | None = None, direction: str | None = None, storage: str | None = None,
         study: str | None = None, out: str | os.PathLike | None = None, workers: int = 1, pruner="median",
         sampler="tpe", keep: int | None = 5, seed: int = 0, retrain: bool = True, figures: bool = True,
         callbacks: tuple | list = (), train_callbacks: tuple | list = (), on_start=None) -> TuneResult:
    """Tune a registered model's hyper-parameters with Optuna; write the best config, a report and the trials.

    Parameters
    ----------
    model : str
        Registered model name.
    data : str, path or TensorDataset, optional
        Built-in name or path (overrides ``config["data"]["name"]``; default ``digits``), or an in-memory data set
        (one worker only).
    config : dict, optional
        Base run config (sections ``model``, ``trainer``, ``data``, ``test``, as :func:`genlab.train` takes): every
        trial starts from it. It needs a validation split (``data.val`` > 0 or ``data.val_data``).
    space : SearchSpace, dict or path, optional
        The search space (:mod:`genlab.tuning.space`); default :func:`~genlab.tuning.default_space` of the model.
        Checked against the config before any trial runs.
    trials : int
        Trials to run in this call, 0 to :data:`MAX_TRIALS` (a continued study adds them to its count); ``0`` only
        writes the outputs of an existing study as it is (refused for a study not in the storage yet).
    timeout : float, optional
        Seconds after which no new trial starts (a running trial finishes).
    objective : str, optional
        A validation key ``val/<key>`` (default: the model's monitor; see :func:`resolve_objective`).
    direction : {"min", "max"}, optional
        Default: the monitor's mode, or by the key's name.
    storage : str, optional
        An RDB URL Optuna accepts (``sqlite:///tune.db``, ``postgresql://user:pass@host/db``) or a SQLite file
        path; default ``OUT/study.db``. Several processes or machines given the same storage and ``study`` tune
        one study together.
    study : str, optional
        Study name (default ``MODEL-DATA``). A name that exists in the storage is continued (it must tune the same
        model, data, objective and base config).
    out : path, optional
        The tune folder (default ``runs/tune-MODEL-DATA``); a folder of the same study is continued.
    workers : int
        Local worker processes on the study (``python -m genlab.tuning.worker``), each with ``cores // workers``
        torch threads; the data, sampler and pruner are then given by name. At most :func:`max_workers`.
    pruner : str or optuna pruner
        ``median`` (default), ``halving``, ``hyperband`` or ``none``; or any ``optuna.pruners`` instance.
    sampler : str or optuna sampler
        ``tpe`` (default) or ``random``, seeded from ``seed``, the worker and the trials already in the study
        (:func:`sampler_seed`: a continued study does not replay its first suggestions); or an instance.
    keep : int or None
        Run folders of the best ``keep`` completed trials are kept in ``OUT/trials/`` (None: all).
    figures : bool
        Trial run folders get their figures, ``final_metrics.json`` and ``report.html`` (as ``genlab.train``
        writes them); ``False`` saves that time on very short trials (the folders keep the config, the log,
        the checkpoints and the model). The final retraining always writes them.
    retrain : bool
        Train the best config again in ``OUT/best`` (a normal run, test split scored) and report its held-out
        scores separately from the search (:attr:`TuneResult.final`).
    callbacks : list of callable
        ``callback(study, frozen_trial)`` after each trial of this call (with workers: as they are recorded).
    train_callbacks : list of Callback
        Trainer callbacks of the final retraining (e.g. a progress bar).
    on_start : callable, optional
        ``on_start(study)`` once everything is checked and the study is open, before the first trial (where the
        CLI starts its progress bar).

    Returns
    -------
    TuneResult

    Raises
    ------
    ConfigError
        One line, before any trial runs and with nothing written: unknown space keys, wrong types, empty ranges,
        a non-validation objective, a storage that cannot be opened (or a file that is not a SQLite database), a
        study of another model or config, counts or a seed out of range (:func:`check_counts`), an empty study
        name, an ``out`` through a file, data that cannot be loaded. An error before any trial of a study this
        call created completes (an objective the model does not log, a trial that raises) removes what the call
        created: the study, a new SQLite file, the folders it made.
    TuneError
        No trial of the study completed (the report and the trial table are written).
    """
    optuna = require_optuna()
    from ..registry import get_model_entry

    get_model_entry(model)
    check_counts(trials, workers, seed)
    if study is not None and (not isinstance(study, str) or not study.strip()):
        raise ConfigError(f"the study name (--study) must be a non-empty string, got {study!r}; give a name, or "
                          "leave it out for MODEL-DATA")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise ConfigError(f"keep must be an int >= 1 (or None: keep every trial's run), got {keep!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or
                                not timeout > 0):
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if workers > 1 and isinstance(data, TensorDataset):
        raise ConfigError("workers > 1 load the data in each process: give the data as a built-in name or a path, "
                          "not an in-memory data set")
    if workers > 1 and not (isinstance(sampler, str) and isinstance(pruner, str)):
        raise ConfigError(f"workers > 1 take the sampler and the pruner by name (sampler {', '.join(SAMPLERS)}; "
                          f"pruner {', '.join(PRUNERS)}); an optuna object cannot be sent to the worker processes")
    base = _sections(model, data, config)
    objective, direction = resolve_objective(model, base, objective, direction)
    space = as_space(space, model)
    space.check(model, base)
    make_sampler(sampler, seed)  # unknown names are refused before anything is written
    make_pruner(pruner)
    data_name = str(base["data"]["name"])
    stem = Path(data_name).stem or "data"
    study_name = study if study is not None else f"{model}-{stem}"
    out_dir = Path(out) if out is not None else Path("runs") / f"tune-{model}-{stem}"
    url = storage_url(storage, out_dir)
    _check_out(out_dir, study_name, url)

    threads = None
    if workers > 1:
        from ..training import default_threads
        cores = default_threads()
        user = base.get("trainer", {}).get("num_threads")
        if user is None:
            threads = max(1, cores // workers)
        elif user * workers > cores:
            log.warning("trainer.num_threads=%d with %d workers asks for %d threads on %d cores", user, workers,
                        user * workers, cores)
        if workers > cores:
            log.warning("%d workers on %d cores: each gets 1 thread and they share the cores", workers, cores)
    setup = Setup(model=model, data=data if isinstance(data, TensorDataset) else data_name, base=base, space=space,
                  objective=objective, direction=direction, out_dir=out_dir, url=url, study_name=study_name,
                  threads=threads, figures=bool(figures))

    # -- storage and study: a user's storage is opened before anything is written here
    db = sqlite_file(url)
    db_existed = db is not None and db.exists()
    from ..io.atomic import first_missing
    new_top = first_missing(out_dir)  # what mkdir -p creates (removed again if this call fails before any result)
    had = {name: (out_dir / name).exists() for name in (TUNE_FILE, "trials")}
    _check_data(model, base, data)
    store = None
    if trials == 0:  # only the outputs of a study that is there: refused for a new one, before anything is created
        if db is None or db_existed:  # (opening a new SQLite file would create it)
            store = open_storage(url)
        if store is None or study_name not in optuna.get_all_study_names(store):
            raise ConfigError(f"trials=0 only rewrites the outputs of an existing study, and study {study_name!r} is "
                              f"not in {db if db is not None else shown_url(url)}; give --trials N (1 to "
                              f"{MAX_TRIALS}) to start it")
    if storage is not None and store is None:
        store = open_storage(url)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        if store is None:
            store = open_storage(url)
        the_study, created = open_study(setup, store, None, make_pruner(pruner))
    except BaseException:
        if new_top is not None:
            shutil.rmtree(new_top, ignore_errors=True)
        if db is not None and not db_existed:
            db.unlink(missing_ok=True)
        raise
    try:
        the_study.sampler = make_sampler(sampler, sampler_seed(seed, 0, len(the_study.get_trials(deepcopy=False))),
                                         parallel=workers > 1)
        _write_marker(setup)
        log.info("study %s (%s, %s %s): %d trials recorded; running %d more", study_name, shown_url(url), direction,
                 objective, len(the_study.trials), trials)
        deadline = time.time() + timeout if timeout is not None else None
        if on_start is not None:
            on_start(the_study)
        if trials and workers == 1:
            trial_loop(setup, the_study, trials, deadline=deadline, callbacks=tuple(callbacks), keep=keep)
        elif trials:
            run_workers(setup, the_study, trials, workers, sampler=sampler, pruner=pruner, seed=seed,
                        deadline=deadline, callbacks=tuple(callbacks))
    except BaseException as e:
        from optuna.trial import TrialState
        # an error before any result of a study this call created (a mistake in the command found by the first
        # trial, a worker that cannot start): leave nothing behind. Ctrl-C keeps the study, to be continued.
        if created and not isinstance(e, KeyboardInterrupt) and \
                not the_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            optuna.delete_study(study_name=study_name, storage=store)
            if db is not None and not db_existed:
                db.unlink(missing_ok=True)
            if new_top is not None:
                shutil.rmtree(new_top, ignore_errors=True)
            else:
                if not had["trials"]:
                    _remove(out_dir / "trials")
                if not had[TUNE_FILE]:
                    (out_dir / TUNE_FILE).unlink(missing_ok=True)
        raise
    if keep is not None:
        keep_best_folders(the_study, out_dir, keep)
    return _finish(setup, the_study, retrain=retrain, seed=seed, train_callbacks=tuple(train_callbacks))


def _write_marker(setup: Setup, extra: dict | None = None) -> None:
    """``tune.json``: what the folder tunes, with ``extra`` results over those an earlier call recorded."""
    from ..config import read_json
    from ..io.atomic import write_json_atomic

    path = setup.out_dir / TUNE_FILE
    old = read_json(path, fix="remove it or give another --out") if path.is_file() else {}
    rec = {**(old if isinstance(old, dict) else {}), "study": setup.study_name,
           "storage": storage_label(setup.url, setup.out_dir),
           "model": setup.model, "data": setup.base["data"]["name"], "objective": setup.objective,
           "direction": setup.direction, "genlab_version": __version__, **(extra or {})}
    write_json_atomic(path, rec)


def _finish(setup: Setup, study, *, retrain: bool, seed: int, train_callbacks: tuple) -> TuneResult:
    """best.yaml, the report, tune.json and (with ``retrain``) the best config retrained and scored on test."""
    from optuna.trial import TrialState

    from ..config import read_json
    from . import report

    out_dir = setup.out_dir
    counts = trial_counts(study)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = study.best_trial if complete else None
    result = TuneResult(study=study, best_config=None, best_values={}, best_value=None, best_trial=None,
                        objective=setup.objective, direction=setup.direction, out_dir=out_dir, counts=counts)
    if best is not None:
        result.best_values = best_values(best)
        result.best_config = apply_values(setup.base, result.best_values)
        result.best_value, result.best_trial = float(best.value), best.number
        report.write_best_yaml(out_dir / "best.yaml", result, setup)
    else:
        (out_dir / "best.yaml").unlink(missing_ok=True)
    previous = read_json(out_dir / TUNE_FILE, fix="remove it") if (out_dir / TUNE_FILE).is_file() else {}
    old_final = previous.get("final") if isinstance(previous, dict) else None
    figures = None  # the plots, drawn once
    if best is not None and retrain:
        if isinstance(old_final, dict) and old_final.get("trial") == best.number and \
                (out_dir / "best" / "final_metrics.json").is_file() and isinstance(old_final.get("scores"), dict):
            result.final = dict(old_final["scores"])  # the same best trial was retrained by an earlier call
        else:
            figures = report.write_all(result, setup)  # the search's outputs first: a failing retrain keeps them
            from ..runs import train
            run = train(setup.model, setup.data, out=out_dir / "best", config=result.best_config,
                        overwrite=(out_dir / "best").exists(), callbacks=list(train_callbacks))
            result.final = final_scores(run, seed=seed)
    report.write_all(result, setup, figures=figures)
    _write_marker(setup, {"counts": counts, "best_trial": result.best_trial, "best_value": result.best_value,
                          "best_values": result.best_values,
                          "final": {"trial": result.best_trial, "scores": result.final} if result.final else None})
    if best is None:
        raise TuneError(f"no trial of study {setup.study_name!r} completed ({counts['pruned']} pruned, "
                        f"{counts['fail']} failed{_first_error(study)}); see {out_dir / 'tune_report.html'}")
    return result


def _first_error(study) -> str:
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("error"):
            return f"; trial {t.number}: {t.user_attrs['error']}"
    return ""


__all__ = ["tune", "TuneResult", "TuneError", "ObjectiveNotLogged", "TrialReporter", "resolve_objective",
           "open_storage", "storage_url", "make_pruner", "make_sampler", "require_optuna"]
