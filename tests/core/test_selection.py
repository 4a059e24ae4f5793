"""Cross-validation merging, pairwise ensembles and the choice of the best candidate (METHOD.md 8.3)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.selection import (
    SelectionError,
    accumulate_crossval,
    available_configurations,
    find_best_configuration,
    load_selection,
)
from tests.core.evaluation_support import make_spec, two_class_probabilities, write_cases, write_probabilities

SPEC = make_spec({"background": 0, "organ": 1})
FOLDS = (0, 1)
CASES_PER_FOLD = {0: ["c0", "c1"], 1: ["c2", "c3"]}


def cube() -> np.ndarray:
    volume = np.zeros((4, 6, 6), dtype=np.uint8)
    volume[1:3, 1:4, 1:4] = 1
    return volume


def foreground_probability(own_mistake: tuple, other_mistake: tuple) -> np.ndarray:
    """0.6 on the organ and on this model's false positives, 0.3 where the other model errs, else 0.1."""
    probability = np.full(cube().shape, 0.1)
    probability[cube() == 1] = 0.6
    probability[other_mistake] = 0.3
    probability[own_mistake] = 0.6
    return probability


# Two disjoint islands: the 2d model adds two voxels, 3d_fullres one; their average has neither.
ISLAND_2D = (0, 5, slice(4, 6))
ISLAND_3D = (3, 5, 0)


def make_model_dir(root: Path, configurations: dict[str, np.ndarray]) -> Path:
    model_dir = root / "model"
    write_cases(root / "gt", {case: cube() for cases in CASES_PER_FOLD.values() for case in cases})
    for name, probability in configurations.items():
        (model_dir / name).mkdir(parents=True)
        (model_dir / name / "dataset.json").write_text(json.dumps(SPEC.raw))
        for fold, cases in CASES_PER_FOLD.items():
            for case in cases:
                write_probabilities(
                    model_dir / name / f"fold_{fold}" / "validation",
                    case,
                    two_class_probabilities(probability),
                )
    return model_dir


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return make_model_dir(
        tmp_path,
        {
            "3d_fullres": foreground_probability(ISLAND_3D, ISLAND_2D),
            "2d": foreground_probability(ISLAND_2D, ISLAND_3D),
        },
    )


def test_crossval_merges_every_fold_and_evaluates(model_dir: Path) -> None:
    summary = accumulate_crossval(model_dir / "2d", model_dir.parent / "gt", SPEC, FOLDS)
    merged = model_dir / "2d" / "crossval_results_folds_0_1"
    names = sorted(p.name for p in merged.iterdir())
    assert names == [
        "c0.nii.gz",
        "c0.npz",
        "c1.nii.gz",
        "c1.npz",
        "c2.nii.gz",
        "c2.npz",
        "c3.nii.gz",
        "c3.npz",
        "dataset.json",
        "summary.json",
    ]
    assert len(summary.metric_per_case) == 4
    assert summary.foreground_mean_dice == pytest.approx(2 * 18 / (2 * 18 + 2))


def test_the_ensemble_wins_when_its_average_is_better(model_dir: Path) -> None:
    selection = find_best_configuration(model_dir, model_dir.parent / "gt", SPEC, folds=FOLDS)
    assert selection.considered_configurations == ("2d", "3d_fullres")
    assert list(selection.all_results) == ["2d", "3d_fullres", "2d__3d_fullres"]
    assert selection.all_results["3d_fullres"] == pytest.approx(36 / 37)
    assert selection.all_results["2d__3d_fullres"] == 1.0
    assert selection.best == "2d__3d_fullres"
    assert selection.selected_configurations == ("2d", "3d_fullres")
    assert selection.postprocessing_file == "ensembles/2d__3d_fullres/postprocessing.json"
    assert (model_dir / selection.postprocessing_file).is_file()
    assert load_selection(model_dir / "selection.json") == selection
    instructions = json.loads((model_dir / "selection.json").read_text())["instructions"]
    assert any("--save-probabilities" in line for line in instructions)
    assert any(line.startswith("nnsvc ensemble") for line in instructions)


def test_without_ensembling_the_best_single_configuration_wins_and_gets_postprocessing(
    model_dir: Path,
) -> None:
    selection = find_best_configuration(
        model_dir, model_dir.parent / "gt", SPEC, folds=FOLDS, allow_ensembling=False
    )
    assert selection.best == "3d_fullres"
    assert selection.selected_configurations == ("3d_fullres",)
    assert selection.dice_after_postprocessing == 1.0 > selection.dice_before_postprocessing
    document = json.loads((model_dir / "selection.json").read_text())
    assert document["best_model_or_ensemble"]["result_on_crossval_pre_pp"] == pytest.approx(36 / 37)
    assert document["best_model_or_ensemble"]["some_plans_file"] == "3d_fullres/plans.json"


def test_only_configurations_with_every_fold_are_candidates(model_dir: Path) -> None:
    shutil.copytree(model_dir / "2d", model_dir / "3d_lowres")
    shutil.rmtree(model_dir / "3d_lowres" / "fold_1")
    shutil.copytree(model_dir / "2d", model_dir / "custom")
    assert available_configurations(model_dir, FOLDS) == ["2d", "3d_fullres", "custom"]
    with pytest.raises(SelectionError, match="fold_1/validation: not found"):
        find_best_configuration(model_dir, model_dir.parent / "gt", SPEC, ["3d_lowres"], folds=FOLDS)


def test_a_case_in_two_folds_is_an_error(model_dir: Path) -> None:
    validation = model_dir / "2d" / "fold_1" / "validation"
    shutil.copyfile(model_dir / "2d" / "fold_0" / "validation" / "c0.nii.gz", validation / "c0.nii.gz")
    with pytest.raises(SelectionError, match=r"c0\.nii\.gz is predicted by more than one fold"):
        accumulate_crossval(model_dir / "2d", model_dir.parent / "gt", SPEC, FOLDS)


def test_ensembles_need_probabilities(model_dir: Path) -> None:
    (model_dir / "2d" / "fold_0" / "validation" / "c1.npz").unlink()
    with pytest.raises(SelectionError, match=r"2d: no probabilities \(CASE.npz\) for 1 case"):
        find_best_configuration(model_dir, model_dir.parent / "gt", SPEC, folds=FOLDS)


def test_the_cascade_is_a_candidate_once_all_its_folds_are_validated(model_dir: Path) -> None:
    for name in ("3d_cascade_fullres", "3d_lowres"):
        shutil.copytree(model_dir / "2d", model_dir / name)
    (model_dir / "3d_lowres" / "predicted_next_stage" / "3d_cascade_fullres").mkdir(parents=True)
    assert available_configurations(model_dir, FOLDS) == [
        "2d",
        "3d_fullres",
        "3d_lowres",
        "3d_cascade_fullres",
    ]
    shutil.rmtree(model_dir / "3d_cascade_fullres" / "fold_1" / "validation")
    assert "3d_cascade_fullres" not in available_configurations(model_dir, FOLDS)
