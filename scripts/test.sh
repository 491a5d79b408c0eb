#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs every test: lint, unit, property, integration against
# the lab's API server, and the root-only end-to-end tests in network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
venv=${WGSLICE_VENV:-$(pwd)/.venv}
export PATH="$venv/bin:$PATH"
export WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1
echo "==> ruff"
ruff check .
echo "==> import contracts (.importlinter)"
python scripts/lint-imports.py --no-logo
echo "==> mypy (pyproject.toml [tool.mypy])"
python scripts/mypy.py
echo "==> pytest"
exec python -m pytest -q -p no:cacheprovider "$@"
