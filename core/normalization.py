"""Intensity normalization per channel (METHOD.md 4.2), chosen by scheme name as nnU-Net's plans store it.

A channel's name in dataset.json picks the scheme when planning ("CT" → CTNormalization, unknown names
→ ZScoreNormalization); the plans then carry nnU-Net's class names, which are the keys of
`NORMALIZERS`. Each scheme is a plain function of one (z, y, x) float32 channel; the arithmetic follows
nnU-Net's step by step in float32 (numpy's pairwise sums included), so results agree bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from core.constants import (
    NORMALIZATION_EPS,
    NORMALIZATION_EPS_FLOAT16,
    NORMALIZATION_RGB_MAX,
    PLANNING_DEFAULT_NORMALIZATION,
    PLANNING_NORMALIZATION_BY_CHANNEL_NAME,
)
from core.errors import ProblemsError

IntensityProperties = Mapping[str, float]
Normalizer = Callable[[np.ndarray, np.ndarray | None, IntensityProperties], np.ndarray]


class NormalizationError(ProblemsError):
    """A channel cannot be normalized as asked (unknown scheme, missing statistics, values out of range)."""


def eps_for(dtype: np.dtype | type) -> float:
    """The smallest divisor allowed: larger for float16, whose resolution is coarser."""
    return NORMALIZATION_EPS_FLOAT16 if np.dtype(dtype) == np.float16 else NORMALIZATION_EPS


def scheme_for_channel_name(channel_name: str) -> str:
    """The scheme a dataset.json channel name selects; case-insensitive, z-score for unknown names."""
    return PLANNING_NORMALIZATION_BY_CHANNEL_NAME.get(channel_name.casefold(), PLANNING_DEFAULT_NORMALIZATION)


def ct_normalize(image: np.ndarray, mask: np.ndarray | None, properties: IntensityProperties) -> np.ndarray:
    """Clip to the dataset's foreground 0.5/99.5 percentiles, then subtract its foreground mean and
    divide by its std. Dataset-wide statistics keep Hounsfield units comparable across scans; the
    mask is never used."""
    missing = [key for key in ("mean", "std", "percentile_00_5", "percentile_99_5") if key not in properties]
    if missing:
        raise NormalizationError(
            f"CTNormalization needs the fingerprint's intensity statistics; missing {missing}"
        )
    np.clip(image, properties["percentile_00_5"], properties["percentile_99_5"], out=image)
    image -= properties["mean"]
    image /= max(properties["std"], eps_for(image.dtype))
    return image


def zscore_normalize(
    image: np.ndarray, mask: np.ndarray | None, properties: IntensityProperties
) -> np.ndarray:
    """Subtract this image's mean and divide by its std; with a mask, statistics and changes are
    restricted to it, so the zeros outside (e.g. around a skull-stripped brain) stay zero."""
    eps = eps_for(image.dtype)
    if mask is None:
        mean, std = image.mean(), image.std()
        image -= mean
        image /= max(std, eps)
        return image
    inside = image[mask]
    image[mask] = (inside - inside.mean()) / max(inside.std(), eps)
    return image


def no_normalize(image: np.ndarray, mask: np.ndarray | None, properties: IntensityProperties) -> np.ndarray:
    """Leave intensities as they are (already normalized data)."""
    return image


def rescale_to_01(image: np.ndarray, mask: np.ndarray | None, properties: IntensityProperties) -> np.ndarray:
    """Shift the minimum to 0 and scale the maximum to 1."""
    image -= image.min()
    image /= max(image.max(), eps_for(image.dtype))
    return image


def rgb_to_01(image: np.ndarray, mask: np.ndarray | None, properties: IntensityProperties) -> np.ndarray:
    """Divide 8-bit colour intensities by 255; anything outside [0, 255] is not 8-bit colour."""
    low, high = float(image.min()), float(image.max())
    if low < 0 or high > NORMALIZATION_RGB_MAX:
        raise NormalizationError(
            f"RGBTo01Normalization expects values in [0, {NORMALIZATION_RGB_MAX:g}], "
            f"found [{low:g}, {high:g}]"
        )
    image /= NORMALIZATION_RGB_MAX
    return image


NORMALIZERS: dict[str, Normalizer] = {
    "CTNormalization": ct_normalize,
    "ZScoreNormalization": zscore_normalize,
    "NoNormalization": no_normalize,
    "RescaleTo01Normalization": rescale_to_01,
    "RGBTo01Normalization": rgb_to_01,
}
# Only z-score honours use_mask_for_norm; nnU-Net's other schemes ignore the flag (METHOD.md 3.7).
MASKABLE_SCHEMES = frozenset({"ZScoreNormalization"})


def normalize(
    data: np.ndarray,
    seg: np.ndarray | None,
    schemes: Sequence[str],
    use_mask_for_norm: Sequence[bool],
    intensity_properties: Mapping[str, IntensityProperties],
) -> np.ndarray:
    """Normalize a cropped (channels, z, y, x) float array in place, channel by channel.

    `seg` is the cropped (1, z, y, x) label map whose -1 voxels mark the outside of the nonzero
    region; channels with `use_mask_for_norm` are normalized inside `seg >= 0` only.
    `intensity_properties` maps the channel index as a string ("0") to the fingerprint's statistics.
    """
    if not len(schemes) == len(use_mask_for_norm) == data.shape[0]:
        raise NormalizationError(
            f"{data.shape[0]} channels but {len(schemes)} normalization schemes and "
            f"{len(use_mask_for_norm)} use_mask_for_norm flags"
        )
    unknown = sorted({s for s in schemes if s not in NORMALIZERS})
    if unknown:
        raise NormalizationError(
            f"unknown normalization scheme(s) {unknown}; known: {', '.join(NORMALIZERS)}"
        )
    for channel, (scheme, use_mask) in enumerate(zip(schemes, use_mask_for_norm, strict=True)):
        mask = None
        if use_mask and scheme in MASKABLE_SCHEMES:
            if seg is None:
                raise NormalizationError(
                    f"channel {channel}: use_mask_for_norm needs the nonzero mask (seg >= 0)"
                )
            mask = seg[0] >= 0
        properties = intensity_properties.get(str(channel), {})
        data[channel] = NORMALIZERS[scheme](data[channel], mask, properties)
    return data
