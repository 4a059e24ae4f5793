"""Predictions: accept one case for a model (checked like a dataset case, stored as
DATA_ROOT/predictions/<id>/input/<case>_<channel><ending>), replay an Idempotency-Key, serve the result
files, delete old ones.

A replayed Idempotency-Key must come with the same request: a bridge that reused a key for another
study would otherwise get the first study's segmentation back as this one's. The request's digest
(its options and each channel file's bytes, in order) is kept with the prediction and compared.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from celery import Celery
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, Unprocessable
from app.multipart import StagedFile
from app.operations.datasets import SINGLE_FILE_ENDINGS, verification_problem
from app.operations.jobs import artifact_path, submit
from app.operations.models import resolve_model
from app.schemas.common import Problem
from app.schemas.predictions import PredictionForm, PredictionPublic
from app.staging import remove_with_rows
from core.dataset import TrainingCase, parse_dataset_json
from core.io import file_ending_of
from core.verification import check_case
from service import paths
from service.db.models import Job, JobKind, JobStatus, Model, Prediction, new_id
from service.jobs import create_job
from service.settings import Settings

REQUEST_DIGEST = "request_digest"


def find_by_idempotency_key(session: Session, key: str, api_key_id: int) -> Prediction | None:
    """The prediction this API key posted first with this Idempotency-Key; other keys' are not seen."""
    return session.scalar(
        select(Prediction)
        .join(Job, Job.id == Prediction.job_id)
        .where(Job.kind == JobKind.predict, Job.api_key_id == api_key_id, Job.idempotency_key == key)
    )


def request_digest(form: PredictionForm, channels: list[StagedFile]) -> str:
    """SHA-256 of what makes two posts the same request: the parsed options, then each channel file's
    ending and bytes in order (the client's file name is not part of it)."""
    digest = hashlib.sha256(form.model_dump_json().encode())
    for staged in channels:
        digest.update(file_ending_of(staged.filename).encode() + b"\0")
        with staged.path.open("rb") as stream:
            digest.update(hashlib.file_digest(stream, "sha256").digest())
    return digest.hexdigest()


def replayed(first: Prediction, digest: str, idempotency_key: str) -> Prediction:
    """`first` when this post repeats its request; a post that reuses the key for another request is
    refused. Predictions stored without a digest (before it was kept) replay as before."""
    stored = first.options.get(REQUEST_DIGEST)
    if stored is not None and stored != digest:
        raise Unprocessable(
            Problem(
                loc=["header", "Idempotency-Key"],
                problem=f"Idempotency-Key {idempotency_key!r} was used for a different request "
                f"(prediction {first.id}: other options or files); send a new key for a new request",
                kind="idempotency_key_reused",
            )
        )
    return first


def check_request(model: Model, form: PredictionForm, channels: list[StagedFile]) -> list[Problem]:
    """Everything wrong with the request that needs no image read: channel count, file endings, options."""
    problems = []
    if len(channels) != model.num_input_channels:
        problems.append(
            Problem(
                loc=["body", "channels"],
                problem=f"model {model.name}:{model.version} takes {model.num_input_channels} channel "
                f"file(s), one per input channel in order; {len(channels)} sent",
                kind="channel_count",
            )
        )
    endings = {file_ending_of(staged.filename) for staged in channels}
    unsupported = sorted(ending or "(none)" for ending in endings if ending not in SINGLE_FILE_ENDINGS)
    if unsupported:
        problems.append(
            Problem(
                loc=["body", "channels"],
                problem=f"unsupported file ending(s) {unsupported}; send {', '.join(SINGLE_FILE_ENDINGS)}",
                kind="file_ending",
            )
        )
    elif len(endings) > 1:
        problems.append(
            Problem(loc=["body", "channels"], problem=f"channel files mix endings {sorted(endings)}")
        )
    if (
        form.configuration is not None
        and model.configurations
        and form.configuration not in model.configurations
    ):
        problems.append(
            Problem(
                loc=["body", "configuration"],
                problem=f"model has no configuration {form.configuration!r}; it has {model.configurations}",
            )
        )
    unknown_folds = sorted(
        set(form.fold_list or []) - {int(fold) for fold in model.folds if str(fold).isdigit()}
    )
    if model.folds and unknown_folds:
        problems.append(
            Problem(
                loc=["body", "folds"], problem=f"model has no fold(s) {unknown_folds}; it has {model.folds}"
            )
        )
    return problems


