#!/usr/bin/env bash
# GPU-ready check (issue 15): training images/s (vae, dcgan, wgan-gp; batch 128/512; fp32/bf16/fp16; compile off/on)
# and FID/KID/PRDC seconds on 50,000 x 2,048 features. On a machine without CUDA it runs the tiny CPU sizes.
# Usage: bash bench/gpu.sh [extra bench/gpu.py arguments]   (PYTHON=python3 to use another interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  exec "$PY" bench/gpu.py "$@"
else
  echo "no CUDA device: running the tiny CPU sizes" >&2
  exec "$PY" bench/gpu.py --tiny "$@"
fi
