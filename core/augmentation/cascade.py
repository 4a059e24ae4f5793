"""The cascade's extra input channels and their augmentation (METHOD.md 5.5, step 14).

The previous stage's segmentation travels through the spatial transform and the mirroring as a second
segmentation channel. After the labels are cleaned it becomes one indicator channel per foreground label,
appended to the image (`append_previous_stage`, also the validation and inference path). Training then
damages these channels, so that the network learns to correct the previous stage rather than copy it:

* with p 0.4 per sample, each label's channel with p 0.5, in a random order per sample: a dilation,
  erosion, opening or closing with a ball of radius U(1, 8) voxels (the offsets within that distance);
  voxels a channel gains are taken from the other channels;
* with p 0.2 per sample, each label's channel with p 0.5: one connected component (full connectivity)
  chosen uniformly among those smaller than 15% of the patch is erased.

The morphology runs on the batch's device as FFT convolutions (counts of set voxels under the ball,
thresholded), which costs the same for every radius; the component labelling runs on the host (scipy).
Every random number is drawn first (`draw_cascade`); the component is picked as the floor of a drawn
U(0, 1) times the number of candidates, since their number is known only from the data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from core.augmentation._rows import draw_rows, uniform

P_BINARY_OPERATOR = 0.4
P_BINARY_OPERATOR_LABEL = 0.5
BALL_RADIUS_RANGE = (1.0, 8.0)
P_REMOVE_COMPONENT = 0.2
P_REMOVE_COMPONENT_LABEL = 0.5
# Components covering at least this fraction of the patch are never erased.
MAX_REMOVED_COMPONENT_FRACTION = 0.15


@dataclass(frozen=True)
class CascadeDraw:
    """Per (sample, label) pair, (B, L): whether and how its channel is damaged."""

    is_operated: Tensor
    operators: Tensor  # index into OPERATORS
    radii: Tensor
    order: Tensor  # per sample, the order in which its channels are operated on
    is_removed: Tensor
    component_choice: Tensor  # U(0, 1): which of the small components is erased


def draw_cascade(generator: torch.Generator, batch_size: int, num_labels: int) -> CascadeDraw:
    shape = (batch_size, num_labels)
    return CascadeDraw(
        is_operated=draw_rows(generator, batch_size, num_labels, P_BINARY_OPERATOR, P_BINARY_OPERATOR_LABEL),
        operators=torch.randint(len(OPERATORS), shape, generator=generator),
        radii=uniform(generator, shape, *BALL_RADIUS_RANGE),
        order=torch.argsort(torch.rand(shape, generator=generator), dim=1),
        is_removed=draw_rows(generator, batch_size, num_labels, P_REMOVE_COMPONENT, P_REMOVE_COMPONENT_LABEL),
        component_choice=torch.rand(shape, generator=generator, dtype=torch.float64),
    )


def one_hot_labels(seg: Tensor, labels: Sequence[int], dtype: torch.dtype) -> Tensor:
    """(B, *S) label map → (B, len(labels), *S) indicators; other values (background, -1) are all zero."""
    values = torch.tensor(list(labels), dtype=seg.dtype, device=seg.device)
    return (seg[:, None] == values.view(1, -1, *([1] * (seg.ndim - 1)))).to(dtype)


def append_previous_stage(image: Tensor, seg: Tensor, labels: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Image (B, C, *S) and seg (B, 2, *S), seg channel 1 the previous stage → image (B, C + L, *S) with
    its one-hot foreground channels appended, and seg (B, 1, *S)."""
    extra = one_hot_labels(seg[:, 1], labels, image.dtype)
    return torch.cat([image, extra], dim=1), seg[:, :1]


def ball(radius: float, dims: int) -> Tensor:
    """The integer offsets within `radius` of the centre, as a float (2r + 1,)^dims indicator."""
    reach = math.floor(radius)
    axis = torch.arange(-reach, reach + 1, dtype=torch.float64)
    grids = torch.meshgrid(*([axis] * dims), indexing="ij")
    return (sum(g**2 for g in grids) <= radius**2).float()


def dilate(mask: Tensor, kernel: Tensor) -> Tensor:
    """Binary dilation of a (*S) bool mask by a symmetric odd-sized kernel; outside the mask is unset."""
    dims = tuple(range(mask.ndim))
    full = [s + k - 1 for s, k in zip(mask.shape, kernel.shape, strict=True)]
    kernel = kernel.to(mask.device)
    spectrum = torch.fft.rfftn(mask.float(), s=full, dim=dims) * torch.fft.rfftn(kernel, s=full, dim=dims)
    counts = torch.fft.irfftn(spectrum, s=full, dim=dims)
    centre = tuple(slice(k // 2, k // 2 + s) for k, s in zip(kernel.shape, mask.shape, strict=True))
    return counts[centre] > 0.5  # counts are whole numbers; FFT rounding stays far below one half


def erode(mask: Tensor, kernel: Tensor) -> Tensor:
    return ~dilate(~mask, kernel)


def open_mask(mask: Tensor, kernel: Tensor) -> Tensor:
    return dilate(erode(mask, kernel), kernel)


def close_mask(mask: Tensor, kernel: Tensor) -> Tensor:
    return erode(dilate(mask, kernel), kernel)


OPERATORS: tuple[Callable[[Tensor, Tensor], Tensor], ...] = (dilate, erode, close_mask, open_mask)


def apply_binary_operators(channels: Tensor, draw: CascadeDraw) -> Tensor:
    """In place on (B, L, *S) one-hot channels; see the module docstring."""
    dims = channels.ndim - 2
    for sample in range(channels.shape[0]):
        for label in draw.order[sample].tolist():
            if not draw.is_operated[sample, label]:
                continue
            before = channels[sample, label] > 0
            after = OPERATORS[int(draw.operators[sample, label])](
                before, ball(float(draw.radii[sample, label]), dims)
            )
            gained = after & ~before
            channels[sample].masked_fill_(gained.unsqueeze(0), 0)
            channels[sample, label] = after.to(channels.dtype)
    return channels


def remove_random_component(channels: Tensor, draw: CascadeDraw) -> Tensor:
    """In place on (B, L, *S) one-hot channels; see the module docstring."""
    dims = channels.ndim - 2
    structure = np.ones((3,) * dims, dtype=bool)
    limit = MAX_REMOVED_COMPONENT_FRACTION * math.prod(channels.shape[2:])
    for sample, label in torch.nonzero(draw.is_removed).tolist():
        mask = (channels[sample, label] > 0).cpu().numpy()
        components, count = ndimage.label(mask, structure=structure)
        if count == 0:
            continue
        sizes = np.bincount(components.ravel())[1:]
        candidates = np.flatnonzero(sizes < limit) + 1
        if len(candidates) == 0:
            continue
        chosen = candidates[int(float(draw.component_choice[sample, label]) * len(candidates))]
        erased = torch.from_numpy(components == chosen).to(channels.device)
        channels[sample, label].masked_fill_(erased, 0)
    return channels


def apply_cascade(
    image: Tensor, seg: Tensor, draw: CascadeDraw, labels: Sequence[int]
) -> tuple[Tensor, Tensor]:
    """The training form of `append_previous_stage`: the appended channels are then damaged."""
    image, seg = append_previous_stage(image, seg, labels)
    channels = image[:, image.shape[1] - len(labels) :]
    apply_binary_operators(channels, draw)
    remove_random_component(channels, draw)
    return image, seg
