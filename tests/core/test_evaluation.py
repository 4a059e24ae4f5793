"""Metrics on hand-made arrays with hand-computed values, and the summary.json layout (METHOD.md 8.1)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from core.evaluation import (
    CaseMetrics,
    EvaluationError,
    Summary,
    compute_metrics,
    evaluate_folder,
    evaluation_targets,
    load_summary,
    parse_label_key,
    save_summary,
    summarize,
)
from tests.core.evaluation_support import make_spec, write_cases

REFERENCE = np.array([[[0, 1, 1, 0, 2, 2, 0, 0]]])
PREDICTION = np.array([[[0, 1, 0, 1, 2, 0, 0, 0]]])


def test_label_metrics_are_the_hand_computed_ones() -> None:
    metrics = compute_metrics(REFERENCE, PREDICTION, [1, 2])
    # label 1: reference at 1, 2; prediction at 1, 3 -> TP 1, FP 1, FN 1, TN 5.
    assert metrics[1] == {
        "Dice": 0.5,
        "IoU": 1 / 3,
        "FP": 1,
        "TP": 1,
        "FN": 1,
        "TN": 5,
        "n_pred": 2,
        "n_ref": 2,
    }
    # label 2: reference at 4, 5; prediction at 4 -> TP 1, FP 0, FN 1, TN 6.
    assert metrics[2] == {
        "Dice": 2 / 3,
        "IoU": 0.5,
        "FP": 0,
        "TP": 1,
        "FN": 1,
        "TN": 6,
        "n_pred": 1,
        "n_ref": 2,
    }


@pytest.mark.parametrize(
    ("reference", "prediction", "dice", "iou"),
    [
        pytest.param([0, 0, 0], [0, 0, 0], math.nan, math.nan, id="empty-vs-empty-is-nan"),
        pytest.param([0, 0, 0], [0, 1, 0], 0.0, 0.0, id="empty-reference"),
        pytest.param([0, 1, 0], [0, 0, 0], 0.0, 0.0, id="empty-prediction"),
        pytest.param([1, 1, 0], [1, 1, 0], 1.0, 1.0, id="perfect"),
    ],
)
def test_empty_reference_and_prediction_rule(
    reference: list, prediction: list, dice: float, iou: float
) -> None:
    metrics = compute_metrics(np.array(reference), np.array(prediction), [1])[1]
    assert metrics["Dice"] == pytest.approx(dice, nan_ok=True)
    assert metrics["IoU"] == pytest.approx(iou, nan_ok=True)
    assert metrics["TN"] + metrics["TP"] + metrics["FP"] + metrics["FN"] == 3


def test_ignore_label_voxels_are_not_counted() -> None:
    reference = np.array([1, 1, 3, 3, 0, 0])
    prediction = np.array([1, 0, 1, 1, 1, 0])
    metrics = compute_metrics(reference, prediction, [1], ignore_label=3)[1]
    # Voxels 2 and 3 are ignored: TP 1 (0), FN 1 (1), FP 1 (4), TN 1 (5).
    assert metrics == {"Dice": 0.5, "IoU": 1 / 3, "FP": 1, "TP": 1, "FN": 1, "TN": 1, "n_pred": 2, "n_ref": 2}


def test_a_region_is_the_union_of_its_labels() -> None:
    reference = np.array([1, 2, 2, 0, 3])
    prediction = np.array([2, 1, 0, 2, 3])
    metrics = compute_metrics(reference, prediction, [(1, 2), (3,)])
    # (1, 2): reference {0, 1, 2}, prediction {0, 1, 3} -> TP 2, FP 1, FN 1.
    assert metrics[(1, 2)]["Dice"] == pytest.approx(4 / 6)
    assert (metrics[(1, 2)]["TP"], metrics[(1, 2)]["FP"], metrics[(1, 2)]["FN"]) == (2, 1, 1)
    assert metrics[(3,)]["Dice"] == 1.0


def test_shape_mismatch_is_a_named_error() -> None:
    with pytest.raises(EvaluationError, match="differs from the reference shape"):
        compute_metrics(np.zeros((2, 3)), np.zeros((3, 2)), [1])


def test_means_skip_nan_cases_and_the_foreground_mean_does_not() -> None:
    cases = [
        CaseMetrics("a", "a", compute_metrics(np.array([1, 0]), np.array([1, 0]), [1, 2])),
        CaseMetrics("b", "b", compute_metrics(np.array([1, 0]), np.array([0, 1]), [1, 2])),
    ]
    summary = summarize(cases, [1, 2])
    assert summary.mean[1]["Dice"] == 0.5
    assert summary.mean[1]["TP"] == 0.5
    assert math.isnan(summary.mean[2]["Dice"])  # NaN in every case
    assert math.isnan(summary.foreground_mean_dice)
    assert summary.foreground_mean["TP"] == pytest.approx(0.25)


def test_targets_follow_dataset_json() -> None:
    assert evaluation_targets(make_spec({"background": 0, "a": 1, "b": 2})) == [1, 2]
    regions = make_spec(
        {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": [3]}, regions_class_order=[1, 2, 3]
    )
    assert evaluation_targets(regions) == [(1, 2, 3), (2, 3), (3,)]
    with_ignore = make_spec({"background": 0, "a": 1, "ignore": 2})
    assert evaluation_targets(with_ignore) == [1]


def test_label_keys_round_trip() -> None:
    for target in (1, 12, (1, 2, 3), (3,)):
        assert parse_label_key(str(target)) == target


def test_summary_json_has_nnunet_layout(tmp_path: Path) -> None:
    spec = make_spec({"background": 0, "liver": 1, "tumour": 2})
    write_cases(tmp_path / "ref", {"b": REFERENCE, "a": REFERENCE, "extra": REFERENCE})
    write_cases(tmp_path / "pred", {"b": PREDICTION, "a": REFERENCE})
    summary = evaluate_folder(tmp_path / "pred", tmp_path / "ref", spec)
    save_summary(summary, tmp_path / "summary.json")
    text = (tmp_path / "summary.json").read_text()
    data = json.loads(text)
    assert list(data) == ["foreground_mean", "mean", "metric_per_case"]
    assert sorted(data["mean"]) == ["1", "2"]
    assert sorted(data["foreground_mean"]) == sorted(
        ["Dice", "FN", "FP", "IoU", "TN", "TP", "n_pred", "n_ref"]
    )
    first = data["metric_per_case"][0]
    assert sorted(first) == ["metrics", "prediction_file", "reference_file"]
    assert first["prediction_file"] == str(tmp_path / "pred" / "a.nii.gz")
    assert first["reference_file"] == str(tmp_path / "ref" / "a.nii.gz")
    assert data["metric_per_case"][1]["metrics"]["1"]["Dice"] == 0.5
    assert data["mean"]["1"]["Dice"] == 0.75
    assert data["foreground_mean"]["Dice"] == pytest.approx((0.75 + (1 + 2 / 3) / 2) / 2)
    assert load_summary(tmp_path / "summary.json") == summary


def test_region_summary_keys_and_nan_in_the_file(tmp_path: Path) -> None:
    spec = make_spec({"background": 0, "whole": [1, 2], "core": [2]}, regions_class_order=[1, 2])
    write_cases(tmp_path / "ref", {"a": [[[1, 1, 0]]]})
    write_cases(tmp_path / "pred", {"a": [[[1, 0, 0]]]})
    summary = evaluate_folder(tmp_path / "pred", tmp_path / "ref", spec)
    save_summary(summary, tmp_path / "summary.json")
    text = (tmp_path / "summary.json").read_text()
    assert '"(1, 2)"' in text
    assert '"(2,)"' in text
    assert "NaN" in text  # region (2,) is empty in both
    assert Summary.from_json(json.loads(text)).mean[(1, 2)]["Dice"] == pytest.approx(2 / 3)


def test_missing_references_are_listed(tmp_path: Path) -> None:
    spec = make_spec({"background": 0, "a": 1})
    write_cases(tmp_path / "ref", {"x": REFERENCE})
    write_cases(tmp_path / "pred", {"x": REFERENCE, "y": REFERENCE, "z": REFERENCE})
    with pytest.raises(EvaluationError) as raised:
        evaluate_folder(tmp_path / "pred", tmp_path / "ref", spec)
    assert len(raised.value.problems) == 2
    assert "y.nii.gz" in raised.value.problems[0]


def test_an_empty_prediction_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "pred").mkdir()
    with pytest.raises(EvaluationError, match="no predictions"):
        evaluate_folder(tmp_path / "pred", tmp_path, make_spec({"background": 0, "a": 1}))
