"""Hyper-parameter tuning (genlab.tuning, ``genlab tune``): search spaces, studies through Python and the CLI,
resume from the SQLite file, pruning, failed trials, two workers on one study, best.yaml into ``genlab train``,
bad input, and the applications under scikit-learn's GridSearchCV.

Every study is tiny: digits cut to 240 samples, 1-2 epochs, 1-4 trials.
"""
import json
import math
import os
import sys

import numpy as np
import pytest
import yaml

optuna = pytest.importorskip("optuna")
from optuna.trial import TrialState  # noqa: E402

from genlab.errors import ConfigError  # noqa: E402
from genlab.tuning import ObjectiveNotLogged, SearchSpace, TuneError, default_space, resolve_objective, tune  # noqa: E402
from genlab.tuning.search import MAXIMIZE_KEYS  # noqa: E402
from tests.conftest import run_cli  # noqa: E402

BASE = {"trainer": {"epochs": 2, "batch_size": 64, "precision": "fp32", "channels_last": False, "fid_samples": 0,
                    "log_every": 5, "sample_every": 0},
        "data": {"limit": 240}}
SPACE = {"model.lr": {"log_uniform": [3e-4, 3e-3]}, "model.latent_dim": {"choice": [2, 4]}}
OVERRIDES = ["trainer.epochs=1", "trainer.batch_size=64", "trainer.precision=fp32", "trainer.channels_last=false",
             "trainer.fid_samples=0", "trainer.sample_every=0", "data.limit=240"]


def quiet():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


quiet()


# ---------------------------------------------------------------------------------------------- spaces
def test_space_forms_and_suggestions():
    flat = SearchSpace.from_mapping({"model.lr": {"log_uniform": ["1e-4", 3e-3]},  # YAML 1.1 reads 1e-4 as text
                                     "model.latent_dim": {"int": [2, 8], "step": 2},
                                     "model.hidden": {"choice": [[32, 16], [64]]},
                                     "trainer.grad_clip": {"float": [0.5, 2.0], "log": True}})
    nested = SearchSpace.from_mapping({"model": {"lr": {"log_uniform": [1e-4, 3e-3]},
                                                 "latent_dim": {"int": [2, 8], "step": 2},
                                                 "hidden": {"choice": [[32, 16], [64]]}},
                                       "trainer": {"grad_clip": {"float": [0.5, 2.0], "log": True}}})
    assert flat.to_dict() == nested.to_dict()
    assert flat.to_dict()["model.lr"] == {"log_uniform": [1e-4, 3e-3]}
    flat.check("vae", {"data": {"name": "digits"}})
    # values come from Optuna's trial API; a choice of lists is offered as JSON text and returned as the list
    trial = optuna.trial.FixedTrial({"model.lr": 2e-3, "model.latent_dim": 6, "model.hidden": "[64]",
                                     "trainer.grad_clip": 1.0})
    assert flat.suggest(trial) == {"model.lr": 2e-3, "model.latent_dim": 6, "model.hidden": [64],
                                   "trainer.grad_clip": 1.0}
    # the suggestions stay inside the ranges over many random trials
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        v = flat.suggest(study.ask())
        assert 1e-4 <= v["model.lr"] <= 3e-3 and v["model.latent_dim"] in (2, 4, 6, 8)
        assert v["model.hidden"] in ([32, 16], [64]) and 0.5 <= v["trainer.grad_clip"] <= 2.0


def test_default_spaces_per_family():
    vae, dcgan, wgan = default_space("vae").to_dict(), default_space("dcgan").to_dict(), default_space("wgan").to_dict()
    assert vae == {"model.lr": {"log_uniform": [1e-4, 3e-3]}, "model.latent_dim": {"choice": [4, 8, 16, 32]},
                   "trainer.batch_size": {"choice": [32, 64, 128]}}
    assert dcgan["model.lr_g"] == dcgan["model.lr_d"] == {"log_uniform": [2e-5, 6e-4]}  # a tenth to 3x of 2e-4
    assert dcgan["model.latent_dim"] == {"choice": [32, 64, 100, 128]} and "model.beta1" in dcgan
    assert "model.beta1" not in wgan and wgan["model.lr_g"] == {"log_uniform": [5e-6, 1.5e-4]}  # RMSprop
    for name in ("vae", "ae", "sparse-ae", "cvae", "dcgan", "wgan-gp", "cgan", "acgan"):
        default_space(name).check(name, {"data": {"name": "digits"}})  # every default is a valid config


