"""The cascade's one-hot input channels and their damage (METHOD.md 5.5, step 14), on hand-made arrays."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import ndimage

from core.augmentation import append_previous_stage, apply_augmentation, configure_augmentation
from core.augmentation import cascade as method
from core.augmentation.cascade import (
    CascadeDraw,
    apply_binary_operators,
    ball,
    dilate,
    draw_cascade,
    erode,
    one_hot_labels,
    remove_random_component,
)
from tests.core.augmentation.draws import quiet_draw, spatial_draw

LABELS = (1, 2)


def no_damage(batch_size: int, num_labels: int = len(LABELS)) -> CascadeDraw:
    shape = (batch_size, num_labels)
    return CascadeDraw(
        is_operated=torch.zeros(shape, dtype=torch.bool),
        operators=torch.zeros(shape, dtype=torch.long),
        radii=torch.ones(shape, dtype=torch.float64),
        order=torch.arange(num_labels).repeat(batch_size, 1),
        is_removed=torch.zeros(shape, dtype=torch.bool),
        component_choice=torch.zeros(shape, dtype=torch.float64),
    )


def test_one_hot_marks_each_foreground_label_and_nothing_else() -> None:
    seg = torch.tensor([[[-1, 0, 1], [2, 2, 1]]])  # (B=1, 2, 3) with the outside marker
    expected = torch.tensor([[[[0, 0, 1], [0, 0, 1]], [[0, 0, 0], [1, 1, 0]]]], dtype=torch.float32)
    assert torch.equal(one_hot_labels(seg, LABELS, torch.float32), expected)


def test_the_previous_stage_moves_from_the_labels_to_the_image() -> None:
    image = torch.rand(2, 3, 4, 5, 6)
    seg = torch.randint(0, 3, (2, 2, 4, 5, 6))
    out_image, out_seg = append_previous_stage(image, seg, LABELS)
    assert out_image.shape == (2, 3 + len(LABELS), 4, 5, 6) and out_seg.shape == (2, 1, 4, 5, 6)
    assert torch.equal(out_image[:, :3], image) and torch.equal(out_seg, seg[:, :1])
    for index, label in enumerate(LABELS):
        assert torch.equal(out_image[:, 3 + index], (seg[:, 1] == label).float())


@pytest.mark.parametrize("radius", [1.0, 2.5, 4.0])
def test_dilation_and_erosion_equal_scipy_with_the_same_ball(radius: float) -> None:
    rng = np.random.default_rng(int(radius * 10))
    mask = ndimage.binary_opening(rng.random((14, 17, 15)) < 0.35)
    structure = ball(radius, 3).numpy().astype(bool)
    assert structure.shape == (2 * math.floor(radius) + 1,) * 3
    assert structure.sum() == sum(
        1
        for offset in np.ndindex(structure.shape)
        if np.sum((np.array(offset) - math.floor(radius)) ** 2) <= radius**2
    )
    tensor = torch.from_numpy(mask)
    kernel = ball(radius, 3)
    np.testing.assert_array_equal(dilate(tensor, kernel).numpy(), ndimage.binary_dilation(mask, structure))
    # outside the patch counts as set for erosion, so a mask touching the border is not eaten from there
    np.testing.assert_array_equal(
        erode(tensor, kernel).numpy(), ndimage.binary_erosion(mask, structure, border_value=1)
    )


def test_voxels_a_dilated_label_gains_are_taken_from_the_other_labels() -> None:
    channels = torch.zeros(1, 2, 7, 7, 7)
    channels[0, 0, 3, 3, 3] = 1
    channels[0, 1, 3, 3, 4] = 1  # touching label 1's voxel
    channels[0, 1, 0, 0, 0] = 1  # far away
    draw = replace(no_damage(1), is_operated=torch.tensor([[True, False]]))  # operator 0: dilation, r = 1
    apply_binary_operators(channels, draw)
    cross = ndimage.binary_dilation(np.pad([[[1]]], 3), ndimage.generate_binary_structure(3, 1))
    np.testing.assert_array_equal(channels[0, 0].numpy(), cross)
    assert channels[0, 1, 3, 3, 4] == 0 and channels[0, 1, 0, 0, 0] == 1


@pytest.mark.parametrize(("choice", "erased"), [(0.0, "first"), (0.99, "second")])
def test_one_small_component_is_erased_and_a_large_one_never(choice: float, erased: str) -> None:
    channels = torch.zeros(1, 1, 10, 10, 10)
    channels[0, 0, :6, :6, :6] = 1  # 216 voxels: more than 15% of the patch, kept
    channels[0, 0, 8, 8, 8] = 1  # first small component in label order
    channels[0, 0, 9, 0, 0:2] = 1  # second
    draw = replace(
        no_damage(1, 1), is_removed=torch.tensor([[True]]), component_choice=torch.tensor([[choice]])
    )
    before = channels.clone()
    remove_random_component(channels, draw)
    assert torch.equal(channels[0, 0, :6, :6, :6], before[0, 0, :6, :6, :6])
    assert (channels[0, 0, 8, 8, 8] == 0) == (erased == "first")
    assert (channels[0, 0, 9, 0, 0:2] == 0).all() == (erased == "second")
    assert int((before - channels).sum()) == (1 if erased == "first" else 2)


def test_damage_fires_at_the_methods_rates() -> None:
    draw = draw_cascade(torch.Generator().manual_seed(3), 20_000, 2)
    for rows, p in (
        (draw.is_operated, method.P_BINARY_OPERATOR * method.P_BINARY_OPERATOR_LABEL),
        (draw.is_removed, method.P_REMOVE_COMPONENT * method.P_REMOVE_COMPONENT_LABEL),
    ):
        n = rows.numel()
        assert abs(int(rows.sum()) - n * p) <= 5 * math.sqrt(n * p * (1 - p))
    assert draw.radii.min() >= 1 and draw.radii.max() <= 8
    assert torch.equal(draw.order.sort(dim=1).values, torch.arange(2).expand(20_000, 2))


def test_the_training_transform_carries_the_previous_stage_like_the_labels() -> None:
    settings = configure_augmentation((8, 8, 8), [0, 1, 2], previous_stage_labels=LABELS)
    image = torch.rand(2, 1, 10, 12, 12)
    labels = torch.randint(0, 3, (2, 1, 10, 12, 12), dtype=torch.int16)
    previous = torch.randint(0, 3, (2, 1, 10, 12, 12), dtype=torch.int16)
    draw = replace(quiet_draw(settings, 2, 1), cascade=no_damage(2))
    draw = replace(draw, mirror=torch.tensor([[True, False, False], [False, False, False]]))
    out_image, out_seg = apply_augmentation(image, torch.cat([labels, previous], 1), draw, settings)
    assert out_image.shape == (2, 1 + len(LABELS), 8, 8, 8) and out_seg.shape == (2, 1, 8, 8, 8)
    crop = (slice(None), 0, slice(1, 9), slice(2, 10), slice(2, 10))
    expected_previous = previous[crop].clone()
    expected_previous[0] = expected_previous[0].flip(0)  # mirrored with its sample, as the labels
    expected_labels = labels[crop].clone()
    expected_labels[0] = expected_labels[0].flip(0)
    assert torch.equal(out_seg[:, 0], expected_labels)
    for index, label in enumerate(LABELS):
        assert torch.equal(out_image[:, 1 + index], (expected_previous == label).float())


def test_a_rotated_previous_stage_is_resampled_exactly_as_labels_alone_would_be() -> None:
    settings = configure_augmentation((8, 8, 8), [0, 1, 2], previous_stage_labels=LABELS)
    plain = configure_augmentation((8, 8, 8), [0, 1, 2])
    generator = torch.Generator().manual_seed(5)
    image = torch.rand(2, 1, 12, 12, 12, generator=generator)
    labels = torch.randint(0, 3, (2, 1, 12, 12, 12), generator=generator, dtype=torch.int16)
    previous = torch.randint(0, 3, (2, 1, 12, 12, 12), generator=generator, dtype=torch.int16)
    draw = replace(
        quiet_draw(settings, 2, 1),
        spatial=spatial_draw([[0.4, 0.2, -0.3], [0.0, 0.0, 0.0]], [1.2, 1.0]),
        cascade=no_damage(2),
    )
    out_image, out_seg = apply_augmentation(image, torch.cat([labels, previous], 1), draw, settings)
    alone = replace(draw, cascade=None)
    _, labels_alone = apply_augmentation(image, labels, alone, plain)
    _, previous_alone = apply_augmentation(image, previous, alone, plain)
    assert torch.equal(out_seg, labels_alone)
    assert torch.equal(out_image[:, 1:], one_hot_labels(previous_alone[:, 0], LABELS, torch.float32))
    assert not torch.equal(labels_alone[0, 0], labels[0, 0, 2:10, 2:10, 2:10])  # really resampled
