"""`nnsvc demo`, the README's main job, runs as written (with fewer cases, to stay quick)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from core.plans import load_plans
from core.preprocessed import list_cases


def test_demo_generates_plans_and_preprocesses(tmp_path: Path) -> None:
    nnsvc = Path(sys.executable).with_name("nnsvc")
    completed = subprocess.run(
        [str(nnsvc), "demo", "--workdir", str(tmp_path), "--cases", "3", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    out = tmp_path / "preprocessed" / "Dataset002_SyntheticCT"
    plans = load_plans(out / "plans.json")
    assert {"2d", "3d_fullres"} <= set(plans.configurations)
    for name in ("2d", "3d_fullres"):
        assert len(list_cases(out / plans.configuration(name).data_identifier)) == 3
    assert "plans written to" in completed.stdout
