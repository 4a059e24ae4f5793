"""Evaluation of predicted segmentations against references (METHOD.md 8.1), in nnU-Net v2's summary layout.

Per case and per foreground label (label mode) or region (region mode: the union of its labels): TP, FP,
FN and TN over the voxels whose *reference* is not the ignore label, Dice = 2TP / (2TP + FP + FN),
IoU = TP / (TP + FP + FN), both NaN when TP + FP + FN is 0 (empty reference and empty prediction), and
the predicted and reference voxel counts. `summary.json` holds every case, the NaN-ignoring mean over
cases per label, and the plain mean of those means over the labels (`foreground_mean`), so a label that
is NaN in every case makes `foreground_mean` NaN, as upstream.

Labels are keyed as upstream writes them: `str(label)`, e.g. "1", and regions as the string of a tuple,
e.g. "(1, 2, 3)" or "(3,)" when dataset.json lists a one-label region.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from core.dataset import DatasetSpec
from core.errors import ProblemsError
from core.files import write_json_atomically
from core.io import file_ending_of, read_segmentation
from core.parallel import ProgressCallback, map_cases, no_progress

LabelOrRegion = int | tuple[int, ...]
Metrics = dict[str, float]
# The metrics of one label, in the order upstream computes them (the file sorts them anyway).
METRIC_NAMES = ("Dice", "IoU", "FP", "TP", "FN", "TN", "n_pred", "n_ref")


class EvaluationError(ProblemsError):
    """Predictions cannot be evaluated: missing references, mismatched shapes, nothing to evaluate."""


def evaluation_targets(spec: DatasetSpec) -> list[LabelOrRegion]:
    """What is evaluated: the foreground labels, or in region mode the non-background regions.

    Regions come from dataset.json as written, in its order, so that a one-label region listed as `[3]`
    stays the region `(3,)` and its key reads "(3,)", as nnU-Net v2's label manager has it.
    """
    if not spec.has_regions:
        return list(spec.foreground_labels)
    targets: list[LabelOrRegion] = []
    for name, value in spec.raw["labels"].items():
        if name == "ignore":
            continue
        target = tuple(int(v) for v in value) if isinstance(value, list | tuple) else int(value)
        if set(target if isinstance(target, tuple) else (target,)) != {0}:
            targets.append(target)
    return targets


def label_key(target: LabelOrRegion) -> str:
    """The JSON key of a label ("1") or region ("(1, 2)"), as upstream's `str()`."""
    return str(target)


def parse_label_key(key: str) -> LabelOrRegion:
    stripped = key.strip()
    if not stripped.startswith("("):
        return int(stripped)
    return tuple(int(part) for part in stripped.strip("()").split(",") if part.strip())


def target_mask(segmentation: np.ndarray, target: LabelOrRegion) -> np.ndarray:
    """Where the segmentation shows the label, or any label of the region."""
    if isinstance(target, tuple):
        return np.isin(segmentation, target)
    return segmentation == target


def compute_metrics(
    reference: np.ndarray,
    prediction: np.ndarray,
    labels_or_regions: Sequence[LabelOrRegion],
    ignore_label: int | None = None,
) -> dict[LabelOrRegion, Metrics]:
    """Every metric of METRIC_NAMES for each label or region of one case; counts are ints."""
    if reference.shape != prediction.shape:
        raise EvaluationError(
            f"prediction shape {prediction.shape} differs from the reference shape {reference.shape}"
        )
    counted = None if ignore_label is None else reference != ignore_label
    total = reference.size if counted is None else int(np.count_nonzero(counted))
    metrics: dict[LabelOrRegion, Metrics] = {}
    for target in labels_or_regions:
        in_reference = target_mask(reference, target)
        in_prediction = target_mask(prediction, target)
        if counted is not None:
            in_reference &= counted
            in_prediction &= counted
        tp = int(np.count_nonzero(in_reference & in_prediction))
        n_ref = int(np.count_nonzero(in_reference))
        n_pred = int(np.count_nonzero(in_prediction))
        fp, fn = n_pred - tp, n_ref - tp
        empty = tp + fp + fn == 0
        metrics[target] = {
            "Dice": float("nan") if empty else 2 * tp / (2 * tp + fp + fn),
            "IoU": float("nan") if empty else tp / (tp + fp + fn),
            "FP": fp,
            "TP": tp,
            "FN": fn,
            "TN": total - tp - fp - fn,
            "n_pred": n_pred,
            "n_ref": n_ref,
        }
    return metrics


