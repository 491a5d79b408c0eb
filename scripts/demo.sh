#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the main job: the lab — a hub and three member
# clusters emulated in network namespaces on this machine, wgslice installed on them from
# its Helm charts, and a demo slice whose pods reach each other across clusters.
# `wgslice lab down` (or `bash scripts/demo.sh down`) removes everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
venv=${WGSLICE_VENV:-$(pwd)/.venv}
if [ "${1:-up}" = down ]; then exec "$venv/bin/wgslice" lab down; fi
"$venv/bin/wgslice" plan -f examples/
exec "$venv/bin/wgslice" lab up
