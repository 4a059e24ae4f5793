"""examples/ci_gate.py against the live server: exit 0 when every threshold is met, 1 on a regression,
2 when the evaluation cannot run."""

from __future__ import annotations

import json
from pathlib import Path

from service.db.models import Role
from tests.examples.conftest import LiveService, run_example


def gate(live_service: LiveService, *arguments: str) -> tuple[int, str, str]:
    result = run_example(
        "ci_gate.py",
        *["--url", live_service.url, "--key", live_service.keys[Role.evaluator]],
        *["--model", live_service.model, "--dataset-id", live_service.dataset_id, *arguments],
    )
    return result.returncode, result.stdout, result.stderr


def test_the_gate_passes_when_every_threshold_is_met(live_service: LiveService, tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    code, out, err = gate(
        live_service,
        "--min-dice",
        "organ=0",
        "--min-dice",
        "foreground_mean=0",
        "--summary-json",
        str(summary),
    )
    assert code == 0, out + err
    assert out.splitlines()[-1] == "PASSED"
    assert "mean Dice over 2 case(s)" in out
    assert len(json.loads(summary.read_text())["metric_per_case"]) == 2


def test_the_gate_exits_1_on_a_regression(live_service: LiveService) -> None:
    code, out, err = gate(live_service, "--min-dice", "lesion=0", "--min-dice", "foreground_mean=1")
    assert code == 1, out + err
    assert "REGRESSION" in out and "missed: foreground_mean" in out
    assert out.splitlines()[-1].startswith("FAILED")


def test_the_gate_exits_2_when_the_evaluation_cannot_run(live_service: LiveService) -> None:
    code, out, err = gate(live_service, "--min-dice", "spleen=0.5")
    assert code == 2, out + err
    assert "422" in err and "spleen" in err
    assert "Traceback" not in err
