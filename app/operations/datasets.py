"""Datasets: register an uploaded archive once it passes every check `nnsvc verify` makes, create an
empty one, show and delete them. Files move into DATA_ROOT/datasets/<id>/raw by one rename from the
staging folder, and a failed commit takes them back out, so files and rows never disagree."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.archives import check_archive, unpack
from app.errors import Conflict, Unprocessable
from app.multipart import StagedFile
from app.schemas.common import Problem
from app.schemas.datasets import (
    DatasetCasePublic,
    DatasetCreate,
    DatasetPublic,
    DatasetSummary,
    DatasetUploadForm,
)
from app.staging import check_quota, remove_with_rows
from core.dataset import DatasetError, DatasetSpec, group_channel_files, load_dataset_json, parse_dataset_json
from core.files import write_json_atomically
from core.io import SUPPORTED_FILE_ENDINGS
from core.verification import Problem as DatasetProblem
from core.verification import verify_dataset
from service import paths
from service.db.models import Dataset, DatasetCase, Evaluation, Job, JobStatus, new_id
from service.settings import Settings

# Formats stored as one file per image; .mhd/.nhdr keep their voxels in a second file.
SINGLE_FILE_ENDINGS = tuple(e for e in SUPPORTED_FILE_ENDINGS if e not in (".mhd", ".nhdr"))
HIDDEN_TOP_FOLDERS = ("__MACOSX",)


def dataset_summary(dataset: Dataset) -> DatasetSummary:
    return DatasetSummary.model_validate(
        {
            **{
                key: getattr(dataset, key)
                for key in ("id", "name", "description", "size_bytes", "created_at")
            },
            "num_training": sum(1 for case in dataset.cases if not case.is_test),
            "num_test": sum(1 for case in dataset.cases if case.is_test),
            "has_fingerprint": dataset.fingerprint is not None,
        }
    )


def dataset_public(dataset: Dataset) -> DatasetPublic:
    return DatasetPublic(
        **dataset_summary(dataset).model_dump(),
        spec=dataset.spec,
        fingerprint=dataset.fingerprint,
        cases=[DatasetCasePublic.model_validate(case) for case in dataset.cases],
    )


def register_archive(
    session: Session, settings: Settings, upload: StagedFile, form: DatasetUploadForm, staging: Path
) -> Dataset:
    """Check, unpack and verify an uploaded dataset archive, then move it into place and add its rows."""
    archive = check_archive(upload.path, settings.max_expansion_ratio, "archive")
    check_quota(settings, archive.unpacked_bytes)
    unpack(archive, staging / "unpacked", archive.unpacked_bytes, "archive")
    root = dataset_root(staging / "unpacked")
    problems = verify_dataset(root)
    if problems:
        raise Unprocessable(
            [verification_problem(problem, "archive") for problem in problems],
            message=f"{len(problems)} problem(s) with the uploaded dataset",
        )
    spec = load_dataset_json(root / "dataset.json")
    dataset = Dataset(
        id=new_id(),
        name=form.name or str(spec.raw.get("name") or upload.filename.split(".")[0]),
        description=form.description or str(spec.raw.get("description", "")),
        spec=spec.raw,
        size_bytes=archive.unpacked_bytes,
    )
    dataset.cases = case_rows(root, spec)
    move_in_and_commit(session, settings, dataset, root)
    return dataset


def dataset_root(unpacked: Path) -> Path:
    """The folder holding dataset.json: the archive's root or its single top folder."""
    if (unpacked / "dataset.json").is_file():
        return unpacked
    tops = [p for p in unpacked.iterdir() if not p.name.startswith(".") and p.name not in HIDDEN_TOP_FOLDERS]
    if len(tops) == 1 and (tops[0] / "dataset.json").is_file():
        return tops[0]
    raise Unprocessable(
        "no dataset.json at the archive's root or in its single top folder; an nnU-Net raw dataset holds "
        "dataset.json, imagesTr/ and labelsTr/",
        loc=["body", "archive"],
        kind="missing_dataset_json",
    )


