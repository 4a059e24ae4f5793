"""Helpers shared by the preprocessing tests: plans for a generated dataset, made by our planner."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from core.dataset import load_dataset_json
from core.fingerprint import extract_fingerprint
from core.planning import plan_experiment
from core.plans import Plans


def plan_dataset(raw_dir: Path) -> Plans:
    """Fingerprint and plan `raw_dir` in-process, as `nnsvc plan` would."""
    spec = load_dataset_json(Path(raw_dir) / "dataset.json")
    return plan_experiment(extract_fingerprint(Path(raw_dir), workers=1), spec)


def with_configuration(plans: Plans, name: str, **changes: object) -> Plans:
    """A copy of `plans` whose configuration `name` has `changes` applied."""
    configuration = replace(plans.configuration(name), **changes)
    return replace(plans, configurations={**plans.configurations, name: configuration})
