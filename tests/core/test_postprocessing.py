"""Keeping the largest component: connectivity, ties, and the cross-validation choice (METHOD.md 8.2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.evaluation import evaluate_folder
from core.postprocessing import (
    KeepLargestComponent,
    PostprocessingError,
    apply_postprocessing,
    apply_postprocessing_to_folder,
    determine_postprocessing,
    keep_largest_component,
    largest_component_mask,
    load_postprocessing,
)
from tests.core.evaluation_support import make_spec, write_cases

SPEC = make_spec({"background": 0, "liver": 1, "tumour": 2})


def organ(with_island: bool = False, second_organ: bool = False) -> np.ndarray:
    volume = np.zeros((6, 8, 8), dtype=np.uint8)
    volume[1:4, 1:4, 1:4] = 1
    volume[2, 2, 2] = 2
    if with_island:
        volume[5, 7, 7] = 1
    if second_organ:
        volume[4:6, 6:8, 6:8] = 1
    return volume


def test_full_connectivity_joins_corner_neighbours() -> None:
    mask = np.zeros((4, 4, 4), dtype=bool)
    mask[0, 0, 0] = mask[1, 1, 1] = True  # touching only at a corner
    mask[3, 3, 3] = True  # not touching
    kept = largest_component_mask(mask)
    assert kept[0, 0, 0] and kept[1, 1, 1] and not kept[3, 3, 3]


def test_equal_largest_components_are_all_kept() -> None:
    mask = np.array([[[1, 0, 1, 0, 1, 1]]], dtype=bool)
    assert largest_component_mask(mask).tolist() == [[[False, False, False, False, True, True]]]
    tied = np.array([[[1, 1, 0, 1, 1]]], dtype=bool)
    assert largest_component_mask(tied).tolist() == tied.tolist()
    assert not largest_component_mask(np.zeros((2, 2, 2), dtype=bool)).any()


def test_removed_voxels_become_background_and_the_input_is_untouched() -> None:
    segmentation = np.array([[[1, 1, 2, 2, 0, 1, 0, 2]]])
    original = segmentation.copy()
    assert keep_largest_component(segmentation, [1, 2]).tolist() == [[[1, 1, 2, 2, 0, 0, 0, 0]]]
    assert keep_largest_component(segmentation, [2]).tolist() == [[[1, 1, 2, 2, 0, 1, 0, 0]]]
    assert (segmentation == original).all()
    steps = (KeepLargestComponent((1, 2)), KeepLargestComponent((1,)))
    assert apply_postprocessing(segmentation, steps).tolist() == [[[1, 1, 2, 2, 0, 0, 0, 0]]]


def test_spurious_islands_choose_the_merged_rule_and_it_raises_dice(tmp_path: Path) -> None:
    reference = {f"case{i}": organ() for i in range(3)}
    write_cases(tmp_path / "ref", reference)
    write_cases(tmp_path / "pred", {case: organ(with_island=True) for case in reference})
    choice = determine_postprocessing(tmp_path / "pred", tmp_path / "ref", SPEC)
    assert choice.steps[0] == KeepLargestComponent((1, 2))
    assert choice.after.foreground_mean_dice > choice.before.foreground_mean_dice
    assert choice.after.foreground_mean_dice == 1.0
    saved = json.loads((tmp_path / "pred" / "postprocessing.json").read_text())
    assert saved["steps"][0] == {"operation": "keep_largest_component", "labels": [1, 2]}
    assert sorted(saved["input_folder"]) == ["foreground_mean", "mean"]
    steps = load_postprocessing(tmp_path / "pred" / "postprocessing.json")
    assert steps == choice.steps
    apply_postprocessing_to_folder(tmp_path / "pred", tmp_path / "post", steps, ".nii.gz")
    after = evaluate_folder(tmp_path / "post", tmp_path / "ref", SPEC)
    assert after.foreground_mean_dice == 1.0


def test_removing_real_components_keeps_no_rule(tmp_path: Path) -> None:
    reference = {f"case{i}": organ(second_organ=True) for i in range(2)}
    write_cases(tmp_path / "ref", reference)
    write_cases(tmp_path / "pred", reference)
    choice = determine_postprocessing(tmp_path / "pred", tmp_path / "ref", SPEC)
    assert choice.steps == ()
    assert choice.after == choice.before


def test_per_label_rule_is_kept_where_the_merged_one_hurts(tmp_path: Path) -> None:
    reference = organ(second_organ=True)
    reference[2, 2, 3] = 2
    prediction = reference.copy()
    prediction[0, 7, 0] = 2  # a spurious tumour island
    write_cases(tmp_path / "ref", {"a": reference})
    write_cases(tmp_path / "pred", {"a": prediction})
    choice = determine_postprocessing(tmp_path / "pred", tmp_path / "ref", SPEC)
    assert choice.steps == (KeepLargestComponent((2,)),)
    assert choice.after.mean[2]["Dice"] == 1.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"steps": [{"operation": "fill_holes", "labels": [1]}]}, "unknown postprocessing step"),
        ({"steps": [{"operation": "keep_largest_component", "labels": "1"}]}, "must be a list of integers"),
        ({"steps": 1}, "'steps' list"),
    ],
)
def test_bad_postprocessing_files_are_named_errors(tmp_path: Path, content: dict, message: str) -> None:
    (tmp_path / "postprocessing.json").write_text(json.dumps(content))
    with pytest.raises(PostprocessingError, match=message):
        load_postprocessing(tmp_path / "postprocessing.json")
