"""Point-wise intensity transforms: noise, brightness, contrast and gamma (METHOD.md 5.5, 4 and 6-10).

Each has a `draw_*` that takes the host generator and returns a `ChannelDraw`, and an `apply_*` that
changes the chosen (sample, channel) rows of a contiguous image in place, all rows in one vectorised pass.
Statistics (mean, std, min, max) are per row, i.e. per sample and channel, as upstream computes them per
channel of one sample.
"""

from __future__ import annotations

import torch
from torch import Tensor

from core.augmentation._rows import (
    ChannelDraw,
    apply_to_rows,
    draw_bg_contrast,
    draw_rows,
    per_row,
    uniform,
)
from core.augmentation.settings import (
    BRIGHTNESS_RANGE,
    CONTRAST_RANGE,
    GAMMA_RANGE,
    NOISE_STD_RANGE,
    P_BRIGHTNESS,
    P_CONTRAST,
    P_NOISE,
)

# Guards divisions by a flat row's range or std, as batchgeneratorsv2's GammaTransform does.
_EPS = 1e-7


def draw_noise(generator: torch.Generator, batch_size: int, channels: int) -> ChannelDraw:
    """Per sample, p 0.1: one std from U(0, 0.1) for all its channels (upstream calls it a variance)."""
    is_sample = torch.rand(batch_size, generator=generator) < P_NOISE
    std = uniform(generator, (batch_size,), *NOISE_STD_RANGE)
    return ChannelDraw(
        is_sample[:, None].expand(batch_size, channels), std[:, None].expand(batch_size, channels)
    )


def apply_noise(image: Tensor, draw: ChannelDraw, noise_generator: torch.Generator) -> Tensor:
    """Add zero-mean Gaussian noise; the field is drawn on the image's device from `noise_generator`."""

    def add_noise(rows: Tensor, std: Tensor) -> Tensor:
        noise = torch.randn(rows.shape, generator=noise_generator, device=rows.device, dtype=rows.dtype)
        return rows + noise * per_row(std, rows)

    return apply_to_rows(image, draw, add_noise)


def _draw_factor(
    generator: torch.Generator,
    batch_size: int,
    channels: int,
    p_sample: float,
    value_range: tuple[float, float],
) -> ChannelDraw:
    rows = draw_rows(generator, batch_size, channels, p_sample, 1.0)
    return ChannelDraw(rows, draw_bg_contrast(generator, (batch_size, channels), *value_range))


def draw_brightness(generator: torch.Generator, batch_size: int, channels: int) -> ChannelDraw:
    """Per sample, p 0.15: a multiplier per channel from BGContrast(0.75, 1.25)."""
    return _draw_factor(generator, batch_size, channels, P_BRIGHTNESS, BRIGHTNESS_RANGE)


def apply_brightness(image: Tensor, draw: ChannelDraw) -> Tensor:
    return apply_to_rows(image, draw, lambda rows, factor: rows * per_row(factor, rows))


def draw_contrast(generator: torch.Generator, batch_size: int, channels: int) -> ChannelDraw:
    """Per sample, p 0.15: a contrast factor per channel from BGContrast(0.75, 1.25)."""
    return _draw_factor(generator, batch_size, channels, P_CONTRAST, CONTRAST_RANGE)


def _row_stats(rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, min and max of each row, shaped to broadcast against the rows."""
    flat = rows.flatten(1)
    low, high = torch.aminmax(flat, dim=1)
    shape = (-1, *([1] * (rows.ndim - 1)))
    return flat.mean(1).view(shape), low.view(shape), high.view(shape)


def apply_contrast(image: Tensor, draw: ChannelDraw) -> Tensor:
    """Scale around the row's mean, then clip to its original range ("preserve_range"), so that contrast
    changes never create intensities the network could not otherwise see."""

    def stretch(rows: Tensor, factor: Tensor) -> Tensor:
        mean, low, high = _row_stats(rows)
        return torch.clamp((rows - mean) * per_row(factor, rows) + mean, low, high)

    return apply_to_rows(image, draw, stretch)


def draw_gamma(generator: torch.Generator, batch_size: int, channels: int, p_sample: float) -> ChannelDraw:
    """Per sample with p_sample (0.1 for the inverted variant, 0.3 for the plain one): a gamma per channel
    from BGContrast(0.7, 1.5)."""
    return _draw_factor(generator, batch_size, channels, p_sample, GAMMA_RANGE)


def apply_gamma(image: Tensor, draw: ChannelDraw, is_inverted: bool) -> Tensor:
    """Rescale each row to [0, 1], raise to gamma, rescale back, then restore the row's mean and std
    (`p_retain_stats=1`). Inverted: the same on the negated row, which bends the bright end instead."""
    sign = -1.0 if is_inverted else 1.0

    def bend(rows: Tensor, gamma: Tensor) -> Tensor:
        rows = rows * sign
        mean, low, high = _row_stats(rows)
        std = rows.flatten(1).std(1).view_as(mean)
        span = high - low
        bent = ((rows - low) / span.clamp_min(_EPS)) ** per_row(gamma, rows) * span + low
        bent_mean, _, _ = _row_stats(bent)
        bent_std = bent.flatten(1).std(1).view_as(mean)
        return ((bent - bent_mean) * (std / bent_std.clamp_min(_EPS)) + mean) * sign

    return apply_to_rows(image, draw, bend)
