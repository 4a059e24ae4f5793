"""The training parent's state machine: from its children's states to its next step.

`advance_training` is called by every child that ends and, as a safety net, by the reconciler for
every running parent; it is idempotent, so calling it twice or from two processes at once does no
harm. It locks the parent row first (an UPDATE that changes nothing: a row lock on PostgreSQL, the
write lock on SQLite), so two children ending together cannot both create the `select` child.

Order: every configuration's folds at once, except a cascade, whose folds start when all of its
previous stage's folds succeeded; then one `select` child; the parent ends with the select child's
result. A child that fails or is cancelled ends the parent the same way, and the other children are
cancelled: no model can come of them.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from sqlalchemy import update
from sqlalchemy.orm import Session

from service.db.base import utc_now
from service.db.models import Job, JobKind, JobStatus
from service.db.session import session_scope
from service.jobs import create_job, request_cancel
from service.paths import relative, training_dir
from service.settings import Settings
from worker.dispatch import dispatch

logger = logging.getLogger(__name__)

FOLD_PARAMS = ("plan_id", "dataset_id", "epochs", "iterations_per_epoch", "seed", "validation_iterations")


def advance_training(settings: Settings, celery: Celery, parent_id: str) -> None:
    with session_scope(str(settings.database_url)) as session:
        session.execute(
            update(Job).where(Job.id == parent_id).values(revision=Job.revision),
            execution_options={"synchronize_session": False},
        )
        parent = session.get(Job, parent_id)
        if parent is None or parent.status != JobStatus.running or "resolved" not in parent.params:
            return
        created = next_step(settings, session, parent)
        sends = [(job.id, job.kind) for job in created]
    dispatch(settings, celery, sends)


def next_step(settings: Settings, session: Session, parent: Job) -> list[Job]:
    """Create the children that may start now, or end the parent; returns the new children."""
    children = list(parent.children)
    if parent.is_cancel_requested:
        end_parent(session, parent, JobStatus.cancelled, error=None)
        return []
    ended_badly = [child for child in children if child.status in (JobStatus.failed, JobStatus.cancelled)]
    if ended_badly:
        child = ended_badly[0]
        end_parent(session, parent, child.status, error=child_error(child))
        return []
    resolved = parent.params["resolved"]
    folds = resolved["folds"]
    fold_jobs = {
        (c.params["configuration"], c.params["fold"]): c for c in children if c.kind == JobKind.train_fold
    }
    succeeded = {key for key, child in fold_jobs.items() if child.status == JobStatus.succeeded}
    created = []
    for configuration in resolved["configurations"]:
        stage = resolved["previous_stage"].get(configuration)
        if stage is not None and not all((stage, fold) in succeeded for fold in folds):
            continue
        for fold in folds:
            if (configuration, fold) not in fold_jobs:
                created.append(create_fold_child(settings, session, parent, configuration, fold))
    total = len(resolved["configurations"]) * len(folds)
    select = next((c for c in children if c.kind == JobKind.select), None)
    if len(succeeded) == total and select is None:
        params = {key: parent.params[key] for key in ("dataset_id", "plan_id", "model_name")}
        created.append(child_job(session, parent, JobKind.select, {"train_job_id": parent.id, **params}))
    if select is not None and select.status == JobStatus.succeeded:
        parent.status, parent.finished_at = JobStatus.succeeded, utc_now()
        parent.result = select.result
        parent.progress = {"stage": "succeeded", "fraction": 1.0, "message": "model registered"}
        return created
    parent.progress = {
        "stage": "train",
        "fraction": round(len(succeeded) / (total + 1), 4),
        "message": f"{len(succeeded)}/{total} fold(s) trained"
        + ("; selecting the best configuration" if select is not None else ""),
    }
    return created


def create_fold_child(
    settings: Settings, session: Session, parent: Job, configuration: str, fold: Any
) -> Job:
    params = {key: parent.params[key] for key in FOLD_PARAMS if key in parent.params}
    output_dir = relative(settings, training_dir(settings, parent.id))
    return child_job(
        session,
        parent,
        JobKind.train_fold,
        {**params, "configuration": configuration, "fold": fold, "output_dir": output_dir},
    )


def child_job(session: Session, parent: Job, kind: JobKind, params: dict[str, Any]) -> Job:
    job = create_job(session, kind, params, parent_id=parent.id, api_key_id=parent.api_key_id)
    job.enqueued_at = job.created_at
    return job


def child_error(child: Job) -> dict[str, Any]:
    what = child.kind.value
    if child.kind == JobKind.train_fold:
        what = f"fold {child.params.get('fold')} of {child.params.get('configuration')}"
    error = child.error or {}
    verb = "was cancelled" if child.status == JobStatus.cancelled else "failed"
    return {
        "message": f"{what} {verb} (job {child.id})"
        + (f": {error['message']}" if error.get("message") else ""),
        "problems": error.get("problems") or [f"{what} {verb}"],
        "hint": error.get("hint", ""),
    }


def end_parent(session: Session, parent: Job, status: JobStatus, error: dict[str, Any] | None) -> None:
    """End the parent now and stop every child still queued or running."""
    for child in parent.children:
        request_cancel(session, child)
    parent.status, parent.finished_at, parent.error = status, utc_now(), error
    parent.progress = {**(parent.progress or {}), "stage": status.value}
    logger.info("training %s ended %s", parent.id, status.value)
