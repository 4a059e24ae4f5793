"""Evaluations: of a model on a dataset's labelled cases, or of two archives of segmentations. Either way
the worker writes summary.json and decides `passed` from the thresholds; this side refuses what cannot
work before a job is queued (unknown labels, missing references, no labelled cases). An archive
evaluation's folder holds predictions/ (with the labels' dataset.json when known) and references/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from celery import Celery
from sqlalchemy.orm import Session

from app.archives import check_archive, unpack
from app.errors import NotFound, Unprocessable
from app.multipart import StagedFile
from app.operations.jobs import submit
from app.operations.models import resolve_model
from app.schemas.common import Problem
from app.schemas.evaluations import EvaluationArchiveForm, EvaluationCreate, EvaluationPublic
from app.staging import check_quota
from core.dataset import DatasetError, DatasetSpec, parse_dataset_json
from core.evaluation import paired_files
from core.files import write_json_atomically
from service import paths
from service.db.models import Dataset, Evaluation, Job, JobKind, new_id
from service.jobs import create_job
from service.settings import Settings

FOREGROUND_MEAN = "foreground_mean"


def threshold_names(spec: DatasetSpec | None) -> set[str]:
    """What a threshold may name: a label (by name, or by value unless labels are regions), or the
    foreground mean. Without a spec (labels read from the references later) values only."""
    if spec is None:
        return {FOREGROUND_MEAN}
    names = {name for name in spec.labels if name not in ("background", "ignore")}
    if not spec.has_regions:
        names |= {str(value) for value in spec.foreground_labels}
    return names | {FOREGROUND_MEAN}


def check_thresholds(spec: DatasetSpec | None, thresholds: dict[str, float], loc: list[str | int]) -> None:
    allowed = threshold_names(spec)
    unknown = [name for name in thresholds if name not in allowed and not (spec is None and name.isdigit())]
    if unknown:
        raise Unprocessable(
            [
                Problem(
                    loc=[*loc, name], problem=f"no label {name!r} to threshold; use one of {sorted(allowed)}"
                )
                for name in unknown
            ]
        )


def start_evaluation(
    session: Session, settings: Settings, celery: Celery, api_key_id: int, body: EvaluationCreate
) -> Evaluation:
    model = resolve_model(session, body.model, ["body", "model"])
    dataset = session.get(Dataset, body.dataset_id)
    if dataset is None:
        raise NotFound(f"no dataset has the id {body.dataset_id!r}", loc=["body", "dataset_id"])
    spec = parse_dataset_json(dataset.spec)
    problems = []
    if model.num_input_channels != spec.num_channels:
        problems.append(
            Problem(
                loc=["body", "dataset_id"],
                problem=f"the model takes {model.num_input_channels} channel(s), "
                f"the dataset has {spec.num_channels}",
            )
        )
    labelled = [case for case in dataset.cases if case.has_label and case.is_test != body.use_training_cases]
    if not labelled:
        which = (
            "training cases (imagesTr/)" if body.use_training_cases else "test cases (imagesTs/ + labelsTs/)"
        )
        problems.append(Problem(loc=["body", "dataset_id"], problem=f"the dataset has no labelled {which}"))
    if problems:
        raise Unprocessable(problems)
    check_thresholds(spec, body.thresholds, ["body", "thresholds"])
    evaluation_id = new_id()
    params = {"evaluation_id": evaluation_id, "use_training_cases": body.use_training_cases}
    job = create_job(session, JobKind.evaluate, params, api_key_id=api_key_id)
    evaluation = Evaluation(
        id=evaluation_id,
        job_id=job.id,
        model_id=model.id,
        dataset_id=dataset.id,
        path=paths.relative(settings, paths.evaluation_dir(settings, evaluation_id)),
        thresholds=body.thresholds,
    )
    session.add(evaluation)
    submit(session, celery, job)
    return evaluation


def archive_spec(session: Session, form: EvaluationArchiveForm) -> DatasetSpec | None:
    """Labels and file ending of the segmentations: the dataset's, the form's, or None (the worker then
    evaluates the labels found in the references)."""
    if form.dataset_id is not None:
        dataset = session.get(Dataset, form.dataset_id)
        if dataset is None:
            raise NotFound(f"no dataset has the id {form.dataset_id!r}", loc=["body", "dataset_id"])
        labels = dataset.spec["labels"]
    elif form.labels is not None:
        labels = form.labels
    else:
        return None
    document = {
        "channel_names": {"0": "any"},
        "labels": labels,
        "numTraining": 0,
        "file_ending": form.file_ending,
    }
    try:
        return parse_dataset_json(document)
    except DatasetError as error:
        raise Unprocessable(
            [Problem(loc=["body", "labels"], problem=line) for line in error.problems]
        ) from None


def start_archive_evaluation(
    session: Session,
    settings: Settings,
    celery: Celery,
    api_key_id: int,
    form: EvaluationArchiveForm,
    uploads: dict[str, StagedFile],
    staging: Path,
) -> Evaluation:
    """Unpack predictions and references, check that every prediction has its reference, then queue."""
    spec = archive_spec(session, form)
    check_thresholds(spec, form.thresholds, ["body", "thresholds"])
    archives = {
        field: check_archive(upload.path, settings.max_expansion_ratio, field)
        for field, upload in uploads.items()
    }
    check_quota(settings, sum(archive.unpacked_bytes for archive in archives.values()))
    folder = staging / "evaluation"
    folder.mkdir()
    for field, archive in archives.items():
        unpack(archive, staging / field, archive.unpacked_bytes, field)
        os.replace(single_top_folder(staging / field), folder / field)
    paired_files(folder / "predictions", folder / "references", form.file_ending)
    if spec is not None:  # the worker looks for the labels beside the predictions first
        write_json_atomically(folder / "predictions" / "dataset.json", spec.raw)
    evaluation_id = new_id()
    target = paths.evaluation_dir(settings, evaluation_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(folder, target)
    job = create_job(session, JobKind.evaluate, {"evaluation_id": evaluation_id}, api_key_id=api_key_id)
    evaluation = Evaluation(
        id=evaluation_id,
        job_id=job.id,
        dataset_id=form.dataset_id,
        path=paths.relative(settings, target),
        thresholds=form.thresholds,
    )
    session.add(evaluation)
    try:
        submit(session, celery, job)
    except BaseException:
        session.rollback()
        shutil.rmtree(target, ignore_errors=True)
        raise
    return evaluation


def single_top_folder(unpacked: Path) -> Path:
    """An archive of one folder holding the files: that folder; otherwise the archive's root."""
    entries = [entry for entry in unpacked.iterdir() if not entry.name.startswith(".")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else unpacked


def evaluation_public(session: Session, evaluation: Evaluation) -> EvaluationPublic:
    job = session.get_one(Job, evaluation.job_id)
    return EvaluationPublic(
        id=evaluation.id,
        job_id=job.id,
        status=job.status.value,
        model_id=evaluation.model_id,
        dataset_id=evaluation.dataset_id,
        thresholds=evaluation.thresholds,
        summary=evaluation.summary,
        passed=evaluation.passed,
        created_at=evaluation.created_at,
    )
