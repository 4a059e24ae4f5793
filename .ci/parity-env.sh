#!/usr/bin/env bash
# Builds the nnU-Net v2 reference environment used by the parity tests and benchmarks, once.
# It lives outside the checkout (shared by clones on this machine) and is never imported by the product.
set -euo pipefail
VENV="${NNSVC_PARITY_VENV:-$HOME/.cache/nnsvc/venv-parity}"
if "$VENV/bin/python" -c "import nnunetv2, torchvision" >/dev/null 2>&1; then
    echo "reference environment ready: $VENV"
    exit 0
fi
echo "building the nnU-Net v2 reference environment in $VENV (about 6 GB, a few minutes)"
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet torch==2.14.1 torchvision==0.29.1 nnunetv2==2.8.1 2>&1 | grep -v "is ignored" || true
"$VENV/bin/python" -c "import nnunetv2, torchvision"
echo "reference environment ready: $VENV"
