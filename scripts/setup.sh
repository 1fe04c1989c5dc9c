#!/usr/bin/env bash
# Create .venv with the CPU build of torch 2.13.0 first, then genlab and its dev extras.
# A second run finds the stamp (keyed by pyproject.toml) and returns in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.genlab-setup
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/genlab ]; then
  exit 0
fi
echo "setting up .venv (first run only: installs torch 2.13.0 CPU, then genlab[dev]) ..." >&2
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >&2
# torch first, pinned: an unpinned torch pulled in by a dependency would fetch a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0" >&2
.venv/bin/python -m pip install -q -e ".[dev]" >&2
echo "$want" > "$stamp"
