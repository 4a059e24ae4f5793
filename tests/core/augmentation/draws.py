"""Hand-made draws for the augmentation tests: everything off, then switch on the one thing under test."""

from __future__ import annotations

from dataclasses import replace

import torch

from core.augmentation import AugmentationDraw, AugmentationSettings, draw_augmentation
from core.augmentation._rows import ChannelDraw
from core.augmentation.spatial import SpatialDraw


def switched_off(draw: ChannelDraw) -> ChannelDraw:
    return ChannelDraw(torch.zeros_like(draw.rows), draw.values)


def switched_on(draw: ChannelDraw) -> ChannelDraw:
    return ChannelDraw(torch.ones_like(draw.rows), draw.values)


def spatial_draw(angles_rad: list[list[float]], scales: list[float]) -> SpatialDraw:
    angles = torch.tensor(angles_rad, dtype=torch.float64)
    factors = torch.tensor(scales, dtype=torch.float64)
    return SpatialDraw(angles, factors, (angles != 0).any(1), factors != 1)


def quiet_draw(
    settings: AugmentationSettings, batch_size: int, channels: int, seed: int = 0
) -> AugmentationDraw:
    """A real draw with every transform switched off; tests `replace` the fields they exercise."""
    draw = draw_augmentation(settings, batch_size, channels, torch.Generator().manual_seed(seed))
    no_rotation = [[0.0] * settings.rotation_count] * batch_size
    return replace(
        draw,
        spatial=spatial_draw(no_rotation, [1.0] * batch_size),
        noise=switched_off(draw.noise),
        blur=switched_off(draw.blur),
        brightness=switched_off(draw.brightness),
        contrast=switched_off(draw.contrast),
        low_resolution=switched_off(draw.low_resolution),
        inverted_gamma=switched_off(draw.inverted_gamma),
        gamma=switched_off(draw.gamma),
        mirror=torch.zeros_like(draw.mirror),
    )
