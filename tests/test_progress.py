"""The one progress display (genlab.training.progress): the on/off switch, training in genlab.train and the apps,
sampling, evaluation feature passes, nesting, and the estimators' ``verbose`` parameter."""
from __future__ import annotations

import io

import numpy as np
import pytest
from sklearn.base import clone

import genlab
from genlab.training.progress import ENV_VAR, TrainProgress, progress_bar, progress_enabled


class _Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("CI", raising=False)


def _tabular(n=96, d=5, seed=0):
    from genlab.apps import as_dataset
    return as_dataset(np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32))


QUICK = {"model": {"latent_dim": 2}, "trainer": {"epochs": 1, "batch_size": 32}, "data": {"val": 0.25, "test": 0.0},
         "test": {"enabled": False}}


# -- the switch ---------------------------------------------------------------------------------------------
def test_switch_auto_follows_the_terminal_and_ci(no_env, monkeypatch):
    assert progress_enabled(True, io.StringIO()) and not progress_enabled(False, _Tty())
    assert progress_enabled(None, _Tty())  # auto: a terminal
    assert not progress_enabled(None, io.StringIO())  # auto: not a terminal
    monkeypatch.setenv("CI", "true")
    assert not progress_enabled(None, _Tty())  # auto under CI: off
    assert progress_enabled(True, io.StringIO())  # forcing wins over CI


@pytest.mark.parametrize("value, tty, expected", [("1", False, True), ("0", True, False), ("yes", False, True),
                                                  ("off", True, False)])
def test_env_var_overrides_auto_only(no_env, monkeypatch, value, tty, expected):
    monkeypatch.setenv(ENV_VAR, value)
    stream = _Tty() if tty else io.StringIO()
    assert progress_enabled(None, stream) is expected
    assert progress_enabled(not expected, stream) is (not expected)  # an explicit True/False still wins


def test_bar_writes_description_and_final_count_only_when_on():
    out = io.StringIO()
    with progress_bar("features (digits)", 40, progress=True, stream=out) as bar:
        for _ in range(4):
            bar.advance(10)
    text = out.getvalue()
    assert "features (digits)" in text and "40/40" in text
    off = io.StringIO()
    with progress_bar("features", 40, progress=False, stream=off) as bar:
        bar.advance(40)
    assert off.getvalue() == "" and not bar.enabled


def test_nested_bars_share_one_display():
    """A bar opened inside another (a FID feature pass inside training) is a second line, not a second live
    display (rich allows one per console); the finished inner line is removed."""
    out = io.StringIO()
    with progress_bar("outer", 2, progress=True, stream=out) as outer:
        with progress_bar("inner", 3, progress=True) as inner:
            inner.advance(3)
        outer.advance(2)
    text = out.getvalue()
    assert "outer" in text and "2/2" in text
    with progress_bar("again", 1, progress=True, stream=io.StringIO()) as bar:  # the display was released
        bar.advance(1)


# -- training -----------------------------------------------------------------------------------------------
def test_train_progress_true_shows_steps_and_losses(capsys, no_env):
    run = genlab.train("ae", _tabular(), config=QUICK, progress=True)
    err = capsys.readouterr().err
    steps = run.result.step
    assert steps > 0 and f"{steps}/{steps}" in err and "ae" in err and "loss" in err


@pytest.mark.parametrize("progress", [False, None])
def test_train_progress_off_or_auto_without_terminal_writes_nothing(capsys, no_env, progress):
    genlab.train("ae", _tabular(), config=QUICK, progress=progress)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_a_failed_run_leaves_no_live_display(no_env):
    from genlab.training import progress as p

    class Boom(Exception):
        pass

    class Fail(TrainProgress.__mro__[1]):  # a plain Callback
        def on_epoch_end(self, trainer, logs):
            raise Boom

    with pytest.raises(Boom):
        genlab.train("ae", _tabular(), config=QUICK, callbacks=[Fail()], progress=True)
    assert p._live is None


# -- applications -------------------------------------------------------------------------------------------
ESTIMATORS = ["AnomalyDetector", "Denoiser", "Imputer", "Compressor", "Augmenter", "LatentExplorer"]


@pytest.mark.parametrize("name", ESTIMATORS)
def test_verbose_is_a_parameter_that_survives_clone(name):
    import genlab.apps as apps
    cls = getattr(apps, name)
    assert cls().get_params()["verbose"] is None
    est = clone(cls(verbose=True))
    assert est.verbose is True and est.get_params()["verbose"] is True
    assert clone(cls(verbose=False)).verbose is False


@pytest.mark.parametrize("verbose", [True, False])
def test_estimator_verbose_switches_the_training_display(capsys, no_env, verbose):
    from genlab.apps import AnomalyDetector
    AnomalyDetector(model="ae", model_config={"latent_dim": 2}, epochs=1, batch_size=32, verbose=verbose).fit(_tabular())
    err = capsys.readouterr().err
    if verbose:
        assert "ae" in err and "loss" in err and "/" in err
    else:
        assert err == ""


# -- sampling and evaluation --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image_model():
    data = genlab.load_dataset("digits").subset(np.arange(128))
    return genlab.train("vae", data, config=QUICK, progress=False).model


def test_sampling_shows_a_bar(capsys, tmp_path, image_model, no_env):
    from genlab.io.sampling import write_samples
    write_samples(image_model, 30, tmp_path / "s.npz", progress=True)
    err = capsys.readouterr().err
    assert "sampling" in err and "30/30" in err
    write_samples(image_model, 30, tmp_path / "t.npz", progress=None)  # auto, not a terminal
    assert capsys.readouterr().err == ""


def test_evaluation_feature_passes_show_bars_with_the_same_numbers(capsys, no_env):
    from genlab.evaluation import evaluate_sets
    x = genlab.load_dataset("digits").x
    real, fake = genlab.TensorDataset(x[:60]), genlab.TensorDataset(x[60:100])
    quiet = evaluate_sets(real, fake, metrics=["fid"], features="digits", use_cache=False, progress=False)
    assert capsys.readouterr().err == ""
    shown = evaluate_sets(real, fake, metrics=["fid"], features="digits", use_cache=False, progress=True)
    err = capsys.readouterr().err
    assert "features (digits)" in err and "40/40" in err and "60/60" in err
    assert shown["raw"]["fid"] == quiet["raw"]["fid"]  # chunked with a bar: identical features
