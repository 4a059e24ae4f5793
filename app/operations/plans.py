"""Plans: queue the plan job of a dataset, and accept an expert's edited plans document.

An edit may change what training uses (batch and patch size, architecture, batch Dice) but not what
preprocessing already produced on disk (spacing, normalization, resampling, axis order, intensity
statistics) nor add configurations that were not preprocessed: those need a new plan job, and saying
so beats training on data that no longer matches its plans.
"""

from __future__ import annotations

from celery import Celery
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, Unprocessable
from app.operations.datasets import active_jobs
from app.operations.jobs import submit
from app.schemas.common import Problem
from app.schemas.plans import PlanCreate
from core.planner_presets import PRESETS
from core.plans import Plans, PlansError, save_plans
from service import paths
from service.db.models import Dataset, Job, JobKind, Plan, new_id
from service.jobs import create_job
from service.settings import Settings

PLANS_FILE = "plans.json"
PREPROCESSING_FIELDS = (
    "data_identifier",
    "preprocessor_name",
    "spacing",
    "normalization_schemes",
    "use_mask_for_norm",
    "resampling_fn_data",
    "resampling_fn_seg",
    "resampling_fn_data_kwargs",
    "resampling_fn_seg_kwargs",
)
PREPROCESSING_TOP_LEVEL = (
    "transpose_forward",
    "transpose_backward",
    "foreground_intensity_properties_per_channel",
)


def start_plan(
    session: Session, settings: Settings, celery: Celery, api_key_id: int, body: PlanCreate
) -> tuple[Plan, Job]:
    dataset = session.get(Dataset, body.dataset_id)
    if dataset is None:
        raise NotFound(f"no dataset has the id {body.dataset_id!r}", loc=["body", "dataset_id"])
    problems = []
    if body.preset not in PRESETS:
        problems.append(
            Problem(
                loc=["body", "preset"],
                problem=f"unknown preset {body.preset!r}; use one of {sorted(PRESETS)}",
            )
        )
    if not any(case.has_label and not case.is_test for case in dataset.cases):
        problems.append(
            Problem(loc=["body", "dataset_id"], problem="the dataset has no labelled training case yet")
        )
    if problems:
        raise Unprocessable(problems)
    plan_id = new_id()
    options = {
        "gpu_memory_gb": body.gpu_memory_gb or settings.gpu_memory_gb,
        "configurations": body.configurations,
        "preset": body.preset,
    }
    job = create_job(
        session,
        JobKind.plan,
        {"dataset_id": dataset.id, "plan_id": plan_id, **options},
        api_key_id=api_key_id,
    )
    plan = Plan(
        id=plan_id,
        dataset_id=dataset.id,
        job_id=job.id,
        path=paths.relative(settings, paths.plan_dir(settings, dataset.id, plan_id)),
        options=options,
    )
    session.add(plan)
    submit(session, celery, job)
    return plan, job


def preprocessing_changes(old: Plans, new: Plans) -> list[Problem]:
    problems = []
    for field in PREPROCESSING_TOP_LEVEL:
        if getattr(new, field) != getattr(old, field):
            problems.append(_changed(["body", field], field))
    for name, configuration in new.configurations.items():
        if name not in old.configurations:
            problems.append(
                Problem(
                    loc=["body", "configurations", name],
                    problem=f"configuration {name!r} was not preprocessed; start a new plan job with it",
                )
            )
            continue
        for field in PREPROCESSING_FIELDS:
            if getattr(configuration, field) != getattr(old.configurations[name], field):
                problems.append(_changed(["body", "configurations", name, field], f"{name}.{field}"))
    return problems


def _changed(loc: list[str | int], what: str) -> Problem:
    return Problem(
        loc=loc,
        problem=f"{what} was changed, but the preprocessed data was made with the old value; "
        "start a new plan job instead",
        kind="preprocessing_change",
    )


def edit_plans(session: Session, settings: Settings, plan: Plan, document: dict) -> Plan:
    """Validate an edited plans document and make it the plan's; every problem is listed in one 422."""
    if plan.document is None:
        raise Conflict(f"the plans are not made yet; wait for job {plan.job_id} to succeed")
    busy = active_jobs(session, plan_id=plan.id)
    if busy:
        raise Conflict([f"job {job.id} ({job.kind}, {job.status}) uses these plans" for job in busy])
    try:
        new = Plans.from_json(document)
    except PlansError as error:
        raise Unprocessable(
            [Problem(loc=["body"], problem=line, kind="invalid_plans") for line in error.problems],
            message=f"{len(error.problems)} problem(s) in the plans document",
        ) from None
    old = Plans.from_json(plan.document)
    problems = preprocessing_changes(old, new)
    if problems:
        raise Unprocessable(problems)
    path = paths.absolute(settings, plan.path) / PLANS_FILE
    save_plans(new, path)
    plan.document, plan.is_edited = new.to_json(), True
    try:
        session.commit()
    except BaseException:
        session.rollback()
        save_plans(old, path)
        raise
    return plan
