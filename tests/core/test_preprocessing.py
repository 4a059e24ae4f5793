"""Preprocessing's three tiers, its files, re-runs and interrupted runs (METHOD.md 4)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import core.preprocessed as preprocessed_module
from core.class_locations import class_location_keys
from core.dataset import load_dataset
from core.geometry import Geometry
from core.io import read_segmentation
from core.plans import Plans
from core.preprocessed import list_cases, load_case, read_case_document
from core.preprocessing import (
    GT_FOLDER,
    preprocess,
    preprocess_case_arrays,
    preprocess_case_files,
    revert_segmentation_geometry,
)
from tests.core.preprocessing_support import plan_dataset, with_configuration

SMALL_CT = {"num_cases": 3, "shape": (16, 48, 48)}


@pytest.fixture(scope="module")
def ct_raw(raw_dataset: Callable[..., Path]) -> Path:
    return raw_dataset("ct", **SMALL_CT)


@pytest.fixture(scope="module")
def ct_plans(ct_raw: Path) -> Plans:
    return plan_dataset(ct_raw)


def geometry_for(spacing: tuple[float, float, float]) -> Geometry:
    return Geometry(spacing, tuple(reversed(spacing)), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1), 3)


def test_arrays_tier_transposes_crops_normalizes_and_resamples(ct_plans: Plans) -> None:
    plans = replace(ct_plans, transpose_forward=[2, 0, 1], transpose_backward=[1, 2, 0])
    plans = with_configuration(
        plans, "3d_fullres", spacing=(1.0, 2.0, 1.0), normalization_schemes=("ZScoreNormalization",)
    )
    data = np.zeros((1, 10, 12, 14), np.float32)
    data[0, 2:8, 3:9, 4:12] = np.random.default_rng(0).normal(5, 2, (6, 6, 8))
    seg = np.zeros((1, 10, 12, 14), np.uint8)
    seg[0, 3:6, 4:7, 5:9] = 1
    out, out_seg, properties = preprocess_case_arrays(
        data, seg, geometry_for((2.0, 1.0, 1.0)), plans, "3d_fullres", [1]
    )
    # transposed (x, z, y): shape (14, 10, 12), box x 4:12, z 2:8, y 3:9 -> (8, 6, 6) at (1, 2, 1) mm
    assert properties.shape_before_cropping == (14, 10, 12)
    assert properties.bbox_used_for_cropping == ((4, 12), (2, 8), (3, 9))
    assert properties.shape_after_cropping_and_before_resampling == (8, 6, 6)
    assert out.shape == (1, 8, 6, 6) and out.dtype == np.float32
    assert out_seg is not None and out_seg.shape == (1, 8, 6, 6) and out_seg.dtype == np.int8
    assert abs(float(out.mean())) < 1e-5 and abs(float(out.std()) - 1) < 1e-4
    assert set(np.unique(out_seg)) == {0, 1}
    assert np.all(out_seg[tuple(properties.class_locations[1].T)] == 1)


def test_arrays_tier_2d_configuration_keeps_slice_spacing(ct_plans: Plans) -> None:
    data = np.random.default_rng(1).normal(100, 10, (1, 5, 20, 20)).astype(np.float32)
    out, out_seg, properties = preprocess_case_arrays(
        data, None, geometry_for((3.0, 0.4, 0.4)), ct_plans, "2d"
    )
    spacing = ct_plans.configuration("2d").spacing
    assert out_seg is None and properties.class_locations == {}
    assert out.shape == (1, 5, round(0.4 / spacing[0] * 20), round(0.4 / spacing[1] * 20))


def test_labels_above_127_are_stored_as_int16(ct_plans: Plans) -> None:
    data = np.ones((1, 4, 6, 6), np.float32)
    seg = np.full((1, 4, 6, 6), 200, np.int16)
    plans = with_configuration(ct_plans, "3d_fullres", spacing=(1.0, 1.0, 1.0))
    _, out_seg, _ = preprocess_case_arrays(data, seg, geometry_for((1.0, 1.0, 1.0)), plans, "3d_fullres")
    assert out_seg is not None and out_seg.dtype == np.int16


def test_files_tier_reads_a_case(ct_raw: Path, ct_plans: Plans) -> None:
    spec, cases = load_dataset(ct_raw)
    data, seg, properties = preprocess_case_files(
        cases[0].images, cases[0].label, ct_plans, "3d_fullres", class_location_keys(spec)
    )
    assert data.ndim == 4 and seg is not None and seg.shape[1:] == data.shape[1:]
    assert set(properties.class_locations) == {1, 2}
    assert properties.geometry.spacing == pytest.approx(properties.spacing)


def test_runner_writes_cases_ground_truth_and_skips_finished_ones(
    ct_raw: Path, ct_plans: Plans, tmp_path: Path
) -> None:
    calls: list[tuple[float, str]] = []
    summary = preprocess(
        ct_raw,
        ct_plans,
        "3d_fullres",
        tmp_path,
        workers=2,
        progress=lambda f, s, m="", **k: calls.append((f, s)),
    )
    folder = tmp_path / ct_plans.configuration("3d_fullres").data_identifier
    assert summary.folder == folder and len(summary.processed) == 3 and not summary.skipped
    assert list_cases(folder) == ["case_000", "case_001", "case_002"]
    assert calls[-1] == (1.0, "preprocess")
    data, seg, properties = load_case(folder, "case_001")
    assert isinstance(data, np.memmap) and data.dtype == np.float32
    assert seg is not None and seg.dtype == np.int8 and seg.shape[1:] == data.shape[1:]
    assert set(properties.class_locations) == {1, 2}
    assert sorted(p.name for p in (tmp_path / GT_FOLDER).iterdir()) == [
        "case_000.nii.gz",
        "case_001.nii.gz",
        "case_002.nii.gz",
    ]
    assert not list(folder.glob(".*"))

    again = preprocess(ct_raw, ct_plans, "3d_fullres", tmp_path, workers=1)
    assert again.processed == () and len(again.skipped) == 3

    changed = with_configuration(ct_plans, "3d_fullres", spacing=(3.0, 1.0, 1.0))
    redone = preprocess(ct_raw, changed, "3d_fullres", tmp_path, workers=1)
    assert len(redone.processed) == 3
    assert load_case(folder, "case_001")[0].shape != data.shape


def test_interrupted_case_is_redone_and_never_half_visible(
    ct_raw: Path, ct_plans: Plans, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    preprocess(ct_raw, ct_plans, "3d_fullres", tmp_path, workers=1)
    folder = tmp_path / ct_plans.configuration("3d_fullres").data_identifier
    changed = with_configuration(ct_plans, "3d_fullres", spacing=(3.0, 1.0, 1.0))
    original_save = preprocessed_module.save_array

    def die_on_seg(path: Path, array: np.ndarray) -> None:
        if path.name.endswith("_seg.npy"):
            raise KeyboardInterrupt  # a kill between the data and the label file
        original_save(path, array)

    monkeypatch.setattr(preprocessed_module, "save_array", die_on_seg)
    with pytest.raises(KeyboardInterrupt):
        preprocess(ct_raw, changed, "3d_fullres", tmp_path, workers=1)
    # the interrupted case lost its (outdated) JSON, so no reader pairs it with the new data file
    assert read_case_document(folder, "case_000") is None
    assert "case_000" not in list_cases(folder)
    monkeypatch.undo()
    summary = preprocess(ct_raw, changed, "3d_fullres", tmp_path, workers=1)
    assert len(summary.processed) == 3 and list_cases(folder) == ["case_000", "case_001", "case_002"]


def test_revert_restores_the_original_grid(ct_raw: Path, ct_plans: Plans) -> None:
    _, cases = load_dataset(ct_raw)
    _, seg, properties = preprocess_case_files(cases[0].images, cases[0].label, ct_plans, "3d_fullres")
    original, _ = read_segmentation(cases[0].label)
    assert seg is not None
    reverted = revert_segmentation_geometry(seg[0], properties, ct_plans, "3d_fullres")
    assert reverted.shape == original.shape
    assert reverted.min() >= 0
    for label in (1, 2):
        overlap = np.logical_and(reverted == label, original == label).sum()
        dice = 2 * overlap / ((reverted == label).sum() + (original == label).sum())
        assert dice > 0.9
