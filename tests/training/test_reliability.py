"""Reliability of training runs: the NaN guard with poisoned weights, run-folder locks and markers, resume at
epoch boundaries by SIGINT, deterministic reruns, and a crash test that kills a CLI training 20 times."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import genlab
from genlab.errors import ConfigError
from genlab.io import load
from genlab.io.runfolder import LOCK_NAME, MARKER, RunLock, RunLocked, remove_stale_temps
from genlab.training import Callback, Trainer, TrainingDiverged
from tests.conftest import tiny_trainer
from tests.training.test_trainer import make_vae

ROOT = Path(__file__).resolve().parents[2]


class PoisonLR(Callback):
    """From the end of epoch ``after`` on, every learning rate is infinite (the scheduler's base too)."""

    def __init__(self, after=1):
        self.after = after

    def on_epoch_end(self, trainer, logs):
        if trainer.epoch == self.after:
            for spec in trainer.specs.values():
                spec.scheduler.base_lrs = [float("inf")] * len(spec.scheduler.base_lrs)
                for g in spec.optimizer.param_groups:
                    g["lr"] = float("inf")


def test_nan_guard_never_writes_poisoned_weights_over_the_good_checkpoint(image_data, tmp_path):
    model = make_vae(image_data)
    with pytest.raises(TrainingDiverged) as e:
        Trainer(tiny_trainer(epochs=4), out_dir=tmp_path, callbacks=[PoisonLR(1)]).fit(model, image_data)
    msg = str(e.value)
    assert "\n" not in msg and "weights became non-finite" in msg and "step 4" in msg, msg
    assert "checkpoints/last (step 4)" in msg, msg  # 64 samples / 16 = 4 steps an epoch: the good state
    last = tmp_path / "checkpoints" / "last"
    assert json.loads((last / "trainer_state.json").read_text())["step"] == 4
    for f in ("model.safetensors", "trainer_state.safetensors"):
        for k, t in load_file(str(last / f)).items():
            assert not t.is_floating_point() or torch.isfinite(t).all(), f"{f}:{k} is not finite"
    saved = load(last)
    assert all(torch.isfinite(p).all() for p in saved.parameters())
    assert not all(torch.isfinite(p).all() for p in model.parameters())  # the live model was poisoned


def test_a_nonfinite_state_is_never_saved(image_data, tmp_path):
    model = make_vae(image_data)
    trainer = Trainer(tiny_trainer(epochs=1), out_dir=tmp_path)
    trainer.fit(model, image_data)
    before = (tmp_path / "checkpoints" / "last" / "model.safetensors").read_bytes()
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="refusing to write"):
        trainer._save_checkpoint("last")
    assert (tmp_path / "checkpoints" / "last" / "model.safetensors").read_bytes() == before


def test_infinite_learning_rate_is_refused_by_config(tmp_path):
    with pytest.raises(ConfigError):
        genlab.train("ae", "digits", config={"model": {"lr": float("inf")}}, out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


class SigintAt(Callback):
    """Send a real SIGINT to this process at the end of epoch ``epoch`` or after step ``step``."""

    def __init__(self, *, epoch=None, step=None):
        self.epoch, self.step = epoch, step

    def on_epoch_end(self, trainer, logs):
        if self.epoch is not None and trainer.epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGINT)

    def on_step_end(self, trainer, logs):
        if self.step is not None and trainer.step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("where", [dict(epoch=1), dict(epoch=2), dict(step=4), dict(step=6)],
                         ids=["epoch1-end", "epoch2-end", "last-batch-of-epoch1", "mid-epoch2"])
def test_sigint_anywhere_resumes_bit_for_bit(image_data, tmp_path, where):
    train, val, _ = image_data.split(0.2, 0.0, seed=0)  # 52 train samples: 4 batches an epoch
    cfg = tiny_trainer(epochs=3, lr_schedule="cosine", ema_decay=0.9)
    full = make_vae(train)
    Trainer(cfg, out_dir=tmp_path / "full").fit(full, train, val)
    part = make_vae(train)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, out_dir=tmp_path / "part", callbacks=[SigintAt(**where)]).fit(part, train, val)
    meta = json.loads((tmp_path / "part" / "checkpoints" / "last" / "trainer_state.json").read_text())
    expected_step = where.get("step") or 4 * where["epoch"]
    assert meta["step"] == expected_step
    resumed = make_vae(train, seed=7)
    torch.manual_seed(12345)  # a new process starts from another RNG state
    Trainer(cfg, out_dir=tmp_path / "part").fit(resumed, train, val, resume=tmp_path / "part")
    a, b = full.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "full" / "metrics.jsonl").read_text() == (tmp_path / "part" / "metrics.jsonl").read_text()


