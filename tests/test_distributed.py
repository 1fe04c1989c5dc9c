"""Distributed training (genlab.training.distributed) with 2 gloo processes on CPU, launched by torchrun.

The training jobs run in worker processes started by ``torchrun --standalone --nproc_per_node 2`` on this very
file (``__main__`` below: it reads a JSON job, runs its tasks in order, and writes what it measured); the tests
compare what the workers wrote. Every launch has a timeout, so a rank left hanging fails the test instead of
blocking it. One thread per process (the CI machine has 2 cores).

Tolerances. The AE (no noise) is compared with a single-process run of the same global batch: the only
difference is the order of floating-point sums (each rank sums its chunk of the batch, then the all-reduce adds
the chunks; one process sums the whole batch at once), about 1e-7 relative per step in float32, which Adam can
amplify where a gradient is near zero (its step is ``m / sqrt(v)``). Observed: 6e-8 on the weights, 2e-7
relative on the losses; the bounds (weights ``2e-5`` absolute, 1/50 of one Adam step at lr 1e-3; losses ``1e-5``
relative) leave a margin of about 100 and still catch a wrong weighting of an uneven last batch. The VAE and
the WGAN-GP draw noise (reparameterisation, latent codes, gradient-penalty mixing) from each rank's own stream,
so they are compared with two replicas in one process fed the same chunks of each global batch with the same
per-rank RNG streams and their gradients averaged by hand: the same tolerances. Replicas stay bit-identical
across ranks (the all-reduce returns the same sums on every rank), and resume is bit for bit.
"""
from __future__ import annotations

import copy
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve()
TIMEOUT = 120  # seconds per torchrun launch; a hang fails the test
W_ATOL, LOSS_RTOL = 2e-5, 1e-5

BASE_TRAINER = {"epochs": 2, "batch_size": 16, "precision": "fp32", "channels_last": False, "log_every": 1,
                "device": "cpu", "num_threads": 1, "fid_samples": 0, "monitor_every": 0, "seed": 0}


def _env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", GENLAB_PROGRESS="0", PYTHONHASHSEED="0", PYTHONFAULTHANDLER="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _torchrun(job: dict, tmp: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    path = tmp / "job.json"
    path.write_text(json.dumps(job))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           str(nproc), str(HERE), str(path)], capture_output=True, text=True, env=_env(),
                          timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _genlab(*args, timeout=TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genlab", *map(str, args)], capture_output=True, text=True,
                          env=_env(), timeout=timeout)


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file
    return load_file(str(path))


def _close(a: dict, b: dict, atol: float = W_ATOL) -> float:
    assert a.keys() == b.keys()
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())
    assert worst <= atol, f"weights differ by {worst:g} > {atol:g}"
    return worst


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    bad = [k for k in a if not torch.equal(a[k], b[k])]
    assert not bad, f"tensors differ: {bad[:5]}"


# ----------------------------------------------------------------------------------------------- worker side
def _data(n_train: int):
    from genlab.testing import tiny_image_data
    d = tiny_image_data()
    return d.subset(torch.arange(n_train)), d.subset(torch.arange(n_train, 64))


def _build(model: str, train, cfg: dict):
    from genlab.testing import build
    from genlab.training import seed_everything
    seed_everything(0)
    return build(model, train, cfg)


def _stop_at(at: int):
    """A callback raising KeyboardInterrupt after step ``at`` on every rank (a kill all ranks see at one step)."""
    from genlab.training import Callback

    class StopAt(Callback):
        def on_step_end(self, trainer, logs):
            if trainer.step == at:
                raise KeyboardInterrupt
    return StopAt()


