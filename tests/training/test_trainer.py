"""Trainer: exact resume, early stopping, NaN guard, atomic checkpoints, schedules, EMA, precision."""
import json
import logging
import math
import time

import pytest
import torch

from genlab.config import from_dict
from genlab.errors import CheckpointError, ConfigError, GenlabError
from genlab.io import load
from genlab.models.vae import VAE, VAEConfig
from genlab.training import Callback, Trainer, TrainingDiverged, seed_everything
from tests.conftest import tiny_trainer


def make_vae(data, seed=0, **cfg):
    seed_everything(seed)
    return VAE(from_dict(VAEConfig, {"latent_dim": 3, **cfg}), data.info())


class InterruptAt(Callback):
    def __init__(self, step):
        self.at = step

    def on_step_end(self, trainer, logs):
        if trainer.step == self.at:
            raise KeyboardInterrupt


# mid-epoch (4 batches/epoch) and exactly at an epoch end; with an EMA ramp-up that lasts the whole run (half-life
# ln 0.5 / ln 0.9 = 6.6 steps reached at update 13 of 12), so the resumed average must continue the update count
@pytest.mark.parametrize("interrupt_at,rampup", [(5, None), (8, None), (5, 0.5)])
def test_interrupted_and_resumed_run_equals_uninterrupted(image_data, tmp_path, interrupt_at, rampup):
    train, val, _ = image_data.split(0.2, 0.0, seed=0)
    cfg = tiny_trainer(epochs=3, ema_decay=0.9, ema_rampup=rampup, lr_schedule="cosine", warmup_steps=2,
                       grad_clip=1.0, checkpoint_every=3)
    full = make_vae(train)
    Trainer(cfg, out_dir=tmp_path / "full").fit(full, train, val)

    part = make_vae(train)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, out_dir=tmp_path / "part", callbacks=[InterruptAt(interrupt_at)]).fit(part, train, val)
    seed_everything(999)  # a fresh process would start from arbitrary RNG state
    resumed = make_vae(train, seed=123)
    res = Trainer(cfg, out_dir=tmp_path / "part").fit(resumed, train, val, resume=tmp_path / "part")
    a, b = full.state_dict(), resumed.state_dict()
    assert res.step == 3 * 4
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    # the metrics log is continuous and identical too
    la = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert la == lb


def test_checkpoints_written_and_loadable(image_data, tmp_path):
    train, val, _ = image_data.split(0.2, 0.0, seed=0)
    model = make_vae(train)
    Trainer(tiny_trainer(epochs=2, checkpoint_every=2, keep_step_checkpoints=2), out_dir=tmp_path).fit(
        model, train, val)
    ck = tmp_path / "checkpoints"
    names = sorted(p.name for p in ck.iterdir())
    assert names == ["best", "last", "step-0000006", "step-0000008"]
    for n in names:
        for f in ("config.json", "model.safetensors", "trainer_state.json", "trainer_state.safetensors"):
            assert (ck / n / f).is_file()
    assert isinstance(load(ck / "last"), VAE)
    assert not [p for p in tmp_path.rglob("*.tmp")]


class LastEpochs(Callback):
    """Records, at each epoch end, the epoch that ``checkpoints/last`` holds."""

    def __init__(self, run):
        self.run, self.seen = run, []

    def on_epoch_end(self, trainer, logs):
        state = json.loads((self.run / "checkpoints" / "last" / "trainer_state.json").read_text())
        self.seen.append((trainer.epoch, state["epoch"]))


