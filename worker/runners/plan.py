"""Plan job: verify, fingerprint, plan and preprocess a dataset into its plan folder (core.pipeline).

Fills `Plan.document` (plans.json) and `Dataset.fingerprint`, so the API serves both from the
database. A refused dataset fails the job with every problem core found.
"""

from __future__ import annotations

import json
from typing import Any

from core.pipeline import FINGERPRINT_JSON, PLANS_JSON, PlanOptions, plan_and_preprocess
from service.db.models import Dataset, Plan
from service.paths import plan_dir, raw_dir
from worker.context import JobContext, JobInputError


def run(context: JobContext) -> dict[str, Any]:
    dataset_id, plan_id = context.param("dataset_id"), context.param("plan_id")
    with context.session() as session:
        plan = session.get(Plan, plan_id)
        if plan is None or plan.dataset_id != dataset_id:
            raise JobInputError(f"plan {plan_id} of dataset {dataset_id} not found")
        out_dir = context.path(plan.path) if plan.path else plan_dir(context.settings, dataset_id, plan_id)
    configurations = context.params.get("configurations")
    options = PlanOptions(
        gpu_memory_gb=context.params.get("gpu_memory_gb") or context.settings.gpu_memory_gb,
        preset=context.params.get("preset") or "default",
        configurations=tuple(configurations) if configurations else None,
    )
    plans = plan_and_preprocess(raw_dir(context.settings, dataset_id), out_dir, options, context.progress)
    fingerprint = json.loads((out_dir / FINGERPRINT_JSON).read_text())
    with context.session() as session:
        plan = session.get(Plan, plan_id)
        plan.document = plans.to_json()
        plan.path = context.stored(out_dir)
        dataset = session.get(Dataset, dataset_id)
        dataset.fingerprint = fingerprint
    return {
        "plan_id": plan_id,
        "configurations": list(plans.configurations),
        "artifacts": {name: context.stored(out_dir / name) for name in (PLANS_JSON, FINGERPRINT_JSON)},
    }
