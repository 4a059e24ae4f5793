"""The U-Net's shape for a given spacing and patch: where to downsample and with which kernels.

METHOD.md 3.5 step 2 (nnU-Net v2's `get_pool_and_conv_props`). Downsampling is decided one stage at
a time from the current (already downsampled) spacing and size, so anisotropic data first pools only
its fine axes until they catch up with the coarse one; kernels stay 1 along an axis until its
spacing is within a factor 2 of the finest, which gives 1x3x3 convolutions early in thick-slice
data. Works for any number of axes (2D and 3D configurations use the same rule).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from core.constants import PLANNING_FEATUREMAP_MIN_EDGE_LENGTH


@dataclass(frozen=True)
class Topology:
    """Per-stage strides and kernels (stage 0 first; stage 0 never strides) and the padded patch."""

    strides: tuple[tuple[int, ...], ...]
    kernel_sizes: tuple[tuple[int, ...], ...]
    num_pool_per_axis: tuple[int, ...]
    patch_size: tuple[int, ...]

    @property
    def n_stages(self) -> int:
        return len(self.strides)

    @property
    def shape_must_be_divisible_by(self) -> tuple[int, ...]:
        return tuple(2**n for n in self.num_pool_per_axis)


def pad_to_multiple(shape: Sequence[float], divisors: Sequence[int]) -> tuple[int, ...]:
    """Round each size up to a multiple of its divisor; divisible sizes stay (METHOD.md 3.5)."""
    return tuple(int(math.ceil(size / d) * d) for size, d in zip(shape, divisors, strict=True))


def _poolable_axes(spacing: Sequence[float], size: Sequence[float], min_edge_length: int) -> list[int]:
    """Axes that can be halved at this stage (METHOD.md 3.5 step 2)."""
    # An axis must keep at least `min_edge_length` voxels after halving.
    candidates = [axis for axis in range(len(size)) if size[axis] >= 2 * min_edge_length]
    if not candidates:
        return []
    # Only axes within a factor 2 of the finest candidate spacing pool, so the coarse axis waits.
    finest = min(spacing[axis] for axis in candidates)
    candidates = [axis for axis in candidates if spacing[axis] / finest < 2]
    # Pooling a single axis alone is only worth it when it stays comfortably large.
    if len(candidates) == 1 and size[candidates[0]] < 3 * min_edge_length:
        return []
    return candidates


def compute_topology(
    spacing: Sequence[float],
    patch_size: Sequence[float],
    min_edge_length: int = PLANNING_FEATUREMAP_MIN_EDGE_LENGTH,
) -> Topology:
    """Strides, kernel sizes and the patch padded to `2 ** pools` per axis.

    `spacing` and `patch_size` are in network (transposed) axis order; the result's strides and
    kernels have one entry per stage, the bottleneck last. A patch size may be fractional (clipped to
    a median shape of an even number of cases); padding rounds it up.
    """
    dim = len(spacing)
    current_spacing = [float(s) for s in spacing]
    current_size = [float(s) for s in patch_size]
    strides: list[tuple[int, ...]] = [(1,) * dim]
    kernels: list[tuple[int, ...]] = []
    num_pool = [0] * dim
    kernel = [1] * dim
    while axes := _poolable_axes(current_spacing, current_size, min_edge_length):
        # A kernel axis switches to 3 for good once its spacing is within a factor 2 of the finest
        # spacing over all axes (not only the poolable ones).
        finest = min(current_spacing)
        kernel = [3 if k == 3 or s / finest < 2 else 1 for k, s in zip(kernel, current_spacing, strict=True)]
        for axis in axes:
            num_pool[axis] += 1
            current_spacing[axis] *= 2
            current_size[axis] = math.ceil(current_size[axis] / 2)
        strides.append(tuple(2 if axis in axes else 1 for axis in range(dim)))
        kernels.append(tuple(kernel))
    # The bottleneck always gets a full 3x3(x3) kernel.
    kernels.append((3,) * dim)
    divisors = [2**n for n in num_pool]
    return Topology(
        strides=tuple(strides),
        kernel_sizes=tuple(kernels),
        num_pool_per_axis=tuple(num_pool),
        patch_size=pad_to_multiple(patch_size, divisors),
    )
