"""The model registry: list, get by id or `name:version`, delete, and import an nnU-Net v2 model."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from app.api.deps import ApiKeyDep, CeleryDep, ModelDep, SessionDep, SettingsDep, load_or_404
from app.api.forms import FilePart, multipart_body, parse_fields
from app.api.roles import DELETE, IMPORT_MODELS, READ_MODELS
from app.multipart import receive_form
from app.operations.jobs import job_public
from app.operations.models import accept_import, delete_model
from app.schemas.jobs import JobPublic
from app.schemas.models import ModelImportForm, ModelPublic, ModelsPublic
from app.staging import check_quota, staging_area
from service.db.models import Model

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", dependencies=[READ_MODELS])
def list_models(
    session: SessionDep,
    name: Annotated[str | None, Query(description="only the versions of this name")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ModelsPublic:
    """Sorted by name, newest version first."""
    conditions = [] if name is None else [Model.name == name]
    count = session.scalar(select(func.count()).select_from(Model).where(*conditions)) or 0
    rows = session.scalars(
        select(Model)
        .where(*conditions)
        .order_by(Model.name, Model.version.desc())
        .limit(limit)
        .offset(offset)
    )
    return ModelsPublic(data=[ModelPublic.model_validate(model) for model in rows], count=count)


@router.get("/{model_ref}", dependencies=[READ_MODELS])
def get_model(model: ModelDep) -> ModelPublic:
    """Configurations, folds, cross-validation metrics and the selection of one model version."""
    return ModelPublic.model_validate(model)


@router.delete("/{model_id}", status_code=204, dependencies=[DELETE])
def remove_model(model_id: str, session: SessionDep, settings: SettingsDep) -> Response:
    """Deletes the model version (by id only), its files and its predictions; 409 while jobs use it."""
    delete_model(session, settings, load_or_404(session, Model, model_id, "model_id"))
    return Response(status_code=204)


@router.post(
    "/import",
    status_code=202,
    dependencies=[IMPORT_MODELS],
    openapi_extra=multipart_body(
        ModelImportForm,
        {
            "archive": FilePart(
                "an nnU-Net v2 results folder (plans, dataset.json, fold_X/checkpoints) as .zip/.tar"
            )
        },
    ),
)
async def import_model(
    request: Request, session: SessionDep, settings: SettingsDep, celery: CeleryDep, key: ApiKeyDep
) -> JobPublic:
    """Checks the archive like a dataset upload and queues an import job, which registers the next
    version of `model_name` when it succeeds."""
    await run_in_threadpool(check_quota, settings)
    async with staging_area(settings) as staging:
        form = await receive_form(request, staging, settings.max_upload_mb * 2**20)
        fields = parse_fields(ModelImportForm, form.fields)
        job = await run_in_threadpool(
            accept_import, session, settings, celery, key.key_id, form.one_file("archive"), fields
        )
    return await run_in_threadpool(job_public, session, job)