def _task_fit(t: dict, rank: int, out: Path) -> None:
    from safetensors.torch import save_file

    from genlab.training import Trainer

    train, val = _data(t.get("n_train", 48))
    model = _build(t["model"], train, t.get("model_cfg", {}))
    clock = None
    if t.get("tick"):  # a deterministic clock of its own on each rank: tick * (rank + 1) seconds per reading
        readings = itertools.count()
        clock = lambda: t["tick"] * (rank + 1) * next(readings)  # noqa: E731
    trainer = Trainer({**BASE_TRAINER, **t.get("trainer", {})},
                      out_dir=str(out / t["out"]).format(rank=rank) if t.get("out") else None,
                      callbacks=[_stop_at(t["stop_at"])] if t.get("stop_at") else [], clock=clock)
    resume = str(out / t["resume"]) if t.get("resume") else None
    try:
        res = trainer.fit(model, train, val, resume=resume)
        history = res.history
    except KeyboardInterrupt:
        history = trainer.history
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(out / f"{t['name']}-rank{rank}.safetensors"))
    (out / f"{t['name']}-rank{rank}.json").write_text(json.dumps(history))


def _replica_reference(t: dict, world: int) -> dict:
    """One process, ``world`` replicas of the model: replica r trains on the r-th chunk of each global batch with
    the RNG stream rank r has, and the gradients of each optimizer are averaged by hand (weighted by chunk size)
    before every replica's step. Independent of torch.distributed and of the Trainer's loop."""
    from genlab.training.distributed import Distributed

    cfg = {**BASE_TRAINER, **t.get("trainer", {})}
    train, _ = _data(t.get("n_train", 48))
    model = _build(t["model"], train, t.get("model_cfg", {}))
    reps = [copy.deepcopy(model) for _ in range(world)]
    rngs = [torch.get_rng_state()]  # rank 0 keeps the stream it has after building the model
    for r in range(1, world):
        saved = torch.get_rng_state()
        Distributed(r, world, r, "gloo", torch.device("cpu"), False).reseed(cfg["seed"])
        rngs.append(torch.get_rng_state())
        torch.set_rng_state(saved)
    specs = [m.configure_optimizers() for m in reps]
    gen = torch.Generator().manual_seed(cfg["seed"])
    batches = [b for _ in range(cfg["epochs"])  # one permutation per epoch from the continuing generator
               for b in train.batches(cfg["batch_size"], shuffle=True, generator=gen)]
    for step in range(t["trainer"]["max_steps"]):
        batch = batches[step]
        n = len(batch["x"])
        halves = [{k: v.tensor_split(world)[r] for k, v in batch.items()} for r in range(world)]
        for name in specs[0]:
            if not specs[0][name].due(step):
                continue
            for r, m in enumerate(reps):
                torch.set_rng_state(rngs[r])
                for s in specs[r].values():
                    s.optimizer.zero_grad(set_to_none=True)
                m.train()
                m.training_step(halves[r], step, name)["loss"].backward()
                rngs[r] = torch.get_rng_state()
            params = [[p for g in specs[r][name].optimizer.param_groups for p in g["params"]] for r in range(world)]
            for i in range(len(params[0])):
                if params[0][i].grad is None:
                    continue
                mean = sum(params[r][i].grad.double() * len(halves[r]["x"]) / n for r in range(world))
                for r in range(world):
                    params[r][i].grad.copy_(mean)
            for r in range(world):
                specs[r][name].optimizer.step()
    return {k: v.detach().clone() for k, v in reps[0].state_dict().items()}


def _task_replicas(t: dict, rank: int, out: Path, world: int) -> None:
    from safetensors.torch import save_file
    if rank == 0:
        save_file({k: v.contiguous() for k, v in _replica_reference(t, world).items()},
                  str(out / f"{t['name']}-rank0.safetensors"))


def _sample_quality(model_name: str, n: int, dist=None) -> dict:
    """The sample-quality monitor's figures of an untrained ``model_name`` (10 classes for the conditional one:
    cond_acc is measured against the digits net's 10 classes) on the 1x8x8 digits feature space."""
    from genlab.data import TensorDataset
    from genlab.training.monitors import real_stats, sample_quality
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(60, 1, 8, 8, generator=g), torch.arange(60) % 10
    model = _build(model_name, TensorDataset(x, y, name="tiny10"), {"latent_dim": 3})
    model.eval()
    return sample_quality(model, real_stats(model, x), n, seed=5, dist=dist)


