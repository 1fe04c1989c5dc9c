"""The reliability issue's catalogue of bad inputs, replayed against the CLI (subprocesses) and the API.

Every refused CLI case must: exit 2; print exactly one non-empty stderr line starting with ``genlab: error:``;
print no traceback; leave the output folder absent (or, when it pre-existed, exactly as it was); and touch no
other file. Each case runs in its own sandbox: cwd, ``HOME`` and ``GENLAB_CACHE`` point into ``tmp_path``,
and the whole sandbox tree (names, sizes, mtimes) is compared before and after, except the outputs a case
expects. ``MPLCONFIGDIR`` points outside the sandbox (matplotlib's font cache is not genlab's doing).

Where the wanted behaviour is a choice (apply or refuse an override, train or refuse a tiny data set), both
documented outcomes pass; the silent wrong one never does. One tiny trained run (module fixture) is copied
into each case that needs a run folder.
"""
from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

# A tiny VAE on 200 digits, one epoch: ~10 s on the 2-core box; every training case uses these.
QUICK = ["trainer.epochs=1", "trainer.batch_size=64", "data.limit=200", "trainer.precision=fp32",
         "trainer.channels_last=false", "model.hidden=[16]", "model.latent_dim=2"]
GB = 1 << 30
LOCK = ".genlab.lock"


# --------------------------------------------------------------------------- sandbox and helpers
def _limits(mem_gb: float | None):
    def pre():
        os.umask(0o022)
        if mem_gb:
            lim = int(mem_gb * GB)
            resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    return pre


class Sandbox:
    """A folder that is cwd, HOME and GENLAB_CACHE of the CLI; its file tree can be snapshotted."""

    def __init__(self, root: Path, base_run: Path | None, mpl_dir: Path):
        self.root = root
        self.base_run = base_run
        (root / "home").mkdir(exist_ok=True)
        self.env = dict(os.environ, HOME=str(root / "home"), GENLAB_CACHE=str(root / "cache"),
                        GENLAB_DATA=str(root / "data"), MPLCONFIGDIR=str(mpl_dir), PYTHONUNBUFFERED="1",
                        OMP_NUM_THREADS="1")  # tiny nets; two threads only spin against other jobs on 2 cores
        self.env.pop("GENLAB_INCEPTION", None)

    def __truediv__(self, name) -> Path:
        return self.root / name

    def copy_run(self, name: str = "run", src: Path | None = None) -> Path:
        dst = self.root / name
        shutil.copytree(src or self.base_run, dst, symlinks=True)
        return dst

    def argv(self, *args) -> list[str]:
        return [sys.executable, "-m", "genlab.cli", *map(str, args)]

    def cli(self, *args, timeout: float = 120, mem_gb: float | None = 4) -> subprocess.CompletedProcess:
        """Run genlab; a run past ``timeout`` is killed and comes back with ``timed_out`` set."""
        t0 = time.monotonic()
        try:
            r = subprocess.run(self.argv(*args), capture_output=True, text=True, cwd=self.root, env=self.env,
                               timeout=timeout, preexec_fn=_limits(mem_gb))
            r.timed_out = False
        except subprocess.TimeoutExpired as e:
            r = subprocess.CompletedProcess(e.cmd, None, _tail(e.stdout, 10**6), _tail(e.stderr, 10**6))
            r.timed_out = True
        r.seconds, r.timeout = time.monotonic() - t0, timeout
        return r

    def popen(self, *args, mem_gb: float | None = 4) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=self.root, env=self.env, preexec_fn=_limits(mem_gb))

    def snapshot(self) -> dict:
        return snapshot(self.root)


def _tail(s, n=600) -> str:
    if isinstance(s, bytes):
        s = s.decode(errors="replace")
    return (s or "")[-n:]


