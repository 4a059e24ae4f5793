"""Predictions: post one case for a model version, poll it, download its segmentation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.api.deps import ApiKeyDep, CeleryDep, PredictionDep, SessionDep, SettingsDep
from app.api.forms import FilePart, multipart_body, parse_fields
from app.api.roles import DELETE, READ_PREDICTIONS, WRITE_PREDICTIONS
from app.multipart import receive_form
from app.operations.jobs import job_public
from app.operations.predictions import (
    create_prediction,
    delete_prediction,
    find_by_idempotency_key,
    prediction_public,
    replayed,
    request_digest,
    result_file,
)
from app.schemas.predictions import PredictionAccepted, PredictionForm, PredictionPublic
from app.staging import check_quota, staging_area
from service.db.models import Job, Prediction

router = APIRouter(prefix="/predictions", tags=["predictions"])

NIFTI_TYPES = {"application/gzip": {}, "application/octet-stream": {}}


def accepted(session: Session, prediction: Prediction) -> PredictionAccepted:
    return PredictionAccepted(
        prediction=prediction_public(session, prediction),
        job=job_public(session, session.get_one(Job, prediction.job_id)),
    )


@router.post(
    "",
    status_code=202,
    dependencies=[WRITE_PREDICTIONS],
    responses={
        200: {"model": PredictionAccepted, "description": "replayed: the Idempotency-Key was seen before"},
    },
    openapi_extra=multipart_body(
        PredictionForm,
        {
            "channels": FilePart(
                "one image per input channel, in order (.nii.gz, .nrrd, .mha, ...)", is_repeated=True
            )
        },
    ),
)
async def post_prediction(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    celery: CeleryDep,
    key: ApiKeyDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=200,
            description="repeat a post safely: this API key's first prediction with it is returned; "
            "the same key with other options or files is refused (422)",
        ),
    ] = None,
) -> PredictionAccepted:
    """Queues the segmentation of one case. The files are checked first (readable, one geometry, finite
    voxels, as many channels as the model takes); the segmentation keeps the input's geometry."""
    first = None
    if idempotency_key is not None:
        first = await run_in_threadpool(find_by_idempotency_key, session, idempotency_key, key.key_id)
    if first is None:
        await run_in_threadpool(check_quota, settings)
    async with staging_area(settings) as staging:
        form = await receive_form(request, staging, settings.max_upload_mb * 2**20)
        fields = parse_fields(PredictionForm, form.fields)
        if first is not None and idempotency_key is not None:
            digest = await run_in_threadpool(request_digest, fields, form.files_of("channels"))
            response.status_code = 200
            return await run_in_threadpool(accepted, session, replayed(first, digest, idempotency_key))
        prediction = await run_in_threadpool(
            create_prediction,
            session,
            settings,
            celery,
            key.key_id,
            fields,
            form.files_of("channels"),
            staging,
            idempotency_key,
        )
    return await run_in_threadpool(accepted, session, prediction)


@router.get("/{prediction_id}", dependencies=[READ_PREDICTIONS])
def get_prediction(prediction: PredictionDep, session: SessionDep) -> PredictionPublic:
    return prediction_public(session, prediction)


@router.get(
    "/{prediction_id}/segmentation",
    dependencies=[READ_PREDICTIONS],
    response_class=FileResponse,
    responses={200: {"content": NIFTI_TYPES}, 409: {"description": "not finished yet"}},
)
def download_segmentation(
    prediction: PredictionDep, session: SessionDep, settings: SettingsDep
) -> FileResponse:
    """The label map, in the input's format and exact geometry (spacing, origin, direction)."""
    path = result_file(session, settings, prediction, "segmentation")
    return FileResponse(path, filename=path.name)


@router.get(
    "/{prediction_id}/probabilities",
    dependencies=[READ_PREDICTIONS],
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 409: {"description": "not finished yet"}},
)
def download_probabilities(
    prediction: PredictionDep, session: SessionDep, settings: SettingsDep
) -> FileResponse:
    """Class probabilities (.npz), when the prediction was posted with save_probabilities=true."""
    path = result_file(session, settings, prediction, "probabilities")
    return FileResponse(path, filename=path.name)


@router.delete("/{prediction_id}", status_code=204, dependencies=[DELETE])
def remove_prediction(prediction: PredictionDep, session: SessionDep, settings: SettingsDep) -> Response:
    delete_prediction(session, settings, prediction)
    return Response(status_code=204)