BAD_SPACES = [
    ({"model.nope": {"choice": [1, 2]}}, "unknown key 'model.nope'; valid model keys for model 'vae'"),
    ({"optim.lr": {"choice": [1, 2]}}, "unknown key 'optim.lr'"),
    ({"model.lr": {"uniform": ["a", 1]}}, "bounds must be numbers, got 'a'"),
    ({"model.lr": {"uniform": "1e-4..1e-2"}}, "needs a list [low, high] of two numbers"),
    ({"model.lr": {"log_uniform": [3e-3, 1e-4]}}, "empty range"),
    ({"model.latent_dim": {"int": [4, 4]}}, "empty range [4, 4]"),
    ({"model.latent_dim": {"choice": []}}, "non-empty list"),
    ({"model.latent_dim": {"uniform": [2, 16]}}, "uniform gives fractional numbers but model.latent_dim takes int"),
    ({"model.latent_dim": {"choice": [0, 4]}}, "the value 0 is refused (model: latent_dim must be >= 1"),
    ({"model.likelihood": {"choice": ["bernoulli", "poisson"]}}, "the value 'poisson' is refused"),
    ({"model.latent_dim": {"int": [1.5, 4]}}, "int bounds must be whole numbers"),
    ({"model.lr": {"log_uniform": [0, 1e-3]}}, "a log range needs low > 0"),
    ({"model.lr": {"uniform": [1e-4, 1e-3], "log": True}}, "unknown option 'log' for uniform"),
    ({"model.lr": {"uniform": [1e-4, 1e-3], "choice": [1]}}, "give exactly one of"),
    ({"model.lr": 0.001}, "expected a distribution"),
    ({"test.iwae_k": {"choice": [1, 10]}}, "the test section is not used while tuning"),
    ({"data.limit": {"choice": [100, 200]}}, "cannot be searched"),
    ({"model.latent_dim": {"int": [2, 8], "step": 10}}, "step must be > 0 and at most high - low"),
    ({}, "non-empty mapping"),
]


@pytest.mark.parametrize("space, message", BAD_SPACES, ids=[m[:30] for _, m in BAD_SPACES])
def test_bad_spaces_are_one_line_errors(space, message):
    with pytest.raises(ConfigError) as e:
        SearchSpace.from_mapping(space).check("vae", {"data": {"name": "digits"}})
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_space_refused_before_any_trial(tmp_path):
    f = tmp_path / "space.yaml"
    f.write_text("model.latent_dim: {uniform: [2, 16]}\n")
    out = tmp_path / "tune"
    with pytest.raises(ConfigError, match="takes int"):
        tune("vae", "digits", config=BASE, space=str(f), trials=1, out=out)
    assert not out.exists()
    r = run_cli("tune", "vae", "--data", "digits", "--space", f, "--trials", "1", "--out", out, *OVERRIDES)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "takes int" in r.stderr
    assert not out.exists()


def test_objective_and_direction():
    assert resolve_objective("vae", {}, None, None) == ("val/loss", "minimize")
    assert resolve_objective("dcgan", {}, None, None) == ("val/fid", "minimize")
    assert resolve_objective("cgan", {}, "val/cond_acc", None) == ("val/cond_acc", "maximize")
    assert "cond_acc" in MAXIMIZE_KEYS
    assert resolve_objective("vae", {"trainer": {"monitor": "val/rec", "mode": "min"}}, None, None) == \
        ("val/rec", "minimize")
    assert resolve_objective("vae", {}, "val/kl", "max") == ("val/kl", "maximize")
    for bad in ("train/loss", "test/loss", "loss", "val/"):
        with pytest.raises(ConfigError, match="must be a validation key"):
            resolve_objective("vae", {}, bad, None)
    with pytest.raises(ConfigError, match="must be a validation key"):  # a train/ monitor is not an objective
        resolve_objective("vae", {"trainer": {"monitor": "train/loss"}}, None, None)
    with pytest.raises(ConfigError, match="direction must be min or max"):
        resolve_objective("vae", {}, None, "up")


# ---------------------------------------------------------------------------------------------- a study
@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    """A 2-trial study through Python with every output (trial figures, plots, retraining)."""
    out = tmp_path_factory.mktemp("tune") / "vae"
    res = tune("vae", "digits", config=BASE, space=SPACE, trials=2, out=out, sampler="random", keep=None)
    return out, res


