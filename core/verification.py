"""Check a raw dataset and report every problem at once, not just the first.

A person fixing a dataset by hand wants the whole list in one run; a service refusing an upload wants to
say everything that is wrong with it. Each check adds `Problem`s and carries on; only a dataset.json
that cannot be read at all stops the case checks, since they depend on its file ending and channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from core.dataset import (
    DatasetError,
    DatasetSpec,
    TrainingCase,
    group_channel_files,
    load_dataset_json,
)
from core.io import ImageReadError, as_volume, read_sitk
from core.parallel import ProgressCallback, map_cases, no_progress

SPACING_RELATIVE_TOLERANCE = 1e-4
ORIGIN_TOLERANCE_MM = 1e-3
DIRECTION_TOLERANCE = 1e-4
MAX_LISTED_VALUES = 10


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset; `case` and `file` say where, when it is about one."""

    kind: str
    message: str
    case: str | None = None
    file: str | None = None

    def __str__(self) -> str:
        where = self.file or self.case
        return f"[{self.kind}] {where}: {self.message}" if where else f"[{self.kind}] {self.message}"

    def to_json(self) -> dict[str, str | None]:
        return {"kind": self.kind, "message": self.message, "case": self.case, "file": self.file}


def verify_dataset(
    raw_dir: Path, workers: int = 1, progress: ProgressCallback = no_progress
) -> list[Problem]:
    """Every problem of the raw dataset at `raw_dir`; an empty list means it is ready to plan."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        return [Problem("missing_folder", f"{raw_dir} is not a folder")]
    try:
        spec = load_dataset_json(raw_dir / "dataset.json")
    except DatasetError as error:
        return [Problem("invalid_dataset_json", line) for line in error.problems]
    problems: list[Problem] = []
    cases = check_layout(raw_dir, spec, problems)
    checked = map_cases(
        partial(check_case, spec=spec),
        cases,
        workers,
        progress,
        stage="verify",
        describe=lambda case: case.identifier,
    )
    found = {case.identifier: case_problems for case, case_problems in checked}
    for case in cases:
        problems.extend(found[case.identifier])
    return problems


def check_layout(raw_dir: Path, spec: DatasetSpec, problems: list[Problem]) -> list[TrainingCase]:
    """Folder and file-name checks; returns the cases whose files can be checked further."""
    images_dir, labels_dir = raw_dir / "imagesTr", raw_dir / "labelsTr"
    for folder in (images_dir, labels_dir):
        if not folder.is_dir():
            problems.append(Problem("missing_folder", f"folder {folder.name}/ is missing"))
    grouped, strays = group_channel_files(images_dir, spec.file_ending)
    for stray in strays:
        problems.append(
            Problem(
                "stray_file",
                f"does not match CASE_XXXX{spec.file_ending} (4-digit channel index)",
                file=f"imagesTr/{stray.name}",
            )
        )
    if images_dir.is_dir() and len(grouped) != spec.num_training:
        problems.append(
            Problem(
                "num_training_mismatch",
                f"dataset.json says numTraining={spec.num_training} but imagesTr/ holds {len(grouped)} cases",
            )
        )
    cases = []
    expected_channels = set(range(spec.num_channels))
    for identifier in sorted(grouped):
        channels = grouped[identifier]
        missing = sorted(expected_channels - set(channels))
        extra = sorted(set(channels) - expected_channels)
        if missing:
            names = ", ".join(f"{identifier}_{c:04d}{spec.file_ending}" for c in missing)
            problems.append(Problem("missing_channel", f"channel file(s) missing: {names}", identifier))
        if extra:
            names = ", ".join(f"{identifier}_{c:04d}{spec.file_ending}" for c in extra)
            problems.append(
                Problem(
                    "unexpected_channel",
                    f"channel file(s) not declared in channel_names: {names}",
                    identifier,
                )
            )
        label = labels_dir / f"{identifier}{spec.file_ending}"
        if not label.is_file():
            problems.append(
                Problem("missing_label", f"label file labelsTr/{label.name} is missing", identifier)
            )
        images = tuple(channels[c] for c in sorted(channels) if c in expected_channels)
        cases.append(TrainingCase(identifier, images, label if label.is_file() else None))
    if labels_dir.is_dir():
        for path in sorted(labels_dir.iterdir()):
            if path.name.startswith("."):
                continue
            identifier = path.name[: -len(spec.file_ending)]
            if not path.name.endswith(spec.file_ending) or identifier not in grouped:
                problems.append(
                    Problem(
                        "stray_file",
                        "label file without a matching case in imagesTr/",
                        file=f"labelsTr/{path.name}",
                    )
                )
    check_test_images(raw_dir / "imagesTs", spec, problems)
    return cases


def check_test_images(folder: Path, spec: DatasetSpec, problems: list[Problem]) -> None:
    """imagesTs/ is optional, but when present its files must follow the same naming."""
    if not folder.is_dir():
        return
    grouped, strays = group_channel_files(folder, spec.file_ending)
    for stray in strays:
        problems.append(
            Problem("stray_file", "does not match CASE_XXXX<ending>", file=f"imagesTs/{stray.name}")
        )
    for identifier, channels in sorted(grouped.items()):
        if set(channels) != set(range(spec.num_channels)):
            problems.append(
                Problem(
                    "missing_channel",
                    f"imagesTs case has channels {sorted(channels)}, expected "
                    f"{list(range(spec.num_channels))}",
                    identifier,
                )
            )


def check_case(case: TrainingCase, spec: DatasetSpec) -> list[Problem]:
    """Read a case's files and check their contents and geometry against each other."""
    problems: list[Problem] = []
    reference = None
    for path in case.images:
        image = read_or_report(path, case.identifier, problems)
        if image is None:
            continue
        volume = as_volume(image)
        if not np.isfinite(volume).all():
            count = int((~np.isfinite(volume)).sum())
            problems.append(
                Problem("non_finite_voxels", f"{count} NaN or inf voxel(s)", case.identifier, rel(path))
            )
        if reference is None:
            reference = (path, image)
        else:
            compare_geometry(reference, (path, image), case.identifier, problems)
    if case.label is not None:
        label = read_or_report(case.label, case.identifier, problems)
        if label is not None:
            check_label_values(as_volume(label), spec, case.identifier, rel(case.label), problems)
            if reference is not None:
                compare_geometry(reference, (case.label, label), case.identifier, problems)
    return problems


