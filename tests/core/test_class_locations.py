"""Class locations (METHOD.md 4.4): keys from dataset.json, counts, and nnU-Net's exact draws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.class_locations import (
    ClassKey,
    class_location_keys,
    key_from_text,
    key_to_text,
    pack_class_locations,
    sample_class_locations,
    unpack_class_locations,
)
from core.constants import CLASS_LOCATIONS_MIN_COVERAGE, CLASS_LOCATIONS_MIN_SAMPLES
from core.dataset import parse_dataset_json


def nnunet_draws(seg: np.ndarray, keys: list[ClassKey], seed: int = 1234) -> dict:
    """nnU-Net's algorithm: argwhere of all requested voxels, stable sort by label, one stream."""
    random_state = np.random.RandomState(seed)
    requested = sorted({v for k in keys for v in (k if isinstance(k, tuple) else (k,))})
    coordinates = np.argwhere(np.isin(seg, requested))
    values = seg[tuple(coordinates.T)]
    order = np.argsort(values, kind="stable")
    coordinates, values = coordinates[order], values[order]
    result = {}
    for key in keys:
        parts = [coordinates[values == v] for v in (key if isinstance(key, tuple) else (key,))]
        candidates = np.concatenate(parts)
        total = len(candidates)
        if total == 0:
            result[key] = np.zeros((0, 4))
            continue
        count = max(min(CLASS_LOCATIONS_MIN_SAMPLES, total), math.ceil(total * CLASS_LOCATIONS_MIN_COVERAGE))
        result[key] = candidates[random_state.choice(total, count, replace=False)]
    return result


def spec_with(labels: dict, **extra: object) -> object:
    return parse_dataset_json(
        {"channel_names": {"0": "CT"}, "labels": labels, "numTraining": 1, "file_ending": ".nii.gz", **extra}
    )


@pytest.mark.parametrize(
    ("labels", "extra", "keys"),
    [
        ({"background": 0, "a": 1, "b": 2}, {}, [1, 2]),
        ({"background": 0, "a": 1, "ignore": 2}, {}, [1, (-1, 0, 1)]),
        (
            {"background": 0, "whole": [1, 2], "core": 2},
            {"regions_class_order": [1, 2]},
            [(1, 2), 2],
        ),
    ],
    ids=["labels", "ignore-label", "regions"],
)
def test_keys_follow_dataset_json(labels: dict, extra: dict, keys: list[ClassKey]) -> None:
    assert class_location_keys(spec_with(labels, **extra)) == keys


def test_draws_equal_nnunets_for_labels_regions_and_absent_classes() -> None:
    rng = np.random.default_rng(0)
    seg = rng.choice([-1, 0, 1, 2], p=[0.2, 0.5, 0.25, 0.05], size=(1, 30, 40, 50)).astype(np.int8)
    keys: list[ClassKey] = [1, 2, 5, (2, 1), (-1, 0, 1, 2)]
    ours = sample_class_locations(seg, keys)
    reference = nnunet_draws(seg, keys)
    for key in keys:
        np.testing.assert_array_equal(ours[key], reference[key])


def test_counts_are_at_least_1_percent_and_10000_or_all() -> None:
    seg = np.zeros((1, 50, 50, 50), np.int8)
    seg[0, :10] = 1  # 25,000 voxels -> 10,000
    seg[0, 10, :5] = 2  # 250 voxels -> all
    seg[0, 11:] = 3  # 97,500 voxels -> 10,000
    locations = sample_class_locations(seg, [1, 2, 3])
    assert [len(locations[k]) for k in (1, 2, 3)] == [10000, 250, 10000]
    big = np.ones((1, 120, 100, 100), np.int8)
    assert len(sample_class_locations(big, [1])[1]) == 12000
    for key, rows in locations.items():
        assert len(np.unique(rows, axis=0)) == len(rows)
        assert np.all(rows[:, 0] == 0)
        assert np.all(seg[tuple(rows.T)] == key)


def test_packing_round_trips() -> None:
    locations = {1: np.ones((3, 4), np.int32), (-1, 0, 1): np.zeros((0, 4), np.int32), 2: np.ones((1, 4))}
    packed, ranges = pack_class_locations(locations)
    assert ranges == {"1": [0, 3], "-1,0,1": [3, 3], "2": [3, 4]}
    restored = unpack_class_locations(packed, ranges)
    assert list(restored) == list(locations)
    for key in locations:
        np.testing.assert_array_equal(restored[key], locations[key])
    assert key_from_text(key_to_text((5,))) == (5,)
