"""Fingerprints and dataset specs for the planner tests, built directly (no images on disk).

Spacings and shapes vary per case like `core.synthetic` draws them (uniform jitter around a nominal
value, the first axis of 2D images fixed at one slice), so that medians and percentiles are real
statistics rather than one repeated value. The named cases are the ones the brief asks for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.dataset import DatasetSpec, parse_dataset_json
from core.fingerprint import Fingerprint, IntensityStats


@dataclass(frozen=True)
class PlanningCase:
    """A dataset to plan: nominal (z, y, x) spacing and shape, case count, channel names."""

    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]
    num_cases: int
    channel_names: tuple[str, ...] = ("MRI",)
    num_labels: int = 3
    jitter: float = 0.1
    crop_ratio: float = 1.0
    seed: int = 0


CASES: dict[str, PlanningCase] = {
    # Isotropic two-channel MR-like set (core.synthetic's "mr" preset, scaled up).
    "mr_isotropic": PlanningCase((1.0, 1.0, 1.0), (138, 169, 138), 20, ("T1", "T2")),
    # Anisotropic CT-like set, 3.0 x 0.75 x 0.75 mm.
    "ct_anisotropic": PlanningCase((3.0, 0.75, 0.75), (90, 380, 380), 30, ("CT",), 2),
    # Single-slice images: only a 2d configuration.
    "single_slice_2d": PlanningCase((1.0, 0.5, 0.5), (1, 512, 448), 40, ("microscopy",), 2),
    # Large images: the fullres patch covers < 25% and 3d_lowres + cascade appear.
    "large_ct": PlanningCase((1.0, 0.8, 0.8), (420, 512, 512), 50, ("CT",), 4),
    # The lowres loop runs (fullres patch < 25%) but its images end up < 2x smaller: dropped.
    "lowres_dropped": PlanningCase((1.0, 1.0, 1.0), (230, 230, 230), 10, ("CT",), 2, 0.01),
    # Thick slices with few of them: the 10th-percentile target spacing rule.
    "thick_slice_mr": PlanningCase((8.0, 1.25, 1.25), (18, 256, 224), 24, ("T2", "ADC"), 3, 0.3),
    # Skull-stripped brain MR: cropping keeps < 75%, so ZScore channels use the mask.
    "brain_mr_cropped": PlanningCase(
        (1.0, 1.0, 1.0), (140, 170, 140), 16, ("FLAIR", "T1", "CT"), 4, 0.1, 0.6
    ),
    # Coarsest axis last: transposition moves it first.
    "coarse_last_axis": PlanningCase((0.7, 0.7, 2.5), (300, 300, 60), 12, ("CT",), 2),
    # Few cases of small images: the 5% dataset cap decides the batch size.
    "tiny_dataset": PlanningCase((1.5, 1.5, 1.5), (40, 48, 40), 4, ("MRI",), 2),
    # Small isotropic 2D-ish large-field images with many cases.
    "large_2d_field": PlanningCase((1.0, 0.25, 0.25), (1, 1400, 1200), 30, ("RGB_to_0_1",), 2),
    # Moderate anisotropy (factor ~2): no special target, mixed kernels.
    "mild_anisotropy": PlanningCase((2.0, 0.9, 0.9), (120, 256, 256), 25, ("nonorm",), 5),
}


def make_fingerprint(case: PlanningCase) -> Fingerprint:
    """Per-case spacings/shapes jittered around the nominal values, deterministic per seed."""
    rng = np.random.default_rng(case.seed)
    spacings, shapes = [], []
    for _ in range(case.num_cases):
        spacing = np.array(case.spacing) * (1 + rng.uniform(-case.jitter, case.jitter, 3))
        shape = np.round(np.array(case.shape) * (1 + rng.uniform(-case.jitter, case.jitter, 3)))
        shape = np.maximum(shape.astype(int), 8)
        if case.shape[0] == 1:
            shape[0], spacing[0] = 1, case.spacing[0]
        spacings.append(tuple(float(round(s, 6)) for s in spacing))
        shapes.append(tuple(int(s) for s in shape))
    stats = IntensityStats(
        mean=100.0, median=95.0, std=40.0, min=-50.0, max=400.0,
        percentile_00_5=-20.0, percentile_99_5=300.0,
    )  # fmt: skip
    return Fingerprint(
        spacings=spacings,
        shapes_after_crop=shapes,
        foreground_intensity_properties_per_channel={str(i): stats for i in range(len(case.channel_names))},
        median_relative_size_after_cropping=case.crop_ratio,
    )


def make_dataset_json(case: PlanningCase) -> dict:
    labels = {"background": 0, **{f"class{i}": i for i in range(1, case.num_labels)}}
    return {
        "channel_names": {str(i): name for i, name in enumerate(case.channel_names)},
        "labels": labels,
        "numTraining": case.num_cases,
        "file_ending": ".nii.gz",
    }


def make_spec(case: PlanningCase) -> DatasetSpec:
    return parse_dataset_json(make_dataset_json(case))