@pytest.mark.parametrize("overhead", [None, 0.05])
def test_epoch_checkpoint_skipped_while_it_would_exceed_its_share_of_the_time(image_data, tmp_path, monkeypatch,
                                                                              overhead):
    """``trainer.chore_overhead``: with writes made to take 0.2 s, a 0.05 share skips ``last`` for 4 s after
    each write, so epochs of a few milliseconds write it at the first epoch end and at the run's end only (a busy
    machine may add one or two); ``null`` writes it at every epoch end. Resuming the finished run is exact either
    way (the final state is always written)."""
    from genlab.training import checkpoint as ckpt
    real = ckpt.save_checkpoint

    def slow(trainer, name):
        time.sleep(0.2)
        return real(trainer, name)

    monkeypatch.setattr(ckpt, "save_checkpoint", slow)
    train, val, _ = image_data.split(0.2, 0.0, seed=0)
    rec = LastEpochs(tmp_path)
    res = Trainer(tiny_trainer(epochs=12, chore_overhead=overhead), out_dir=tmp_path, callbacks=[rec]).fit(
        make_vae(train), train, val)
    assert rec.seen[0] == (1, 1) and rec.seen[-1] == (12, 12)
    written = [e for e, held in rec.seen if e == held]
    if overhead is None:
        assert written == list(range(1, 13))
    else:
        assert len(written) <= 5, rec.seen
        assert all(held in written for _, held in rec.seen)  # the file always holds the latest write
    again = Trainer(tiny_trainer(epochs=12, chore_overhead=overhead), out_dir=tmp_path).fit(
        make_vae(train, seed=5), train, val, resume=tmp_path)
    assert again.step == res.step


def test_early_stopping_writes_the_stopping_epoch_whatever_chore_overhead_skips(image_data, tmp_path,
                                                                                   monkeypatch):
    """An early stop ends the run, so its epoch end writes ``last`` even inside the skip window: the checkpoint
    holds the stopped state (epoch 3, ``stopped_early``), and resuming it trains nothing more."""
    from genlab.training import checkpoint as ckpt
    real = ckpt.save_checkpoint
    monkeypatch.setattr(ckpt, "save_checkpoint", lambda t, name: (time.sleep(0.2), real(t, name))[1])
    train, val, _ = image_data.split(0.2, 0.0, seed=0)
    cfg = tiny_trainer(epochs=10, patience=2, chore_overhead=0.05)
    res = Trainer(cfg, out_dir=tmp_path).fit(make_vae(train, lr=1e-12), train, val)
    assert res.stopped_early and res.epoch == 3
    state = json.loads((tmp_path / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert state["epoch"] == 3 and state["stopped_early"] is True
    again = Trainer(cfg, out_dir=tmp_path).fit(make_vae(train, lr=1e-12), train, val, resume=tmp_path)
    assert again.step == res.step and again.epoch == 3


@pytest.mark.parametrize("bad,says", [(0, "must be in"), (1.5, "must be in"), (-0.1, "must be in"),
                                       (float("nan"), "must be a finite number")])
def test_chore_overhead_outside_0_1_is_one_line(bad, says):
    with pytest.raises(ConfigError, match=f"trainer.chore_overhead:? {says}") as e:
        Trainer(tiny_trainer(chore_overhead=bad))
    assert "\n" not in str(e.value)


def test_early_stopping_stops_after_patience(image_data, tmp_path):
    train, val, _ = image_data.split(0.2, 0.0, seed=0)
    model = make_vae(train, lr=1e-12)  # nothing changes, so validation never improves after epoch 1
    res = Trainer(tiny_trainer(epochs=10, patience=2), out_dir=tmp_path).fit(model, train, val)
    assert res.stopped_early and res.epoch == 3 and res.best_step == 4
    vals = [r for r in res.history if r["split"] == "val"]
    assert len(vals) == 3


def test_early_stopping_state_survives_resume(image_data, tmp_path):
    train, val, _ = image_data.split(0.2, 0.0, seed=0)
    cfg = tiny_trainer(epochs=10, patience=3)
    m = make_vae(train, lr=1e-12)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, out_dir=tmp_path, callbacks=[InterruptAt(9)]).fit(m, train, val)
    res = Trainer(cfg, out_dir=tmp_path).fit(make_vae(train, lr=1e-12), train, val, resume=tmp_path)
    assert res.stopped_early and res.epoch == 4  # epochs 2,3,4 without improvement, counted across the resume


class NaNAt:
    """Wraps a model's training_step to return NaN from a given step on."""

    def __init__(self, model, step):
        self.orig, self.step = model.training_step, step

    def __call__(self, batch, step, optimizer="main"):
        out = self.orig(batch, step, optimizer)
        if step >= self.step:
            out = {**out, "loss": out["loss"] * float("nan")}
        return out


def test_nan_loss_stops_with_message_and_keeps_good_checkpoint(image_data, tmp_path):
    model = make_vae(image_data)
    model.training_step = NaNAt(model, 6)
    with pytest.raises(TrainingDiverged) as e:
        Trainer(tiny_trainer(epochs=5), out_dir=tmp_path).fit(model, image_data)
    msg = str(e.value)
    assert "step 6" in msg and "non-finite" in msg and "\n" not in msg and "checkpoints/last" in msg
    saved = load(tmp_path / "checkpoints" / "last")
    assert all(torch.isfinite(p).all() for p in saved.parameters())
    cur = model.state_dict()
    assert all(torch.equal(v, cur[k]) for k, v in saved.state_dict().items())
    meta = json.loads((tmp_path / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert meta["step"] == 6


def test_interrupted_checkpoint_write_keeps_previous(image_data, tmp_path, monkeypatch):
    import genlab.training.checkpoint as tr

    model = make_vae(image_data)
    trainer = Trainer(tiny_trainer(epochs=1), out_dir=tmp_path)
    trainer.fit(model, image_data)
    last = tmp_path / "checkpoints" / "last"
    before = {p.name: p.read_bytes() for p in last.iterdir()}

    def crash(folder, meta, tensors):
        (folder / "trainer_state.json").write_text("{partial")
        raise OSError("disk full")

    monkeypatch.setattr(tr, "write_state", crash)
    with pytest.raises(OSError):
        trainer._save_checkpoint("last")
    after = {p.name: p.read_bytes() for p in last.iterdir()}
    assert after == before
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best", "last"]


def test_resume_refuses_other_model(image_data, tmp_path):
    Trainer(tiny_trainer(epochs=1), out_dir=tmp_path).fit(make_vae(image_data), image_data)
    other = make_vae(image_data, latent_dim=5)
    with pytest.raises(CheckpointError, match="different model"):
        Trainer(tiny_trainer(epochs=2), out_dir=tmp_path).fit(other, image_data, resume=tmp_path)


def test_lr_schedules(image_data):
    m = make_vae(image_data)
    tr = Trainer(tiny_trainer(epochs=2, lr_schedule="cosine", warmup_steps=2))
    res = tr.fit(m, image_data)
    lrs = [r["lr/main"] for r in res.history if r["split"] == "train"]
    assert len(lrs) == 8
    assert lrs[0] == pytest.approx(0.5e-3) and lrs[1] == pytest.approx(1e-3)
    # cosine over the 6 post-warm-up steps: step i uses 0.5 * (1 + cos(pi * (i - 2) / 6))
    import math
    assert lrs[-1] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 5 / 6)))
    assert tr.specs["main"].optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-15)
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:]))


