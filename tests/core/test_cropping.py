"""Cropping to the nonzero region (METHOD.md 2, step 2)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from core.cropping import OUTSIDE_LABEL, bounding_box, crop_to_nonzero, fill_holes


@pytest.mark.parametrize("seed", range(5))
def test_fill_holes_equals_scipy(seed: int) -> None:
    mask = np.random.default_rng(seed).random((12, 13, 14)) > 0.55
    np.testing.assert_array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))


def test_crop_keeps_the_nonzero_box_and_marks_outside_voxels() -> None:
    data = np.zeros((2, 8, 9, 10), np.float32)
    data[0, 2:5, 3:7, 4:7] = 1.0  # channel 0 region
    data[1, 4, 1, 8] = -3.0  # channel 1 widens the box on two axes
    data[0, 3, 4, 5] = 0.0  # a hole enclosed by channel 0's region: filled, so not "outside"
    seg = np.zeros((1, 8, 9, 10), np.uint8)
    seg[0, 3, 5, 5] = 2
    cropped, cropped_seg, box = crop_to_nonzero(data, seg)
    assert box == [[2, 5], [1, 7], [4, 9]]
    assert cropped.shape == (2, 3, 6, 5)
    assert cropped_seg.dtype == np.int16  # promoted so that -1 fits
    assert cropped_seg[0, 1, 4, 1] == 2
    assert cropped_seg[0, 1, 3, 1] == 0  # the filled hole is inside
    assert cropped_seg[0, 0, 0, 0] == OUTSIDE_LABEL  # zero in every channel, not enclosed


def test_without_seg_a_synthetic_map_marks_inside_and_outside() -> None:
    data = np.zeros((1, 5, 5, 5), np.float32)
    data[0, 1:4, 1:4, 1:4] = 5
    data[0, 2, 2, 2] = 0  # enclosed: inside
    data[0, 1, 1, 1] = 0  # on the box's face: outside
    _, seg, box = crop_to_nonzero(data)
    assert box == [[1, 4]] * 3
    assert seg.dtype == np.int8
    assert seg[0, 1, 1, 1] == 0 and seg[0, 0, 0, 0] == OUTSIDE_LABEL and (seg == 0).sum() == 26


def test_an_empty_image_is_not_cropped() -> None:
    assert bounding_box(np.zeros((3, 4, 5), bool)) == [[0, 3], [0, 4], [0, 5]]
