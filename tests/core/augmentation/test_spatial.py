"""Rotation, scaling and mirroring move image and labels together, to where the drawn transform says."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.augmentation import configure_augmentation
from core.augmentation.spatial import apply_mirror, apply_spatial
from tests.core.augmentation.draws import spatial_draw

BALL_LABEL = 2


def ball_batch(
    shape: tuple[int, ...], offset: tuple[float, ...], radius: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """A bright ball labelled BALL_LABEL, `offset` voxels from the centre of a (1, 1, *shape) batch; label 1
    elsewhere, so that background and the outside label are distinct."""
    centre = [(s - 1) / 2 + o for s, o in zip(shape, offset, strict=True)]
    grids = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    inside = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True)) <= radius**2
    image = torch.from_numpy(inside.astype(np.float32))[None, None]
    seg = torch.from_numpy(np.where(inside, BALL_LABEL, 1).astype(np.int8))[None, None]
    return image, seg


def centroid(mask: np.ndarray) -> np.ndarray:
    return np.array(np.nonzero(mask)).mean(1)


def rotation(angles: list[float]) -> np.ndarray:
    """The transform's convention written out: Rz(a2) @ Ry(a1) @ Rx(a0), axis k's angle turning the others."""
    if len(angles) == 1:
        c, s = math.cos(angles[0]), math.sin(angles[0])
        return np.array([[c, -s], [s, c]])
    (c0, c1, c2), (s0, s1, s2) = np.cos(angles), np.sin(angles)
    rx = np.array([[1, 0, 0], [0, c0, -s0], [0, s0, c0]])
    ry = np.array([[c1, 0, s1], [0, 1, 0], [-s1, 0, c1]])
    rz = np.array([[c2, -s2, 0], [s2, c2, 0], [0, 0, 1]])
    return rz @ ry @ rx


CASES_3D = [
    ([0.5, 0.0, 0.0], 1.0),
    ([0.0, -0.4, 0.0], 1.0),
    ([0.0, 0.0, 0.45], 1.0),
    ([0.3, -0.2, 0.4], 1.0),
    ([0.0, 0.0, 0.0], 0.75),
    ([0.0, 0.0, 0.0], 1.3),
    ([-0.35, 0.25, 0.1], 1.2),
]


@pytest.mark.parametrize(("angles", "scale"), CASES_3D, ids=[f"{a}-x{s}" for a, s in CASES_3D])
def test_3d_label_follows_image_to_the_predicted_place(angles: list[float], scale: float) -> None:
    settings = configure_augmentation((24, 28, 32), [0, 1, BALL_LABEL])
    offset = np.array([4.0, -5.0, 6.0])
    image, seg = ball_batch(settings.initial_patch_size, tuple(offset), radius=4.5)
    out_image, out_seg = apply_spatial(image, seg, spatial_draw([angles], [scale]), settings)
    assert out_image.shape[2:] == settings.patch_size == out_seg.shape[2:]
    # output offset p reads the input at (R S) p, so the ball lands at (R S)^-1 offset
    expected = (np.array(settings.patch_size) - 1) / 2 + np.linalg.solve(rotation(angles) * scale, offset)
    label = out_seg[0, 0].numpy() == BALL_LABEL
    bright = out_image[0, 0].numpy() > 0.5
    np.testing.assert_allclose(centroid(label), expected, atol=0.5)
    np.testing.assert_allclose(centroid(bright), expected, atol=0.5)
    dice = 2 * (label & bright).sum() / (label.sum() + bright.sum())
    assert dice > 0.95


def test_2d_quarter_turn_equals_numpy_rot90() -> None:
    settings = configure_augmentation((32, 32), [0, 1, BALL_LABEL])
    # input and patch centres coincide on the voxel grid (even margin), so a quarter turn is exact
    image, seg = ball_batch((36, 36), (5.0, -7.0), radius=5)
    image = image + torch.linspace(0, 0.5, 36)[None, None, :, None]  # not rotation-symmetric
    out_image, out_seg = apply_spatial(image, seg, spatial_draw([[math.pi / 2]], [1.0]), settings)
    crop = (0, 0, slice(2, 34), slice(2, 34))
    # output (i, j) reads input offset (-j, i): numpy's clockwise quarter turn
    np.testing.assert_allclose(out_image[0, 0].numpy(), np.rot90(image[crop].numpy(), k=-1), atol=1e-4)
    np.testing.assert_array_equal(out_seg[0, 0].numpy(), np.rot90(seg[crop].numpy(), k=-1))


def test_unresampled_samples_are_cropped_exactly_and_inputs_kept() -> None:
    settings = configure_augmentation((24, 28, 32), [0, 1, BALL_LABEL])
    image = torch.randn(3, 2, 31, 36, 40)
    seg = torch.randint(0, 3, (3, 1, 31, 36, 40), dtype=torch.int16)
    before = image.clone(), seg.clone()
    draw = spatial_draw([[0.0, 0.0, 0.0], [0.2, 0.1, 0.0], [0.0, 0.0, 0.0]], [1.0, 1.0, 1.0])
    out_image, out_seg = apply_spatial(image, seg, draw, settings)
    # crop_tensor's corner: size // 2 - patch // 2 per axis
    crop = (slice(None), slice(None), slice(3, 27), slice(4, 32), slice(4, 36))
    for sample in (0, 2):
        torch.testing.assert_close(out_image[sample], image[crop][sample], rtol=0, atol=0)
        torch.testing.assert_close(out_seg[sample], seg[crop][sample], rtol=0, atol=0)
    assert not torch.equal(out_image[1], image[crop][1])
    assert out_seg.dtype == torch.int16
    assert torch.equal(image, before[0]) and torch.equal(seg, before[1])


def test_zooming_out_past_the_crop_marks_outside_voxels() -> None:
    settings = configure_augmentation((32, 32), [0, 1, BALL_LABEL])
    image, seg = ball_batch((32, 32), (0.0, 0.0), radius=6)
    image = image + 1  # 1 everywhere in the crop, 2 in the ball: zero only outside
    out_image, out_seg = apply_spatial(image, seg, spatial_draw([[0.0]], [1.4]), settings)
    outside = out_seg[0, 0] == -1
    assert outside[0, 0] and outside[-1, -1] and not outside[16, 16]
    # an output voxel whose sampling point is more than half a voxel past the edge is outside
    edge = (np.arange(32) - 15.5) * 1.4 + 15.5
    is_far = (edge < -0.5) | (edge > 31.5)
    np.testing.assert_array_equal(outside[:, 16].numpy(), is_far)
    assert torch.all(out_image[0, 0][outside] < 0.5)
    assert set(out_seg.unique().tolist()) == {-1, 1, BALL_LABEL}


def test_dummy_2d_turns_every_slice_alike_and_never_moves_axis_0() -> None:
    settings = configure_augmentation((8, 40, 40), [0, 1, BALL_LABEL])
    assert settings.is_dummy_2d
    depth, height, width = settings.initial_patch_size
    disc, _ = ball_batch((height, width), (6.0, -4.0), radius=5)
    image = torch.zeros(1, 1, depth, height, width)
    image[0, 0, 2:6] = disc[0, 0]
    seg = torch.where(image > 0.5, BALL_LABEL, 1).to(torch.int8)
    angle, scale = 0.7, 1.15
    out_image, out_seg = apply_spatial(image, seg, spatial_draw([[angle]], [scale]), settings)
    label = out_seg[0, 0].numpy() == BALL_LABEL
    assert label[2:6].all(axis=(1, 2)).sum() == 0 and label[2:6].any(axis=(1, 2)).all()
    assert not label[:2].any() and not label[6:].any()
    for index in range(3, 6):
        np.testing.assert_array_equal(label[index], label[2])
    expected = 19.5 + np.linalg.solve(rotation([angle]) * scale, [6.0, -4.0])
    np.testing.assert_allclose(centroid(label[2]), expected, atol=0.5)
    np.testing.assert_allclose(centroid(out_image[0, 0, 2].numpy() > 0.5), expected, atol=0.5)


@pytest.mark.parametrize("axes", [(0,), (1,), (2,), (0, 2), (0, 1, 2)], ids=str)
def test_mirroring_flips_image_and_labels_of_the_drawn_samples(axes: tuple[int, ...]) -> None:
    settings = configure_augmentation((12, 14, 16), [0, 1, BALL_LABEL])
    image = torch.randn(2, 2, 12, 14, 16)
    seg = torch.randint(0, 3, (2, 1, 12, 14, 16), dtype=torch.int8)
    flips = torch.zeros(2, 3, dtype=torch.bool)
    flips[1, list(axes)] = True
    out_image, out_seg = apply_mirror(image.clone(), seg.clone(), flips, settings)
    dims = [axis + 2 for axis in axes]
    assert torch.equal(out_image[0], image[0]) and torch.equal(out_seg[0], seg[0])
    np.testing.assert_array_equal(out_image[1].numpy(), np.flip(image[1].numpy(), [d - 1 for d in dims]))
    np.testing.assert_array_equal(out_seg[1].numpy(), np.flip(seg[1].numpy(), [d - 1 for d in dims]))
