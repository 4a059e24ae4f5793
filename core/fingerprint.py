"""The dataset fingerprint (METHOD.md 2): what the planner needs to know about a dataset, in one file.

Per case: the spacing, the shape after cropping to the nonzero region, how much the crop kept, and a
fixed-size random sample of foreground intensities per channel. Aggregated: the spacings and shapes as
lists, intensity statistics per channel over all samples, and the median crop ratio. Written as
`dataset_fingerprint.json` with nnU-Net v2's keys so either tool can plan from the other's file.
"""

from __future__ import annotations

from dataclasses import dataclass

INTENSITY_STAT_KEYS = ("max", "mean", "median", "min", "percentile_00_5", "percentile_99_5", "std")


@dataclass(frozen=True)
class IntensityStats:
    """Foreground intensity statistics of one channel over the sampled voxels of all cases."""

    mean: float
    median: float
    std: float
    min: float
    max: float
    percentile_00_5: float
    percentile_99_5: float

    def to_json(self) -> dict[str, float]:
        return {key: float(getattr(self, key)) for key in INTENSITY_STAT_KEYS}

    @classmethod
    def from_json(cls, data: dict) -> IntensityStats:
        return cls(**{key: float(data[key]) for key in INTENSITY_STAT_KEYS})


@dataclass(frozen=True)
class Fingerprint:
    """Spacings and shapes are per case, in the reader's (z, y, x) axis order, not transposed."""

    spacings: list[tuple[float, ...]]
    shapes_after_crop: list[tuple[int, ...]]
    foreground_intensity_properties_per_channel: dict[str, IntensityStats]
    median_relative_size_after_cropping: float

    def to_json(self) -> dict:
        return {
            "foreground_intensity_properties_per_channel": {
                channel: stats.to_json()
                for channel, stats in self.foreground_intensity_properties_per_channel.items()
            },
            "median_relative_size_after_cropping": float(self.median_relative_size_after_cropping),
            "shapes_after_crop": [list(shape) for shape in self.shapes_after_crop],
            "spacings": [list(spacing) for spacing in self.spacings],
        }

    @classmethod
    def from_json(cls, data: dict) -> Fingerprint:
        return cls(
            spacings=[tuple(float(s) for s in spacing) for spacing in data["spacings"]],
            shapes_after_crop=[tuple(int(s) for s in shape) for shape in data["shapes_after_crop"]],
            foreground_intensity_properties_per_channel={
                str(channel): IntensityStats.from_json(stats)
                for channel, stats in data["foreground_intensity_properties_per_channel"].items()
            },
            median_relative_size_after_cropping=float(data["median_relative_size_after_cropping"]),
        )
