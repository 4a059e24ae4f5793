"""The model registry: resolving `name:version` references, deleting a model with its files, and
accepting an nnU-Net v2 model archive for import."""

from __future__ import annotations

import os
import shutil

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.archives import check_archive
from app.errors import Conflict, NotFound, Unprocessable
from app.multipart import StagedFile
from app.operations.jobs import submit
from app.schemas.models import MODEL_REF_DESCRIPTION, ModelImportForm
from app.staging import check_quota, remove_with_rows
from service import paths
from service.db.models import Evaluation, Job, JobKind, JobStatus, Model, Prediction, new_id
from service.jobs import create_job
from service.settings import Settings


def resolve_model(session: Session, ref: str, loc: list[str | int]) -> Model:
    """The model `ref` names: an id, a name (latest version), `name:latest` or `name:<version>`."""
    found = session.get(Model, ref)
    if found is not None:
        return found
    name, _, version = ref.partition(":")
    query = select(Model).where(Model.name == name)
    if version.isdigit():
        found = session.scalar(query.where(Model.version == int(version)))
    elif version in ("", "latest"):
        found = session.scalar(query.order_by(Model.version.desc()).limit(1))
    if found is None:
        raise NotFound(f"no model {ref!r}; give {MODEL_REF_DESCRIPTION}", loc=loc)
    return found


def delete_model(session: Session, settings: Settings, model: Model) -> None:
    """Delete the model, its predictions (rows and files) and its folder; refused while jobs use it."""
    predictions = list(session.scalars(select(Prediction).where(Prediction.model_id == model.id)))
    busy_ids = {p.job_id for p in predictions} | set(
        session.scalars(select(Evaluation.job_id).where(Evaluation.model_id == model.id))
    )
    busy = list(
        session.scalars(
            select(Job).where(Job.id.in_(busy_ids), Job.status.in_([JobStatus.queued, JobStatus.running]))
        )
    )
    if busy:
        raise Conflict(
            [f"job {job.id} ({job.kind}, {job.status}) uses this model" for job in busy],
            message="the model is in use; cancel those jobs or wait for them to finish",
        )
    folders = [paths.absolute(settings, model.path), *(paths.absolute(settings, p.path) for p in predictions)]
    remove_with_rows(session, settings, folders, [*predictions, model])


def accept_import(
    session: Session,
    settings: Settings,
    celery: Celery,
    api_key_id: int,
    upload: StagedFile,
    form: ModelImportForm,
) -> Job:
    """Check the archive like a dataset upload, park it under staging/imports and queue the import;
    the worker unpacks and converts it (core.interop)."""
    archive = check_archive(upload.path, settings.max_expansion_ratio, "archive")
    if archive.kind != "zip":  # core.interop reads zips, the format of nnU-Net's own model export
        raise Unprocessable(
            "send the model as a .zip (as nnUNetv2_export_model_to_zip writes it)", loc=["body", "archive"]
        )
    check_quota(settings, archive.unpacked_bytes)
    parked = paths.staging_dir(settings) / "imports" / new_id() / "archive.zip"
    parked.parent.mkdir(parents=True)
    os.replace(upload.path, parked)
    job = create_job(
        session,
        JobKind.import_model,
        {"archive_path": paths.relative(settings, parked), "model_name": form.model_name},
        api_key_id=api_key_id,
    )
    try:
        submit(session, celery, job)
    except BaseException:
        session.rollback()
        shutil.rmtree(parked.parent, ignore_errors=True)
        raise
    return job
