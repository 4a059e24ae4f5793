#!/usr/bin/env bash
# The main job: installs what it needs, then runs `nnsvc demo`: the embedded service (API + one worker)
# on a generated dataset, through upload, plan, train, predict and evaluate over HTTP. Arguments go to
# `nnsvc demo` (e.g. --epochs 1 --iterations-per-epoch 2 for a quick check, --keep-serving).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
exec .venv/bin/nnsvc demo "$@"