class TickClock(Callback):
    """A budget clock that advances one second per training step (read by the Trainer as ``clock=``)."""

    def __init__(self, start=0.0):
        self.t = start

    def __call__(self):
        return self.t

    def step_figures(self, trainer, batch):
        self.t += 1.0
        return {}


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_lr_schedule_decays_over_the_time_budget(image_data, kind):
    """With trainer.max_seconds the decay runs over the budget when that is further along than the steps (here
    200 steps of epochs, 10 'seconds' of budget at one per step): the rate of step j is set while step j-1 runs,
    from the budget share used when it began, (j - 2) / 10, and the run ends at step 10."""
    import math
    clock = TickClock()
    tr = Trainer(tiny_trainer(epochs=50, lr_schedule=kind, max_seconds=10), clock=clock, callbacks=[clock])
    res = tr.fit(make_vae(image_data), image_data)
    lrs = [r["lr/main"] for r in res.history if r["split"] == "train"]
    assert res.step == 10 and len(lrs) == 10 and tr.budget_fraction == pytest.approx(1.0)
    mult = (lambda f: 0.5 * (1 + math.cos(math.pi * f))) if kind == "cosine" else (lambda f: 1 - f)
    assert lrs[0] == pytest.approx(1e-3)
    assert lrs[1] == pytest.approx(1e-3 * mult(1 / 200))  # the steps are further along than the budget (0)
    for j in range(3, 11):
        assert lrs[j - 1] == pytest.approx(1e-3 * mult((j - 2) / 10)), j
    constant = Trainer(tiny_trainer(epochs=50, max_seconds=10), clock=(c := TickClock()), callbacks=[c])
    flat = [r["lr/main"] for r in constant.fit(make_vae(image_data), image_data).history if r["split"] == "train"]
    assert flat == [pytest.approx(1e-3)] * 10