def test_python_study_outputs(study_dir):
    out, res = study_dir
    trials = res.study.get_trials(states=(TrialState.COMPLETE,))
    assert res.counts["complete"] == 2 and len(trials) == 2
    best = min(trials, key=lambda t: t.value)
    assert (res.best_trial, res.best_value) == (best.number, best.value)
    assert res.best_values == best.user_attrs["values"] and set(res.best_values) == set(SPACE)
    # the trial's value is the objective of the weights its run keeps: the best val/loss of that run
    for t in trials:
        run = out / t.user_attrs["run"]
        fm = json.loads((run / "final_metrics.json").read_text())
        assert t.value == pytest.approx(fm["best_val_loss"])
        vals = [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
                if r.get("split") == "val"]
        assert t.value == pytest.approx(min(vals)) and len(vals) == 2
        assert list(t.intermediate_values) == [1, 2]  # reported after each validation (epochs done)
        cfg = json.loads((run / "config.json").read_text())["sections"]
        assert cfg["test"]["enabled"] is False  # never the test split during the search
        assert cfg["model"]["lr"] == t.user_attrs["values"]["model.lr"]
        assert "test_elbo" not in fm
    # best.yaml = the base config with the best values
    best_cfg = yaml.safe_load((out / "best.yaml").read_text())
    assert best_cfg == res.best_config
    assert best_cfg["model"] == {"lr": res.best_values["model.lr"], "latent_dim": res.best_values["model.latent_dim"]}
    assert best_cfg["trainer"] == BASE["trainer"] and best_cfg["data"] == {"limit": 240, "name": "digits"}
    # the retrained best config, scored on the test split and reported separately
    final = json.loads((out / "best" / "final_metrics.json").read_text())
    assert res.final["test_elbo"] == final["test_elbo"] and res.final["test_samples"] == 24
    assert "test_FID-digits" in res.final and math.isfinite(res.final["test_FID-digits"])
    rec = json.loads((out / "tune.json").read_text())
    assert rec["best_trial"] == res.best_trial and rec["final"]["scores"] == res.final
    page = (out / "tune_report.html").read_text()
    for f in ("optimization_history.png", "parallel_coordinate.png", "intermediate_values.png"):
        assert (out / f).stat().st_size > 1000
    assert page.count("data:image/png;base64,") >= 3 and "Held-out test scores" in page
    assert len((out / "trials.csv").read_text().strip().splitlines()) == 3
    # a call that adds no trial rewrites the outputs and reuses the retrained run of the same best trial
    stamp = (out / "best" / "final_metrics.json").stat().st_mtime_ns
    again = tune("vae", "digits", config=BASE, space=SPACE, trials=0, out=out, sampler="random", keep=None)
    assert again.final == res.final and (out / "best" / "final_metrics.json").stat().st_mtime_ns == stamp


def test_resume_from_the_sqlite_file(study_dir):
    out, first = study_dir
    db = out / "study.db"
    assert db.is_file()
    res = tune("vae", "digits", config=BASE, space=SPACE, trials=1, out=out, sampler="random", keep=1,
               retrain=False, figures=False)
    trials = res.study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2] and res.counts["complete"] == 3
    assert trials[2].params != trials[0].params  # a new trial, not a replay
    kept = sorted(p.name for p in (out / "trials").iterdir())
    assert kept == [f"trial-{res.best_trial:04d}"]  # keep=1: only the best trial's run folder stays
    # the same study seen from Optuna directly: all three trials are in the file
    loaded = optuna.load_study(study_name="vae-digits", storage=f"sqlite:///{db}")
    assert len(loaded.trials) == 3 and loaded.user_attrs["genlab"]["model"] == "vae"


def test_continuing_refuses_another_model_config_or_study(study_dir, tmp_path):
    out, _ = study_dir
    db = out / "study.db"
    with pytest.raises(ConfigError, match="tunes model 'vae', not 'ae'") as e:
        tune("ae", "digits", config=BASE, space=SPACE, trials=1, storage=str(db), study="vae-digits",
             out=tmp_path / "x")
    assert "\n" not in str(e.value) and not (tmp_path / "x").exists()
    other = {**BASE, "trainer": {**BASE["trainer"], "epochs": 3}}
    with pytest.raises(ConfigError, match=r"another base config \(trainer.epochs: 2 -> 3\)"):
        tune("vae", "digits", config=other, space=SPACE, trials=1, out=out)
    with pytest.raises(ConfigError, match="holds the tune of study 'vae-digits'"):
        tune("vae", "digits", config=BASE, space=SPACE, trials=1, out=out, study="other")


