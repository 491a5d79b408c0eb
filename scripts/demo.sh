#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the main job: plans the shipped example slices.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
venv=${WGSLICE_VENV:-$(pwd)/.venv}
exec "$venv/bin/wgslice" plan -f examples/