def test_deterministic_switch_fixes_the_measured_choices(image_data, monkeypatch):
    t = Trainer({"deterministic": True, "epochs": 1, "batch_size": 16})
    import genlab.training.precision as precision
    monkeypatch.setattr(precision, "time_candidates", lambda *a, **k: pytest.fail("the probe ran"))
    res = t.fit(make_vae(image_data), image_data)
    assert (res.precision, res.channels_last) == ("fp32", False)
    assert not torch.are_deterministic_algorithms_enabled()  # restored after fit


def test_precision_probe_drops_a_candidate_that_fails_and_trains_with_what_works(image_data, monkeypatch, caplog):
    """precision=auto on a CPU with native bf16 probes fp32 and bf16: a model whose step raises under bf16
    autocast (as stylegan's did) is trained in fp32 with one warning line, instead of failing in the probe; a
    failure of the default candidate (fp32) still raises."""
    import genlab.training.precision as precision
    from genlab.models.vae import VAE

    class Bf16Breaks(VAE):
        def training_step(self, batch, step, optimizer="main"):
            if torch.is_autocast_enabled("cpu"):
                raise RuntimeError("expected dtype float for `end` but got dtype c10::BFloat16")
            return super().training_step(batch, step, optimizer)

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    base = make_vae(image_data)
    model = Bf16Breaks(base.config, image_data.info())
    with caplog.at_level("WARNING", logger="genlab.training.precision"):
        res = Trainer({"epochs": 1, "batch_size": 16, "channels_last": False}).fit(model, image_data)
    assert res.precision == "fp32" and res.step > 0
    warnings = [r.getMessage() for r in caplog.records if "precision probe" in r.getMessage()]
    assert len(warnings) == 1 and "bf16 fails for Bf16Breaks (RuntimeError: expected dtype float" in warnings[0]

    class AlwaysBreaks(VAE):
        def training_step(self, batch, step, optimizer="main"):
            raise RuntimeError("broken model")
    with pytest.raises(RuntimeError, match="broken model"):
        Trainer({"epochs": 1, "batch_size": 16, "channels_last": False}).fit(
            AlwaysBreaks(base.config, image_data.info()), image_data)


def test_deterministic_reruns_are_bit_identical(tmp_path):
    cfg = {"trainer": {"epochs": 2, "deterministic": True}, "model": {"hidden": [32]}, "data": {"limit": 300}}
    runs = [genlab.train("ae", "digits", config=cfg, out=tmp_path / f"r{i}") for i in range(2)]
    a, b = (load_file(str(r.out_dir / "model" / "model.safetensors")) for r in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "r0" / "metrics.jsonl").read_text() == (tmp_path / "r1" / "metrics.jsonl").read_text()


# -- run folders: marker, overwrite, lock ------------------------------------------------------------------

TINY = {"trainer": {"epochs": 1}, "model": {"hidden": [16]}, "data": {"limit": 200}}


def test_overwrite_never_touches_a_folder_genlab_did_not_write(tmp_path):
    d = tmp_path / "theirs"
    d.mkdir()
    (d / "config.json").write_text('{"mine": true}')
    (d / "important_notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="did not write"):
        genlab.train("ae", "digits", config=TINY, out=d, overwrite=True)
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "important_notes.txt"]
    assert (d / "config.json").read_text() == '{"mine": true}'


def test_overwrite_replaces_only_genlabs_own_files(tmp_path):
    d = tmp_path / "run"
    genlab.train("ae", "digits", config=TINY, out=d)
    assert (d / MARKER).is_file()
    (d / "notes.txt").write_text("mine")
    old = (d / "model" / "model.safetensors").read_bytes()
    genlab.train("ae", "digits", config={**TINY, "trainer": {"epochs": 1, "seed": 5}}, out=d, overwrite=True)
    assert (d / "notes.txt").read_text() == "mine"
    assert (d / "model" / "model.safetensors").read_bytes() != old


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    d = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from genlab.io.runfolder import RunLock\n"
        "with RunLock(sys.argv[2]):\n    print('locked', flush=True); time.sleep(60)"), str(ROOT / "src"), str(d)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLocked) as e:
            genlab.train("ae", "digits", config=TINY, out=d)
        assert f"pid {holder.pid}" in str(e.value) and "\n" not in str(e.value)
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in d.iterdir()) == [LOCK_NAME]  # the refused writer wrote nothing
    genlab.train("ae", "digits", config=TINY, out=d)  # the dead holder's lock file does not block


def test_stale_temp_entries_are_removed_on_start(tmp_path):
    d = tmp_path / "run"
    genlab.train("ae", "digits", config={**TINY, "trainer": {"epochs": 1, "checkpoint_every": 1}}, out=d)
    (d / "checkpoints" / ".step-0000002.ab12cd.tmp").mkdir()
    (d / "checkpoints" / ".last.x9y8.tmp").mkdir()
    (d / ".metrics.jsonl.q1w2.tmp").write_text("partial")
    (d / "checkpoints" / "last.old").mkdir()  # beside a complete 'last': left by a crashed swap
    with RunLock(d):
        assert remove_stale_temps(d) == 4
    names = {p.name for p in (d / "checkpoints").iterdir()}
    assert not any(n.endswith(".tmp") or n.endswith(".old") for n in names) and "last" in names


