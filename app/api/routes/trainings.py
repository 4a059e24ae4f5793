"""Trainings: start the training of a plan's configurations and folds; follow it as a job."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ApiKeyDep, CeleryDep, SessionDep
from app.api.roles import START_TRAINING
from app.operations.jobs import job_public
from app.operations.trainings import start_training
from app.schemas.jobs import JobPublic
from app.schemas.trainings import TrainingCreate

router = APIRouter(prefix="/trainings", tags=["trainings"])


@router.post("", status_code=202, dependencies=[START_TRAINING])
def post_training(body: TrainingCreate, session: SessionDep, celery: CeleryDep, key: ApiKeyDep) -> JobPublic:
    """Queues the parent `train` job: one `train_fold` child per configuration and fold, then a `select`
    child that evaluates cross-validation, picks postprocessing and the best configuration, and
    registers `model_name`'s next version. Poll GET /v1/jobs/{id} (children included)."""
    return job_public(session, start_training(session, celery, key.key_id, body))
