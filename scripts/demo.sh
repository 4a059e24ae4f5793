#!/usr/bin/env bash
# The main job: installs what it needs, then runs `nnsvc demo` (sample dataset → plan → preprocess).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
exec .venv/bin/nnsvc demo "$@"
