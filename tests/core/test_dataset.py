"""dataset.json rules (METHOD.md 1.2): labels, regions, the ignore label and channel names."""

from __future__ import annotations

import pytest

from core.dataset import DatasetError, parse_dataset_json

BASE = {"channel_names": {"0": "T2", "1": "ADC"}, "numTraining": 3, "file_ending": ".nii.gz"}


def test_labels_with_an_ignore_label() -> None:
    spec = parse_dataset_json({**BASE, "labels": {"background": 0, "a": 1, "b": 2, "ignore": 3}})
    assert spec.all_labels == [0, 1, 2]
    assert spec.ignore_label == 3
    assert spec.allowed_label_values == {0, 1, 2, 3}
    assert spec.foreground_labels == [1, 2]
    assert spec.num_channels == 2 and not spec.has_regions


def test_regions_need_a_class_order() -> None:
    labels = {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": 3}
    spec = parse_dataset_json({**BASE, "labels": labels, "regions_class_order": [1, 2, 3]})
    assert spec.has_regions and spec.regions_class_order == (1, 2, 3)
    assert spec.all_labels == [0, 1, 2, 3]
    with pytest.raises(DatasetError, match="regions_class_order"):
        parse_dataset_json({**BASE, "labels": labels})


def test_legacy_modality_key_is_accepted() -> None:
    document = {"modality": {"0": "CT"}, "labels": {"background": 0, "x": 1}, "numTraining": 1}
    assert parse_dataset_json({**document, "file_ending": ".nrrd"}).channel_names == {"0": "CT"}


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"bg": 0, "a": 1}, "'background' to 0"),
        ({"background": 0, "a": 2}, "consecutive"),
        ({"background": 0, "a": 1, "ignore": 5}, "ignore label must be 2"),
        ({"background": 0, "a": "one"}, "label 'a' must be an integer"),
        ({"background": 0, "a": True}, "label 'a' must be an integer"),
    ],
    ids=["no-background", "gap", "ignore-not-next", "string-label", "bool-label"],
)
def test_invalid_labels_are_named(labels: dict, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        parse_dataset_json({**BASE, "labels": labels})


def test_every_problem_is_collected() -> None:
    with pytest.raises(DatasetError) as caught:
        parse_dataset_json({"labels": {"a": 1}, "numTraining": "three"})
    assert len(caught.value.problems) >= 4  # channel_names, file_ending, background, numTraining, ...
