"""`verify_dataset` reports every problem of a dataset in one run (issue: at least 8 kinds at once)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from core.verification import verify_dataset


def rewrite(path: Path, change: Callable[[sitk.Image], sitk.Image]) -> None:
    """Read an image, let `change` return a new one, write it back."""
    image = sitk.ReadImage(str(path))
    sitk.WriteImage(change(image), str(path))


def with_array(image: sitk.Image, array: np.ndarray) -> sitk.Image:
    new = sitk.GetImageFromArray(array)
    new.CopyInformation(image)
    return new


def shifted_origin(image: sitk.Image) -> sitk.Image:
    image.SetOrigin(tuple(o + 5.0 for o in image.GetOrigin()))
    return image


def rotated_direction(image: sitk.Image) -> sitk.Image:
    image.SetDirection((0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    return image


def scaled_spacing(image: sitk.Image) -> sitk.Image:
    image.SetSpacing(tuple(s * 1.5 for s in image.GetSpacing()))
    return image


def cropped_by_one(image: sitk.Image) -> sitk.Image:
    return image[:-1, :, :]


def with_undeclared_label(image: sitk.Image) -> sitk.Image:
    array = sitk.GetArrayFromImage(image)
    array[0, 0, 0] = 7
    return with_array(image, array)


def with_fractional_label(image: sitk.Image) -> sitk.Image:
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    array[0, 0, 0] = 0.5
    return with_array(image, array)


def with_nan(image: sitk.Image) -> sitk.Image:
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    array[1, 2, 3] = np.nan
    return with_array(image, array)


@pytest.fixture
def broken_dataset(raw_dataset, tmp_path: Path) -> Path:
    """The generated MR set (2 channels, 10 cases) with one problem of each kind planted.

    MetaImage files, because SimpleITK's NIfTI writer turns NaN into 0 and could not plant one.
    """
    raw = tmp_path / "broken"
    shutil.copytree(raw_dataset("mr", file_ending=".mha"), raw)
    images, labels = raw / "imagesTr", raw / "labelsTr"
    (images / "case_000_0000.mha").write_bytes(b"this is not a NIfTI file")
    (images / "case_001_0001.mha").unlink()
    (images / "notes.txt").write_text("stray")
    (labels / "case_002.mha").unlink()
    rewrite(labels / "case_003.mha", cropped_by_one)
    rewrite(images / "case_004_0001.mha", scaled_spacing)
    rewrite(labels / "case_005.mha", shifted_origin)
    rewrite(labels / "case_006.mha", rotated_direction)
    rewrite(labels / "case_007.mha", with_undeclared_label)
    rewrite(labels / "case_008.mha", with_fractional_label)
    rewrite(images / "case_009_0000.mha", with_nan)
    document = json.loads((raw / "dataset.json").read_text())
    document["numTraining"] = 12
    (raw / "dataset.json").write_text(json.dumps(document))
    return raw


EXPECTED = {
    ("unreadable_file", "case_000"),
    ("missing_channel", "case_001"),
    ("stray_file", None),
    ("missing_label", "case_002"),
    ("shape_mismatch", "case_003"),
    ("spacing_mismatch", "case_004"),
    ("origin_mismatch", "case_005"),
    ("direction_mismatch", "case_006"),
    ("undeclared_label", "case_007"),
    ("non_integer_labels", "case_008"),
    ("non_finite_voxels", "case_009"),
    ("num_training_mismatch", None),
}


@pytest.mark.parametrize("workers", [1, 2])
def test_every_planted_problem_is_reported_in_one_run(broken_dataset: Path, workers: int) -> None:
    problems = verify_dataset(broken_dataset, workers=workers)
    found = {(p.kind, p.case) for p in problems}
    assert found == EXPECTED, sorted(found ^ EXPECTED, key=str)
    stray = next(p for p in problems if p.kind == "stray_file")
    assert stray.file == "imagesTr/notes.txt"
    assert "7" in next(p for p in problems if p.kind == "undeclared_label").message


def test_a_clean_dataset_has_no_problems(raw_dataset) -> None:
    for preset in ("mr", "ct", "2d"):
        assert verify_dataset(raw_dataset(preset), workers=2) == [], preset


def test_an_invalid_dataset_json_lists_all_its_problems(tmp_path: Path) -> None:
    (tmp_path / "dataset.json").write_text(
        json.dumps({"channel_names": {"0": "CT", "2": "MR"}, "labels": {"bg": 0, "a": 2}, "numTraining": -1})
    )
    messages = [p.message for p in verify_dataset(tmp_path)]
    assert {p.kind for p in verify_dataset(tmp_path)} == {"invalid_dataset_json"}
    for fragment in ("file_ending", "channel_names keys", "'background'", "consecutive", "numTraining"):
        assert any(fragment in message for message in messages), fragment


def test_unparseable_dataset_json_and_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "dataset.json").write_text("{not json")
    (problem,) = verify_dataset(tmp_path)
    assert "not valid JSON" in problem.message
    (problem,) = verify_dataset(tmp_path / "absent")
    assert problem.kind == "missing_folder"
