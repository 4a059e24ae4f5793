"""Gaussian blur and simulated low resolution, batched over rows with different parameters (METHOD.md 5.5,
5 and 8).

Upstream loops over channels and calls a convolution / `interpolate` per channel, because each channel has
its own sigma or zoom. Here both are written as separable per-axis operators whose parameters are tensors
with one entry per row, so one pass per axis serves every chosen row of the batch:

* blur: a 1D kernel per row and axis, all zero-padded to the largest size in the batch (zero taps change
  nothing), applied as a weighted sum of shifted views of the reflect-padded rows;
* low resolution: nearest-exact downsampling followed by linear upsampling is, per axis, "read two input
  voxels and mix them"; the two source indices and the weight depend only on the output index and the
  row's zoom, so the whole operator is two gathers and a blend per axis. The indices follow PyTorch's own
  `interpolate` arithmetic (float32), so the result equals upstream's `interpolate` calls.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from core.augmentation._rows import ChannelDraw, apply_to_rows, draw_rows, uniform
from core.augmentation.settings import (
    BLUR_SIGMA_RANGE,
    BLUR_TRUNCATE,
    LOW_RESOLUTION_ZOOM_RANGE,
    P_BLUR,
    P_BLUR_CHANNEL,
    P_LOW_RESOLUTION,
    P_LOW_RESOLUTION_CHANNEL,
)


def draw_blur(generator: torch.Generator, batch_size: int, channels: int, spatial_dims: int) -> ChannelDraw:
    """Per sample p 0.2, then per channel p 0.5: a sigma per axis from U(0.5, 1)."""
    rows = draw_rows(generator, batch_size, channels, P_BLUR, P_BLUR_CHANNEL)
    return ChannelDraw(rows, uniform(generator, (batch_size, channels, spatial_dims), *BLUR_SIGMA_RANGE))


def kernel_sizes(sigma: Tensor) -> Tensor:
    """batchgeneratorsv2's kernel length: the odd number nearest to sigma * truncate + 0.5 (round half to
    even first, then step towards the unrounded value)."""
    target = sigma * BLUR_TRUNCATE + 0.5
    rounded = torch.round(target)
    step = torch.where(target - rounded >= 0, 1.0, -1.0)
    return torch.where(rounded % 2 == 1, rounded, rounded + step).long()


def gaussian_kernels(sigma: Tensor) -> Tensor:
    """(R, n_axes) sigmas → (R, n_axes, K) normalised kernels, each centred and zero beyond its own length."""
    sizes = kernel_sizes(sigma)
    width = int(sizes.max())
    offsets = torch.arange(width, dtype=torch.float64) - width // 2
    weights = torch.exp(-0.5 * (offsets / sigma[..., None]) ** 2)
    weights = weights * (offsets.abs() <= (sizes[..., None] - 1) / 2)
    return weights / weights.sum(-1, keepdim=True)


def _blur_rows(rows: Tensor, sigma: Tensor) -> Tensor:
    kernels = gaussian_kernels(sigma).to(device=rows.device, dtype=rows.dtype)
    width = kernels.shape[-1]
    shape = (-1, *([1] * (rows.ndim - 1)))
    for axis in range(rows.ndim - 1):
        size = rows.shape[axis + 1]
        pad = [0] * (2 * (rows.ndim - 1))
        pad[-2 * axis - 2 : len(pad) - 2 * axis] = [width // 2, width // 2]
        padded = F.pad(rows[None], pad, mode="reflect")[0]
        blurred = kernels[:, axis, 0].view(shape) * padded.narrow(axis + 1, 0, size)
        for tap in range(1, width):
            blurred.addcmul_(kernels[:, axis, tap].view(shape), padded.narrow(axis + 1, tap, size))
        rows = blurred
    return rows


def apply_blur(image: Tensor, draw: ChannelDraw) -> Tensor:
    """Separable Gaussian smoothing with reflect padding, each chosen row with its own sigmas."""
    return apply_to_rows(image, draw, _blur_rows)


def draw_low_resolution(
    generator: torch.Generator,
    batch_size: int,
    channels: int,
    spatial_dims: int,
    ignored_axes: tuple[int, ...],
) -> ChannelDraw:
    """Per sample p 0.25, then per channel p 0.5: one zoom from U(0.5, 1) for all axes but the ignored ones
    (axis 0 in dummy-2D mode, whose slices are far apart already)."""
    rows = draw_rows(generator, batch_size, channels, P_LOW_RESOLUTION, P_LOW_RESOLUTION_CHANNEL)
    zoom = uniform(generator, (batch_size, channels), *LOW_RESOLUTION_ZOOM_RANGE)
    # upstream keeps the zoom in a float32 tensor before computing the low-resolution shape
    zoom = zoom.to(torch.float32).to(torch.float64)
    zooms = zoom[..., None].expand(batch_size, channels, spatial_dims).clone()
    zooms[..., list(ignored_axes)] = 1.0
    return ChannelDraw(rows, zooms)


def low_resolution_taps(size: int, zoom: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """For rows with the given zoom (R,), the two input indices (R, size) and the weight of the second that
    `interpolate(interpolate(x, round(size * zoom), 'nearest-exact'), size, 'linear')` reads per output index.
    """
    small = torch.round(size * zoom).to(torch.float32)[:, None]
    out = torch.arange(size, dtype=torch.float32)[None, :]
    # linear upsampling, align_corners=False: source = (out + 0.5) * small / size - 0.5, clamped at 0
    source = ((small / size) * (out + 0.5) - 0.5).clamp_min(0)
    first = source.floor()
    second = torch.where(first < small - 1, first + 1, first)
    weight = source - first

    def nearest_exact(index: Tensor) -> Tensor:
        return torch.minimum(((index + 0.5) * (size / small)).floor(), torch.tensor(size - 1.0)).long()

    return nearest_exact(first), nearest_exact(second), weight


def _degrade_rows(rows: Tensor, zooms: Tensor) -> Tensor:
    for axis in range(rows.ndim - 1):
        if bool((zooms[:, axis] == 1).all()):
            continue
        size = rows.shape[axis + 1]
        first, second, weight = low_resolution_taps(size, zooms[:, axis])
        shape = [-1] + [1] * (rows.ndim - 1)
        shape[axis + 1] = size
        first, second = first.to(rows.device).view(shape), second.to(rows.device).view(shape)
        weight = weight.to(device=rows.device, dtype=rows.dtype).view(shape)
        near = torch.take_along_dim(rows, first, dim=axis + 1)
        far = torch.take_along_dim(rows, second, dim=axis + 1)
        rows = near + weight * (far - near)
    return rows


def apply_low_resolution(image: Tensor, draw: ChannelDraw) -> Tensor:
    """Downsample each chosen row (nearest-exact) by its zoom and upsample it back (linear per axis)."""
    return apply_to_rows(image, draw, _degrade_rows)