def test_time_budget_and_its_schedule_continue_across_resume(image_data, tmp_path):
    """A resumed run counts the budget seconds its checkpoint had used (trainer.max_seconds is the whole run's)
    and its time-budgeted schedule goes on where it was: interrupted at step 4 and resumed on a clock with another
    origin, the run ends at step 10 with the weights and log of the uninterrupted run."""
    cfg = tiny_trainer(epochs=50, lr_schedule="cosine", max_seconds=10)
    full = make_vae(image_data)
    Trainer(cfg, out_dir=tmp_path / "full", clock=(c := TickClock()), callbacks=[c]).fit(full, image_data)
    part = make_vae(image_data)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, out_dir=tmp_path / "part", clock=(c := TickClock()),
                callbacks=[c, InterruptAt(4)]).fit(part, image_data)
    meta = json.loads((tmp_path / "part" / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert meta["budget_seconds"] == 4.0
    resumed = make_vae(image_data, seed=123)
    res = Trainer(cfg, out_dir=tmp_path / "part", clock=(c := TickClock(start=100.0)), callbacks=[c]).fit(
        resumed, image_data, resume=tmp_path / "part")
    assert res.step == 10
    a, b = full.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    la = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert la == lb


def test_grad_clip_logs_norm_and_ema_is_used_for_final_weights(image_data, tmp_path):
    m = make_vae(image_data)
    tr = Trainer(tiny_trainer(epochs=1, grad_clip=0.5, ema_decay=0.5, restore_best=False), out_dir=tmp_path)
    res = tr.fit(m, image_data)
    assert all("grad_norm/main" in r for r in res.history if r["split"] == "train")
    sd = m.state_dict()
    assert all(torch.equal(sd[k], tr.ema.shadow[k]) for k in tr.ema.names)
    raw = load(tmp_path / "checkpoints" / "last").state_dict()
    assert any(not torch.equal(raw[k], sd[k]) for k in tr.ema.names)


def test_precision_choice_is_recorded(image_data, tabular_data):
    m = make_vae(image_data)
    res = Trainer(tiny_trainer(epochs=1, precision="auto", channels_last="auto")).fit(m, image_data)
    assert res.precision in ("fp32", "bf16") and isinstance(res.channels_last, bool)
    with pytest.raises(GenlabError, match="fp16 needs a CUDA"):
        Trainer(tiny_trainer(precision="fp16", device="cpu")).fit(make_vae(image_data), image_data)
    t = tabular_data.standardized()
    res = Trainer(tiny_trainer(epochs=1, precision="auto", channels_last="auto")).fit(make_vae(t), t)
    assert res.channels_last is False


def test_trainer_rejects_bad_config_and_data(image_data, tabular_data):
    with pytest.raises(ConfigError, match="unknown key 'epoch'"):
        Trainer({"epoch": 3})
    with pytest.raises(ConfigError, match="trainer.batch_size"):
        Trainer({"batch_size": 0})
    t = tabular_data.standardized()
    t.x[0, 0] = float("nan")
    with pytest.raises(GenlabError, match="NaN"):
        Trainer(tiny_trainer()).fit(make_vae(t), t)
    with pytest.raises(GenlabError, match="shape"):
        Trainer(tiny_trainer()).fit(make_vae(image_data), tabular_data.standardized())


def test_epoch_means_count_each_key_over_the_steps_that_logged_it(image_data):
    """With n_critic=3 a GAN logs g_loss only on every third batch: its epoch mean must divide by those
    steps, not all steps."""
    from genlab.registry import get_model_entry

    entry = get_model_entry("wgan-gp")
    seed_everything(0)
    model = entry.cls(from_dict(entry.config_cls, {"latent_dim": 4, "n_critic": 3}), image_data.info())
    res = Trainer(tiny_trainer(epochs=1, batch_size=8)).fit(model, image_data)  # 8 batches: D on all, G on 3rd, 6th
    steps = [r for r in res.history if r["split"] == "train"]
    epoch = [r for r in res.history if r["split"] == "train_epoch"][0]
    d = [r["d_loss"] for r in steps if "d_loss" in r]
    g = [r["g_loss"] for r in steps if "g_loss" in r]
    assert len(d) == 8 and len(g) == 2
    assert epoch["d_loss"] == pytest.approx(sum(d) / 8, rel=1e-5)
    assert epoch["g_loss"] == pytest.approx(sum(g) / 2, rel=1e-5)


class Threads(Callback):
    def on_train_start(self, trainer, total_steps):
        self.seen = torch.get_num_threads()


def test_thread_count_is_set_during_fit_and_restored(image_data, monkeypatch):
    from genlab.training import default_threads

    before = torch.get_num_threads()
    cb = Threads()
    Trainer(tiny_trainer(epochs=1, num_threads=1), callbacks=[cb]).fit(make_vae(image_data), image_data)
    assert cb.seen == 1 and torch.get_num_threads() == before
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(40)), raising=False)
    assert default_threads() == 16  # capped
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 5}, raising=False)
    assert default_threads() == 2
    Trainer(tiny_trainer(epochs=1), callbacks=[cb]).fit(make_vae(image_data), image_data)
    assert cb.seen == 2 and torch.get_num_threads() == before
    with pytest.raises(ConfigError, match="trainer.num_threads"):
        Trainer({"num_threads": 0})


