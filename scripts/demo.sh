#!/usr/bin/env bash
# Set up (first run only) and run the main job: genlab demo (conv VAE on the built-in digits).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/genlab demo "$@"