@dataclass(frozen=True)
class CaseMetrics:
    """One `metric_per_case` entry: the files compared and each label's metrics."""

    prediction_file: str
    reference_file: str
    metrics: dict[LabelOrRegion, Metrics]

    def to_json(self) -> dict:
        return {
            "metrics": {label_key(t): dict(m) for t, m in self.metrics.items()},
            "prediction_file": self.prediction_file,
            "reference_file": self.reference_file,
        }

    @classmethod
    def from_json(cls, data: dict) -> CaseMetrics:
        return cls(
            prediction_file=str(data["prediction_file"]),
            reference_file=str(data["reference_file"]),
            metrics={parse_label_key(k): dict(v) for k, v in data["metrics"].items()},
        )


@dataclass(frozen=True)
class Summary:
    """nnU-Net v2's `summary.json`: `metric_per_case`, `mean` per label, and `foreground_mean`."""

    metric_per_case: list[CaseMetrics]
    mean: dict[LabelOrRegion, Metrics]
    foreground_mean: Metrics

    @property
    def foreground_mean_dice(self) -> float:
        return float(self.foreground_mean["Dice"])

    def to_json(self) -> dict:
        return {
            "foreground_mean": dict(self.foreground_mean),
            "mean": {label_key(t): dict(m) for t, m in self.mean.items()},
            "metric_per_case": [case.to_json() for case in self.metric_per_case],
        }

    @classmethod
    def from_json(cls, data: dict) -> Summary:
        return cls(
            metric_per_case=[CaseMetrics.from_json(case) for case in data["metric_per_case"]],
            mean={parse_label_key(k): dict(v) for k, v in data["mean"].items()},
            foreground_mean=dict(data["foreground_mean"]),
        )


def summarize(cases: list[CaseMetrics], labels_or_regions: Sequence[LabelOrRegion]) -> Summary:
    """Means per label over cases, NaN cases skipped; `foreground_mean` averages those means plainly."""
    if not cases:
        raise EvaluationError("no predictions to evaluate")
    with warnings.catch_warnings():
        # A label that is NaN in every case has a NaN mean, as upstream; numpy warns about it.
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = {
            t: {m: float(np.nanmean([case.metrics[t][m] for case in cases])) for m in METRIC_NAMES}
            for t in labels_or_regions
        }
    foreground = [t for t in labels_or_regions if t != 0]
    foreground_mean = {m: float(np.mean([mean[t][m] for t in foreground])) for m in METRIC_NAMES}
    return Summary(metric_per_case=cases, mean=mean, foreground_mean=foreground_mean)


def evaluate_case(
    files: tuple[Path, Path], labels_or_regions: Sequence[LabelOrRegion], ignore_label: int | None
) -> CaseMetrics:
    """Read a (prediction, reference) pair of label files and compute their metrics."""
    prediction_file, reference_file = files
    prediction, _ = read_segmentation(prediction_file)
    reference, _ = read_segmentation(reference_file)
    try:
        metrics = compute_metrics(reference, prediction, labels_or_regions, ignore_label)
    except EvaluationError as error:
        raise EvaluationError(f"{prediction_file.name}: {error}") from None
    return CaseMetrics(str(prediction_file), str(reference_file), metrics)