def test_data_seed_changes_the_order_only(image_data):
    """trainer.data_seed seeds the shuffling, trainer.seed the rest; data_seed=null means seed (old configs)."""
    def run(**kw):
        torch.manual_seed(0)
        m = make_vae(image_data)
        res = Trainer(tiny_trainer(epochs=2, **kw)).fit(m, image_data)
        return m.state_dict(), [r["loss"] for r in res.history if r["split"] == "train"]

    a, la = run(seed=3)
    b, lb = run(seed=3, data_seed=3)
    c, lc = run(seed=3, data_seed=4)
    assert la == lb and all(torch.equal(a[k], b[k]) for k in a)
    assert la != lc


def test_export_is_the_same_with_or_without_a_run_folder(image_data, tmp_path):
    """restore_best works from memory when there is no run folder: the exported weights (EMA on) are the best
    state's either way."""
    train, val, _ = image_data.split(0.2, 0.0, seed=0)
    cfg = tiny_trainer(epochs=4, ema_decay=0.5, monitor="val/loss", mode="max")  # max: the first epoch is best
    a = make_vae(train)
    ra = Trainer(cfg).fit(a, train, val)
    b = make_vae(train)
    rb = Trainer(cfg, out_dir=tmp_path / "run").fit(b, train, val)
    assert ra.best_step == rb.best_step == 4 and ra.step == 16
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    saved = load(tmp_path / "run" / "model").state_dict()
    assert all(torch.equal(saved[k], sa[k]) for k in sa)
    c = make_vae(train)
    Trainer({**cfg, "restore_best": False}).fit(c, train, val)  # the last weights differ from the best ones
    assert any(not torch.equal(c.state_dict()[k], sa[k]) for k in sa)


def test_a_nonfinite_second_player_loss_keeps_the_previous_checkpoint(image_data, tmp_path):
    """When G's loss is NaN after D already updated on the batch, the state is half a step: it is not saved;
    checkpoints/last stays at the last epoch end."""
    from genlab.registry import get_model_entry

    entry = get_model_entry("gan")
    seed_everything(0)
    model = entry.cls(from_dict(entry.config_cls, {"latent_dim": 4}), image_data.info())
    orig = model.training_step

    def step(batch, step, optimizer="d"):
        out = orig(batch, step, optimizer)
        if step >= 6 and optimizer == "g":
            out = {**out, "loss": out["loss"] * float("nan")}
        return out

    model.training_step = step
    with pytest.raises(TrainingDiverged) as e:
        Trainer(tiny_trainer(epochs=3), out_dir=tmp_path).fit(model, image_data)
    assert "step 6" in str(e.value) and "optimizer 'g'" in str(e.value) and "(step 4)" in str(e.value)
    meta = json.loads((tmp_path / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert meta["step"] == 4


def test_time_budget_ends_the_run_like_max_steps(image_data, tmp_path):
    """trainer.max_seconds: the step during which the budget runs out is the last; the run then ends as at
    max_steps (epoch record, validation, checkpoints, exported model)."""
    train, val, _ = image_data.split(0.2, 0.0, seed=0)
    res = Trainer(tiny_trainer(epochs=50, max_seconds=1e-9), out_dir=tmp_path).fit(make_vae(train), train, val)
    assert res.step == 1 and res.epoch == 1
    assert [r["split"] for r in res.history] == ["train", "train_epoch", "val"]
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "checkpoints" / "last" / "trainer_state.json").read_text())["step"] == 1
    with pytest.raises(ConfigError, match="trainer.max_seconds"):
        Trainer({"max_seconds": 0})