def read_or_report(path: Path, case: str, problems: list[Problem]) -> sitk.Image | None:
    try:
        return read_sitk(path)
    except ImageReadError as error:
        problems.append(Problem("unreadable_file", str(error), case, rel(path)))
        return None


def rel(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


FileImage = tuple[Path, sitk.Image]


def compare_geometry(reference: FileImage, other: FileImage, case: str, problems: list[Problem]) -> None:
    """Shape, spacing, origin and direction of `other` must match the case's first channel."""
    (ref_path, ref), (path, image) = reference, other
    against = f"than {ref_path.name}"
    if image.GetSize() != ref.GetSize():
        problems.append(
            Problem(
                "shape_mismatch",
                f"size {image.GetSize()} differs from {ref.GetSize()} of {ref_path.name}",
                case,
                rel(path),
            )
        )
    checks = (
        ("spacing_mismatch", image.GetSpacing(), ref.GetSpacing(), SPACING_RELATIVE_TOLERANCE, 0.0),
        ("origin_mismatch", image.GetOrigin(), ref.GetOrigin(), 0.0, ORIGIN_TOLERANCE_MM),
        ("direction_mismatch", image.GetDirection(), ref.GetDirection(), 0.0, DIRECTION_TOLERANCE),
    )
    for kind, value, expected, rtol, atol in checks:
        if len(value) != len(expected) or not np.allclose(value, expected, rtol=rtol, atol=atol):
            what = kind.removesuffix("_mismatch")
            problems.append(
                Problem(
                    kind,
                    f"{what} {tuple(round(v, 6) for v in value)} differs {against} "
                    f"({tuple(round(v, 6) for v in expected)})",
                    case,
                    rel(path),
                )
            )


def check_label_values(
    volume: np.ndarray, spec: DatasetSpec, case: str, where: str, problems: list[Problem]
) -> None:
    """Label maps hold finite integers that dataset.json declares (background, labels, ignore)."""
    if not np.isfinite(volume).all():
        problems.append(Problem("non_finite_voxels", "label map holds NaN or inf", case, where))
        volume = volume[np.isfinite(volume)]
    values = np.unique(volume)
    if np.issubdtype(values.dtype, np.floating) and not np.array_equal(values, np.round(values)):
        fractional = values[values != np.round(values)][:MAX_LISTED_VALUES]
        problems.append(
            Problem(
                "non_integer_labels",
                f"label values must be integers, found {', '.join(f'{v:g}' for v in fractional)}",
                case,
                where,
            )
        )
        values = values[values == np.round(values)]
    undeclared = sorted(int(v) for v in values if int(v) not in spec.allowed_label_values)
    if undeclared:
        problems.append(
            Problem(
                "undeclared_label",
                f"label value(s) {undeclared[:MAX_LISTED_VALUES]} not declared in dataset.json "
                f"(declared: {sorted(spec.allowed_label_values)})",
                case,
                where,
            )
        )
