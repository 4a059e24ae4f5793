"""The whole training transform: probabilities, seeding, labels, masking, validation and input checks."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from core.augmentation import (
    AugmentationInputError,
    apply_augmentation,
    augment_training_batch,
    configure_augmentation,
    downsample_for_deep_supervision,
    draw_augmentation,
    prepare_validation_batch,
)
from core.augmentation import settings as method
from tests.core.augmentation.draws import quiet_draw, spatial_draw, switched_on

DRAWS = 20_000
CHANNELS = 2


def assert_rate(hits: torch.Tensor, p: float) -> None:
    """Binomial bounds: within 5 standard deviations of p."""
    n = hits.numel()
    assert abs(int(hits.sum()) - n * p) <= 5 * math.sqrt(n * p * (1 - p)), (int(hits.sum()), n, p)


@pytest.fixture(scope="module")
def big_draw() -> object:
    settings = configure_augmentation((24, 28, 32), [0, 1, 2])
    return draw_augmentation(settings, DRAWS, CHANNELS, torch.Generator().manual_seed(11))


def test_each_transform_fires_at_its_probability(big_draw: object) -> None:
    draw = big_draw
    assert_rate(draw.spatial.is_rotated, method.P_ROTATION)
    assert_rate(draw.spatial.is_scaled, method.P_SCALING)
    assert_rate(draw.noise.rows[:, 0], method.P_NOISE)
    assert torch.equal(draw.noise.rows[:, 0], draw.noise.rows[:, 1])  # per sample, all channels
    assert_rate(draw.blur.rows, method.P_BLUR * method.P_BLUR_CHANNEL)
    assert_rate(draw.brightness.rows[:, 0], method.P_BRIGHTNESS)
    assert_rate(draw.contrast.rows[:, 0], method.P_CONTRAST)
    assert_rate(draw.low_resolution.rows, method.P_LOW_RESOLUTION * method.P_LOW_RESOLUTION_CHANNEL)
    assert_rate(draw.inverted_gamma.rows[:, 0], method.P_INVERTED_GAMMA)
    assert_rate(draw.gamma.rows[:, 0], method.P_GAMMA)
    assert_rate(draw.mirror, method.P_MIRROR_PER_AXIS)
    # blur and low resolution pick channels within a picked sample independently
    either = draw.blur.rows.any(1)
    assert_rate(either, method.P_BLUR * (1 - (1 - method.P_BLUR_CHANNEL) ** CHANNELS))


def test_parameters_stay_in_their_ranges(big_draw: object) -> None:
    draw = big_draw
    angles = draw.spatial.angles_rad[draw.spatial.is_rotated]
    assert angles.shape[1] == 3 and angles.abs().max() <= math.radians(method.ROTATION_3D_DEG)
    assert torch.all(draw.spatial.angles_rad[~draw.spatial.is_rotated] == 0)
    scales = draw.spatial.scales[draw.spatial.is_scaled]
    assert method.SCALING_RANGE[0] <= scales.min() and scales.max() <= method.SCALING_RANGE[1]
    assert torch.all(draw.spatial.scales[~draw.spatial.is_scaled] == 1)
    assert draw.noise.values.min() >= 0 and draw.noise.values.max() <= method.NOISE_STD_RANGE[1]
    assert draw.blur.values.min() >= 0.5 and draw.blur.values.max() <= 1.0
    for factor, (low, high) in [
        (draw.brightness.values, method.BRIGHTNESS_RANGE),
        (draw.contrast.values, method.CONTRAST_RANGE),
        (draw.gamma.values, method.GAMMA_RANGE),
    ]:
        assert low <= factor.min() and factor.max() <= high
        assert_rate(factor < 1, 0.5)  # BGContrast: darker and brighter equally often
    zooms = draw.low_resolution.values
    assert torch.equal(zooms[..., 0], zooms[..., 2])  # one zoom for all axes
    assert zooms.min() >= 0.5 and zooms.max() <= 1.0


def test_dummy_2d_draws_in_plane_angles_and_keeps_axis_0_resolution() -> None:
    settings = configure_augmentation((8, 40, 40), [0, 1])
    draw = draw_augmentation(settings, 2000, 1, torch.Generator().manual_seed(2))
    assert draw.spatial.angles_rad.shape == (2000, 1)
    assert draw.spatial.angles_rad.abs().max() > math.radians(150)  # the full +-180 degrees
    assert torch.all(draw.low_resolution.values[..., 0] == 1)
    assert torch.all(draw.low_resolution.values[..., 1] < 1)


def batch(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn((2, CHANNELS, *shape), generator=generator)
    seg = torch.randint(0, 3, (2, 1, *shape), generator=generator, dtype=torch.int8)
    seg[..., :2] = -1  # the loader's padding
    return image, seg


INTENSITY_FIELDS = ("noise", "blur", "brightness", "contrast", "low_resolution", "inverted_gamma", "gamma")
SHAPES = {"3d": (24, 28, 32), "dummy-2d": (8, 40, 40), "2d": (40, 36)}


@pytest.mark.parametrize("case", SHAPES)
def test_same_seed_same_batch_and_labels_from_the_label_set(case: str) -> None:
    settings = configure_augmentation(SHAPES[case], [0, 1, 2])
    image, seg = batch(settings.initial_patch_size)
    before = image.clone(), seg.clone()
    outputs = [
        augment_training_batch(image, seg, settings, torch.Generator().manual_seed(s)) for s in (4, 4, 5)
    ]
    assert torch.equal(outputs[0][0], outputs[1][0]) and torch.equal(outputs[0][1], outputs[1][1])
    assert not torch.equal(outputs[0][0], outputs[2][0])
    assert torch.equal(image, before[0]) and torch.equal(seg, before[1])
    generator = torch.Generator().manual_seed(9)
    for _ in range(8):
        out_image, out_seg = augment_training_batch(image, seg, settings, generator)
        assert out_image.shape == (2, CHANNELS, *settings.patch_size) and out_image.dtype == torch.float32
        assert out_seg.shape == (2, 1, *settings.patch_size) and out_seg.dtype == torch.int8
        assert set(out_seg.unique().tolist()) <= {0, 1, 2}
        assert torch.isfinite(out_image).all()


@pytest.mark.parametrize("case", SHAPES)
def test_everything_at_once_keeps_labels_from_the_label_set(case: str) -> None:
    settings = configure_augmentation(SHAPES[case], [0, 1, 2])
    image, seg = batch(settings.initial_patch_size)
    draw = draw_augmentation(settings, 2, CHANNELS, torch.Generator().manual_seed(1))
    rotation = [[0.4] * settings.rotation_count] * 2
    draw = replace(
        draw,
        spatial=spatial_draw(rotation, [1.3, 0.8]),
        **{name: switched_on(getattr(draw, name)) for name in INTENSITY_FIELDS},
        mirror=torch.ones_like(draw.mirror),
    )
    out_image, out_seg = apply_augmentation(image, seg, draw, settings)
    assert set(out_seg.unique().tolist()) == {0, 1, 2}
    assert torch.isfinite(out_image).all()


def test_masked_channels_are_zero_where_the_seg_was_outside() -> None:
    settings = configure_augmentation((32, 32), [0, 1], use_mask_for_norm=(False, True))
    image = torch.full((1, 2, 32, 32), 5.0)
    seg = torch.ones((1, 1, 32, 32), dtype=torch.int8)
    seg[..., :4, :] = -1
    draw = replace(quiet_draw(settings, 1, 2), mirror=torch.tensor([[True, False]]))
    out_image, out_seg = apply_augmentation(image, seg, draw, settings)
    # mirrored along axis 0: the outside rows are now the last four
    assert torch.all(out_image[0, 1, -4:] == 0) and torch.all(out_image[0, 1, :-4] == 5)
    assert torch.all(out_image[0, 0] == 5)
    assert torch.all(out_seg[0, 0, -4:] == 0) and torch.all(out_seg[0, 0, :-4] == 1)


def test_validation_only_turns_the_outside_label_into_background() -> None:
    seg = torch.tensor([[[[-1, 0, 1], [2, -1, 3]]]], dtype=torch.int16)
    out = prepare_validation_batch(seg)
    assert out.tolist() == [[[[0, 0, 1], [2, 0, 3]]]] and out.dtype == torch.int16
    assert seg[0, 0, 0, 0] == -1  # a new tensor


def test_a_quiet_draw_is_a_centre_crop_and_label_cleanup() -> None:
    settings = configure_augmentation((24, 28, 32), [0, 1, 2])
    image, seg = batch((26, 28, 35))
    out_image, out_seg = apply_augmentation(image, seg, quiet_draw(settings, 2, CHANNELS), settings)
    crop = (slice(None), slice(None), slice(1, 25), slice(0, 28), slice(1, 33))
    assert torch.equal(out_image, image[crop])
    assert torch.equal(out_seg, prepare_validation_batch(seg[crop]))


def test_bad_batches_are_refused_with_every_problem() -> None:
    settings = configure_augmentation((24, 28, 32), [0, 1, 2])
    image = torch.zeros(2, 1, 20, 28, 32)
    seg = torch.zeros(2, 1, 20, 28, 30)
    with pytest.raises(AugmentationInputError) as caught:
        augment_training_batch(image, seg, settings, torch.Generator().manual_seed(0))
    assert len(caught.value.problems) == 3
    assert "signed integer" in str(caught.value) and "(2, 1, 20, 28, 32)" in str(caught.value)
    assert "smaller than (24, 28, 32)" in str(caught.value)


def test_deep_supervision_targets_are_nearest_exact_downsamplings() -> None:
    seg = torch.randint(0, 3, (2, 1, 16, 32, 32), dtype=torch.int8)
    scales = [[1, 1, 1], [1, 0.5, 0.5], [0.5, 0.25, 0.25]]
    targets = downsample_for_deep_supervision(seg, scales)
    assert targets[0] is seg
    assert [tuple(t.shape[2:]) for t in targets] == [(16, 32, 32), (16, 16, 16), (8, 8, 8)]
    assert torch.equal(targets[2], seg[:, :, 1::2, 2::4, 2::4])  # nearest-exact picks the centre-most voxel
    assert targets[1].dtype == torch.int8