@pytest.mark.parametrize("interrupt_at", [5, 8])  # between the G updates of a 3-batch cycle; at an epoch end
def test_gan_resume_equals_uninterrupted(image_data, tmp_path, interrupt_at):
    """Two players, n_critic=3 (G on batches 3, 6, 9, 12), EMA, cosine schedules, validation with the monitors:
    a run interrupted mid-epoch or at an epoch end and resumed equals the uninterrupted one bit for bit."""
    from genlab.registry import get_model_entry

    entry = get_model_entry("gan")
    train, val, _ = image_data.split(0.2, 0.0, seed=0)

    def make(seed=0):
        seed_everything(seed)
        return entry.cls(from_dict(entry.config_cls, {"latent_dim": 4, "n_critic": 3, "hidden": [32]}), train.info())

    cfg = tiny_trainer(epochs=3, ema_decay=0.9, lr_schedule="cosine", fid_samples=64, monitor_every=2)
    full = make()
    Trainer(cfg, out_dir=tmp_path / "full").fit(full, train, val)
    part = make()
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, out_dir=tmp_path / "part", callbacks=[InterruptAt(interrupt_at)]).fit(part, train, val)
    resumed = make(seed=123)
    torch.manual_seed(999)
    Trainer(cfg, out_dir=tmp_path / "part").fit(resumed, train, val, resume=tmp_path / "part")
    a, b = full.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "full" / "metrics.jsonl").read_text() == (tmp_path / "part" / "metrics.jsonl").read_text()


def test_ema_rampup_follows_the_closed_form_and_is_checked():
    """EMA with ``rampup`` r: at update n the decay is 0.5 ** (1 / min(h, r n)), h = ln 0.5 / ln decay the
    half-life in updates (StyleGAN2-ADA's ema_rampup); without it the decay is constant. Checked on one scalar weight
    against the recursion written out by hand, to 1e-12 in float64."""
    from genlab.training.ema import EMA
    net = torch.nn.Linear(1, 1, bias=False).double()
    values = torch.linspace(-1.0, 2.0, 40, dtype=torch.float64) ** 2
    for decay, rampup in ((0.99, 0.05), (0.99, None), (0.9, 1.0)):
        with torch.no_grad():
            net.weight.fill_(5.0)
        ema = EMA(net, decay, rampup)
        h = math.log(0.5) / math.log(decay)
        s = 5.0
        for n, v in enumerate(values.tolist(), start=1):
            with torch.no_grad():
                net.weight.fill_(v)
            ema.update(net)
            b = decay if rampup is None else 0.5 ** (1 / min(h, rampup * n))
            s = b * s + (1 - b) * v
            assert abs(ema.shadow["weight"].item() - s) < 1e-12, (decay, rampup, n)
        assert ema.updates == len(values)
    # the ramp-up's first update all but copies the weights (0.5 ** 20 of the initial ones left at r = 0.05) and
    # reaches the plain decay once r n >= h (69 updates for 0.99)
    ema = EMA(net, 0.99, 0.05)
    assert ema.beta(1) == 0.5 ** 20 and ema.beta(2) == 0.5 ** 10 and ema.beta(1380) == 0.99
    assert ema.beta(1379) < 0.99
    # a checkpoint written before the update count existed loads with count 0
    tensors = ema.state_tensors()
    assert int(tensors[EMA.UPDATES_KEY]) == 0
    ema.updates = 7
    ema.load_state_tensors({k: v for k, v in tensors.items() if k != EMA.UPDATES_KEY})
    assert ema.updates == 0
    with pytest.raises(ConfigError, match=r"trainer.ema_rampup must be in \(0, 1\]"):
        Trainer(tiny_trainer(ema_decay=0.99, ema_rampup=0.0))
    with pytest.raises(ConfigError, match="trainer.ema_rampup needs trainer.ema_decay"):
        Trainer(tiny_trainer(ema_decay=None, ema_rampup=0.05))


