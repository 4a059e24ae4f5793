#!/usr/bin/env bash
# Creates or refreshes the project's virtual environment in .venv: the CPU torch pin first (a plain
# `torch` would pull a multi-GB CUDA build), then the project with its dev extras. Re-running is cheap:
# nothing is reinstalled unless pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ]; then
    echo "installing into $VENV (torch 2.13.0 CPU, then nnsvc with dev extras)"
    "$VENV/bin/pip" install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
    "$VENV/bin/pip" install --quiet torch==2.13.0 2>&1 | grep -v "is ignored" || true
    "$VENV/bin/pip" install --quiet -e ".[dev]" 2>&1 | grep -v "is ignored" || true
    "$VENV/bin/python" -c "import torch, core, cli" || { echo "installation failed" >&2; exit 1; }
    rm -f "$VENV"/.installed-*
    touch "$STAMP"
fi
