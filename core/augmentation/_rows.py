"""Per-channel draws and the "rows" trick that applies them to a whole batch in one pass.

An intensity transform acts on some (sample, channel) pairs, each with its own parameter. Viewing the
batch (B, C, *S) as B * C rows of (*S), a draw is a (B, C) boolean mask plus a parameter per pair; the
transform gathers the chosen rows, applies one vectorised function with a parameter per row, and writes
them back. Rows that are not chosen cost nothing, which matters since most transforms fire rarely.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class ChannelDraw:
    """Which (sample, channel) pairs a transform changes (`rows`, (B, C) bool) and the parameter of each
    (`values`, (B, C) or (B, C, n_axes), float64). Both live on the host; values of unchosen pairs are
    drawn too (so a sample's draw never depends on another's) but never used."""

    rows: Tensor
    values: Tensor

    def selected(self) -> tuple[Tensor, Tensor]:
        """Flat row indices into the (B * C) rows, and their parameters."""
        index = torch.nonzero(self.rows.flatten()).flatten()
        return index, self.values.flatten(0, 1)[index]


def uniform(generator: torch.Generator, shape: tuple[int, ...], low: float, high: float) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)


def draw_rows(
    generator: torch.Generator, batch_size: int, channels: int, p_sample: float, p_channel: float
) -> Tensor:
    """(B, C) mask: the sample is picked with p_sample, then each of its channels with p_channel."""
    is_sample = torch.rand(batch_size, generator=generator) < p_sample
    is_channel = torch.rand((batch_size, channels), generator=generator) < p_channel
    return is_sample[:, None] & is_channel


def draw_bg_contrast(generator: torch.Generator, shape: tuple[int, ...], low: float, high: float) -> Tensor:
    """batchgeneratorsv2's `BGContrast`: half the time U(low, 1), else U(1, high), so that darkening and
    brightening are equally likely although the range is not symmetric around 1."""
    is_lower = torch.rand(shape, generator=generator) < 0.5
    lower = uniform(generator, shape, low, 1.0)
    upper = uniform(generator, shape, 1.0, high)
    return torch.where(is_lower, lower, upper)


def apply_to_rows(image: Tensor, draw: ChannelDraw, function: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """Replace, in place, the chosen rows of a contiguous image (B, C, *S) with function(rows, values).

    `function` gets the rows (R, *S) on the image's device and their parameters (R, ...) on the host.
    """
    index, values = draw.selected()
    if len(index) == 0:
        return image
    flat = image.view(-1, *image.shape[2:])
    rows = index.to(image.device)
    flat.index_copy_(0, rows, function(flat.index_select(0, rows), values))
    return image


def per_row(values: Tensor, like: Tensor) -> Tensor:
    """Host parameters (R,) shaped to broadcast against rows (R, *S), on their device and in their dtype."""
    return values.to(device=like.device, dtype=like.dtype).view(-1, *([1] * (like.ndim - 1)))
