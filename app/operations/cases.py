"""Adding one case to a dataset, for bridges that collect studies over time. The files are named and
laid out in staging as the raw format wants them, checked with the same per-case checks as `nnsvc
verify`, then moved in under the dataset's lock; dataset.json's numTraining is recounted each time."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.orm import Session

from app.errors import Unprocessable
from app.multipart import StagedFile
from app.operations.datasets import dataset_lock, verification_problem
from app.schemas.common import Problem
from app.schemas.datasets import CaseForm
from app.staging import usage_bytes
from core.dataset import DatasetSpec, TrainingCase, group_channel_files, parse_dataset_json
from core.files import write_json_atomically
from core.io import file_ending_of
from core.verification import check_case
from service import paths
from service.db.models import Dataset, DatasetCase
from service.settings import Settings

CASE_FOLDERS = ("imagesTr", "labelsTr", "imagesTs", "labelsTs")


def check_case_files(
    spec: DatasetSpec, channels: list[StagedFile], label: StagedFile | None, is_test: bool
) -> list[Problem]:
    """What is wrong with the request before any image is read: counts, file endings, a missing label."""
    problems = []
    if len(channels) != spec.num_channels:
        names = ", ".join(spec.channel_names.values())
        problems.append(
            Problem(
                loc=["body", "channels"],
                problem=f"the dataset has {spec.num_channels} channel(s) ({names}); "
                f"{len(channels)} file(s) were sent",
                kind="channel_count",
            )
        )
    for staged in [*channels, *([label] if label else [])]:
        ending = file_ending_of(staged.filename)
        if ending != spec.file_ending:
            problems.append(
                Problem(
                    loc=["body", staged.field, staged.filename],
                    problem=f"{staged.filename}: the dataset stores {spec.file_ending} files, "
                    f"not {ending or 'this kind'}",
                    kind="file_ending",
                )
            )
    if label is None and not is_test:
        problems.append(
            Problem(
                loc=["body", "label"],
                problem="a training case needs a label file; send is_test=true for an unlabelled test case",
            )
        )
    return problems


def add_case(
    session: Session,
    settings: Settings,
    dataset: Dataset,
    name: str,
    form: CaseForm,
    channels: list[StagedFile],
    label: StagedFile | None,
    staging: Path,
) -> DatasetCase:
    """Add the case `name`, or replace it when it exists (a bridge may resend a study)."""
    spec = parse_dataset_json(dataset.spec)
    problems = check_case_files(spec, channels, label, form.is_test)
    if problems:
        raise Unprocessable(problems)
    images, labels = ("imagesTs", "labelsTs") if form.is_test else ("imagesTr", "labelsTr")
    new = staging / "case"
    placed = []
    for index, staged in enumerate(channels):
        placed.append(_place(staged.path, new / images / f"{name}_{index:04d}{spec.file_ending}"))
    label_path = _place(label.path, new / labels / f"{name}{spec.file_ending}") if label else None
    found = check_case(TrainingCase(name, tuple(placed), label_path), spec)
    if found:
        raise Unprocessable([verification_problem(problem, "channels") for problem in found])
    raw = paths.raw_dir(settings, dataset.id)
    with dataset_lock(settings, dataset.id):
        replaced = _move_out(raw, name, spec.file_ending, staging / "replaced")
        moved = [
            _place(path, raw / path.relative_to(new))
            for path in [*placed, *([label_path] if label_path else [])]
        ]
        try:
            row = _record(session, dataset, name, label is not None, form.is_test, raw, spec)
        except BaseException:
            session.rollback()
            for path in moved:
                path.unlink(missing_ok=True)
            for path in replaced:
                _place(path, raw / path.relative_to(staging / "replaced"))
            raise
        write_json_atomically(raw / "dataset.json", dataset.spec)
    return row


def _place(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
    return target


def _move_out(raw: Path, name: str, file_ending: str, aside: Path) -> list[Path]:
    """Move an existing case's files aside (to restore them if the commit fails)."""
    moved = []
    for folder in CASE_FOLDERS:
        grouped, _ = group_channel_files(raw / folder, file_ending)
        files = list(grouped.get(name, {}).values())
        if (raw / folder / f"{name}{file_ending}").is_file():
            files.append(raw / folder / f"{name}{file_ending}")
        moved.extend(_place(path, aside / folder / path.name) for path in files)
    return moved


def _record(
    session: Session,
    dataset: Dataset,
    name: str,
    has_label: bool,
    is_test: bool,
    raw: Path,
    spec: DatasetSpec,
) -> DatasetCase:
    """Recount numTraining from imagesTr/, upsert the case row, commit."""
    training, _ = group_channel_files(raw / "imagesTr", spec.file_ending)
    document = {**dataset.spec, "numTraining": len(training)}
    row = next((case for case in dataset.cases if case.name == name), None)
    if row is None:
        row = DatasetCase(name=name)
        dataset.cases.append(row)
    row.has_label, row.is_test = has_label, is_test
    dataset.spec = document
    dataset.size_bytes = usage_bytes(raw)
    session.commit()
    return row