def verification_problem(problem: DatasetProblem, field: str) -> Problem:
    where = problem.file or problem.case
    return Problem(
        loc=["body", field, where] if where else ["body", field], problem=str(problem), kind=problem.kind
    )


def case_rows(raw: Path, spec: DatasetSpec) -> list[DatasetCase]:
    rows = []
    for images, labels, is_test in (("imagesTr", "labelsTr", False), ("imagesTs", "labelsTs", True)):
        grouped, _ = group_channel_files(raw / images, spec.file_ending)
        for name in sorted(grouped):
            has_label = (raw / labels / f"{name}{spec.file_ending}").is_file()
            rows.append(DatasetCase(name=name, has_label=has_label, is_test=is_test))
    return rows


def move_in_and_commit(session: Session, settings: Settings, dataset: Dataset, raw: Path) -> None:
    """Rename `raw` to the dataset's raw folder, then commit its rows; undo the rename if that fails."""
    target = paths.raw_dir(settings, dataset.id)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(raw, target)
    dataset.path = paths.relative(settings, target)
    try:
        session.add(dataset)
        session.commit()
    except BaseException:
        session.rollback()
        shutil.rmtree(paths.dataset_dir(settings, dataset.id), ignore_errors=True)
        raise


def create_empty(session: Session, settings: Settings, body: DatasetCreate, staging: Path) -> Dataset:
    """A dataset with a dataset.json and no case yet; cases arrive one by one."""
    document: dict[str, object] = {
        "name": body.name,
        "description": body.description,
        "channel_names": body.channel_names,
        "labels": body.labels,
        "numTraining": 0,
        "file_ending": body.file_ending,
    }
    if body.regions_class_order is not None:
        document["regions_class_order"] = body.regions_class_order
    problems = []
    if body.file_ending not in SINGLE_FILE_ENDINGS:
        problems.append(
            Problem(
                loc=["body", "file_ending"],
                problem=f"file_ending must be one of {', '.join(SINGLE_FILE_ENDINGS)}, "
                f"got {body.file_ending!r}",
            )
        )
    try:
        parse_dataset_json(document)
    except DatasetError as error:
        problems.extend(Problem(loc=["body"], problem=line) for line in error.problems)
    if problems:
        raise Unprocessable(problems)
    raw = staging / "raw"
    for folder in ("imagesTr", "labelsTr"):
        (raw / folder).mkdir(parents=True)
    write_json_atomically(raw / "dataset.json", document)
    dataset = Dataset(id=new_id(), name=body.name, description=body.description, spec=document, cases=[])
    move_in_and_commit(session, settings, dataset, raw)
    return dataset


def active_jobs(session: Session, **params: str) -> list[Job]:
    """Unfinished jobs whose params hold every given key and value (few rows: only live jobs)."""
    live = session.scalars(select(Job).where(Job.status.in_([JobStatus.queued, JobStatus.running])))
    return [job for job in live if all(job.params.get(key) == value for key, value in params.items())]


def delete_dataset(session: Session, settings: Settings, dataset: Dataset) -> None:
    """Remove the rows (plans with them) and the files; refused while a job works on the dataset."""
    busy = active_jobs(session, dataset_id=dataset.id) + [
        evaluation_job
        for evaluation_job in session.scalars(
            select(Job)
            .join(Evaluation, Evaluation.job_id == Job.id)
            .where(Evaluation.dataset_id == dataset.id, Job.status.in_([JobStatus.queued, JobStatus.running]))
        )
    ]
    if busy:
        raise Conflict(
            [f"job {job.id} ({job.kind}, {job.status}) uses this dataset" for job in busy],
            message="the dataset is in use; cancel those jobs or wait for them to finish",
        )
    remove_with_rows(session, settings, [paths.dataset_dir(settings, dataset.id)], [dataset])


@contextmanager
def dataset_lock(settings: Settings, dataset_id: str) -> Iterator[None]:
    """One writer at a time per dataset, across API processes (cases arriving together)."""
    folder = paths.dataset_dir(settings, dataset_id)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