def _task_quality(t: dict, rank: int, out: Path, world: int) -> None:
    from genlab.training.distributed import Distributed
    dist = Distributed(rank, world, rank, "gloo", torch.device("cpu"), False)
    (out / f"{t['name']}-rank{rank}.json").write_text(json.dumps(_sample_quality(t["model"], t["n"], dist)))


def _worker(job_path: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    job = json.loads(Path(job_path).read_text())
    out = Path(job_path).parent
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo")  # the Trainer joins this group (and leaves it to us)
    for t in job["tasks"]:
        if t["kind"] == "fit":
            _task_fit(t, rank, out)
        elif t["kind"] == "replicas":
            _task_replicas(t, rank, out, world)
        elif t["kind"] == "quality":
            _task_quality(t, rank, out, world)
        dist.barrier()
    dist.destroy_process_group()
    from genlab.cli import exit_worker
    exit_worker(0)  # as genlab's own workers end: without the C++ teardown that aborted a finished rank in CI


# ------------------------------------------------------------------------------------------------- the tests
def _single(t: dict, tmp: Path) -> None:
    """Run a fit task in this process without torchrun's environment (the single-process path)."""
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        assert k not in os.environ
    threads = torch.get_num_threads()
    try:
        _task_fit(t, 0, tmp)
    finally:
        torch.set_num_threads(threads)


def test_ae_two_processes_equal_one_process_and_only_rank0_writes(tmp_path):
    # 45 training samples, global batch 16: the last batch of each epoch (13) splits 7 / 6 (weighted averaging)
    fit = {"kind": "fit", "name": "ae2", "model": "ae", "model_cfg": {"latent_dim": 4}, "n_train": 45,
           "trainer": {"epochs": 2}, "out": "run-rank{rank}"}
    _torchrun({"tasks": [fit]}, tmp_path)
    _single({**fit, "name": "ae1", "out": "single"}, tmp_path)
    w0, w1, ref = (_weights(tmp_path / f"{n}.safetensors") for n in ("ae2-rank0", "ae2-rank1", "ae1-rank0"))
    _same(w0, w1)  # the replicas never drift apart
    _close(w0, ref)
    h2 = json.loads((tmp_path / "ae2-rank0.json").read_text())
    h1 = json.loads((tmp_path / "ae1-rank0.json").read_text())
    assert [(r["step"], r["split"]) for r in h2] == [(r["step"], r["split"]) for r in h1]
    for a, b in zip(h2, h1):
        for k in ("loss", "mse"):
            assert a[k] == pytest.approx(b[k], rel=LOSS_RTOL), (a, b)
    # rank 0 wrote the run folder; rank 1 (given its own folder) wrote nothing
    assert not (tmp_path / "run-rank1").exists()
    written = tmp_path / "run-rank0"
    lines = (written / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == h2
    meta = json.loads((written / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert meta["world_size"] == 2 and set(meta["rng_ranks"]) == {"1"}


NOISY = {"vae": {"latent_dim": 3},
         "wgan-gp": {"latent_dim": 4, "n_critic": 2, "arch": "mlp"}}  # two optimizers, every=2, autograd.grad


def test_noisy_models_two_processes_equal_replicas_of_the_global_batch(tmp_path):
    trainer = {"max_steps": 4, "epochs": 2}  # 3 batches per epoch: the 4th step is in the second epoch
    tasks = [{"kind": kind, "name": f"{name}-{model}", "model": model, "model_cfg": cfg, "trainer": trainer}
             for model, cfg in NOISY.items() for kind, name in (("fit", "fit"), ("replicas", "ref"))]
    _torchrun({"tasks": tasks}, tmp_path)  # one launch for both models
    for model, cfg in NOISY.items():
        w0, w1, expect = (_weights(tmp_path / f"{n}-{model}-rank{r}.safetensors")
                          for n, r in (("fit", 0), ("fit", 1), ("ref", 0)))
        _same(w0, w1)
        _close(w0, expect)
        start = _weights_of_fresh(model, cfg)
        assert any(not torch.equal(w0[k], start[k]) for k in w0), f"{model}: nothing was trained"


def test_time_budgeted_schedule_keeps_the_replicas_identical(tmp_path):
    """trainer.max_seconds with lr_schedule=cosine under torchrun: each rank's clock starts at its own moment, so
    the ranks decay by their *mean* share of the budget (agreed at each step with the logs); the replicas keep
    identical weights and learning rates, stop at the same step, and the rate has decayed by the end. Each rank
    reads a clock that ticks at its own rate (rank 1 twice as fast), not wall time: a loaded CI machine once took
    most of a 1.5-s wall budget in the first steps, and the ranks' clocks must disagree for the test to mean
    anything."""
    fit = {"kind": "fit", "name": "budget", "model": "ae", "model_cfg": {"latent_dim": 4}, "tick": 0.02,
           "trainer": {"epochs": 10**6, "max_seconds": 1.5, "lr_schedule": "cosine", "log_every": 1}}
    _torchrun({"tasks": [fit]}, tmp_path)
    _same(_weights(tmp_path / "budget-rank0.safetensors"), _weights(tmp_path / "budget-rank1.safetensors"))
    h0, h1 = (json.loads((tmp_path / f"budget-rank{r}.json").read_text()) for r in (0, 1))
    lr0, lr1 = ([rec["lr/main"] for rec in h if rec["split"] == "train"] for h in (h0, h1))
    assert lr0 == lr1 and len(lr0) > 10, len(lr0)
    assert lr0[-1] < 0.2 * lr0[0]  # decayed over the budget (the steps alone would leave it at the start)


def _weights_of_fresh(model, cfg) -> dict:
    train, _ = _data(48)
    return {k: v.detach().clone() for k, v in _build(model, train, cfg).state_dict().items()}


def test_interrupted_two_process_run_resumes_bit_for_bit(tmp_path):
    cfg = {"latent_dim": 4, "n_critic": 2, "arch": "mlp"}
    common = {"kind": "fit", "model": "wgan-gp", "model_cfg": cfg, "trainer": {"epochs": 3, "checkpoint_every": 2}}
    tasks = [{**common, "name": "full", "out": "full-rank{rank}"},
             {**common, "name": "part", "out": "part-rank{rank}", "stop_at": 4},  # mid-epoch 2 (3 batches/epoch)
             {**common, "name": "resumed", "out": "part-rank{rank}", "resume": "part-rank0"}]
    _torchrun({"tasks": tasks}, tmp_path)
    for r in (0, 1):
        _same(_weights(tmp_path / f"full-rank{r}.safetensors"), _weights(tmp_path / f"resumed-rank{r}.safetensors"))
    assert not _identical(tmp_path, "part", "full")  # the interrupted run really stopped early
    la = (tmp_path / "full-rank0" / "metrics.jsonl").read_text()
    lb = (tmp_path / "part-rank0" / "metrics.jsonl").read_text()
    assert la == lb


def _identical(tmp, a, b) -> bool:
    wa, wb = _weights(tmp / f"{a}-rank0.safetensors"), _weights(tmp / f"{b}-rank0.safetensors")
    return all(torch.equal(wa[k], wb[k]) for k in wa)


def _tiny_npz(tmp: Path) -> Path:
    import numpy as np

    from genlab.testing import tiny_image_data
    d = tiny_image_data()
    path = tmp / "tiny.npz"
    np.savez(path, x=d.x.numpy(), y=d.y.numpy())
    return path


CLI_FAST = ["trainer.fid_samples=0", "trainer.monitor_every=0", "trainer.precision=fp32",
            "trainer.channels_last=false", "trainer.device=cpu", "--no-test", "--no-progress"]


def test_cli_nproc_launches_torchrun(tmp_path):
    data = _tiny_npz(tmp_path)
    run = tmp_path / "run"
    p = _genlab("train", "ae", "--data", data, "--nproc", "2", "trainer.epochs=1", "trainer.batch_size=16",
                *CLI_FAST, "--out", run)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("run folder:") == 1  # rank 0 reports, rank 1 is silent
    state = json.loads((run / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert state["world_size"] == 2
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(recs) == len({(r["step"], r["split"]) for r in recs})  # one writer: no duplicated records
    # a checkpoint resumes only with the world size that wrote it: 2 -> 1 refused
    import genlab
    from genlab.errors import CheckpointError
    with pytest.raises(CheckpointError, match=r"written by a run of 2 process\(es\) but this run has 1; resume it "
                                              r"with 2 processes \(genlab train --nproc 2"):
        genlab.train(resume=run, config={"trainer": {"epochs": 2}}, progress=False)


def test_resume_with_another_world_size_exits_2_on_every_rank(tmp_path):
    # a single-process checkpoint under 2 processes: refused on both ranks after the process group is up
    import genlab
    data = _tiny_npz(tmp_path)
    single = tmp_path / "single"
    genlab.train("ae", str(data), out=single, progress=False,
                 config={"trainer": {**BASE_TRAINER, "epochs": 1}, "test": {"enabled": False}})
    p = _genlab("train", "--resume", single, "trainer.epochs=2", "--no-progress", "--nproc", "2")
    assert p.returncode == 2, p.stderr[-2000:]
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("genlab: error:"), p.stderr[-2000:]  # rank 0 speaks for both
    assert "written by a run of 1 process(es) but this run has 2; resume it with one process" in lines[0]


def test_bad_batch_is_one_line_and_exit_2(tmp_path):
    data = _tiny_npz(tmp_path)
    p = _genlab("train", "ae", "--data", data, "--nproc", "2", "trainer.epochs=1", "trainer.batch_size=15",
                *CLI_FAST, "--out", tmp_path / "run")
    assert p.returncode == 2, p.stderr[-2000:]
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("genlab: error:"), p.stderr[-2000:]  # rank 1 exits silently
    assert "trainer.batch_size=15 is the global batch and must be divisible by the 2 processes" in lines[0]
    assert not (tmp_path / "run").exists()


def test_empty_shard_nccl_on_cpu_and_sync_batchnorm_on_cpu_refused_before_anything_runs():
    from genlab.errors import ConfigError, DataError
    from genlab.training.distributed import check_run
    from genlab.training.config import TrainerConfig

    os.environ.update(RANK="0", WORLD_SIZE="2", LOCAL_RANK="0")
    try:
        cfg = TrainerConfig(**{**BASE_TRAINER, "batch_size": 16})
        with pytest.raises(DataError, match="last batch of each epoch holds 1 sample"):
            check_run(cfg, torch.device("cpu"), 33)
        check_run(TrainerConfig(**{**BASE_TRAINER, "drop_last": True}), torch.device("cpu"), 33)
        with pytest.raises(ConfigError, match="trainer.ddp_backend=nccl needs CUDA devices, but this run trains "
                                              "on cpu; use trainer.ddp_backend=gloo"):
            check_run(TrainerConfig(**{**BASE_TRAINER, "ddp_backend": "nccl"}), torch.device("cpu"), 48)
        with pytest.raises(ConfigError, match="trainer.sync_batchnorm=true needs CUDA"):
            check_run(TrainerConfig(**{**BASE_TRAINER, "sync_batchnorm": True}), torch.device("cpu"), 48)
    finally:
        for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
            os.environ.pop(k)


if __name__ == "__main__":
    _worker(sys.argv[1])


def test_sample_quality_monitor_splits_the_samples_across_ranks(tmp_path):
    """val/fid, the class figures and cond_acc: each rank generates its share of the 500-sample chunks (1,100
    samples: rank 0 draws chunks 0 and 2, rank 1 chunk 1), the statistics are gathered and merged; every rank gets
    the single-process numbers (FID to 1e-7 relative: the merge's float64 rounding and float32 features whose
    GEMM kernels may block differently in another process: 4e-9 measured on an Intel Xeon; counts exactly)."""
    tasks = [{"kind": "quality", "name": f"q-{m}", "model": m, "n": 1100} for m in ("vae", "cvae")]
    _torchrun({"tasks": tasks}, tmp_path)
    for m in ("vae", "cvae"):
        r0, r1 = (json.loads((tmp_path / f"q-{m}-rank{r}.json").read_text()) for r in (0, 1))
        assert r0 == r1
        one = _sample_quality(m, 1100)
        assert set(one) == set(r0) and ("cond_acc" in one) == (m == "cvae")
        assert r0["fid"] == pytest.approx(one["fid"], rel=1e-7)
        for k in set(one) - {"fid"}:
            assert r0[k] == pytest.approx(one[k], rel=1e-12), k


def test_a_follower_rank_leaves_the_run_folder_to_rank0(tmp_path, monkeypatch):
    """A rank > 0 does not check ``--out``: rank 0 may already have made it (under load a follower used to find
    rank 0's folder, refuse it silently as replicated bad input and stop the launch with exit 2 and no message).
    Here rank 0's folder exists and no rank 0 listens: the follower gets past the folder and fails only where it
    waits for rank 0."""
    import socket

    import genlab
    from genlab.errors import GenlabError
    from genlab.testing import tiny_image_data
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")  # what rank 0 writes first
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    for k, v in dict(WORLD_SIZE="2", RANK="1", LOCAL_RANK="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)).items():
        monkeypatch.setenv(k, v)
    with pytest.raises(Exception) as err:
        genlab.train("ae", tiny_image_data(), out=run, progress=False,
                     config={"trainer": {"epochs": 1, "ddp_timeout": 2, "fid_samples": 0, "monitor_every": 0}})
    assert not isinstance(err.value, GenlabError), err.value  # not "run exists": a connection timeout to rank 0
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]  # and it wrote nothing


def test_exit_worker_flushes_runs_atexit_and_keeps_the_exit_status(tmp_path):
    """A torchrun worker ends through genlab.cli.exit_worker: its buffered output, logging handlers and atexit
    functions are flushed and run, and the exit status is the command's; outside torchrun it does nothing."""
    mark = tmp_path / "atexit.txt"
    code = ("import atexit, logging, pathlib, sys\n"
            "from genlab.cli import exit_worker\n"
            f"atexit.register(lambda: pathlib.Path({str(mark)!r}).write_text('ran'))\n"
            f"logging.basicConfig(filename={str(tmp_path / 'log.txt')!r}, level=logging.INFO)\n"
            "logging.getLogger('w').info('logged')\n"
            "sys.stdout.write('buffered, no newline')\n"
            "exit_worker(3)\n"
            "sys.exit(5)\n")
    env = {**_env(), "WORLD_SIZE": "2", "RANK": "1"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 3 and p.stdout == "buffered, no newline"
    assert mark.read_text() == "ran" and "logged" in (tmp_path / "log.txt").read_text()
    mark.unlink()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert p.returncode == 5 and mark.read_text() == "ran"  # a single process: the ordinary exit


def test_worker_errors_reach_the_launcher_through_files(tmp_path, monkeypatch):
    """Under ``genlab train --nproc`` a worker does not print its one-line error (torchrun may stop it first when
    another rank fails): it leaves it in the launcher's folder, and the launcher prints the first failing rank's."""
    from genlab import cli

    monkeypatch.setenv(cli.WORKER_ERRORS_ENV, str(tmp_path))
    monkeypatch.setenv("RANK", "1")
    assert cli._hand_error_to_launcher("the batch is wrong")
    assert (tmp_path / "rank1.txt").read_text() == "the batch is wrong\n" and not list(tmp_path.glob(".*.tmp"))
    assert cli._worker_error(str(tmp_path), 0) == "the batch is wrong"  # rank 0 left none: another rank's line
    monkeypatch.setenv("RANK", "0")
    assert cli._hand_error_to_launcher("rank zero's line")
    assert cli._worker_error(str(tmp_path), 0) == "rank zero's line"
    assert cli._worker_error(str(tmp_path), 1) == "the batch is wrong"
    monkeypatch.delenv(cli.WORKER_ERRORS_ENV)
    assert not cli._hand_error_to_launcher("printed by the process itself")  # plain torchrun: unchanged
    assert cli._worker_error(str(tmp_path / "none"), 0) is None
