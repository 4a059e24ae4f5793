"""The cascade's previous-stage files: the loader reads them beside the labels, missing ones are named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.preprocessed import save_array
from core.training.cascade import PreviousStageError, check_previous_stage
from core.training.data_loader import PatchSampling, PreprocessedCases, make_batch
from core.training.splits import Split
from tests.core.training.test_data_loader import write_case

SHAPES = {"a": (20, 30, 40), "b": (12, 16, 18), "c": (10, 10, 10)}
SPLITS = [Split(train=("b", "c"), val=("a",)), Split(train=("a", "c"), val=("b",)), Split(("a", "b"), ("c",))]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    for identifier, shape in SHAPES.items():
        write_case(tmp_path / "data", identifier, shape, tuple(n // 2 for n in shape))
    return tmp_path / "data"


def write_previous(folder: Path, identifier: str, shape: tuple[int, ...]) -> np.ndarray:
    """A previous stage that marks the flat voxel index modulo 3, so a patch shows where it was cut."""
    previous = (np.arange(np.prod(shape)) % 3).reshape((1, *shape)).astype(np.int8)
    folder.mkdir(parents=True, exist_ok=True)
    save_array(folder / f"{identifier}.npy", previous)
    return previous


def test_missing_previous_stage_cases_are_named_with_the_fold_that_writes_them(
    data_dir: Path, tmp_path: Path
) -> None:
    previous = tmp_path / "previous"
    write_previous(previous, "b", SHAPES["b"])
    write_previous(previous, "c", (10, 10, 9))
    with pytest.raises(PreviousStageError) as caught:
        check_previous_stage(previous, data_dir, ["a", "b", "c"], SPLITS, "3d_lowres")
    problems = caught.value.problems
    assert len(problems) == 2
    assert "3d_lowres fold 0: no previous-stage segmentation" in problems[1] and " for a;" in problems[1]
    assert "c.npy: shape (1, 10, 10, 9), but the preprocessed case is (1, 10, 10, 10)" in problems[0]
    with pytest.raises(PreviousStageError, match="no fold of the splits validates them"):
        check_previous_stage(previous, data_dir, ["a"], [], "3d_lowres")
    write_previous(previous, "a", SHAPES["a"])
    write_previous(previous, "c", SHAPES["c"])
    check_previous_stage(previous, data_dir, ["a", "b", "c"], SPLITS, "3d_lowres")


def test_the_previous_stage_is_cut_from_the_same_place_as_image_and_labels(
    data_dir: Path, tmp_path: Path
) -> None:
    for identifier, shape in SHAPES.items():
        write_previous(tmp_path / "previous", identifier, shape)
    cases = PreprocessedCases(data_dir, ["a", "b"], tmp_path / "previous")
    batch = make_batch(cases, PatchSampling(batch_size=4, crop_size=(8, 14, 22)), seed=2, index=0)
    assert batch.seg.shape == (4, 2, 8, 14, 22)
    for image, seg in zip(batch.image, batch.seg, strict=True):
        inside = seg[0] >= 0  # the image holds each voxel's flat index (see write_case)
        flat = image[0][inside].numpy().astype(np.int64)
        np.testing.assert_array_equal(seg[1][inside].numpy(), flat % 3)
        assert (seg[1][~inside] == -1).all()  # padded like the labels