def prediction_files(pred_dir: Path, file_ending: str) -> list[Path]:
    """The segmentation files of a folder, sorted by name; hidden (partially written) files are skipped."""
    return sorted(
        path
        for path in Path(pred_dir).iterdir()
        if path.name.endswith(file_ending) and not path.name.startswith(".") and path.is_file()
    )


def paired_files(pred_dir: Path, ref_dir: Path, file_ending: str) -> list[tuple[Path, Path]]:
    """(prediction, reference) for every prediction; every missing reference is reported at once."""
    if not Path(pred_dir).is_dir():
        raise EvaluationError(f"{pred_dir}: prediction folder not found")
    predictions = prediction_files(pred_dir, file_ending)
    if not predictions:
        raise EvaluationError(f"{pred_dir}: no predictions ending in {file_ending}")
    pairs = [(p, Path(ref_dir) / p.name) for p in predictions]
    missing = [
        f"{ref.name}: reference segmentation not found in {ref_dir}" for _, ref in pairs if not ref.is_file()
    ]
    if missing:
        raise EvaluationError(missing)
    return pairs


def evaluate_predictions(
    pred_dir: Path,
    ref_dir: Path,
    labels_or_regions: Sequence[LabelOrRegion],
    ignore_label: int | None,
    file_ending: str,
    workers: int = 1,
    progress: ProgressCallback = no_progress,
) -> Summary:
    """Evaluate every `*<file_ending>` in `pred_dir` against the file of the same name in `ref_dir`.

    Only predictions present are evaluated (references without a prediction are not an error, as in
    upstream's internal calls); cases are listed sorted by file name.
    """
    if not labels_or_regions:
        raise EvaluationError("no labels or regions to evaluate")
    pairs = paired_files(pred_dir, ref_dir, file_ending)
    evaluate = partial(evaluate_case, labels_or_regions=list(labels_or_regions), ignore_label=ignore_label)
    results = dict(
        map_cases(evaluate, pairs, workers, progress, stage="evaluate", describe=lambda pair: pair[0].name)
    )
    return summarize([results[pair] for pair in pairs], labels_or_regions)


def labels_found_in(ref_dir: Path, file_ending: str) -> list[int]:
    """The foreground label values present in a folder of reference segmentations (no dataset.json)."""
    values: set[int] = set()
    for path in sorted(Path(ref_dir).glob(f"*{file_ending}")):
        segmentation, _ = read_segmentation(path)
        values.update(int(v) for v in np.unique(segmentation))
    return sorted(v for v in values if v > 0)


def detect_file_ending(folder: Path) -> str:
    """The file ending of the first segmentation file in `folder` (sidecar files are skipped)."""
    for path in sorted(Path(folder).iterdir()) if Path(folder).is_dir() else []:
        ending = file_ending_of(path)
        if not path.name.startswith(".") and ending not in (".json", ".npz", ".txt", ""):
            return ending
    raise EvaluationError(f"{folder}: holds no segmentation files")


def evaluate_folder(
    pred_dir: Path,
    ref_dir: Path,
    spec: DatasetSpec,
    file_ending: str | None = None,
    workers: int = 1,
    progress: ProgressCallback = no_progress,
) -> Summary:
    """Evaluate a prediction folder with the labels or regions and ignore label of dataset.json."""
    return evaluate_predictions(
        pred_dir,
        ref_dir,
        evaluation_targets(spec),
        spec.ignore_label,
        file_ending or spec.file_ending,
        workers,
        progress,
    )


def save_summary(summary: Summary, path: Path) -> None:
    """Write `summary.json` with sorted keys and NaN written as `NaN`, as upstream writes it."""
    write_json_atomically(path, summary.to_json(), sort_keys=True)


def load_summary(path: Path) -> Summary:
    try:
        return Summary.from_json(json.loads(Path(path).read_text()))
    except FileNotFoundError:
        raise EvaluationError(f"{path}: summary.json not found") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as problem:
        raise EvaluationError(f"{path}: not a valid summary.json ({problem})") from None
