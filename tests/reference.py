"""Runs nnU-Net v2 in its own environment, as a separate process, for parity tests and benchmarks.

nnU-Net v2 is the oracle, never a dependency: its scripts live in `tests/reference_scripts/` and run
under the reference interpreter, which `.ci/parity-env.sh` builds (torch 2.14.1, torchvision 0.29.1,
nnunetv2 2.8.1). They exchange plain JSON and files on disk with the caller.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

SCRIPTS = Path(__file__).parent / "reference_scripts"
DEFAULT_LOCATIONS = (
    Path.home() / ".cache" / "nnsvc" / "venv-parity" / "bin" / "python",
    Path(__file__).resolve().parents[1] / ".venv-parity" / "bin" / "python",
)


class ReferenceUnavailable(RuntimeError):
    """The nnU-Net v2 reference environment has not been built."""


def reference_python() -> Path:
    """The reference interpreter: $NNSVC_PARITY_PYTHON, else the locations `.ci/parity-env.sh` uses."""
    configured = os.environ.get("NNSVC_PARITY_PYTHON")
    candidates = [Path(configured)] if configured else list(DEFAULT_LOCATIONS)
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise ReferenceUnavailable(
        "the nnU-Net v2 reference environment is missing; build it with `bash .ci/parity-env.sh` "
        f"(looked for {', '.join(str(c) for c in candidates)})"
    )


def run_reference(script: str, *args: str, timeout_s: float = 1800) -> dict:
    """Run `reference_scripts/<script>` with the reference interpreter; its last stdout line is JSON."""
    environment = {
        **os.environ,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "nnUNet_raw": "/nonexistent/nnUNet_raw",
        "nnUNet_preprocessed": "/nonexistent/nnUNet_preprocessed",
        "nnUNet_results": "/nonexistent/nnUNet_results",
    }
    completed = subprocess.run(
        [str(reference_python()), str(SCRIPTS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=environment,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"reference script {script} failed ({completed.returncode}):\n{completed.stderr[-4000:]}"
        )
    return json.loads(completed.stdout.strip().splitlines()[-1])
