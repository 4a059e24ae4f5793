"""Ensembling of saved probabilities (METHOD.md 8.4): average per case, then one segmentation.

Each input folder holds, per case, `CASE.npz` (key `probabilities`: softmax or sigmoid outputs,
(channels, z, y, x) in the reader's axis order, as the predictor writes with `--save-probabilities`) and
the segmentation `CASE<ending>` predicted from it. The probabilities are averaged arithmetically in
float32 over the folders and turned into a segmentation: argmax over channels (labels), or for regions,
starting from background, each region's label painted where its probability exceeds 0.5, in
`regions_class_order` (later regions overwrite earlier ones).

An .npz has no geometry. Upstream keeps a `CASE.pkl` of reader properties beside it; here the geometry is
read from the segmentation `CASE<ending>` of the first input folder (`core.io.read_segmentation`) and the
result is written with it (`core.io.write_segmentation`), so that file must be present.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from core.constants import REGION_PROBABILITY_THRESHOLD
from core.dataset import DatasetSpec
from core.errors import ProblemsError
from core.files import write_json_atomically, write_npz_atomically
from core.io import read_segmentation, write_segmentation
from core.parallel import ProgressCallback, map_cases, no_progress

PROBABILITIES_KEY = "probabilities"
PROBABILITIES_SUFFIX = ".npz"


class EnsembleError(ProblemsError):
    """Probability files cannot be ensembled: missing or mismatched cases, wrong shapes."""


def average_probabilities(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """The arithmetic mean, accumulated in float32 as upstream."""
    total = np.array(probabilities[0], dtype=np.float32)
    for more in probabilities[1:]:
        if more.shape != total.shape:
            raise EnsembleError(f"probabilities of shape {more.shape} cannot be averaged with {total.shape}")
        total += more
    total /= len(probabilities)
    return total


def probabilities_to_segmentation(probabilities: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """Argmax over channels (labels) or thresholded regions painted in `regions_class_order`."""
    if spec.regions_class_order is None:
        return probabilities.argmax(0).astype(np.uint16)
    if probabilities.shape[0] != len(spec.regions_class_order):
        raise EnsembleError(
            f"{probabilities.shape[0]} probability channels for {len(spec.regions_class_order)} regions"
        )
    segmentation = np.zeros(probabilities.shape[1:], dtype=np.uint16)
    for channel, label in enumerate(spec.regions_class_order):
        segmentation[probabilities[channel] > REGION_PROBABILITY_THRESHOLD] = label
    return segmentation


def load_probabilities(path: Path) -> np.ndarray:
    try:
        with np.load(path) as archive:
            return archive[PROBABILITIES_KEY]
    except (OSError, KeyError, ValueError) as problem:
        raise EnsembleError(
            f"{path}: not a probabilities file with key '{PROBABILITIES_KEY}' ({problem})"
        ) from None


def ensemble_case(
    case: str, in_dirs: Sequence[Path], out_dir: Path, spec: DatasetSpec, save_probabilities: bool
) -> Path:
    """Average one case's probabilities over the folders and write its segmentation (and .npz)."""
    geometry_file = Path(in_dirs[0]) / f"{case}{spec.file_ending}"
    if not geometry_file.is_file():
        raise EnsembleError(f"{case}: {geometry_file} is needed for the geometry and is missing")
    reference, geometry = read_segmentation(geometry_file)
    probabilities = average_probabilities(
        [load_probabilities(Path(folder) / f"{case}{PROBABILITIES_SUFFIX}") for folder in in_dirs]
    )
    if probabilities.shape[1:] != reference.shape:
        raise EnsembleError(
            f"{case}: probabilities of spatial shape {probabilities.shape[1:]} do not fit the image shape "
            f"{reference.shape} of {geometry_file.name}"
        )
    target = Path(out_dir) / f"{case}{spec.file_ending}"
    write_segmentation(probabilities_to_segmentation(probabilities, spec), geometry, target)
    if save_probabilities:
        write_npz_atomically(
            Path(out_dir) / f"{case}{PROBABILITIES_SUFFIX}", **{PROBABILITIES_KEY: probabilities}
        )
    return target


def probability_cases(folder: Path) -> set[str]:
    return {
        path.name[: -len(PROBABILITIES_SUFFIX)]
        for path in Path(folder).glob(f"*{PROBABILITIES_SUFFIX}")
        if not path.name.startswith(".")
    }


def ensemble_folders(
    in_dirs: Sequence[Path],
    out_dir: Path,
    spec: DatasetSpec,
    workers: int = 1,
    progress: ProgressCallback = no_progress,
    save_probabilities: bool = False,
) -> list[Path]:
    """Ensemble every case whose `CASE.npz` is in the input folders; all folders must hold the same cases.

    Writes `out_dir/CASE<ending>` (geometry from the first folder's `CASE<ending>`), `CASE.npz` when
    `save_probabilities`, and `dataset.json`; returns the segmentation paths, sorted by case.
    """
    if len(in_dirs) < 1:
        raise EnsembleError("no input folders given")
    missing_dirs = [f"{folder}: input folder not found" for folder in in_dirs if not Path(folder).is_dir()]
    if missing_dirs:
        raise EnsembleError(missing_dirs)
    per_folder = [probability_cases(Path(folder)) for folder in in_dirs]
    every_case = set().union(*per_folder)
    problems = [
        f"{folder}: no {PROBABILITIES_SUFFIX} for {', '.join(sorted(every_case - cases))}"
        for folder, cases in zip(in_dirs, per_folder, strict=True)
        if every_case - cases
    ]
    if not every_case:
        problems.append(f"no {PROBABILITIES_SUFFIX} probability files in {', '.join(map(str, in_dirs))}")
    if problems:
        raise EnsembleError(problems)
    cases = sorted(every_case)
    merge = partial(
        ensemble_case,
        in_dirs=[Path(d) for d in in_dirs],
        out_dir=Path(out_dir),
        spec=spec,
        save_probabilities=save_probabilities,
    )
    written = dict(map_cases(merge, cases, workers, progress, stage="ensemble"))
    write_json_atomically(Path(out_dir) / "dataset.json", spec.raw)
    return [written[case] for case in cases]
