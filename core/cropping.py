"""Crop a case to the bounding box of its nonzero region (METHOD.md 2, step 2).

Medical images often carry large empty borders (air around a skull-stripped brain, padding around a
scan); dropping them shrinks every later step. Label voxels that are background *and* outside the
nonzero region become -1, so training and normalization can tell "outside the body" from "background".
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

OUTSIDE_LABEL = -1

BoundingBox = list[list[int]]


def nonzero_mask(data: np.ndarray) -> np.ndarray:
    """Voxels where any channel is nonzero, holes filled. `data` is (channels, z, y, x)."""
    mask = data[0] != 0
    for channel in data[1:]:
        mask |= channel != 0
    return fill_holes(mask)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Set every background region that does not reach the array's border (6-connectivity) to True.

    Equal to `scipy.ndimage.binary_fill_holes` with its default structure, but one labelling pass
    instead of an iterated dilation, which is several times faster on large volumes.
    """
    background_components, count = ndimage.label(~mask)
    if count == 0:
        return mask
    touching_border = np.zeros(count + 1, dtype=bool)
    for axis in range(mask.ndim):
        for index in (0, -1):
            touching_border[np.take(background_components, index, axis=axis)] = True
    touching_border[0] = True  # label 0 is the foreground itself
    return ~touching_border[background_components] | mask


def bounding_box(mask: np.ndarray) -> BoundingBox:
    """Half-open [start, end) per axis of the True voxels; the whole array when there are none."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        present = np.flatnonzero(mask.any(axis=others))
        if present.size == 0:
            return [[0, size] for size in mask.shape]
        box.append([int(present[0]), int(present[-1]) + 1])
    return box


def box_slices(box: BoundingBox) -> tuple[slice, ...]:
    return tuple(slice(start, end) for start, end in box)


def crop_to_nonzero(
    data: np.ndarray, seg: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, BoundingBox]:
    """Crop (channels, z, y, x) data, and its (1, z, y, x) seg, to the nonzero bounding box.

    Returns the cropped data, the cropped seg with -1 outside the nonzero region (a synthetic int8 map of
    0 inside and -1 outside when no seg is given) and the box. The seg's type is promoted to a signed
    one where needed. Filling holes only inside the box gives
    the same mask as filling the whole image: a background region touching the box's face touches the
    empty space around it.
    """
    raw_mask = data[0] != 0
    for channel in data[1:]:
        raw_mask |= channel != 0
    box = bounding_box(raw_mask)
    spatial = box_slices(box)
    mask = fill_holes(raw_mask[spatial])
    cropped = data[(slice(None), *spatial)]
    if seg is None:
        return cropped, np.where(mask, np.int8(0), np.int8(OUTSIDE_LABEL))[None], box
    # Promote unsigned label types (uint8 -> int16, ...) so that -1 fits.
    cropped_seg = seg[(slice(None), *spatial)].astype(np.result_type(seg.dtype, np.int8))
    cropped_seg[(cropped_seg == 0) & ~mask[None]] = OUTSIDE_LABEL
    return cropped, cropped_seg, box
