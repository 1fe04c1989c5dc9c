"""README.md runs as written: its ```bash and ```python blocks run in order, on tiny settings.

The README's own numbers (epochs, trials, sample counts) are swapped for tiny ones through the explicit
table :data:`TINY`; an entry that no longer matches anything fails the test, so the table cannot go stale.
Lines that must not run in a test (environment set-up, servers) are skipped through :data:`SKIP`, whose
entries must each still appear in the README. A ```yaml block announced as "this block is `PATH`" is the file
``PATH``: it must equal the shipped file, and the test writes it (tiny-substituted) before running anything.
"""
from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: (README text, tiny replacement): applied in this order to every code block; each must match at least once.
TINY = (
    ("trainer.epochs=30", "trainer.epochs=1"),
    ("trainer.epochs=20", "trainer.epochs=1"),
    ("--trials 20", "--trials 1 --no-trial-figures --no-retrain"),
    ("--epochs 30", "--epochs 1"),
    ("epochs=30)", "epochs=1)"),
    ('{"epochs": 30}', '{"epochs": 1}'),
    ("epochs: 60", "epochs: 1"),
    ("-n 10000", "-n 300"),
    ("-n 2000", "-n 300"),
    ("augment digits --out out/aug -n 100", "augment digits --out out/aug -n 2"),
    ("--method tsne", "--method tsne -n 200"),
    ("test.iwae_k=1000", "test.iwae_k=10"),
)

#: README commands that are not run here (they install, clone or start servers); each must be in the README.
SKIP = ("bash scripts/demo.sh", "bash scripts/test.sh", "tensorboard --logdir")

FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
FILE_NOTE = re.compile(r"this block is `([^`]+)`")


RUNNER = """\
import json, sys
ns = {"__name__": "__main__"}
for i, block in enumerate(json.load(open(sys.argv[1]))):
    exec(compile(block, f"README python block {i + 1} of this group", "exec"), ns)
"""


def readme_blocks(text: str) -> list[tuple[str, str, str | None]]:
    """``(language, code, file)`` of every fenced block; ``file`` is the path a yaml block is announced as."""
    out = []
    for m in FENCE.finditer(text):
        before = text[max(0, m.start() - 300):m.start()]
        notes = FILE_NOTE.findall(before)
        out.append((m.group(1), m.group(2), notes[-1] if notes else None))
    return out


def shrink(code: str, used: set[str]) -> str:
    for old, new in TINY:
        if old in code:
            used.add(old)
            code = code.replace(old, new)
    return code


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def genlab_shim(bin_dir: Path) -> None:
    """A ``genlab`` on PATH that runs this interpreter's genlab, whatever the install layout."""
    bin_dir.mkdir()
    shim = bin_dir / "genlab"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m genlab.cli "$@"\n')
    shim.chmod(0o755)


def plan(text: str) -> tuple[dict[str, str], list[tuple[str, object]]]:
    """The README's files (path -> tiny content) and steps, checked against the tables.

    Steps: ``("bash", line)`` per command line; ``("python", [blocks])`` per run of consecutive python blocks,
    which share one interpreter and namespace (a snippet may use what an earlier one defined, as a reader's
    session would). Fails when a :data:`SKIP` or :data:`TINY` entry matches nothing, or a file's block differs
    from the shipped file.
    """
    blocks = readme_blocks(text)
    code_text = "\n".join(code for _, code, _ in blocks)
    assert [s for s in SKIP if s not in code_text] == [], "SKIP lists commands the README no longer has"
    used: set[str] = set()
    files = {}
    for lang, code, file in blocks:
        if lang == "yaml" and file:
            assert (ROOT / file).read_text(encoding="utf-8") == code, f"README's block for {file} differs from {file}"
            files[file] = shrink(code, used)
    steps: list[tuple[str, object]] = []
    for lang, code, _ in blocks:
        if lang == "bash":
            for line in shrink(code, used).splitlines():
                if line.strip() and not line.lstrip().startswith("#") and \
                        not any(line.lstrip().startswith(s) for s in SKIP):
                    steps.append(("bash", line))
        elif lang == "python":
            if steps and steps[-1][0] == "python":
                steps[-1][1].append(shrink(code, used))
            else:
                steps.append(("python", [shrink(code, used)]))
    assert [old for old, _ in TINY if old not in used] == [], "TINY entries that match nothing in README.md"
    assert {k for k, _ in steps} == {"bash", "python"}
    return files, steps


def test_readme_tables_are_current():
    """Fast: the substitution and skip tables still match the README, and its file blocks the shipped files."""
    files, steps = plan(README.read_text(encoding="utf-8"))
    assert "examples/run.yaml" in files and "epochs: 1," in files["examples/run.yaml"]
    bash = [c for k, c in steps if k == "bash"]
    assert all(line.split()[0] == "genlab" for line in bash), bash  # every runnable line is a genlab command
    assert not any("tensorboard --logdir" in line for line in bash)


def test_stale_tables_fail():
    text = README.read_text(encoding="utf-8")
    with pytest.raises(AssertionError, match="TINY entries"):
        plan(text.replace("--trials 20", "--trials 30"))
    with pytest.raises(AssertionError, match="SKIP lists"):
        plan(text.replace("bash scripts/test.sh", "bash scripts/check.sh"))
    with pytest.raises(AssertionError, match="differs from examples/run.yaml"):
        plan(text.replace("ema_decay: 0.99,", "ema_decay: 0.98,"))


@pytest.mark.slow
def test_readme_runs_as_written(tmp_path):
    """Every README command and snippet, in order, in a temp folder holding a copy of examples/, on tiny
    settings; fails on any non-zero exit or exception. Prints wall and CPU time per step (pytest -s)."""
    files, steps = plan(README.read_text(encoding="utf-8"))
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(ROOT / "examples", work / "examples")
    for file, content in files.items():  # the README's file blocks, tiny, written before anything runs
        (work / file).write_text(content, encoding="utf-8")
    genlab_shim(tmp_path / "bin")
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               GENLAB_CACHE=str(tmp_path / "cache"), MPLBACKEND="Agg", PYTHONUNBUFFERED="1")

    runner = tmp_path / "run_blocks.py"
    runner.write_text(RUNNER)
    timings = []
    for i, (kind, code) in enumerate(steps):
        t0, c0 = time.perf_counter(), _child_cpu()
        if kind == "bash":
            cmd, shown = ["bash", "-e", "-o", "pipefail", "-c", code], code
        else:
            blocks_file = tmp_path / f"python-{i}.json"
            blocks_file.write_text(json.dumps(code))
            cmd, shown = [sys.executable, str(runner), str(blocks_file)], "\n\n".join(code)
        p = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        timings.append((time.perf_counter() - t0, _child_cpu() - c0, shown.splitlines()[0][:80]))
        assert p.returncode == 0, (f"README {kind} step failed (exit {p.returncode}):\n{shown}\n"
                                   f"--- stdout ---\n{p.stdout[-3000:]}\n--- stderr ---\n{p.stderr[-3000:]}")
    print("\n".join(f"{t:6.1f} s wall {c:6.1f} s cpu  {line}" for t, c, line in sorted(timings, reverse=True)))
    print(f"total {sum(t[0] for t in timings):.1f} s wall, {sum(t[1] for t in timings):.1f} s cpu")
