#!/usr/bin/env bash
# The test suite: installs what it needs (project venv, nnU-Net v2 reference environment for the parity
# tests), checks lint and formatting, then runs every test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
bash .ci/parity-env.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
