"""nnU-Net v2's evaluation and postprocessing choice and ours agree on the same files (METHOD.md 8.1, 8.2)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from core.evaluation import evaluate_folder
from core.postprocessing import determine_postprocessing
from tests.core.evaluation_support import make_spec, write_cases
from tests.reference import run_reference

pytestmark = pytest.mark.parity

SCENARIOS = {
    "labels with ignore": {"labels": {"background": 0, "liver": 1, "tumour": 2, "ignore": 3}},
    "regions": {
        "labels": {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": [3]},
        "regions_class_order": [1, 2, 3],
    },
}


def blobs(generator: np.random.Generator, num_labels: int, shape: tuple[int, ...]) -> np.ndarray:
    """Smooth random label blobs: thresholded smoothed noise, one threshold per label."""
    noise = ndimage.gaussian_filter(generator.normal(size=shape), 2.0)
    edges = np.quantile(noise, np.linspace(0.55, 0.95, num_labels))
    return np.searchsorted(edges, noise).astype(np.uint8)


def make_cases(folder: Path, scenario: str) -> tuple[Path, Path]:
    generator = np.random.default_rng(7)
    shape = (10, 20, 20)
    references, predictions = {}, {}
    for index in range(4):
        reference = blobs(generator, 3, shape)
        prediction = reference.copy()
        prediction[generator.random(shape) < 0.02] = 1  # spurious islands
        prediction = np.where(
            ndimage.binary_erosion(prediction == 2), 2, np.where(prediction == 2, 1, prediction)
        )
        if index == 3:
            reference[reference == 2] = 1
            prediction[prediction == 2] = 1  # label 2 empty in both: NaN
        if scenario == "labels with ignore":
            prediction[generator.random(shape) < 0.003] = 2  # tumour islands: the per-label rule helps
            reference[:2][generator.random((2, *shape[1:])) < 0.5] = 3
        references[f"case_{index}"] = reference
        predictions[f"case_{index}"] = prediction
    return write_cases(folder / "ref", references), write_cases(folder / "pred", predictions)


def same(ours: float, theirs: float | None) -> bool:
    if theirs is None or (isinstance(theirs, float) and math.isnan(theirs)):
        return math.isnan(ours)
    return ours == pytest.approx(theirs, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_summary_numbers_equal_nnunet(tmp_path: Path, scenario: str) -> None:
    ref_dir, pred_dir = make_cases(tmp_path, scenario)
    spec = make_spec(**SCENARIOS[scenario])
    (tmp_path / "dataset.json").write_text(json.dumps(spec.raw))
    theirs = run_reference(
        "evaluation_reference.py", "evaluate", str(ref_dir), str(pred_dir), str(tmp_path / "dataset.json")
    )
    ours = evaluate_folder(pred_dir, ref_dir, spec).to_json()
    assert sorted(ours["mean"]) == sorted(theirs["mean"])
    for key, metrics in theirs["mean"].items():
        assert all(same(ours["mean"][key][m], v) for m, v in metrics.items()), key
    assert all(same(ours["foreground_mean"][m], v) for m, v in theirs["foreground_mean"].items())
    by_file = {Path(case["prediction_file"]).name: case["metrics"] for case in theirs["metric_per_case"]}
    for case in ours["metric_per_case"]:
        expected = by_file[Path(case["prediction_file"]).name]
        assert sorted(case["metrics"]) == sorted(expected)
        for key, metrics in expected.items():
            assert all(same(case["metrics"][key][m], v) for m, v in metrics.items()), (
                case["prediction_file"],
                key,
            )


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_postprocessing_choice_equals_nnunet(tmp_path: Path, scenario: str) -> None:
    ref_dir, pred_dir = make_cases(tmp_path, scenario)
    spec = make_spec(**SCENARIOS[scenario])
    (tmp_path / "dataset.json").write_text(json.dumps(spec.raw))
    theirs = run_reference(
        "evaluation_reference.py", "postprocess", str(ref_dir), str(pred_dir), str(tmp_path / "dataset.json")
    )
    choice = determine_postprocessing(pred_dir, ref_dir, spec)
    assert [list(step.labels) for step in choice.steps] == theirs["labels"]
    assert same(choice.before.foreground_mean_dice, theirs["before"])
    assert same(choice.after.foreground_mean_dice, theirs["after"])