def snapshot(root: Path) -> dict:
    """relative path -> (kind, size, mtime_ns) for every entry under ``root`` (folders by name only)."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if p.is_symlink():
                snap[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                snap[rel] = ("dir",)
            else:
                snap[rel] = ("file", st.st_size, None if name == LOCK else st.st_mtime_ns)
    return snap  # the lock file is opened by every lock attempt: only its presence and size count


def tree_changes(before: dict, after: dict, allowed=()) -> list[str]:
    allowed = [str(a) for a in allowed]

    def ok(rel):
        return any(rel == a or rel.startswith(a + os.sep) for a in allowed)

    out = []
    for rel in sorted(set(before) | set(after)):
        if ok(rel) or before.get(rel) == after.get(rel):
            continue
        out.append(f"{'added' if rel not in before else 'removed' if rel not in after else 'changed'} {rel}")
    return out


def problems_of_refusal(r, sb: Sandbox, before: dict, *, out: Path | None = None, allowed=(), need=(),
                        forbid=(), after: dict | None = None) -> list[str]:
    """What is wrong with ``r`` as a one-line refusal that wrote nothing (empty list: a clean refusal)."""
    probs = []
    if getattr(r, "timed_out", False):
        probs.append(f"still running after {r.timeout} s (killed)")
    if "Traceback" in r.stdout or "Traceback" in r.stderr:
        probs.append(f"traceback printed: {_tail(r.stderr, 400)!r}")
    if r.returncode != 2:
        probs.append(f"exit code {r.returncode}, wanted 2")
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    if len(lines) != 1 or not lines[0].startswith("genlab: error:"):
        probs.append(f"stderr is not one 'genlab: error:' line ({len(lines)} lines): {_tail(r.stderr, 400)!r}")
    msg = (lines[0] if lines else "").lower()
    for n in need:
        if not re.search(n, msg):
            probs.append(f"message lacks /{n}/: {msg!r}")
    for f in forbid:
        if re.search(f, msg):
            probs.append(f"message contains /{f}/: {msg!r}")
    if out is not None and str(out.relative_to(sb.root)) not in before and out.exists():
        probs.append(f"output folder {out.name} exists afterwards: {sorted(p.name for p in out.iterdir())}"
                     if out.is_dir() else f"output {out.name} exists afterwards")
    changes = tree_changes(before, sb.snapshot() if after is None else after, allowed)
    if changes:
        probs.append(f"files touched: {changes[:8]}")
    return probs


def assert_refused(r, sb: Sandbox, before: dict, **kw) -> str:
    probs = problems_of_refusal(r, sb, before, **kw)
    assert not probs, "; ".join(probs) + f" | stdout tail: {_tail(r.stdout, 300)!r}"
    return r.stderr.strip()


def _no_nan(token):
    raise ValueError(f"bare {token} in JSON")


def strict_json(text: str):
    return json.loads(text, parse_constant=_no_nan)


def strict_json_problems(folder: Path) -> list[str]:
    """Every JSON / JSON-lines file genlab wrote under ``folder`` must parse without NaN/Infinity."""
    probs = []
    for f in sorted(folder.rglob("*.json")) + sorted(folder.rglob("*.jsonl")):
        if f.name == LOCK:
            continue
        lines = f.read_text().splitlines() if f.suffix == ".jsonl" else [f.read_text()]
        for i, line in enumerate(lines):
            try:
                strict_json(line)
            except ValueError as e:
                probs.append(f"{f.relative_to(folder)}:{i + 1}: {e}")
    return probs


def assert_trained(r, out: Path):
    assert not r.timed_out, f"still running after {r.timeout} s (killed): {_tail(r.stderr)}"
    assert "Traceback" not in r.stderr and r.returncode == 0, f"exit {r.returncode}: {_tail(r.stderr)}"
    assert (out / "report.html").is_file(), sorted(p.name for p in out.iterdir())


def metric_records(run: Path) -> list[dict]:
    return [strict_json(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip()]


def record_order_problems(recs: list[dict]) -> list[str]:
    """Per split, steps strictly increase and no (split, step, epoch) repeats."""
    probs, last, seen = [], {}, set()
    for i, r in enumerate(recs):
        key = (r.get("split"), r.get("step"), r.get("epoch"))
        if key in seen:
            probs.append(f"line {i + 1}: duplicate {key}")
        seen.add(key)
        prev = last.get(key[0])
        if prev is not None and key[1] is not None and key[1] <= prev:
            probs.append(f"line {i + 1}: {key[0]} step {key[1]} after step {prev}")
        last[key[0]] = key[1]
    return probs


def edit_json(path: Path, fn) -> None:
    rec = json.loads(path.read_text())
    fn(rec)
    path.write_text(json.dumps(rec))


def save_npz(path: Path, **arrays) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def images(n, seed=0):
    return np.random.default_rng(seed).random((n, 1, 8, 8), dtype=np.float32)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def mpl_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("mplconfig")


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, mpl_dir):
    """One real tiny training run (umask 022), copied by the cases that need a run folder."""
    sb = Sandbox(tmp_path_factory.mktemp("catalogue-base"), None, mpl_dir)
    r = sb.cli("train", "vae", "--data", "digits", *QUICK, "--out", "run", timeout=300)
    assert r.returncode == 0, f"the base tiny run failed: {_tail(r.stderr)}"
    return sb / "run"


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, mpl_dir):
    """``genlab train`` with 25 epochs, SIGINT once ``checkpoints/last`` exists: (sandbox, run, rc, stderr)."""
    sb = Sandbox(tmp_path_factory.mktemp("catalogue-interrupt"), None, mpl_dir)
    run = sb / "irun"
    args = ["train", "vae", "--data", "digits", *QUICK, "trainer.epochs=25", "--out", "irun"]
    p = sb.popen(*args)
    t0 = time.monotonic()
    while not (run / "checkpoints" / "last").exists() and p.poll() is None and time.monotonic() - t0 < 120:
        time.sleep(0.05)
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    return sb, run, p.returncode, err


@pytest.fixture
def sb(tmp_path, base_run, mpl_dir):
    return Sandbox(tmp_path, base_run, mpl_dir)


# --------------------------------------------------------------------------- CLI cases that must be refused
CASES: dict[str, tuple] = {}


def case(cid, **opts):
    """Register a refused-CLI case: ``fn(sb) -> (argv, out)``; opts: need/forbid regexes (in the lower-cased
    message), timeout, mem_gb, allowed (paths that may change), cleanup (globs removed afterwards), slow (may
    run to its timeout: started first)."""
    def deco(fn):
        CASES[cid] = (fn, opts)
        return fn
    return deco


def train_args(*extra, data="digits", out="out"):
    return ["train", "vae", "--data", data, *QUICK, *extra, "--out", out]


# Tracebacks and silent nonsense
@case("binary-file-as-config")
def _(sb):
    (sb / "run.yaml").write_bytes(bytes(range(256)) * 16 + b"\x00\xff\xfe")
    return train_args("--config", "run.yaml"), sb / "out"


@case("empty-npz-zero-samples")
def _(sb):
    save_npz(sb / "empty.npz", x=np.zeros((0, 1, 8, 8), np.float32))
    return train_args(data="empty.npz"), sb / "out"


@case("empty-npz-no-arrays")
def _(sb):
    save_npz(sb / "empty.npz")
    return train_args(data="empty.npz"), sb / "out"


@case("out-is-a-file", need=[r"file"])
def _(sb):
    (sb / "out").write_text("not a folder\n")
    return train_args(), sb / "out"


def _model_cfg(sb, fn):
    run = sb.copy_run()
    edit_json(run / "model" / "config.json", fn)
    return run


@case("model-shape-1x100000x100000-info", timeout=60, mem_gb=4)
def _(sb):
    _model_cfg(sb, lambda r: r["data"].__setitem__("shape", [1, 100000, 100000]))
    return ["info", "run"], None


@case("model-shape-1x100000x100000-sample", timeout=60, mem_gb=4)
def _(sb):
    _model_cfg(sb, lambda r: r["data"].__setitem__("shape", [1, 100000, 100000]))
    return ["sample", "run", "-n", "4", "-o", "s.png"], sb / "s.png"


@case("model-shape-abc-sample")
def _(sb):
    _model_cfg(sb, lambda r: r["data"].__setitem__("shape", "abc"))
    return ["sample", "run", "-n", "4", "-o", "s.png"], sb / "s.png"


@case("model-no-data-key-info")
def _(sb):
    _model_cfg(sb, lambda r: r.pop("data"))
    return ["info", "run"], None


@case("model-norm-shift-x-sample-npz")
def _(sb):
    _model_cfg(sb, lambda r: r["data"]["norm"].__setitem__("shift", "x"))
    return ["sample", "run", "-n", "4", "-o", "s.npz"], sb / "s.npz"


@case("model-config-nested-200k-deep-info", timeout=60)
def _(sb):
    run = sb.copy_run()
    rec = json.loads((run / "model" / "config.json").read_text())
    rec["config"]["hidden"] = "@DEEP@"
    text = json.dumps(rec).replace('"@DEEP@"', "[" * 200_000 + "]" * 200_000)
    (run / "model" / "config.json").write_text(text)
    return ["info", "run"], None


@case("model-num-classes-minus-3-info")
def _(sb):
    def neg(r):
        r["data"]["num_classes"] = -3
        if "num_classes" in r["config"]:
            r["config"]["num_classes"] = -3
    _model_cfg(sb, neg)
    return ["info", "run"], None


@case("resume-truncated-config-json")
def _(sb):
    run = sb.copy_run()
    text = (run / "config.json").read_bytes()
    (run / "config.json").write_bytes(text[:len(text) // 2])
    return ["train", "--resume", "run"], None


@case("resume-empty-object-config-json")
def _(sb):
    run = sb.copy_run()
    (run / "config.json").write_text("{}")
    return ["train", "--resume", "run"], None


@case("resume-empty-object-trainer-state")
def _(sb):
    run = sb.copy_run()
    (run / "checkpoints" / "last" / "trainer_state.json").write_text("{}")
    return ["train", "--resume", "run"], None


@case("device-mps-on-linux", need=[r"mps"])
def _(sb):
    return train_args("trainer.device=mps"), sb / "out"


def _weights(sb, fn):
    import torch
    from safetensors.torch import load_file, save_file
    run = sb.copy_run()
    f = run / "model" / "model.safetensors"
    tensors = load_file(str(f))
    save_file({k: fn(v) if v.is_floating_point() else v for k, v in tensors.items()}, str(f))
    return torch


@case("nan-weights-reconstruct")
def _(sb):
    _weights(sb, lambda t: t.clone().fill_(float("nan")) if t.ndim == 2 else t)
    return ["reconstruct", "run", "-n", "4", "-o", "r.png"], sb / "r.png"


@case("int8-cast-weights-reconstruct")
def _(sb):
    import torch
    _weights(sb, lambda t: t.to(torch.int8))
    return ["reconstruct", "run", "-n", "4", "-o", "r.png"], sb / "r.png"


@case("data-name-conflicts-with-data-flag", need=[r"mnist5k", r"digits"])
def _(sb):
    return train_args("data.name=mnist5k"), sb / "out"


@case("corrupt-npz", forbid=[r"unsafe", r"allow_pickle"])
def _(sb):
    (sb / "bad.npz").write_bytes(b"this is not a zip archive" * 10)
    return train_args(data="bad.npz"), sb / "out"


@case("config-is-a-directory", need=[r"director|folder"], forbid=[r"missing", r"does not exist", r"no such"])
def _(sb):
    (sb / "somedir").mkdir()
    return train_args("--config", "somedir"), sb / "out"


@case("data-npz-is-a-directory", need=[r"director|folder"], forbid=[r"missing", r"does not exist", r"no such"])
def _(sb):
    (sb / "somedir.npz").mkdir()
    return train_args(data="somedir.npz"), sb / "out"


# Fail before writing
@case("device-cuda-without-gpu", need=[r"cuda"])
def _(sb):
    return train_args("trainer.device=cuda"), sb / "out"


@case("device-foo", need=[r"foo"])
def _(sb):
    return train_args("trainer.device=foo"), sb / "out"


@case("precision-fp16-on-cpu", need=[r"fp16"])
def _(sb):
    return train_args("trainer.precision=fp16"), sb / "out"


@case("nan-in-npz-data", need=[r"nan"])
def _(sb):
    x = images(40)
    x[5, 0, 3, 3] = np.nan
    save_npz(sb / "nan.npz", x=x)
    return train_args(data="nan.npz"), sb / "out"


@case("monitor-val-nokey", need=[r"nokey"])
def _(sb):
    return train_args("trainer.monitor=val/nokey"), sb / "out"


# --overwrite safety
@case("overwrite-foreign-folder")
def _(sb):
    out = sb / "out"
    out.mkdir()
    (out / "config.json").write_text('{"mine": true, "note": "not a genlab run"}\n')
    (out / "important_notes.txt").write_text("do not delete\n")
    return ["train", "ae", "--data", "digits", *QUICK, "--out", "out", "--overwrite"], out


# Resource bounds
@case("cvae-label-1e12", timeout=60, mem_gb=4)
def _(sb):
    y = np.arange(40) % 4
    y[7] = 10 ** 12
    save_npz(sb / "labels.npz", x=images(40), y=y.astype(np.int64))
    return ["train", "cvae", "--data", "labels.npz", *QUICK, "--out", "out"], sb / "out"


@case("sample-1e8-png", timeout=45, mem_gb=3, slow=True, cleanup=["*big.png*"])
def _(sb):
    sb.copy_run()
    return ["sample", "run", "-n", "100000000", "-o", "big.png"], sb / "big.png"


@case("sample-1e8-npz", timeout=45, mem_gb=3, slow=True, cleanup=["*big.npz*"])
def _(sb):
    sb.copy_run()  # 1e8 x 64 floats, twice (x and raw): ~51 GB, so refused
    return ["sample", "run", "-n", "100000000", "-o", "big.npz"], sb / "big.npz"


BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@case("yaml-billion-laughs-config", timeout=60, mem_gb=4)
def _(sb):
    (sb / "bomb.yaml").write_text(BILLION_LAUGHS)
    return train_args("--config", "bomb.yaml"), sb / "out"


@pytest.fixture(scope="module")
def refused_runs(tmp_path_factory, base_run, mpl_dir):
    """Every CASES entry: set up in its own sandbox, then run two at a time (the cases are independent and
    mostly interpreter start-up); cid -> dict(sb, out, opts, before, r, after, error)."""
    from concurrent.futures import ThreadPoolExecutor

    root = tmp_path_factory.mktemp("refused")
    jobs = {}
    for cid, (fn, opts) in CASES.items():
        (root / cid).mkdir()
        sb = Sandbox(root / cid, base_run, mpl_dir)
        job = jobs[cid] = dict(sb=sb, opts=opts, error=None)
        try:
            job["argv"], job["out"] = fn(sb)
            job["before"] = sb.snapshot()
        except Exception as e:  # reported by the case's own test
            job["error"] = e

    def go(job):
        sb, opts = job["sb"], job["opts"]
        job["r"] = sb.cli(*job["argv"], timeout=opts.get("timeout", 120), mem_gb=opts.get("mem_gb", 4))
        job["after"] = sb.snapshot()
        for pattern in opts.get("cleanup", ()):  # partial outputs of a streamed write can be large
            for f in sb.root.glob(pattern):
                f.unlink()

    with ThreadPoolExecutor(max_workers=2) as ex:
        # cases that may run to their timeout go first, so the other worker is not left idle at the end
        todo = sorted((j for j in jobs.values() if j["error"] is None), key=lambda j: not j["opts"].get("slow"))
        list(ex.map(go, todo))
    return jobs


@pytest.mark.parametrize("cid", list(CASES))
def test_cli_refuses_in_one_line(cid, refused_runs):
    job = refused_runs[cid]
    if job["error"] is not None:
        raise job["error"]
    opts = job["opts"]
    print(f"{cid}: exit {job['r'].returncode} in {job['r'].seconds:.1f} s: {job['r'].stderr.strip()[-300:]}")
    assert_refused(job["r"], job["sb"], job["before"], out=job["out"], allowed=opts.get("allowed", ()),
                   need=opts.get("need", ()), forbid=opts.get("forbid", ()), after=job["after"])


# --------------------------------------------------------------------------- CLI cases with two right outcomes
@pytest.mark.parametrize("n", [1, 3], ids=["one-sample-npz", "three-image-npz"])
def test_tiny_data_set_trains_or_refuses(n, sb):
    save_npz(sb / "tiny.npz", x=images(n))
    before = sb.snapshot()
    r = sb.cli(*train_args(data="tiny.npz"))
    print(f"exit {r.returncode}: {r.stderr.strip()[-300:]}")
    if r.returncode == 0:
        assert_trained(r, sb / "out")
        assert tree_changes(before, sb.snapshot(), allowed=["out"]) == []
        assert strict_json_problems(sb / "out") == []
    else:
        assert "ZeroDivisionError" not in r.stderr
        assert_refused(r, sb, before, out=sb / "out")


def test_resume_with_epochs_override_applies_or_refuses(sb):
    run = sb.copy_run()
    old = (run / "metrics.jsonl").read_text()
    before = sb.snapshot()
    r = sb.cli("train", "--resume", "run", "trainer.epochs=2")
    print(f"exit {r.returncode}: {r.stderr.strip()[-300:]}")
    if r.returncode == 2:  # a refusal must be about the override, not read it as a model name
        assert_refused(r, sb, before, need=[r"epochs"], forbid=[r"model name"])
        return
    assert r.returncode == 0 and "Traceback" not in r.stderr, _tail(r.stderr)
    final = strict_json((run / "final_metrics.json").read_text())
    assert final["epochs"] == 2, f"override trainer.epochs=2 ignored: the run still ends at epoch {final['epochs']}"
    new = (run / "metrics.jsonl").read_text()
    assert new.startswith(old) and len(new) > len(old), "old metrics.jsonl lines are not a prefix of the new file"
    assert record_order_problems(metric_records(run)) == []


def test_resume_a_with_out_b_never_resumes_b(sb):
    a = sb.copy_run("a")
    b = sb.copy_run("b")
    (b / "checkpoints" / "last" / "trainer_state.json").write_text("{}")  # resuming B would fail loudly
    before = sb.snapshot()
    r = sb.cli("train", "--resume", "a", "--out", "b")
    print(f"exit {r.returncode}: {r.stderr.strip()[-300:]}")
    if r.returncode == 2:
        assert_refused(r, sb, before)
    else:
        assert r.returncode == 0 and "Traceback" not in r.stderr, _tail(r.stderr)
        assert tree_changes(before, sb.snapshot(), allowed=["a"]) == [], "--out B was touched"
        assert a.is_dir()


def test_resume_finished_run_is_a_noop_with_a_message(sb):
    run = sb.copy_run()
    old = (run / "metrics.jsonl").read_bytes()
    r = sb.cli("train", "--resume", "run")
    assert r.returncode == 0 and "Traceback" not in r.stderr, _tail(r.stderr)
    assert (run / "metrics.jsonl").read_bytes() == old
    assert re.search(r"finished|nothing to do", (r.stdout + r.stderr).lower()), "no message says it was a no-op"


def test_stale_lock_with_dead_pid_does_not_block(sb):
    run = sb.copy_run()
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()  # its pid is dead now
    (run / LOCK).write_text(json.dumps({"pid": p.pid, "host": os.uname().nodename, "since": "2000-01-01T00:00:00"}))
    r = sb.cli("train", "--resume", "run")
    assert r.returncode == 0 and "Traceback" not in r.stderr, _tail(r.stderr)


def test_ctrl_c_hint_names_the_real_run_folder(interrupted):
    sb, run, rc, err = interrupted
    assert rc == 130, f"exit {rc}: {_tail(err)}"
    assert "Traceback" not in err, _tail(err)
    assert (run / "checkpoints" / "last").exists()
    m = re.findall(r"--resume\s+(\S+)", err)
    assert m, f"no --resume hint: {_tail(err, 300)!r}"
    named = Path(m[-1].strip("'\"`"))
    named = named if named.is_absolute() else sb.root / named
    assert named.resolve() == run.resolve(), f"hint names {m[-1]!r}, not the run folder {run}"


def test_two_concurrent_resumes_one_proceeds(interrupted, tmp_path, mpl_dir):
    isb, irun, rc, _ = interrupted
    assert rc == 130 and (irun / "checkpoints" / "last").exists(), "needs the interrupted run"
    sb = Sandbox(tmp_path, None, mpl_dir)
    run = sb.copy_run("run", src=irun)
    p1, p2 = sb.popen("train", "--resume", "run"), sb.popen("train", "--resume", "run")
    res = []
    for p in (p1, p2):
        try:
            out, err = p.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        res.append((p, p.returncode, out, err))
    codes = sorted(c for _, c, _, _ in res)
    assert codes == [0, 2], f"exit codes {codes}; stderr tails: {[_tail(e, 300) for *_, e in res]}"
    (winner, *_), (loser, _, lout, lerr) = sorted(res, key=lambda t: t[1])
    lines = [ln for ln in lerr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("genlab: error:") and "Traceback" not in lerr, lerr
    assert str(winner.pid) in lines[0], f"refusal does not name the holder pid {winner.pid}: {lines[0]}"
    assert record_order_problems(metric_records(run)) == []
    assert strict_json((run / "final_metrics.json").read_text())["epochs"] == 25


def test_fail_before_writing_then_retry_succeeds(sb):
    before = sb.snapshot()
    r = sb.cli(*train_args("trainer.monitor=val/nokey"))
    assert_refused(r, sb, before, out=sb / "out")
    r = sb.cli(*train_args("trainer.monitor=val/loss"))
    assert_trained(r, sb / "out")


def test_json_files_hold_null_never_bare_nan(base_run):
    assert strict_json_problems(base_run) == []


def test_run_files_follow_umask_022(base_run):
    wrong = []
    for p in [base_run, *base_run.rglob("*")]:
        if p.is_symlink():
            continue
        mode = p.stat().st_mode & 0o777
        want = 0o755 if p.is_dir() else 0o644
        if mode != want:
            wrong.append(f"{p.relative_to(base_run.parent)} {oct(mode)}")
    assert not wrong, f"modes not following umask 022 (want 0644 files / 0755 folders): {wrong}"


def test_overwrite_genlab_run_keeps_foreign_files(sb):
    run = sb.copy_run("out")
    (run / "my_notes.txt").write_text("mine\n")
    r = sb.cli(*train_args("--overwrite"))
    assert_trained(r, run)
    assert (run / "my_notes.txt").read_text() == "mine\n"


# --------------------------------------------------------------------------- API cases
def _one_line(e: BaseException) -> str:
    msg = str(e)
    assert msg and "\n" not in msg.strip(), f"message is not one line: {msg!r}"
    return msg


@pytest.fixture
def api_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path


TINY_TRAINER = {"batch_size": 16, "precision": "fp32", "channels_last": False}


def test_api_anomaly_fit_on_zero_samples(api_dir):
    from genlab.apps import AnomalyDetector
    before = snapshot(api_dir)
    with pytest.raises(ValueError) as e:
        AnomalyDetector(epochs=1, trainer_config=TINY_TRAINER).fit(np.zeros((0, 6), np.float32))
    _one_line(e.value)
    assert tree_changes(before, snapshot(api_dir)) == []


def test_api_anomaly_predict_on_zero_samples(api_dir):
    from genlab.apps import AnomalyDetector
    x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    det = AnomalyDetector(epochs=1, trainer_config=TINY_TRAINER, model_config={"hidden": [8], "latent_dim": 2})
    det.fit(x)
    before = snapshot(api_dir)
    with pytest.raises(ValueError) as e:
        det.predict(np.zeros((0, 6), np.float32))
    _one_line(e.value)
    assert tree_changes(before, snapshot(api_dir)) == []


def test_api_compressor_inverse_transform_nan_codes(api_dir):
    from genlab.apps import Compressor
    x = np.random.default_rng(0).random((40, 1, 8, 8), dtype=np.float32)
    comp = Compressor(epochs=1, trainer_config=TINY_TRAINER, model_config={"hidden": [8], "latent_dim": 2}).fit(x)
    before = snapshot(api_dir)
    with pytest.raises(ValueError) as e:
        comp.inverse_transform(np.full((3, comp.latent_dim_), np.nan))
    _one_line(e.value)
    assert tree_changes(before, snapshot(api_dir)) == []


def test_api_load_refuses_num_classes_minus_3(base_run, tmp_path):
    import genlab
    from genlab.errors import CheckpointError
    run = tmp_path / "run"
    shutil.copytree(base_run, run, symlinks=True)

    def neg(r):
        r["data"]["num_classes"] = -3
        if "num_classes" in r["config"]:
            r["config"]["num_classes"] = -3
    edit_json(run / "model" / "config.json", neg)
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError) as e:
        genlab.load(run)
    _one_line(e.value)
    assert tree_changes(before, snapshot(tmp_path)) == []
