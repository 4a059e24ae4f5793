"""The evaluation's pass/fail gate: thresholds by label name, label value, region or foreground mean."""

from __future__ import annotations

import math

import pytest

from core.dataset import parse_dataset_json
from core.evaluation import Summary
from worker.context import JobInputError
from worker.runners.evaluation import threshold_failures

SPEC = parse_dataset_json(
    {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "organ": 1, "lesion": 2},
        "numTraining": 1,
        "file_ending": ".nii.gz",
    }
)
SUMMARY = Summary(
    metric_per_case=[],
    mean={1: {"Dice": 0.9}, 2: {"Dice": math.nan}},
    foreground_mean={"Dice": 0.6},
)


@pytest.mark.parametrize(
    ("thresholds", "failures"),
    [
        pytest.param({"organ": 0.85, "foreground_mean": 0.5}, [], id="all-met"),
        pytest.param({"1": 0.95}, ["1: Dice 0.9000 is below the threshold 0.9500"], id="by-value"),
        pytest.param(
            {"foreground_mean": 0.7},
            ["foreground_mean: Dice 0.6000 is below the threshold 0.7000"],
            id="mean",
        ),
        pytest.param(
            {"lesion": 0.1},
            ["lesion: Dice is undefined (the label is in no reference and no prediction)"],
            id="nan",
        ),
    ],
)
def test_threshold_failures(thresholds: dict[str, float], failures: list[str]) -> None:
    assert threshold_failures(SUMMARY, SPEC, thresholds) == failures


def test_thresholds_naming_no_evaluated_label_are_refused_all_at_once() -> None:
    with pytest.raises(JobInputError) as raised:
        threshold_failures(SUMMARY, SPEC, {"liver": 0.5, "3": 0.5, "organ": 0.5})
    assert [problem.split(":")[0] for problem in raised.value.problems] == [
        "threshold for 'liver'",
        "threshold for '3'",
    ]
