"""Trainings: check a request against its plans and queue the parent `train` job; the worker creates one
`train_fold` child per configuration and fold, and a `select` child that registers the model."""

from __future__ import annotations

from celery import Celery
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, Unprocessable
from app.operations.jobs import submit
from app.schemas.trainings import TrainingCreate
from service.db.models import Job, JobKind, Plan
from service.jobs import create_job


def start_training(session: Session, celery: Celery, api_key_id: int, body: TrainingCreate) -> Job:
    plan = session.get(Plan, body.plan_id)
    if plan is None:
        raise NotFound(f"no plan has the id {body.plan_id!r}", loc=["body", "plan_id"])
    if plan.document is None:
        raise Conflict(
            f"the plans are not made yet; wait for job {plan.job_id} to succeed", loc=["body", "plan_id"]
        )
    available = list(plan.document.get("configurations", {}))
    if body.configurations != "auto":
        unknown = [name for name in body.configurations if name not in available]
        if not body.configurations:
            raise Unprocessable(
                'name at least one configuration, or send "auto"', loc=["body", "configurations"]
            )
        if unknown:
            raise Unprocessable(
                f"the plans hold no configuration(s) {unknown}; they hold {available}",
                loc=["body", "configurations"],
            )
    if body.folds != "all" and len(set(body.folds)) != len(body.folds):
        raise Unprocessable(f"folds repeat: {body.folds}", loc=["body", "folds"])
    params = {
        "dataset_id": plan.dataset_id,
        "plan_id": plan.id,
        "configurations": body.configurations,
        "folds": body.folds if body.folds == "all" else sorted(body.folds),
        "epochs": body.epochs,
        "iterations_per_epoch": body.iterations_per_epoch,
        "validation_iterations": body.validation_iterations,
        "seed": body.seed,
        "model_name": body.model_name,
    }
    job = create_job(session, JobKind.train, params, api_key_id=api_key_id)
    submit(session, celery, job)
    return job
