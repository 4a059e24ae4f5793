"""Patch sampling (METHOD.md 5.3, 5.4) on hand-built preprocessed cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.class_locations import sample_class_locations
from core.geometry import Geometry
from core.preprocessed import CaseProperties, save_case
from core.training.data_loader import (
    BatchStream,
    PatchSampling,
    PreprocessedCases,
    crop_and_pad,
    make_batch,
    patch_bounds,
)

GEOMETRY = Geometry((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1), 3)


def write_case(folder: Path, identifier: str, shape: tuple[int, ...], lesion_at: tuple[int, ...]) -> None:
    """A case whose only foreground is one voxel of label 1, with intensity = flat voxel index."""
    data = np.arange(np.prod(shape), dtype=np.float32).reshape((1, *shape))
    seg = np.zeros((1, *shape), np.int8)
    seg[(0, *lesion_at)] = 1
    properties = CaseProperties(
        geometry=GEOMETRY,
        shape_before_cropping=shape,
        bbox_used_for_cropping=tuple((0, n) for n in shape),
        shape_after_cropping_and_before_resampling=shape,
        class_locations=sample_class_locations(seg, [1]),
    )
    save_case(folder, identifier, data, seg, properties, "test")


@pytest.fixture
def cases(tmp_path: Path) -> PreprocessedCases:
    write_case(tmp_path, "a", (20, 30, 40), (3, 25, 36))
    write_case(tmp_path, "b", (12, 16, 18), (6, 2, 9))
    return PreprocessedCases(tmp_path, ["a", "b"])


def test_bounds_pad_images_smaller_than_the_patch() -> None:
    # METHOD.md 5.3: need_to_pad = patch - shape where positive, split half before, half (+1) after.
    assert patch_bounds((10, 50), (16, 20)) == ([-3, 0], [-3, 30])
    assert patch_bounds((15,), (16,)) == ([0], [0])


def test_crop_and_pad_equals_padding_then_slicing() -> None:
    array = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6)
    padded = np.pad(array, ((0, 0), (4, 4), (4, 4)), constant_values=-7)
    for corner in [(-3, 2), (1, -4), (3, 4), (0, 0)]:
        expected = padded[:, corner[0] + 4 : corner[0] + 4 + 4, corner[1] + 4 : corner[1] + 4 + 5]
        np.testing.assert_array_equal(crop_and_pad(array, corner, (4, 5), -7), expected)


def test_forced_samples_contain_foreground(cases: PreprocessedCases) -> None:
    sampling = PatchSampling(batch_size=3, crop_size=(8, 8, 8))
    # Batch 3 with 0.33: samples with index >= round(3 × 0.67) = 2 are forced.
    assert [sampling.is_forced_foreground(i) for i in range(3)] == [False, False, True]
    for index in range(30):
        batch = make_batch(cases, sampling, seed=1, index=index)
        assert batch.image.shape == (3, 1, 8, 8, 8) and batch.seg.shape == (3, 1, 8, 8, 8)
        assert (batch.seg[2] == 1).any(), f"batch {index}: the forced patch misses the lesion"


def test_image_and_label_patches_come_from_the_same_place(cases: PreprocessedCases) -> None:
    batch = make_batch(cases, PatchSampling(batch_size=4, crop_size=(8, 8, 8)), seed=3, index=0)
    for image, seg, identifier in zip(batch.image, batch.seg, batch.identifiers, strict=True):
        shape = (20, 30, 40) if identifier == "a" else (12, 16, 18)
        inside = seg[0] >= 0
        flat = image[0][inside].numpy().astype(np.int64)
        labels = np.zeros(shape, np.int8).ravel()
        labels[np.ravel_multi_index((3, 25, 36) if identifier == "a" else (6, 2, 9), shape)] = 1
        np.testing.assert_array_equal(seg[0][inside].numpy(), labels[flat])
        assert (image[0][~inside] == 0).all()  # padding: image 0, label -1


def test_batches_depend_only_on_seed_and_index(cases: PreprocessedCases) -> None:
    sampling = PatchSampling(batch_size=2, crop_size=(6, 6, 6))
    with BatchStream(cases, sampling, seed=9, start=5) as stream:
        streamed = [next(stream) for _ in range(3)]
    for batch in streamed:
        again = make_batch(cases, sampling, seed=9, index=batch.index)
        assert batch.identifiers == again.identifiers
        assert (batch.image == again.image).all() and (batch.seg == again.seg).all()
    assert [b.index for b in streamed] == [5, 6, 7]
    other = make_batch(cases, sampling, seed=10, index=5)
    assert not (other.image.shape == streamed[0].image.shape and (other.image == streamed[0].image).all())


def test_2d_patches_are_single_slices(cases: PreprocessedCases) -> None:
    batch = make_batch(cases, PatchSampling(batch_size=2, crop_size=(10, 12)), seed=0, index=0)
    assert batch.image.shape == (2, 1, 10, 12) and batch.seg.shape == (2, 1, 10, 12)
    assert (batch.seg[1] == 1).any()  # forced: the slice through the lesion
