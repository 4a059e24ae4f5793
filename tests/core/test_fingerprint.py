"""Fingerprint extraction (METHOD.md 2) against independent computations on the expanded samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.constants import FINGERPRINT_SAMPLING_SEED
from core.fingerprint import (
    Fingerprint,
    WeightedSamples,
    extract_fingerprint,
    load_fingerprint,
    sample_foreground,
    save_fingerprint,
)


def expanded(samples: WeightedSamples) -> np.ndarray:
    return np.repeat(samples.values, samples.counts)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_statistics_equal_numpy_on_the_expanded_multiset(seed: int) -> None:
    rng = np.random.default_rng(seed)
    parts = [
        WeightedSamples(np.unique(rng.integers(-50, 50, 30)).astype(np.float64), rng.integers(1, 9, 1))
        for _ in range(4)
    ]
    parts = [WeightedSamples(p.values, np.full(len(p.values), p.counts[0])) for p in parts]
    merged = WeightedSamples.merge(parts)
    flat = np.concatenate([expanded(p) for p in parts])
    stats = merged.statistics()
    for q, value in ((0.5, stats.percentile_00_5), (50, stats.median), (99.5, stats.percentile_99_5)):
        assert value == pytest.approx(np.percentile(flat, q), abs=1e-12)
    assert stats.mean == pytest.approx(flat.mean())
    assert stats.std == pytest.approx(flat.std())
    assert (stats.min, stats.max) == (flat.min(), flat.max())


def test_foreground_sampling_draws_the_voxels_nnunet_draws() -> None:
    # METHOD.md 2 step 3: RandomState(1234) per case, `choice(..., replace=True)` channel by channel.
    rng = np.random.default_rng(5)
    data = rng.normal(size=(2, 6, 7, 8)).astype(np.float32)
    foreground = rng.random((6, 7, 8)) > 0.6
    reference = np.random.RandomState(FINGERPRINT_SAMPLING_SEED)
    ours = sample_foreground(data, foreground, num_samples=500)
    for channel, samples in zip(data, ours, strict=True):
        drawn = reference.choice(channel[foreground], 500, replace=True)
        np.testing.assert_array_equal(np.sort(drawn), expanded(samples))


def test_case_without_foreground_contributes_nothing() -> None:
    data = np.ones((1, 4, 4, 4), np.float32)
    (samples,) = sample_foreground(data, np.zeros((4, 4, 4), bool), num_samples=100)
    assert samples.counts.sum() == 0


def test_extracted_fingerprint_describes_the_generated_dataset(raw_dataset, tmp_path: Path) -> None:
    raw = raw_dataset("mr")
    fingerprint = extract_fingerprint(raw, workers=2)
    cases = sorted((raw / "labelsTr").iterdir())
    assert len(fingerprint.spacings) == len(fingerprint.shapes_after_crop) == len(cases)
    # The body ellipsoid leaves a zero border, so cropping keeps less than the whole image.
    assert 0 < fingerprint.median_relative_size_after_cropping < 1
    assert set(fingerprint.foreground_intensity_properties_per_channel) == {"0", "1"}
    stats = fingerprint.foreground_intensity_properties_per_channel["0"]
    assert stats.min <= stats.percentile_00_5 <= stats.median <= stats.percentile_99_5 <= stats.max

    path = tmp_path / "dataset_fingerprint.json"
    save_fingerprint(fingerprint, path)
    written = json.loads(path.read_text())
    assert list(written) == sorted(written)  # nnU-Net v2 writes sorted keys
    assert load_fingerprint(path) == fingerprint
    assert Fingerprint.from_json(fingerprint.to_json()) == fingerprint


def test_single_worker_and_pool_give_the_same_fingerprint(raw_dataset) -> None:
    raw = raw_dataset("2d")
    assert extract_fingerprint(raw, workers=1) == extract_fingerprint(raw, workers=2)
