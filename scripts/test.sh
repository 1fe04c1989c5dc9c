#!/usr/bin/env bash
# Set up (first run only) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Two worker processes (pytest-xdist), each test file on one worker (module fixtures are built once): the
# 2-core CI box spends much of the suite starting subprocesses and waiting on them. GENLAB_TEST_WORKERS=0 runs
# everything in this process.
exec .venv/bin/python -m pytest -q -n "${GENLAB_TEST_WORKERS:-2}" --dist loadfile "$@"