# ---------------------------------------------------------------------------------------------- trial outcomes
class PruneNumbers(optuna.pruners.BasePruner):
    """Prunes the trials whose numbers it is given, at their first report."""

    def __init__(self, numbers):
        self.numbers = set(numbers)

    def prune(self, study, trial):
        return trial.number in self.numbers


def test_pruned_trial_leaves_no_run_folder(tmp_path):
    out = tmp_path / "t"
    res = tune("vae", "digits", config=BASE, space=SPACE, trials=2, out=out, pruner=PruneNumbers({1}),
               retrain=False, figures=False, keep=None)
    t0, t1 = res.study.get_trials()
    assert t0.state == TrialState.COMPLETE and t1.state == TrialState.PRUNED
    assert list(t1.intermediate_values) == [1] and t1.user_attrs["epochs"] == 1  # stopped after epoch 1 of 2
    assert t1.value == t1.intermediate_values[1]
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["trial-0000"]
    assert res.counts["pruned"] == 1 and res.best_trial == 0


def test_diverging_trial_is_failed_and_the_study_goes_on(tmp_path):
    space = {"model.lr": {"choice": [1e-3, 1e9]}}
    sampler = optuna.samplers.GridSampler({"model.lr": [1e9, 1e-3]}, seed=0)
    res = tune("vae", "digits", config=BASE, space=space, trials=2, out=tmp_path / "t", sampler=sampler,
               retrain=False, figures=False)
    states = {t.params["model.lr"]: t for t in res.study.get_trials()}
    assert states[1e9].state == TrialState.FAIL and "non-finite" in states[1e9].user_attrs["error"]
    assert states[1e-3].state == TrialState.COMPLETE and res.best_values == {"model.lr": 1e-3}
    assert not (tmp_path / "t" / "trials" / f"trial-{states[1e9].number:04d}").exists()


def test_no_completed_trial_is_an_error_with_a_report(tmp_path):
    with pytest.raises(TuneError, match=r"no trial of study 'vae-digits' completed \(1 pruned, 0 failed"):
        tune("vae", "digits", config=BASE, space=SPACE, trials=1, out=tmp_path / "t", pruner=PruneNumbers({0}),
             figures=False)
    assert (tmp_path / "t" / "tune_report.html").is_file() and not (tmp_path / "t" / "best.yaml").exists()


def test_objective_never_logged_stops_and_writes_nothing(tmp_path):
    out = tmp_path / "t"
    with pytest.raises(ObjectiveNotLogged) as e:
        tune("vae", "digits", config=BASE, space=SPACE, trials=3, out=out, objective="val/nope", figures=False)
    msg = str(e.value)
    assert "val/nope is not logged by model 'vae'" in msg and "val/loss" in msg and "\n" not in msg
    assert not out.exists()


def test_storage_that_cannot_be_opened(tmp_path):
    out = tmp_path / "t"
    for url in (f"sqlite:///{tmp_path}/no/such/dir/x.db", "nosuchdb://host/db"):
        with pytest.raises(ConfigError, match="cannot be opened") as e:
            tune("vae", "digits", config=BASE, space=SPACE, trials=1, out=out, storage=url)
        assert "\n" not in str(e.value)
    assert not out.exists() and not (tmp_path / "no").exists()
    with pytest.raises(ConfigError, match="data.val=0 leaves none"):
        tune("vae", "digits", config={**BASE, "data": {"val": 0.0}}, space=SPACE, trials=1, out=out)
    assert not out.exists()


def test_gan_study_follows_the_validation_fid(tmp_path):
    cfg = {"trainer": {**BASE["trainer"], "fid_samples": 200, "monitor_every": 0}, "data": BASE["data"]}
    res = tune("dcgan", "digits", config=cfg, space={"model.lr_g": {"log_uniform": [1e-4, 4e-4]}}, trials=1,
               out=tmp_path / "g", retrain=False, figures=False)
    assert (res.objective, res.direction) == ("val/fid", "minimize")  # the GAN's own monitor
    (t,) = res.study.get_trials()
    fids = [r["fid"] for r in map(json.loads, (tmp_path / "g" / t.user_attrs["run"] / "metrics.jsonl").read_text()
                                  .splitlines()) if r.get("split") == "val"]
    assert list(t.intermediate_values.values()) == pytest.approx(fids) and t.value == pytest.approx(min(fids))