def test_resume_applies_resumable_overrides_and_refuses_others(tmp_path):
    d = tmp_path / "run"
    genlab.train("ae", "digits", config=TINY, out=d)
    before = (d / "metrics.jsonl").read_text()
    again = genlab.train(resume=d)  # finished: nothing to do, nothing rewritten
    assert again.result is None and (d / "metrics.jsonl").read_text() == before
    with pytest.raises(ConfigError, match="model.hidden cannot change"):
        genlab.train(resume=d, config={"model": {"hidden": [8]}})
    longer = genlab.train(resume=d, config={"trainer": {"epochs": 2}})
    assert longer.result.epoch == 2
    assert (d / "metrics.jsonl").read_text().startswith(before)
    assert json.loads((d / "config.json").read_text())["sections"]["trainer"]["epochs"] == 2


def test_a_fresh_run_that_fails_before_its_first_checkpoint_leaves_nothing(tmp_path):
    d = tmp_path / "run"
    with pytest.raises(genlab.errors.GenlabError, match="val/nokey"):
        genlab.train("ae", "digits", config={**TINY, "trainer": {"epochs": 1, "monitor": "val/nokey"}}, out=d)
    assert not d.exists()


# -- the crash test ---------------------------------------------------------------------------------------

def _cli(*args):
    return [sys.executable, "-m", "genlab.cli", *args]


def _wait_for(pred, timeout=120.0):
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            return False
        time.sleep(0.01)
    return True


def _records(run):
    f = run / "metrics.jsonl"
    return f.read_text().count("\n") if f.exists() else 0


def _epoch_ends(run):
    f = run / "metrics.jsonl"
    return f.read_text().count('"train_epoch"') if f.exists() else 0


CRASH_ARGS = ["ae", "--data", "digits", "trainer.epochs=30", "trainer.batch_size=32", "trainer.checkpoint_every=7",
              "trainer.deterministic=true", "trainer.log_every=1", "model.hidden=[64]", "data.limit=600"]


@pytest.mark.slow
def test_crash_test_20_kills_resume_bit_for_bit(tmp_path):
    """Kill one training 20 times (SIGKILL and SIGINT, at random moments and right at epoch boundaries),
    resume after each; after every kill ``checkpoints/last`` loads and is finite; the final weights and
    ``metrics.jsonl`` equal those of an uninterrupted run bit for bit."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    ref, run = tmp_path / "ref", tmp_path / "run"
    subprocess.run(_cli("train", *CRASH_ARGS, "--out", str(ref)), env=env, check=True, capture_output=True,
                   timeout=600)
    rng = random.Random(0)
    kills = 0
    first = True
    while kills < 20:
        args = _cli("train", *CRASH_ARGS, "--out", str(run)) if first else _cli("train", "--resume", str(run))
        start_records = _records(run)
        p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sig = signal.SIGKILL if kills % 2 == 0 else signal.SIGINT
        if kills % 4 in (1, 2):  # right at an epoch boundary: as soon as an epoch's record appears
            n0 = max(_epoch_ends(run), 0) if not first else 0
            _wait_for(lambda: _epoch_ends(run) > n0 or p.poll() is not None)
        else:  # at a random moment, measured in logged records (not seconds, so a fast machine cannot finish)
            target = start_records + (7 if first else 0) + rng.randint(1, 12)
            _wait_for(lambda: _records(run) >= target or p.poll() is not None)
            time.sleep(rng.uniform(0.0, 0.01))
        if p.poll() is not None:  # it ended before the kill: a crash is a failure, a finish needs more work to do
            out, err = p.communicate()
            assert p.returncode == 0, f"the training process failed on its own (exit {p.returncode}): {err[-2000:]}"
            break
        p.send_signal(sig)
        out, err = p.communicate(timeout=120)
        if sig == signal.SIGINT:
            assert p.returncode == 130, err
            assert f"--resume {run}" in err and "Traceback" not in err, err
        first = False
        kills += 1
        last = run / "checkpoints" / "last"
        model = load(last)
        assert all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())
    assert kills == 20, f"the run finished after {kills} kills; make it longer"
    done = subprocess.run(_cli("train", "--resume", str(run)), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    a = load_file(str(ref / "model" / "model.safetensors"))
    b = load_file(str(run / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ"
    assert (ref / "metrics.jsonl").read_text() == (run / "metrics.jsonl").read_text()
    assert not list(run.glob("**/*.tmp"))
