"""Averaging saved probabilities and turning them into segmentations (METHOD.md 8.4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.ensembling import (
    EnsembleError,
    average_probabilities,
    ensemble_folders,
    load_probabilities,
    probabilities_to_segmentation,
)
from core.io import read_segmentation
from tests.core.evaluation_support import GEOMETRY, make_spec, two_class_probabilities, write_probabilities

SPEC = make_spec({"background": 0, "a": 1})


def test_average_is_arithmetic_in_float32() -> None:
    first = np.array([[0.2, 0.9]], dtype=np.float16)
    second = np.array([[0.6, 0.1]], dtype=np.float32)
    mean = average_probabilities([first, second])
    assert mean.dtype == np.float32
    np.testing.assert_allclose(mean, [[0.4, 0.5]], atol=1e-3)
    assert first.dtype == np.float16 and first[0, 0] == np.float16(0.2)  # inputs untouched
    with pytest.raises(EnsembleError, match="cannot be averaged"):
        average_probabilities([first, np.zeros((2, 2))])


def test_labels_take_the_argmax_and_regions_are_painted_in_order() -> None:
    probabilities = np.array([[0.5, 0.2, 0.1], [0.3, 0.5, 0.2], [0.2, 0.3, 0.7]])
    assert probabilities_to_segmentation(
        probabilities, make_spec({"background": 0, "a": 1, "b": 2})
    ).tolist() == [
        0,
        1,
        2,
    ]
    regions = make_spec({"background": 0, "whole": [1, 2], "core": [2]}, regions_class_order=[1, 2])
    sigmoid = np.array([[0.9, 0.9, 0.5, 0.1], [0.2, 0.8, 0.9, 0.6]])
    # Voxel 2: whole exactly 0.5 is not above the threshold, core paints 2; voxel 3: core alone.
    assert probabilities_to_segmentation(sigmoid, regions).tolist() == [1, 2, 2, 2]
    with pytest.raises(EnsembleError, match="3 probability channels for 2 regions"):
        probabilities_to_segmentation(np.zeros((3, 2)), regions)


def test_ensemble_folders_averages_and_keeps_the_geometry(tmp_path: Path) -> None:
    first = np.array([[[0.9, 0.6, 0.2, 0.1]]])
    second = np.array([[[0.8, 0.3, 0.4, 0.95]]])
    write_probabilities(tmp_path / "m1", "case", two_class_probabilities(first))
    write_probabilities(tmp_path / "m2", "case", two_class_probabilities(second))
    written = ensemble_folders(
        [tmp_path / "m1", tmp_path / "m2"], tmp_path / "out", SPEC, save_probabilities=True
    )
    assert written == [tmp_path / "out" / "case.nii.gz"]
    segmentation, geometry = read_segmentation(written[0])
    # Foreground means 0.85, 0.45, 0.3, 0.525: neither member alone gives this segmentation.
    assert segmentation.tolist() == [[[1, 0, 0, 1]]]
    assert geometry == GEOMETRY
    np.testing.assert_allclose(load_probabilities(tmp_path / "out" / "case.npz")[1], (first + second) / 2)
    assert (tmp_path / "out" / "dataset.json").is_file()


def test_folders_must_hold_the_same_cases(tmp_path: Path) -> None:
    probabilities = two_class_probabilities(np.full((1, 1, 2), 0.7))
    write_probabilities(tmp_path / "m1", "a", probabilities)
    write_probabilities(tmp_path / "m1", "b", probabilities)
    write_probabilities(tmp_path / "m2", "a", probabilities)
    with pytest.raises(EnsembleError, match=r"no \.npz for b"):
        ensemble_folders([tmp_path / "m1", tmp_path / "m2"], tmp_path / "out", SPEC)
    assert not (tmp_path / "out").exists()


def test_a_missing_geometry_file_is_named(tmp_path: Path) -> None:
    write_probabilities(tmp_path / "m1", "a", two_class_probabilities(np.full((1, 1, 2), 0.7)))
    (tmp_path / "m1" / "a.nii.gz").unlink()
    with pytest.raises(EnsembleError, match="needed for the geometry"):
        ensemble_folders([tmp_path / "m1"], tmp_path / "out", SPEC)