# ---------------------------------------------------------------------------------------------- workers
def test_two_workers_share_one_sqlite_study(tmp_path):
    out = tmp_path / "t"
    res = tune("vae", "digits", config=BASE, space=SPACE, trials=2, workers=2, out=out, sampler="random",
               retrain=False, figures=False, keep=None)
    trials = res.study.get_trials()
    assert [t.number for t in trials] == [0, 1] and all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # two processes, one trial each
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 2  # distinct trials
    from genlab.training import default_threads
    for t in trials:
        cfg = json.loads((out / t.user_attrs["run"] / "config.json").read_text())["sections"]
        assert cfg["trainer"]["num_threads"] == max(1, default_threads() // 2)  # each worker its share of cores
    assert json.loads((out / "tune.json").read_text())["counts"]["complete"] == 2


# ---------------------------------------------------------------------------------------------- the CLI
def test_cli_study_and_best_yaml_into_genlab_train(tmp_path):
    out = tmp_path / "t"
    r = run_cli("tune", "vae", "--data", "digits", "--trials", "2", "--out", out, "--sampler", "random",
                "--no-retrain", "--no-trial-figures", "--space", _space_file(tmp_path), *OVERRIDES)
    assert r.returncode == 0, r.stderr
    assert "best config:" in r.stdout and (out / "best.yaml").is_file() and (out / "tune_report.html").is_file()
    best = yaml.safe_load((out / "best.yaml").read_text())
    run = tmp_path / "run"
    r = run_cli("train", "vae", "--data", "digits", "--config", out / "best.yaml", "--out", run, "--no-test")
    assert r.returncode == 0, r.stderr
    sections = json.loads((run / "config.json").read_text())["sections"]
    assert sections["model"]["lr"] == best["model"]["lr"] and sections["model"]["latent_dim"] == \
        best["model"]["latent_dim"] and sections["data"]["limit"] == 240 and sections["trainer"]["epochs"] == 1


def _space_file(tmp_path):
    f = tmp_path / "space.yaml"
    f.write_text(yaml.safe_dump(SPACE))
    return f


def test_cli_without_optuna_says_how_to_install(tmp_path):
    fake = tmp_path / "site" / "optuna"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no optuna here')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), *sys.path])}
    r = run_cli("tune", "vae", "--data", "digits", "--trials", "1", "--out", tmp_path / "t", env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == "genlab: error: genlab tune needs Optuna, which is not installed; pip install " \
                               "'genlab[tune]' (or pip install optuna)"
    assert not (tmp_path / "t").exists()


# ---------------------------------------------------------------------------------------------- applications
def test_anomaly_detector_under_gridsearchcv():
    """AnomalyDetector has no ``score`` (an outlier detector's quality needs labels): GridSearchCV takes a scorer,
    here ROC AUC of decision_function (higher = more normal) against 1 = normal / 0 = anomaly."""
    from sklearn.datasets import load_digits
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    from genlab.apps import AnomalyDetector

    d = load_digits()
    normal = d.data[d.target == 1][:120] / 16
    odd = d.data[d.target == 8][:12] / 16
    X = np.concatenate([normal, odd]).astype(np.float32)
    y = np.r_[np.ones(len(normal), int), np.zeros(len(odd), int)]
    # flattened images given as a table: plain MSE. The tabular default (per-column standardised error + code
    # distance) weighs near-constant border pixels heavily and scores 0.675 here vs 0.715 (docs/apps/anomaly.md)
    est = AnomalyDetector(model="ae", epochs=4, batch_size=32, contamination=0.1, scoring="reconstruction",
                          trainer_config={"precision": "fp32", "channels_last": False, "fid_samples": 0})
    gs = GridSearchCV(est, {"model_config": [{"latent_dim": 2}, {"latent_dim": 8}]}, scoring="roc_auc",
                      cv=StratifiedKFold(2, shuffle=True, random_state=0))
    gs.fit(X, y)
    scores = gs.cv_results_["mean_test_score"]
    assert len(scores) == 2 and np.isfinite(scores).all() and gs.best_score_ == scores.max()
    assert gs.best_score_ > 0.7  # the anomalies are found well above chance
    assert gs.best_estimator_.model_config == gs.best_params_["model_config"]
    assert gs.score(X, y) == pytest.approx(roc_auc_score(y, gs.best_estimator_.decision_function(X)))