def create_prediction(
    session: Session,
    settings: Settings,
    celery: Celery,
    api_key_id: int,
    form: PredictionForm,
    channels: list[StagedFile],
    staging: Path,
    idempotency_key: str | None,
) -> Prediction:
    """Check the case, move it into place, write the rows and enqueue; a concurrent post with the
    same Idempotency-Key that committed first wins, and its prediction is returned (when the two are
    the same request)."""
    model = resolve_model(session, form.model, ["body", "model"])
    problems = check_request(model, form, channels)
    if problems:
        raise Unprocessable(problems)
    digest = request_digest(form, channels) if idempotency_key else None
    ending = file_ending_of(channels[0].filename)
    staged_input = staging / "prediction" / "input"
    placed = []
    for index, staged in enumerate(channels):
        target = staged_input / f"{form.case_id}_{index:04d}{ending}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.path, target)
        placed.append(target)
    # check_case needs a spec only to check label values, and a prediction sends no label.
    spec = parse_dataset_json(
        {
            "channel_names": {"0": "input"},
            "labels": {"background": 0},
            "numTraining": 0,
            "file_ending": ending,
        }
    )
    found = check_case(TrainingCase(form.case_id, tuple(placed), None), spec)
    if found:
        raise Unprocessable([verification_problem(problem, "channels") for problem in found])
    prediction_id = new_id()
    folder = paths.prediction_dir(settings, prediction_id)
    folder.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged_input.parent, folder)
    options = {
        "case_id": form.case_id,
        "file_ending": ending,
        "configuration": form.configuration,
        "folds": form.fold_list,
        "use_mirroring": form.use_mirroring,
        "save_probabilities": form.save_probabilities,
        "step_size": form.step_size,
    }
    if digest is not None:
        options[REQUEST_DIGEST] = digest
    try:
        job = create_job(
            session,
            JobKind.predict,
            {"prediction_id": prediction_id},
            idempotency_key=idempotency_key,
            api_key_id=api_key_id,
        )
        prediction = Prediction(
            id=prediction_id,
            model_id=model.id,
            job_id=job.id,
            path=paths.relative(settings, folder),
            options=options,
        )
        session.add(prediction)
        session.commit()
    except IntegrityError:
        session.rollback()
        shutil.rmtree(folder, ignore_errors=True)
        first = find_by_idempotency_key(session, idempotency_key, api_key_id) if idempotency_key else None
        if first is None or digest is None:
            raise
        return replayed(first, digest, idempotency_key)
    except BaseException:
        session.rollback()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    submit(session, celery, job)
    return prediction


def prediction_public(session: Session, prediction: Prediction) -> PredictionPublic:
    job = session.get_one(Job, prediction.job_id)
    model = session.get_one(Model, prediction.model_id)
    artifacts = (job.result or {}).get("artifacts", {}) if job.status == JobStatus.succeeded else {}
    base = f"/v1/predictions/{prediction.id}"
    return PredictionPublic(
        id=prediction.id,
        model_id=model.id,
        model_name=model.name,
        model_version=model.version,
        job_id=job.id,
        status=job.status.value,
        options=prediction.options,
        created_at=prediction.created_at,
        segmentation_url=f"{base}/segmentation" if "segmentation" in artifacts else None,
        probabilities_url=f"{base}/probabilities" if "probabilities" in artifacts else None,
    )


def result_file(session: Session, settings: Settings, prediction: Prediction, name: str) -> Path:
    """The prediction's `segmentation` or `probabilities` file, once its job has succeeded."""
    job = session.get_one(Job, prediction.job_id)
    if job.status != JobStatus.succeeded:
        raise Conflict(f"the prediction is {job.status.value}, not succeeded; poll /v1/jobs/{job.id}")
    return artifact_path(settings, job, name)


def delete_prediction(session: Session, settings: Settings, prediction: Prediction) -> None:
    """Its files, its row and its job row."""
    job = session.get_one(Job, prediction.job_id)
    remove_with_rows(session, settings, [paths.absolute(settings, prediction.path)], [prediction, job])
