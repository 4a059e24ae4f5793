"""Sliding-window prediction over a preprocessed volume (METHOD.md 7.3), the network a plain callable.

Windows of the patch size are placed by nnU-Net's step rule (`window_starts`); each window's logits,
weighted by a Gaussian importance map (`gaussian_importance_map`), are summed into an accumulator and
divided by the summed weights at the end. Test-time mirroring averages the network over every
combination of the allowed axes. A 2D configuration predicts a volume slice by slice, with the same 2D
windows on every slice. Several windows go through the network per call (`windows_per_batch`). How the
network itself runs (precision, memory layout) is `core.inference.network_runtime`'s business.

The accumulators live on the device, with a retry on the host when the device runs out of memory;
the input volume stays on the host and travels a batch of windows at a time.
They are float32 by default. nnU-Net v2 keeps them (and the Gaussian) in float16, which halves their
memory but loses the logits where the weights are tiny: at a window's corners the float16 Gaussian
underflows to ~6e-8, products with it are float16 subnormals with a resolution of ~6e-8, so a voxel
covered only by corners (the volume's own corners) gets logits rounded by up to ~0.5. With float32 the
result equals the direct prediction wherever one window covers the image. `accumulator_dtype=float16`
reproduces nnU-Net's numerics (same dtype, same window order, so sums round as its sums do).

In float32 the summed weights are not stored per voxel: the map is a product of one profile per axis
and the windows form a grid, so the sum over windows is the product of per-axis sums of shifted
profiles, and the logits are divided by it slab by slab. That saves a volume-sized array (a third of
the float32 accumulators for three classes) and the per-window additions into it. float16 keeps
nnU-Net's per-voxel sum, whose floored corners are not a product.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from core.errors import ProblemsError

logger = logging.getLogger(__name__)

Network = Callable[[torch.Tensor], torch.Tensor]
# One window: for 3D (slice, slice, slice) of the volume; for 2D (slice index, slice, slice).
Window = tuple[int | slice, ...]

NNUNET_ACCUMULATOR_DTYPE = torch.float16
GAUSSIAN_SIGMA_SCALE = 1.0 / 8  # sigma = patch size / 8 per axis (METHOD.md 7.3)
GAUSSIAN_VALUE_SCALING = 10.0  # the map's peak value


class SlidingWindowError(ProblemsError):
    """Settings that cannot describe a sliding window (step size, patch and image dimensions)."""


class NonFiniteLogitsError(RuntimeError):
    """The averaged logits hold inf: a float16 accumulator overflowed (as nnU-Net v2 reports it)."""


@dataclass(frozen=True)
class SlidingWindowSettings:
    """How to tile and average. `mirror_axes` are spatial axes of the network input (0 = first)."""

    patch_size: tuple[int, ...]
    step_size: float = 0.5
    mirror_axes: tuple[int, ...] = ()
    windows_per_batch: int = 1
    use_gaussian: bool = True
    accumulate_on_device: bool = True
    accumulator_dtype: torch.dtype = torch.float32


@functools.lru_cache(maxsize=64)
def window_starts(
    image_size: tuple[int, ...], tile_size: tuple[int, ...], step_size: float
) -> tuple[tuple[int, ...], ...]:
    """Start of every window per axis: n = ceil((size - tile) / (tile * step)) + 1 windows spread
    evenly from 0 to size - tile, rounded (nnU-Net's `compute_steps_for_sliding_window`)."""
    if not 0 < step_size <= 1:
        raise SlidingWindowError(f"step size must be in (0, 1], got {step_size}")
    if len(image_size) != len(tile_size) or any(i < t for i, t in zip(image_size, tile_size, strict=True)):
        raise SlidingWindowError(f"image size {image_size} must be at least the tile size {tile_size}")
    starts = []
    for size, tile in zip(image_size, tile_size, strict=True):
        count = math.ceil((size - tile) / (tile * step_size)) + 1
        step = (size - tile) / (count - 1) if count > 1 else 0.0
        starts.append(tuple(int(np.round(step * i)) for i in range(count)))
    return tuple(starts)


@functools.lru_cache(maxsize=8)
def gaussian_importance_map(
    tile_size: tuple[int, ...],
    sigma_scale: float = GAUSSIAN_SIGMA_SCALE,
    value_scaling: float = GAUSSIAN_VALUE_SCALING,
    dtype: torch.dtype = NNUNET_ACCUMULATOR_DTYPE,
) -> torch.Tensor:
    """A blurred unit impulse at `size // 2` per axis, peak `value_scaling`, cast to `dtype`, with
    exact zeros (underflow, e.g. in float16) raised to the smallest non-zero value so that no voxel gets
    weight 0. Cached and shared: treat it as read-only.

    nnU-Net v2 blurs the whole impulse volume (scipy's gaussian_filter; 0.16 to 0.3 s for a
    48 x 160 x 192 patch). An impulse is separable and each axis's pass multiplies by one kernel
    weight, so the outer product of the 1D blurred impulses, taken in the same axis order, gives the
    same float64 values bit for bit, in milliseconds."""
    profiles = []
    for size in tile_size:
        impulse = np.zeros(size)
        impulse[size // 2] = 1
        profiles.append(gaussian_filter1d(impulse, size * sigma_scale, mode="constant", cval=0))
    blurred = functools.reduce(np.multiply.outer, profiles)
    blurred *= value_scaling / blurred.max()
    weights = torch.from_numpy(blurred).to(dtype)
    is_zero = weights == 0
    if bool(is_zero.any()):
        weights.masked_fill_(is_zero, weights.masked_fill(is_zero, float("inf")).min())
    return weights


def pad_to_patch(data: torch.Tensor, patch_size: Sequence[int]) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Zero-pad the trailing axes of `data` to at least `patch_size`, centred (an odd remainder goes
    to the end); returns the padded tensor and the slices that take the padding off again."""
    spatial = data.shape[-len(patch_size) :]
    missing = [max(0, p - s) for p, s in zip(patch_size, spatial, strict=True)]
    if not any(missing):
        return data, tuple(slice(None) for _ in patch_size)
    pads: list[int] = []
    for gap in reversed(missing):  # torch's pad lists the last axis first
        pads += [gap // 2, gap - gap // 2]
    unpad = tuple(slice(gap // 2, gap // 2 + s) for gap, s in zip(missing, spatial, strict=True))
    return torch.nn.functional.pad(data, pads), unpad


def windows(volume_shape: tuple[int, ...], patch_size: tuple[int, ...], step_size: float) -> list[Window]:
    """The windows of a (padded) spatial volume, in nnU-Net's order (last axis fastest; for a 2D
    patch on a 3D volume, slice by slice)."""
    is_2d = len(patch_size) == len(volume_shape) - 1
    plane = volume_shape[1:] if is_2d else volume_shape
    starts = window_starts(tuple(plane), tuple(patch_size), step_size)
    tiles = [
        tuple(slice(s, s + p) for s, p in zip(corner, patch_size, strict=True))
        for corner in itertools.product(*starts)
    ]
    if is_2d:
        return [(index, *tile) for index in range(volume_shape[0]) for tile in tiles]
    return tiles


def predict_with_mirroring(network: Network, batch: torch.Tensor, mirror_axes: Sequence[int]) -> torch.Tensor:
    """The network's logits averaged over the input and its flips along every non-empty combination
    of `mirror_axes` (spatial axes; batch is (B, C, *spatial)), each flipped back."""
    prediction = network(batch)
    axes = [axis + 2 for axis in mirror_axes]
    combinations = [c for k in range(1, len(axes) + 1) for c in itertools.combinations(axes, k)]
    for flip in combinations:
        prediction += torch.flip(network(torch.flip(batch, flip)), flip)
    if combinations:
        prediction /= len(combinations) + 1
    return prediction


def _batches(items: list[Window], size: int) -> Iterator[list[Window]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _separable_weight_sums(
    gaussian: torch.Tensor, spatial: tuple[int, ...], patch_size: tuple[int, ...], step_size: float
) -> list[torch.Tensor]:
    """Per-axis factors whose outer product is the sum of the window maps over every window of
    `spatial`; the first factor carries the map's peak. A 2D patch on a 3D volume gets a factor 1 per
    slice (each slice has its own windows)."""
    centre = tuple(size // 2 for size in patch_size)
    gaussian = gaussian.cpu()
    peak = float(gaussian[centre])
    is_2d = len(patch_size) == len(spatial) - 1
    plane = spatial[1:] if is_2d else spatial
    factors = [torch.full((spatial[0],), peak)] if is_2d else []
    for axis, (size, starts) in enumerate(
        zip(plane, window_starts(plane, patch_size, step_size), strict=True)
    ):
        profile = gaussian[(*centre[:axis], slice(None), *centre[axis + 1 :])].float() / peak
        sums = torch.zeros(size)
        for start in starts:
            sums[start : start + patch_size[axis]] += profile
        factors.append(sums)
    if not is_2d:
        factors[0] *= peak
    return factors


def _divide_by_separable_weights(logits: torch.Tensor, factors: list[torch.Tensor]) -> None:
    """logits (K, *spatial) /= outer product of `factors`, one slab of the first axis at a time."""
    rest = factors[1]
    for factor in factors[2:]:
        rest = rest[..., None] * factor
    rest = rest.to(logits.device)
    for index, factor in enumerate(factors[0].tolist()):
        logits[:, index].div_(rest * factor)


def _accumulate(
    network: Network,
    data: torch.Tensor,
    num_outputs: int,
    settings: SlidingWindowSettings,
    device: torch.device,
    results_device: torch.device,
) -> torch.Tensor:
    # The volume stays on the host: each batch of windows travels to the device alone, so that a GPU
    # holds the network and the accumulators but not the whole input besides them (nnU-Net v2 holds
    # all three: 4 bytes per voxel and channel more, 300 MB on a 300 x 512 x 512 case).
    spatial = tuple(data.shape[1:])
    dtype = settings.accumulator_dtype
    per_voxel_weights = dtype == NNUNET_ACCUMULATOR_DTYPE
    logits = torch.zeros((num_outputs, *spatial), dtype=dtype, device=results_device)
    weights_sum = torch.zeros(spatial, dtype=dtype, device=results_device) if per_voxel_weights else None
    gaussian = gaussian_importance_map(settings.patch_size, dtype=dtype).to(results_device)
    if not settings.use_gaussian:
        gaussian = torch.ones_like(gaussian)
    all_windows = windows(spatial, settings.patch_size, settings.step_size)
    for group in _batches(all_windows, settings.windows_per_batch):
        batch = torch.stack([data[(slice(None), *window)] for window in group]).to(device)
        predicted = predict_with_mirroring(network, batch, settings.mirror_axes)
        # weighted in float32 and added in the accumulator's dtype, as nnU-Net adds its products
        predicted = predicted.to(results_device, torch.float32)
        for window, window_logits in zip(group, predicted, strict=True):
            logits[(slice(None), *window)].addcmul_(window_logits, gaussian)
            if weights_sum is not None:
                weights_sum[window] += gaussian
    if weights_sum is None:
        factors = _separable_weight_sums(gaussian, spatial, settings.patch_size, settings.step_size)
        _divide_by_separable_weights(logits, factors)
        return logits
    torch.div(logits, weights_sum, out=logits)
    if torch.isinf(logits).any():
        raise NonFiniteLogitsError(f"the averaged logits hold inf ({dtype} accumulator overflow)")
    return logits


def sliding_window_logits(
    network: Network,
    data: torch.Tensor,
    num_outputs: int,
    settings: SlidingWindowSettings,
    device: torch.device,
) -> torch.Tensor:
    """Logits (num_outputs, *spatial) of a (channels, *spatial) volume, on the host, in the
    accumulator dtype.

    `network` maps (B, C, *patch) to (B, num_outputs, *patch); a 2D patch on a 3D volume predicts slice
    by slice. Accumulates on `device` when `settings.accumulate_on_device`; if the device runs out of
    memory there, the whole pass is redone with the accumulators on the host and one window per call.
    """
    if data.ndim - 1 not in (len(settings.patch_size), len(settings.patch_size) + 1):
        raise SlidingWindowError(
            f"data of shape {tuple(data.shape)} does not fit a patch of size {settings.patch_size}"
        )
    is_2d = data.ndim - 1 == len(settings.patch_size) + 1
    padded, unpad = pad_to_patch(data, settings.patch_size)
    unpad = (slice(None), slice(None), *unpad) if is_2d else (slice(None), *unpad)
    host = torch.device("cpu")
    if settings.accumulate_on_device:
        try:
            logits = _accumulate(network, padded, num_outputs, settings, device, device)
        except torch.OutOfMemoryError:
            logger.warning("out of memory accumulating on %s; redoing on the host", device)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            fallback = replace(settings, windows_per_batch=1, accumulate_on_device=False)
            logits = _accumulate(network, padded, num_outputs, fallback, device, host)
    else:
        logits = _accumulate(network, padded, num_outputs, settings, device, host)
    return logits[unpad].to(host)
