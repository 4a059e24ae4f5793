"""Rotation and scaling with a centre crop, and mirroring, for a whole batch (METHOD.md 5.5, 2 and 11).

The spatial transform turns the loader's enlarged crop into the final patch. Samples that are neither
rotated nor scaled (about two in three) are cropped exactly, with no interpolation, as upstream does; the
rest go through one `affine_grid` + one `grid_sample` call, with the image channels and the segmentation's
label indicators stacked so that both follow the same sampling grid by construction.

Labels are resampled as upstream does (`mode_seg='bilinear'`): each label's indicator is interpolated
linearly and every voxel takes the label with the highest score. Nearest-neighbour would be cheaper (one
channel instead of one per label) but gives jagged boundaries under rotation and, when zooming out, keeps
or drops thin structures by chance. Out-of-crop voxels get `OUTSIDE_LABEL`, whose score is what the
other labels leave (`_best_label`), so that the crop's edge falls where upstream's does. Ties (exact
half-way points, of probability zero under continuous angles and scales) go to the lower label; upstream
breaks them by the nearest neighbour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from core.augmentation.settings import (
    OUTSIDE_LABEL,
    P_MIRROR_PER_AXIS,
    P_ROTATION,
    P_SCALING,
    SCALING_RANGE,
    AugmentationSettings,
)


@dataclass(frozen=True)
class SpatialDraw:
    """Per-sample rotation angles (B, n_angles) and scale factors (B,), on the host.

    A sample that is not rotated has angles 0, one that is not scaled has factor 1.
    """

    angles_rad: Tensor
    scales: Tensor
    is_rotated: Tensor
    is_scaled: Tensor

    @property
    def is_resampled(self) -> Tensor:
        return self.is_rotated | self.is_scaled


def _uniform(generator: torch.Generator, shape: tuple[int, ...], low: float, high: float) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)


def draw_spatial(settings: AugmentationSettings, batch_size: int, generator: torch.Generator) -> SpatialDraw:
    """Every angle and factor is drawn even where unused, so one sample's draw never shifts another's."""
    is_rotated = torch.rand(batch_size, generator=generator) < P_ROTATION
    is_scaled = torch.rand(batch_size, generator=generator) < P_SCALING
    limit = settings.rotation_max_rad
    angles = _uniform(generator, (batch_size, settings.rotation_count), -limit, limit)
    scales = _uniform(generator, (batch_size,), *SCALING_RANGE)
    return SpatialDraw(
        angles_rad=torch.where(is_rotated[:, None], angles, 0.0),
        scales=torch.where(is_scaled, scales, 1.0),
        is_rotated=is_rotated,
        is_scaled=is_scaled,
    )


def _rotation_matrices(angles_rad: Tensor) -> Tensor:
    """(B, n_angles) → (B, d, d): Rz @ Ry @ Rx in 3D (axis k's angle turns the other two axes), as
    batchgeneratorsv2's `create_affine_matrix_3d`; a plain 2x2 rotation for a single angle."""
    cos, sin = torch.cos(angles_rad), torch.sin(angles_rad)
    one, zero = torch.ones_like(cos[:, 0]), torch.zeros_like(cos[:, 0])
    if angles_rad.shape[1] == 1:
        return torch.stack([cos[:, 0], -sin[:, 0], sin[:, 0], cos[:, 0]], -1).view(-1, 2, 2)
    c0, c1, c2, s0, s1, s2 = cos[:, 0], cos[:, 1], cos[:, 2], sin[:, 0], sin[:, 1], sin[:, 2]
    rx = torch.stack([one, zero, zero, zero, c0, -s0, zero, s0, c0], -1).view(-1, 3, 3)
    ry = torch.stack([c1, zero, s1, zero, one, zero, -s1, zero, c1], -1).view(-1, 3, 3)
    rz = torch.stack([c2, -s2, zero, s2, c2, zero, zero, zero, one], -1).view(-1, 3, 3)
    return rz @ ry @ rx


def sampling_theta(draw: SpatialDraw, input_shape: tuple[int, ...], patch_shape: tuple[int, ...]) -> Tensor:
    """The `affine_grid` matrices (B, d, d + 1) mapping output to input, both centred on their middle.

    In voxel offsets from the centre, an output voxel p reads the input at A p with A = R S
    (batchgeneratorsv2's convention). `affine_grid` works in [-1, 1] coordinates of each tensor
    (align_corners=False) and in reversed axis order (x first), hence diag(1/input) . A . diag(patch) and
    the flips.
    """
    dim = len(patch_shape)
    affine = _rotation_matrices(draw.angles_rad) * draw.scales[:, None, None]
    to_input = torch.tensor([1.0 / s for s in input_shape], dtype=torch.float64)
    from_patch = torch.tensor([float(p) for p in patch_shape], dtype=torch.float64)
    normalized = to_input[None, :, None] * affine * from_patch[None, None, :]
    theta = torch.zeros((affine.shape[0], dim, dim + 1), dtype=torch.float64)
    theta[:, :, :dim] = normalized.flip(1).flip(2)
    return theta


def _centre_slices(input_shape: tuple[int, ...], patch_shape: tuple[int, ...]) -> tuple[slice, ...]:
    """The integer centre crop upstream takes when nothing is resampled (`crop_tensor`, centre size // 2)."""
    starts = [s // 2 - p // 2 for s, p in zip(input_shape, patch_shape, strict=True)]
    return tuple(slice(start, start + p) for start, p in zip(starts, patch_shape, strict=True))


def _resample(
    image: Tensor, seg: Tensor, theta: Tensor, patch_shape: tuple[int, ...], label_values: tuple[int, ...]
) -> tuple[Tensor, Tensor]:
    """Rotate/scale samples (b, C, *S) of image and seg (b, K, *S) onto patch_shape in one grid_sample call.

    The spatial shape may carry a leading axis that is not resampled (dummy 2D): it is folded into the
    channels so that every slice gets the same in-plane transform. The stacked input is built channels-last:
    on CPU, grid_sample reads all channels of a sampled voxel at once then, which made a rotated 128^3 patch
    with 4 channels 2.5x faster than the default layout.
    """
    batch, channels = image.shape[:2]
    spatial_dim = len(patch_shape)
    leading = tuple(image.shape[2 : image.ndim - spatial_dim])
    in_shape = tuple(image.shape[image.ndim - spatial_dim :])
    values = torch.tensor(label_values, dtype=seg.dtype, device=seg.device)
    seg_channels = seg.shape[1]
    stacked_channels = channels + seg_channels * len(values)
    folded = torch.empty(
        (batch, stacked_channels * math.prod(leading), *in_shape),
        dtype=image.dtype,
        device=image.device,
        memory_format=torch.channels_last if spatial_dim == 2 else torch.channels_last_3d,
    )
    stacked = folded.view(batch, stacked_channels, *leading, *in_shape)
    stacked[:, :channels] = image
    indicators = stacked[:, channels:].view(batch, seg_channels, len(values), *leading, *in_shape)
    torch.eq(seg[:, :, None], values.view(1, 1, -1, *([1] * (seg.ndim - 2))), out=indicators)
    grid = F.affine_grid(
        theta.to(device=image.device, dtype=image.dtype),
        [batch, folded.shape[1], *patch_shape],
        align_corners=False,
    )
    sampled = F.grid_sample(folded, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    sampled = sampled.view(batch, stacked_channels, *leading, *patch_shape)
    scores = sampled[:, channels:].unflatten(1, (seg_channels, len(values)))
    labels = [_best_label(scores[:, k], label_values, seg.dtype) for k in range(seg_channels)]
    return sampled[:, :channels], torch.cat(labels, dim=1)


def _best_label(scores: Tensor, values: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """Per voxel, the value whose score is highest (the first on ties), as (b, 1, ...).

    The label indicators sum to 1 inside the crop and 0 outside, and interpolation keeps that sum, so
    OUTSIDE_LABEL's score is 1 minus the others' and needs no channel of its own. A running maximum over
    the few label channels: `argmax` over a non-last dimension is several times slower on CPU.
    """
    best = 1 - scores.sum(1, keepdim=True)
    labels = torch.full_like(best, OUTSIDE_LABEL, dtype=dtype)
    for channel, value in enumerate(values):
        score = scores[:, channel : channel + 1]
        labels.masked_fill_(score > best, value)  # a Python int: a tensor value would sync with the device
        torch.maximum(best, score, out=best)
    return labels


def apply_spatial(
    image: Tensor, seg: Tensor, draw: SpatialDraw, settings: AugmentationSettings
) -> tuple[Tensor, Tensor]:
    """Centre-crop image (B, C, *S) and seg (B, K, *S) to the final patch, resampling the drawn samples.

    Returns new tensors; the inputs are left as they are.
    """
    if settings.is_dummy_2d:
        # nothing moves along axis 0, so it only needs the exact crop
        axis0 = _centre_slices(image.shape[2:3], settings.patch_size[:1])
        image, seg = image[:, :, axis0[0]], seg[:, :, axis0[0]]
    patch_shape = tuple(settings.patch_size[axis] for axis in settings.resampled_axes)
    input_shape = tuple(image.shape[image.ndim - len(patch_shape) :])
    crop = (slice(None), slice(None), Ellipsis, *_centre_slices(input_shape, patch_shape))
    # a copy even when the crop is the whole input: later steps work in place on the returned tensors
    out_image = image[crop].clone(memory_format=torch.contiguous_format)
    out_seg = seg[crop].clone(memory_format=torch.contiguous_format)
    selected = torch.nonzero(draw.is_resampled).flatten()
    if len(selected) == 0:
        return out_image, out_seg
    theta = sampling_theta(
        SpatialDraw(*(t[selected] for t in (draw.angles_rad, draw.scales, draw.is_rotated, draw.is_scaled))),
        input_shape,
        patch_shape,
    )
    rows = selected.to(image.device)
    resampled_image, resampled_seg = _resample(
        image.index_select(0, rows), seg.index_select(0, rows), theta, patch_shape, settings.label_values
    )
    out_image.index_copy_(0, rows, resampled_image)
    out_seg.index_copy_(0, rows, resampled_seg)
    return out_image, out_seg


def draw_mirror(settings: AugmentationSettings, batch_size: int, generator: torch.Generator) -> Tensor:
    """(B, len(mirror_axes)) booleans: which allowed axes each sample is flipped along."""
    return torch.rand((batch_size, len(settings.mirror_axes)), generator=generator) < P_MIRROR_PER_AXIS


def apply_mirror(
    image: Tensor, seg: Tensor, flips: Tensor, settings: AugmentationSettings
) -> tuple[Tensor, Tensor]:
    """Flip, in place, each sample of image and seg along its drawn axes; one pass per axis."""
    for column, axis in enumerate(settings.mirror_axes):
        selected = torch.nonzero(flips[:, column]).flatten()
        if len(selected) == 0:
            continue
        rows = selected.to(image.device)
        for tensor in (image, seg):
            tensor.index_copy_(0, rows, tensor.index_select(0, rows).flip(axis + 2))
    return image, seg
