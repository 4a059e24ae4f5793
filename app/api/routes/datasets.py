"""Datasets: upload an archive, or create an empty dataset and add cases one by one; list, get, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from app.api.deps import DatasetDep, SessionDep, SettingsDep
from app.api.forms import FilePart, multipart_body, parse_fields
from app.api.roles import DELETE, READ_DATASETS, WRITE_DATASETS
from app.multipart import receive_form
from app.operations.cases import add_case
from app.operations.datasets import (
    create_empty,
    dataset_public,
    dataset_summary,
    delete_dataset,
    register_archive,
)
from app.schemas.datasets import (
    CASE_PATTERN,
    CaseForm,
    DatasetCasePublic,
    DatasetCreate,
    DatasetPublic,
    DatasetsPublic,
    DatasetUploadForm,
)
from app.staging import check_quota, staging_area
from service.db.models import Dataset

router = APIRouter(prefix="/datasets", tags=["datasets"])

ARCHIVE_PART = FilePart(
    "the dataset as .zip, .tar or .tar.gz: dataset.json, imagesTr/, labelsTr/ (imagesTs/)"
)


@router.post(
    "/upload",
    status_code=201,
    dependencies=[WRITE_DATASETS],
    openapi_extra=multipart_body(DatasetUploadForm, {"archive": ARCHIVE_PART}),
)
async def upload_dataset(request: Request, session: SessionDep, settings: SettingsDep) -> DatasetPublic:
    """Streams the archive to staging (413 past the upload limit), checks its member paths and expansion
    ratio, unpacks it and runs every check of `nnsvc verify`; only a clean dataset is moved into place.
    Every problem found is listed in one 422."""
    await run_in_threadpool(check_quota, settings)
    async with staging_area(settings) as staging:
        form = await receive_form(request, staging, settings.max_upload_mb * 2**20)
        fields = parse_fields(DatasetUploadForm, form.fields)
        archive = form.one_file("archive")
        dataset = await run_in_threadpool(register_archive, session, settings, archive, fields, staging)
    return dataset_public(dataset)


@router.post("", status_code=201, dependencies=[WRITE_DATASETS])
async def create_dataset(body: DatasetCreate, session: SessionDep, settings: SettingsDep) -> DatasetPublic:
    """An empty dataset from dataset.json's fields; add cases with PUT /v1/datasets/{id}/cases/{name}."""
    async with staging_area(settings) as staging:
        dataset = await run_in_threadpool(create_empty, session, settings, body, staging)
    return dataset_public(dataset)


@router.put(
    "/{dataset_id}/cases/{case_name}",
    dependencies=[WRITE_DATASETS],
    openapi_extra=multipart_body(
        CaseForm,
        {
            "channels": FilePart("one file per channel, in channel order", is_repeated=True),
            "label": FilePart("the label map; required unless is_test", is_required=False),
        },
    ),
)
async def put_case(
    request: Request,
    dataset: DatasetDep,
    case_name: Annotated[str, Path(pattern=CASE_PATTERN)],
    session: SessionDep,
    settings: SettingsDep,
) -> DatasetCasePublic:
    """Adds the case, or replaces it: its files pass the same checks as `nnsvc verify` (readable, one
    geometry, finite voxels, declared label values) before they join the dataset."""
    await run_in_threadpool(check_quota, settings)
    async with staging_area(settings) as staging:
        form = await receive_form(request, staging, settings.max_upload_mb * 2**20)
        fields = parse_fields(CaseForm, form.fields)
        channels, label = form.files_of("channels"), form.optional_file("label")
        case = await run_in_threadpool(
            add_case, session, settings, dataset, case_name, fields, channels, label, staging
        )
    return DatasetCasePublic.model_validate(case)


@router.get("", dependencies=[READ_DATASETS])
def list_datasets(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DatasetsPublic:
    count = session.scalar(select(func.count()).select_from(Dataset)) or 0
    rows = session.scalars(select(Dataset).order_by(Dataset.created_at.desc()).limit(limit).offset(offset))
    return DatasetsPublic(data=[dataset_summary(dataset) for dataset in rows], count=count)


@router.get("/{dataset_id}", dependencies=[READ_DATASETS])
def get_dataset(dataset: DatasetDep) -> DatasetPublic:
    """dataset.json, the cases, and the fingerprint once a plan job has measured the dataset."""
    return dataset_public(dataset)


@router.delete("/{dataset_id}", status_code=204, dependencies=[DELETE])
def remove_dataset(dataset: DatasetDep, session: SessionDep, settings: SettingsDep) -> Response:
    """Deletes the dataset's files, rows and plans; refused (409) while a job works on it."""
    delete_dataset(session, settings, dataset)
    return Response(status_code=204)
