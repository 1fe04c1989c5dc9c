"""Experiment tracking (genlab.training.tracking, genlab log): TensorBoard's and MLflow's own readers must see
exactly what metrics.jsonl holds (values and steps), the sample grids, the code histograms and the config; resume
adds no duplicate points; a replay of an untracked run equals live tracking; bad input is one line, exit 2."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil

import pytest

import genlab
from genlab.cli import main
from genlab.errors import ConfigError, GenlabError
from genlab.training import Callback
from tests.cli.test_cli import _bad

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 refuses its file store otherwise

# 200 digits (140 train / 30 val / 30 test at 32 a batch: 5 steps an epoch), an MLP VAE, no sample monitors
CFG = {"model": {"hidden": [16], "latent_dim": 4},
       "trainer": {"epochs": 2, "batch_size": 32, "log_every": 2, "precision": "fp32", "channels_last": False,
                   "fid_samples": 0, "monitor_every": 0, "deterministic": True},
       "data": {"limit": 200}, "test": {"iwae_k": 0}}
REL = 1e-6  # event files store scalars as float32; metrics.jsonl holds float64


def _cfg(**trainer):
    cfg = json.loads(json.dumps(CFG))
    cfg["trainer"].update(trainer)
    return cfg


def _records(run):
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip()]


def _expected(run) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl as tracker series: ``<split>/<key>`` -> [(step, value)] in log order."""
    out: dict[str, list] = {}
    for r in _records(run):
        for k, v in r.items():
            if k not in ("step", "epoch", "split") and v is not None:
                out.setdefault(f"{r['split']}/{k}", []).append((r["step"], v))
    return out


def _events(folder) -> EventAccumulator:
    ea = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0})
    ea.Reload()
    return ea


def _tb_series(ea) -> dict[str, list[tuple[int, float]]]:
    return {t: [(e.step, e.value) for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]}


def _same(got: list, want: list) -> None:
    assert [s for s, _ in got] == [s for s, _ in want]
    for (_, a), (_, b) in zip(got, want):
        assert a == pytest.approx(b, rel=REL, abs=1e-7)


def _mlflow_run(uri, run_dir):
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("genlab")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`genlab.run_dir` = '{run_dir.resolve()}'")
    assert len(runs) == 1
    return client, runs[0]


def _mlflow_series(client, run) -> dict[str, list[tuple[int, float]]]:
    out = {}
    for key in run.data.metrics:
        hist = client.get_metric_history(run.info.run_id, key)
        out[key] = sorted(((m.step, m.value) for m in hist), key=lambda sv: sv[0])
    return out


