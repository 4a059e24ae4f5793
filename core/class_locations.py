"""Where each class lies in a preprocessed label map, for foreground oversampling (METHOD.md 4.4).

Training centres a third of its patches on a voxel of a random present class; finding those voxels
once at preprocessing time saves a full scan per patch. The draws equal nnU-Net v2's exactly (same
RandomState stream, same candidate order), so a model trained on either tool's data sees the same
locations. The voxels of a class are listed in C order per label, labels in the key's order;
`np.flatnonzero` on the flat map gives that order without building nnU-Net's (N, 4) argwhere table.

Stored as one int32 `(N, 4)` array per case (`CASE_locations.npy`, rows `(0, z, y, x)`) plus the row
range of each key in the case's JSON: a JSON list of 10^5 coordinates would be slower to write and read
and larger than the arrays themselves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from core.constants import (
    CLASS_LOCATIONS_MIN_COVERAGE,
    CLASS_LOCATIONS_MIN_SAMPLES,
    CLASS_LOCATIONS_SEED,
)
from core.cropping import OUTSIDE_LABEL
from core.dataset import DatasetSpec

ClassKey = int | tuple[int, ...]
ClassLocations = dict[ClassKey, np.ndarray]


def class_location_keys(spec: DatasetSpec) -> list[ClassKey]:
    """The classes to locate: foreground labels, or foreground regions for region-based training;
    with an ignore label also every annotated voxel, keyed `(-1, *all_labels)`."""
    if spec.has_regions:
        keys: list[ClassKey] = [
            value
            for name, value in spec.labels.items()
            if name not in ("background", "ignore") and set(_as_tuple(value)) != {0}
        ]
    else:
        keys = list(spec.foreground_labels)
    if spec.ignore_label is not None:
        keys.append((OUTSIDE_LABEL, *spec.all_labels))
    return keys


def _as_tuple(key: ClassKey) -> tuple[int, ...]:
    return key if isinstance(key, tuple) else (key,)


def sample_class_locations(
    seg: np.ndarray, keys: Sequence[ClassKey], seed: int = CLASS_LOCATIONS_SEED
) -> ClassLocations:
    """Up to max(10,000, 1%) voxels per key, drawn without replacement; rows `(0, z, y, x)`.

    `seg` is the (1, z, y, x) preprocessed label map. A key whose labels are all absent gets an
    empty (0, 4) array and consumes no random numbers, as in nnU-Net.
    """
    random_state = np.random.RandomState(seed)
    flat = seg.reshape(-1)
    voxels_of: dict[int, np.ndarray] = {}
    locations: ClassLocations = {}
    for key in keys:
        parts = []
        for label in _as_tuple(key):
            if label not in voxels_of:
                voxels_of[label] = np.flatnonzero(flat == label)
            if voxels_of[label].size:
                parts.append(voxels_of[label])
        total = sum(part.size for part in parts)
        if total == 0:
            locations[key] = np.zeros((0, 4), dtype=np.int32)
            continue
        count = max(min(CLASS_LOCATIONS_MIN_SAMPLES, total), math.ceil(total * CLASS_LOCATIONS_MIN_COVERAGE))
        candidates = parts[0] if len(parts) == 1 else np.concatenate(parts)
        picked = candidates[random_state.choice(total, count, replace=False)]
        rows = np.zeros((count, 4), dtype=np.int32)
        rows[:, 1:] = np.stack(np.unravel_index(picked, seg.shape[1:]), axis=1)
        locations[key] = rows
    return locations


def key_to_text(key: ClassKey) -> str:
    """A JSON-safe name: "2" for a label, "-1,0,1,2" for a region ("2," for a one-label region)."""
    if isinstance(key, tuple):
        return ",".join(str(v) for v in key) + ("," if len(key) == 1 else "")
    return str(key)


def key_from_text(text: str) -> ClassKey:
    if "," in text:
        return tuple(int(v) for v in text.split(",") if v)
    return int(text)


def pack_class_locations(locations: ClassLocations) -> tuple[np.ndarray, dict[str, list[int]]]:
    """One (N, 4) int32 array and each key's [start, stop) rows in it, for storage."""
    ranges: dict[str, list[int]] = {}
    start = 0
    for key, rows in locations.items():
        ranges[key_to_text(key)] = [start, start + len(rows)]
        start += len(rows)
    arrays = [rows.astype(np.int32, copy=False) for rows in locations.values()]
    packed = np.concatenate(arrays) if arrays else np.zeros((0, 4), dtype=np.int32)
    return packed, ranges


def unpack_class_locations(packed: np.ndarray, ranges: Mapping[str, Sequence[int]]) -> ClassLocations:
    """The inverse of `pack_class_locations`; the arrays are views into `packed`."""
    return {key_from_text(text): packed[start:stop] for text, (start, stop) in ranges.items()}