def test_ema_rampup_makes_a_long_decay_safe_in_a_short_run(image_data, caplog):
    """0.999 over 8 steps keeps almost all of the initial weights; with ema_rampup=0.05 the exported weights are
    the average of the trained ones (no warning), and they differ from the initial weights by more than the plain
    average's do."""
    init = make_vae(image_data).state_dict()
    out = {}
    for rampup in (None, 0.05):
        m = make_vae(image_data)
        with caplog.at_level(logging.WARNING, logger="genlab.training.trainer"):
            Trainer(tiny_trainer(epochs=2, ema_decay=0.999, ema_rampup=rampup, restore_best=False)).fit(m, image_data)
        warned = [r for r in caplog.records if "ema_decay" in r.getMessage()]
        assert bool(warned) == (rampup is None)
        caplog.clear()
        sd = m.state_dict()
        out[rampup] = sum(float((sd[k] - init[k]).abs().sum()) for k in init if init[k].is_floating_point())
    assert out[0.05] > 20 * out[None] > 0, out


def test_resume_with_an_ema_the_checkpoint_lacks_is_a_clear_error(image_data, tmp_path):
    """A run trained without an EMA and resumed with one (trainer.ema_decay changed, or a model whose 'auto' default
    changed): one CheckpointError naming the setting, not a KeyError."""
    cfg = tiny_trainer(epochs=1, ema_decay=None, restore_best=False)
    Trainer(cfg, out_dir=tmp_path / "run").fit(make_vae(image_data), image_data)
    with pytest.raises(CheckpointError, match="holds no EMA.*trainer.ema_decay the run was trained with"):
        Trainer({**cfg, "epochs": 2, "ema_decay": 0.9}, out_dir=tmp_path / "run").fit(
            make_vae(image_data), image_data, resume=tmp_path / "run")


def test_ema_longer_than_the_run_is_warned_about(image_data, caplog):
    """0.999 ** 4 steps leaves 99.6 % of the initial weights in the exported EMA: a warning names the share and a
    decay that fits (0.1 ** (1 / 4) = 0.5623); a decay that fits the run gives none."""
    with caplog.at_level(logging.WARNING, logger="genlab.training.trainer"):
        Trainer(tiny_trainer(epochs=1, ema_decay=0.999)).fit(make_vae(image_data), image_data)
    msgs = [r.getMessage() for r in caplog.records if "ema_decay" in r.getMessage()]
    assert len(msgs) == 1 and "100 % of the exported" in msgs[0] and "<= 0.5623" in msgs[0], msgs
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="genlab.training.trainer"):
        Trainer(tiny_trainer(epochs=1, ema_decay=0.5)).fit(make_vae(image_data), image_data)
    assert not [r for r in caplog.records if "ema_decay" in r.getMessage()]


def test_a_run_that_used_its_time_budget_is_finished_and_max_seconds_extends_it(tmp_path):
    """A run ended by trainer.max_seconds is finished for --resume (nothing to do); raising max_seconds on resume
    continues it with the budget seconds already used counted."""
    import genlab
    cfg = {"model": {"arch": "mlp", "hidden": [16], "latent_dim": 2},
           "trainer": tiny_trainer(epochs=10**6, max_seconds=1.0, fid_samples=0, log_every=10**6)}
    first = genlab.train("ae", "digits", config=cfg, out=tmp_path / "run")  # with its final outputs: finished
    meta = json.loads((tmp_path / "run" / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert meta["budget_seconds"] >= 1.0
    again = genlab.train(resume=tmp_path / "run", figures=False)
    assert again.result is None  # already finished: nothing trained
    more = genlab.train(resume=tmp_path / "run", config={"trainer": {"max_seconds": meta["budget_seconds"] + 1.0}},
                        figures=False)
    assert more.result.step > first.result.step
