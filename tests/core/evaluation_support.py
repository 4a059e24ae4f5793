"""Small label files and dataset declarations for the evaluation, postprocessing and selection tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.dataset import DatasetSpec, parse_dataset_json
from core.geometry import Geometry
from core.io import write_segmentation

GEOMETRY = Geometry.from_itk((1.0, 1.0, 2.0), (3.0, -4.0, 5.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))


def make_spec(labels: dict, **extra: object) -> DatasetSpec:
    return parse_dataset_json(
        {"channel_names": {"0": "CT"}, "labels": labels, "numTraining": 1, "file_ending": ".nii.gz", **extra}
    )


def write_cases(folder: Path, segmentations: dict[str, np.ndarray]) -> Path:
    for case, segmentation in segmentations.items():
        write_segmentation(np.asarray(segmentation, dtype=np.uint8), GEOMETRY, folder / f"{case}.nii.gz")
    return folder


def write_probabilities(folder: Path, case: str, probabilities: np.ndarray) -> None:
    """`CASE.npz` and the argmax segmentation `CASE.nii.gz`, as the predictor writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / f"{case}.npz", probabilities=probabilities.astype(np.float32))
    write_cases(folder, {case: probabilities.argmax(0)})


def two_class_probabilities(foreground: np.ndarray) -> np.ndarray:
    """Background/foreground softmax channels from a foreground probability map."""
    return np.stack([1 - foreground, foreground]).astype(np.float32)
