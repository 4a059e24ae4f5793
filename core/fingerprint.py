"""The dataset fingerprint (METHOD.md 2): what the planner needs to know about a dataset, in one file.

Per case: the spacing, the shape after cropping to the nonzero region, how much the crop kept, and a
fixed-size random sample of foreground intensities per channel. Aggregated: the spacings and shapes as
lists, intensity statistics per channel over all samples, and the median crop ratio. Written as
`dataset_fingerprint.json` with nnU-Net v2's keys so either tool can plan from the other's file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from core.constants import FINGERPRINT_SAMPLING_SEED, FINGERPRINT_TOTAL_FOREGROUND_SAMPLES
from core.cropping import crop_to_nonzero
from core.dataset import TrainingCase, load_dataset
from core.files import write_json_atomically
from core.io import read_image, read_segmentation
from core.parallel import ProgressCallback, map_cases, no_progress

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


@dataclass(frozen=True)
class WeightedSamples:
    """A multiset of sampled intensities as sorted distinct values and how often each was drawn.

    nnU-Net v2 concatenates up to 1e8 drawn intensities per channel before taking statistics; keeping
    counts instead gives the same order statistics and moments in a fraction of the memory.
    """

    values: np.ndarray
    counts: np.ndarray

    @classmethod
    def merge(cls, parts: list[WeightedSamples]) -> WeightedSamples:
        values = np.concatenate([p.values for p in parts]) if parts else np.zeros(0)
        counts = np.concatenate([p.counts for p in parts]) if parts else np.zeros(0, np.int64)
        distinct, inverse = np.unique(values, return_inverse=True)
        return cls(distinct, np.bincount(inverse, weights=counts, minlength=len(distinct)).astype(np.int64))

    def percentile(self, q: float) -> float:
        """numpy's default (linear) percentile of the expanded multiset."""
        total = int(self.counts.sum())
        position = (total - 1) * q / 100.0
        below = int(np.floor(position))
        cumulative = np.cumsum(self.counts)
        lower = self.values[np.searchsorted(cumulative, below, side="right")]
        upper = self.values[np.searchsorted(cumulative, min(below + 1, total - 1), side="right")]
        return float(lower + (position - below) * (float(upper) - float(lower)))

    def statistics(self) -> IntensityStats:
        if self.counts.sum() == 0:
            nan = float("nan")
            return IntensityStats(nan, nan, nan, nan, nan, nan, nan)
        values = self.values.astype(np.float64)
        weights = self.counts / self.counts.sum()
        mean = float(np.dot(values, weights))
        return IntensityStats(
            mean=mean,
            median=self.percentile(50.0),
            std=float(np.sqrt(np.dot((values - mean) ** 2, weights))),
            min=float(values[0]),
            max=float(values[-1]),
            percentile_00_5=self.percentile(0.5),
            percentile_99_5=self.percentile(99.5),
        )


@dataclass(frozen=True)
class CaseFingerprint:
    spacing: tuple[float, ...]
    shape_after_crop: tuple[int, ...]
    relative_size_after_cropping: float
    foreground_samples: list[WeightedSamples]


def sample_foreground(data: np.ndarray, foreground: np.ndarray, num_samples: int) -> list[WeightedSamples]:
    """Draw `num_samples` foreground intensities per channel with replacement, as nnU-Net v2 does.

    The generator is re-seeded per case and drawn from channel after channel, so the drawn voxels are
    the very ones nnU-Net v2 draws (its `choice` with replacement is `randint` over the voxels).
    """
    generator = np.random.RandomState(FINGERPRINT_SAMPLING_SEED)
    samples = []
    for channel in data:
        pixels = channel[foreground]
        if pixels.size == 0:
            samples.append(WeightedSamples(np.zeros(0, np.float32), np.zeros(0, np.int64)))
            continue
        drawn = np.bincount(generator.randint(0, pixels.size, num_samples), minlength=pixels.size)
        picked = drawn > 0
        distinct, inverse = np.unique(pixels[picked], return_inverse=True)
        counts = np.bincount(inverse, weights=drawn[picked], minlength=len(distinct))
        samples.append(WeightedSamples(distinct, counts.astype(np.int64)))
    return samples


def fingerprint_case(case: TrainingCase, num_samples: int) -> CaseFingerprint:
    """Read, crop to nonzero, and sample one case (METHOD.md 2, steps 1-4)."""
    data, geometry = read_image(case.images)
    if case.label is None:
        raise ValueError(f"{case.identifier}: label file missing")
    seg, _ = read_segmentation(case.label)
    cropped, cropped_seg, _ = crop_to_nonzero(data, seg[None])
    return CaseFingerprint(
        spacing=geometry.spacing,
        shape_after_crop=tuple(int(s) for s in cropped.shape[1:]),
        relative_size_after_cropping=float(np.prod(cropped.shape[1:]) / np.prod(data.shape[1:])),
        foreground_samples=sample_foreground(cropped, cropped_seg[0] > 0, num_samples),
    )


def aggregate_fingerprint(cases: list[CaseFingerprint]) -> Fingerprint:
    num_channels = len(cases[0].foreground_samples)
    return Fingerprint(
        spacings=[case.spacing for case in cases],
        shapes_after_crop=[case.shape_after_crop for case in cases],
        foreground_intensity_properties_per_channel={
            str(channel): WeightedSamples.merge(
                [case.foreground_samples[channel] for case in cases]
            ).statistics()
            for channel in range(num_channels)
        },
        median_relative_size_after_cropping=float(
            np.median([case.relative_size_after_cropping for case in cases])
        ),
    )


def extract_fingerprint(
    raw_dir: Path, workers: int = 1, progress: ProgressCallback = no_progress
) -> Fingerprint:
    """The fingerprint of a raw dataset's training cases; check the dataset with verify first."""
    _, cases = load_dataset(Path(raw_dir))
    num_samples = int(FINGERPRINT_TOTAL_FOREGROUND_SAMPLES // len(cases))
    results = dict(
        map_cases(
            partial(fingerprint_case, num_samples=num_samples),
            cases,
            workers,
            progress,
            stage="fingerprint",
            describe=lambda case: case.identifier,
        )
    )
    return aggregate_fingerprint([results[case] for case in cases])


def save_fingerprint(fingerprint: Fingerprint, path: Path) -> None:
    """Write `dataset_fingerprint.json` with sorted keys, as nnU-Net v2 writes it."""
    write_json_atomically(path, fingerprint.to_json(), sort_keys=True)


def load_fingerprint(path: Path) -> Fingerprint:
    return Fingerprint.from_json(json.loads(Path(path).read_text()))
