"""Normalization schemes (METHOD.md 4.2) against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from core.constants import NORMALIZATION_EPS, NORMALIZATION_EPS_FLOAT16
from core.normalization import (
    NormalizationError,
    ct_normalize,
    eps_for,
    normalize,
    rescale_to_01,
    rgb_to_01,
    scheme_for_channel_name,
    zscore_normalize,
)

CT_PROPERTIES = {"mean": 10.0, "std": 20.0, "percentile_00_5": -50.0, "percentile_99_5": 200.0}


@pytest.mark.parametrize(
    ("channel_name", "scheme"),
    [
        ("CT", "CTNormalization"),
        ("ct", "CTNormalization"),
        ("noNorm", "NoNormalization"),
        ("zscore", "ZScoreNormalization"),
        ("rescale_to_0_1", "RescaleTo01Normalization"),
        ("RGB_to_0_1", "RGBTo01Normalization"),
        ("T1", "ZScoreNormalization"),
        ("microscopy", "ZScoreNormalization"),
    ],
    ids=lambda value: str(value),
)
def test_channel_name_selects_scheme(channel_name: str, scheme: str) -> None:
    assert scheme_for_channel_name(channel_name) == scheme


def test_eps_depends_on_dtype() -> None:
    assert eps_for(np.float32) == NORMALIZATION_EPS
    assert eps_for(np.float16) == NORMALIZATION_EPS_FLOAT16


def test_ct_clips_to_percentiles_then_standardizes() -> None:
    image = np.array([-100.0, 0.0, 50.0, 300.0], dtype=np.float32)
    result = ct_normalize(image, None, CT_PROPERTIES)
    expected = (np.array([-50.0, 0.0, 50.0, 200.0]) - 10.0) / 20.0
    np.testing.assert_allclose(result, expected, rtol=1e-6)


def test_ct_without_statistics_is_an_error() -> None:
    with pytest.raises(NormalizationError, match="percentile_99_5"):
        ct_normalize(np.zeros(3, np.float32), None, {"mean": 0.0, "std": 1.0, "percentile_00_5": 0})


def test_zscore_uses_image_statistics() -> None:
    image = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    result = zscore_normalize(image.copy(), None, {})
    np.testing.assert_allclose(result, (image - 2.5) / np.sqrt(1.25), rtol=1e-6)


def test_zscore_with_mask_leaves_outside_untouched() -> None:
    image = np.array([0.0, 2.0, 4.0, 0.0], dtype=np.float32)
    mask = np.array([False, True, True, False])
    result = zscore_normalize(image, mask, {})
    np.testing.assert_allclose(result, [0.0, -1.0, 1.0, 0.0], rtol=1e-6)


def test_constant_image_divides_by_eps_not_zero() -> None:
    result = zscore_normalize(np.full(5, 7.0, np.float32), None, {})
    assert np.all(result == 0)
    assert np.all(rescale_to_01(np.full(5, 7.0, np.float32), None, {}) == 0)


def test_rescale_maps_range_to_unit_interval() -> None:
    result = rescale_to_01(np.array([2.0, 4.0, 6.0], np.float32), None, {})
    np.testing.assert_allclose(result, [0.0, 0.5, 1.0])


def test_rgb_divides_by_255_and_refuses_other_ranges() -> None:
    np.testing.assert_allclose(rgb_to_01(np.array([0.0, 255.0], np.float32), None, {}), [0, 1])
    with pytest.raises(NormalizationError, match=r"\[0, 255\]"):
        rgb_to_01(np.array([-1.0, 3.0], np.float32), None, {})


def test_normalize_applies_schemes_per_channel_and_mask_only_for_zscore() -> None:
    data = np.stack([np.array([[[0.0, 2.0, 4.0, 0.0]]])] * 3).astype(np.float32)
    seg = np.array([[[[-1, 0, 1, -1]]]], dtype=np.int8)
    normalize(
        data,
        seg,
        ["ZScoreNormalization", "CTNormalization", "NoNormalization"],
        [True, True, False],
        {"1": CT_PROPERTIES},
    )
    np.testing.assert_allclose(data[0].ravel(), [0.0, -1.0, 1.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(data[1].ravel(), (np.array([0.0, 2, 4, 0]) - 10) / 20, rtol=1e-6)
    np.testing.assert_allclose(data[2].ravel(), [0.0, 2.0, 4.0, 0.0])


@pytest.mark.parametrize(
    ("schemes", "use_mask", "seg", "message"),
    [
        (["Unknown"], [False], None, "unknown normalization scheme"),
        (["ZScoreNormalization"] * 2, [False], None, "1 channels but 2"),
        (["ZScoreNormalization"], [True], None, "needs the nonzero mask"),
    ],
    ids=["unknown-scheme", "channel-count", "mask-without-seg"],
)
def test_normalize_refuses_bad_arguments(
    schemes: list[str], use_mask: list[bool], seg: np.ndarray | None, message: str
) -> None:
    with pytest.raises(NormalizationError, match=message):
        normalize(np.ones((1, 2, 2, 2), np.float32), seg, schemes, use_mask, {})
