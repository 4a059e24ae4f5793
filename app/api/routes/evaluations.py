"""Evaluations: a model on a dataset's labelled cases, or two archives of segmentations; the result is
summary.json plus `passed` against per-label Dice thresholds."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.api.deps import ApiKeyDep, CeleryDep, EvaluationDep, SessionDep, SettingsDep
from app.api.forms import FilePart, multipart_body, parse_fields
from app.api.roles import READ_EVALUATIONS, WRITE_EVALUATIONS
from app.multipart import receive_form
from app.operations.evaluations import evaluation_public, start_archive_evaluation, start_evaluation
from app.operations.jobs import job_public
from app.schemas.evaluations import (
    EvaluationAccepted,
    EvaluationArchiveForm,
    EvaluationCreate,
    EvaluationPublic,
)
from app.staging import check_quota, staging_area
from service.db.models import Evaluation, Job

router = APIRouter(prefix="/evaluations", tags=["evaluations"])


def accepted(session: Session, evaluation: Evaluation) -> EvaluationAccepted:
    return EvaluationAccepted(
        evaluation=evaluation_public(session, evaluation),
        job=job_public(session, session.get_one(Job, evaluation.job_id)),
    )


@router.post("", status_code=202, dependencies=[WRITE_EVALUATIONS])
def post_evaluation(
    body: EvaluationCreate, session: SessionDep, settings: SettingsDep, celery: CeleryDep, key: ApiKeyDep
) -> EvaluationAccepted:
    """Predicts the dataset's labelled test cases (or training cases) with the model and evaluates them."""
    return accepted(session, start_evaluation(session, settings, celery, key.key_id, body))


@router.post(
    "/archives",
    status_code=202,
    dependencies=[WRITE_EVALUATIONS],
    openapi_extra=multipart_body(
        EvaluationArchiveForm,
        {
            "predictions": FilePart("segmentations to grade, as .zip/.tar/.tar.gz"),
            "references": FilePart("reference segmentations with the same file names"),
        },
    ),
)
async def post_archive_evaluation(
    request: Request, session: SessionDep, settings: SettingsDep, celery: CeleryDep, key: ApiKeyDep
) -> EvaluationAccepted:
    """Evaluates segmentations you made elsewhere against references; no model involved."""
    await run_in_threadpool(check_quota, settings)
    async with staging_area(settings) as staging:
        form = await receive_form(request, staging, settings.max_upload_mb * 2**20)
        fields = parse_fields(EvaluationArchiveForm, form.fields)
        uploads = {name: form.one_file(name) for name in ("predictions", "references")}
        evaluation = await run_in_threadpool(
            start_archive_evaluation, session, settings, celery, key.key_id, fields, uploads, staging
        )
    return await run_in_threadpool(accepted, session, evaluation)


@router.get("/{evaluation_id}", dependencies=[READ_EVALUATIONS])
def get_evaluation(evaluation: EvaluationDep, session: SessionDep) -> EvaluationPublic:
    """The summary (nnU-Net v2's summary.json) and the verdict once the job has finished."""
    return evaluation_public(session, evaluation)