def _epoch_end_steps(run) -> list[int]:
    return [r["step"] for r in _records(run) if r["split"] == "train_epoch"]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One 2-epoch run tracked live to TensorBoard and MLflow (default places in the run folder)."""
    run = tmp_path_factory.mktemp("track") / "run"
    genlab.train("vae", "digits", out=run, config=_cfg(log_to="tensorboard,mlflow"), progress=False)
    return run


def test_tensorboard_gets_the_records_of_metrics_jsonl_samples_histograms_config(tracked):
    ea = _events(tracked / "tensorboard")
    got, want = _tb_series(ea), _expected(tracked)
    assert want and set(want) <= set(got)
    for tag, series in want.items():  # every numeric value of every record, at its step, once
        _same(got[tag], series)
    final = json.loads((tracked / "final_metrics.json").read_text())
    assert got["final/test_mse"] == [(_records(tracked)[-1]["step"], pytest.approx(final["test_mse"], rel=REL))]
    ends = _epoch_end_steps(tracked)
    assert len(ends) == 2
    assert [e.step for e in ea.Images("samples")] == ends  # the grid of each epoch, where the epoch ended
    png = ea.Images("samples")[0]
    assert (png.width, png.height) != (0, 0)
    val_steps = [r["step"] for r in _records(tracked) if r["split"] == "val"]
    hist = ea.Histograms("codes/all")
    assert [h.step for h in hist] == val_steps and hist[0].histogram_value.num > 0
    assert "codes/z3" in ea.Tags()["histograms"] and "codes/z4" not in ea.Tags()["histograms"]  # latent_dim=4
    text = ea.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| trainer.epochs | 2 |" in text and "| model | vae |" in text
    assert ea.PluginTagToContent("hparams")  # the hparams plugin's table


def test_mlflow_gets_params_metrics_and_artifacts(tracked):
    client, run = _mlflow_run((tracked / "mlruns").resolve().as_uri(), tracked)
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["trainer.epochs"] == "2" and run.data.params["model.latent_dim"] == "4"
    assert run.data.params["trainer.log_to"] == '["tensorboard", "mlflow"]'
    got, want = _mlflow_series(client, run), _expected(tracked)
    for tag, series in want.items():
        _same(got[tag], sorted(series))
    final = json.loads((tracked / "final_metrics.json").read_text())
    assert got["final/test_mse"][0][1] == pytest.approx(final["test_mse"])
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "metrics.jsonl", "final_metrics.json", "report.html", "samples"} <= top
    assert [a.path for a in client.list_artifacts(run.info.run_id, "samples")] == \
        ["samples/epoch-0001.png", "samples/epoch-0002.png"]


def test_resume_continues_the_logs_without_duplicate_points(tmp_path):
    run = tmp_path / "run"
    # rewind to the step checkpoint of the last batch of epoch 1, which is written before that epoch's end
    # records, as a run killed there would have left it (the log and both trackers hold points past it)
    genlab.train("vae", "digits", out=run, config=_cfg(log_to="tensorboard,mlflow", checkpoint_every=5),
                 progress=False, figures=False)
    t = _epoch_end_steps(run)[0]
    assert t == 5
    shutil.rmtree(run / "checkpoints" / "last")
    shutil.copytree(run / "checkpoints" / f"step-{t:07d}", run / "checkpoints" / "last")
    genlab.train(resume=run, progress=False, figures=False)
    # ... and extend the finished run by an epoch (its last checkpoint is at an epoch's end)
    genlab.train(resume=run, config={"trainer": {"epochs": 3}}, progress=False, figures=False)
    want = _expected(run)
    assert len(_epoch_end_steps(run)) == 3
    ea = _events(run / "tensorboard")
    got = _tb_series(ea)
    for tag, series in want.items():
        _same(got[tag], series)
    assert [e.step for e in ea.Images("samples")] == _epoch_end_steps(run)
    client, mrun = _mlflow_run((run / "mlruns").resolve().as_uri(), run)  # the same MLflow run, continued
    got = _mlflow_series(client, mrun)
    for tag, series in want.items():
        _same(got[tag], sorted(series))


def test_genlab_log_replays_an_untracked_run_as_live_tracking_logged_it(tracked, tmp_path, capsys):
    copy = tmp_path / "untracked"
    shutil.copytree(tracked, copy, ignore=shutil.ignore_patterns("tensorboard", "mlruns", ".genlab.lock"))
    before = {p.relative_to(copy) for p in copy.rglob("*")}
    assert main(["log", str(copy), "--to", "tensorboard"]) == 0
    assert "tensorboard --logdir" in capsys.readouterr().out
    live, replayed = _events(tracked / "tensorboard"), _events(copy / "tensorboard")
    got, want = _tb_series(replayed), _tb_series(live)
    assert set(got) == set(want)
    for tag in want:
        _same(got[tag], want[tag])
    assert [e.step for e in replayed.Images("samples")] == [e.step for e in live.Images("samples")]
    assert main(["log", str(copy), "--to", "mlflow"]) == 0
    client, run = _mlflow_run((copy / "mlruns").resolve().as_uri(), copy)
    lclient, lrun = _mlflow_run((tracked / "mlruns").resolve().as_uri(), tracked)
    got, want = _mlflow_series(client, run), _mlflow_series(lclient, lrun)
    assert set(got) == set(want) and got == want
    assert run.data.params == lrun.data.params
    # nothing written into the run but the default log folders
    after = {p.relative_to(copy) for p in copy.rglob("*")}
    assert {p.parts[0] for p in after - before} == {"tensorboard", "mlruns"}
    # elsewhere with --logdir: the run is left alone
    out = tmp_path / "tb"
    assert main(["log", str(copy), "--to", "tensorboard", "--logdir", str(out)]) == 0
    assert set(_tb_series(_events(out))) == set(want)
    assert {p.relative_to(copy) for p in copy.rglob("*")} == after


def test_bad_inputs_are_one_line_exit_2_and_write_nothing(tracked, tmp_path, capsys, monkeypatch):
    out = tmp_path / "never"
    _bad(["train", "vae", "--data", "digits", "trainer.log_to=tensorboard,wandb", "--out", str(out)], capsys,
         "unknown tracker 'wandb'", "tensorboard")
    assert not out.exists()
    _bad(["log", str(tmp_path), "--to", "tensorboard"], capsys, "not a run folder")
    _bad(["log", str(tracked), "--to", "wandb"], capsys, "unknown tracker")
    _bad(["log", str(tracked), "--to", "tensorboard"], capsys, "already holds", "--overwrite")
    _bad(["log", str(tracked), "--to", "mlflow"], capsys, "already holds an MLflow run", "--overwrite")
    with pytest.raises(ConfigError, match="trainer.log_dir"):  # no run folder: nowhere to write by default
        genlab.train("vae", "digits", config=_cfg(log_to="tensorboard"), progress=False)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard"
                        else find_spec(name, *a))
    _bad(["train", "vae", "--data", "digits", "trainer.log_to=tensorboard", "--out", str(out)], capsys,
         "pip install 'genlab[track]'")
    assert not out.exists()  # refused before the run folder is created


def test_tracking_without_a_run_folder_writes_to_log_dir(tmp_path):
    logs = tmp_path / "logs"
    r = genlab.train("vae", "digits", config=_cfg(log_to=["tensorboard", "mlflow"], log_dir=str(logs), epochs=1),
                     progress=False)
    ea = _events(logs)
    got = _tb_series(ea)
    for rec in r.result.history:
        for k, v in rec.items():
            if k not in ("step", "epoch", "split") and v is not None:
                assert (rec["step"], pytest.approx(v, rel=REL, abs=1e-7)) in got[f"{rec['split']}/{k}"]
    assert ea.Histograms("codes/all") and not ea.Tags()["images"]  # no run folder: no sample grids
    client = MlflowClient(tracking_uri=(logs / "mlruns").resolve().as_uri())
    runs = client.search_runs([client.get_experiment_by_name("genlab").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"


class _Boom(Callback):
    def on_epoch_end(self, trainer, logs):
        raise GenlabError("boom")


def test_a_run_that_raises_ends_its_mlflow_run_as_failed(tmp_path):
    logs = tmp_path / "logs"
    with pytest.raises(GenlabError, match="boom"):
        genlab.train("vae", "digits", config=_cfg(log_to="tensorboard,mlflow", log_dir=str(logs), max_steps=1),
                     callbacks=[_Boom()], progress=False)
    client = MlflowClient(tracking_uri=(logs / "mlruns").resolve().as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("genlab").experiment_id])
    assert run.info.status == "FAILED"
    assert _tb_series(_events(logs))["train_epoch/loss"]  # what was logged before the failure is on disk
