"""Postprocessing chosen from cross-validation (METHOD.md 8.2): keep only the largest connected component.

One operation exists, `keep_largest_component`: voxels whose label is any of `labels` form one mask; its
connected components are found with full connectivity (26 neighbours in 3D, 8 in a 2D slice, as
skimage's default that upstream uses); every component as large as the largest is kept (ties keep all)
and the other voxels of the mask become background 0.

The choice is greedy over the cross-validation predictions. Step A merges all foreground labels into one
mask and is kept iff the foreground mean Dice rises strictly and no label's (region's) mean Dice falls.
Step B, only with more than one label or region, tries each one alone, in dataset.json order, on top of
the steps kept so far, and keeps it iff that label's (region's) mean Dice rises strictly.

Unlike upstream, candidates are evaluated in memory, case by case, without writing each candidate's
segmentations to temporary folders; `apply_postprocessing_to_folder` writes the chosen result when
wanted. `postprocessing.json` (our format, beside the predictions it was determined on):

    {"steps": [{"operation": "keep_largest_component", "labels": [1, 2]},
               {"operation": "keep_largest_component", "labels": [2]}],
     "input_folder": {"foreground_mean": {...}, "mean": {"1": {...}, ...}},
     "postprocessed": {"foreground_mean": {...}, "mean": {...}}}

`steps` are applied in order; `input_folder` and `postprocessed` are the metrics before and after, with
upstream's keys. Upstream's `postprocessing.pkl` holds the same steps as pickled functions and kwargs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from scipy import ndimage

from core.dataset import DatasetSpec
from core.errors import ProblemsError
from core.evaluation import (
    CaseMetrics,
    LabelOrRegion,
    Summary,
    compute_metrics,
    evaluation_targets,
    label_key,
    paired_files,
    prediction_files,
    summarize,
)
from core.files import read_json, write_json_atomically
from core.io import read_segmentation, write_segmentation
from core.parallel import ProgressCallback, map_cases, no_progress

logger = logging.getLogger(__name__)

KEEP_LARGEST_COMPONENT = "keep_largest_component"
POSTPROCESSING_FILE = "postprocessing.json"


class PostprocessingError(ProblemsError):
    """A postprocessing file cannot be used."""


@dataclass(frozen=True)
class KeepLargestComponent:
    """Keep the largest connected component of the voxels labelled with any of `labels`."""

    labels: tuple[int, ...]

    def to_json(self) -> dict:
        return {"operation": KEEP_LARGEST_COMPONENT, "labels": list(self.labels)}

    @classmethod
    def from_json(cls, data: object) -> KeepLargestComponent:
        if not isinstance(data, dict) or data.get("operation") != KEEP_LARGEST_COMPONENT:
            raise PostprocessingError(
                f"unknown postprocessing step {data!r}; known: {KEEP_LARGEST_COMPONENT}"
            )
        labels = data.get("labels")
        if not isinstance(labels, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in labels
        ):
            raise PostprocessingError(f"step {data!r}: 'labels' must be a list of integers")
        return cls(tuple(labels))


Steps = tuple[KeepLargestComponent, ...]


def largest_component_mask(mask: np.ndarray) -> np.ndarray:
    """The components of a boolean mask as large as its largest, with full connectivity."""
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    components, count = ndimage.label(mask, structure)
    if count == 0:
        return np.zeros_like(mask, dtype=bool)
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return (sizes == sizes.max())[components]


def keep_largest_component(segmentation: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """A copy of `segmentation` where the voxels of `labels` outside their largest component are 0."""
    mask = np.isin(segmentation, labels)
    result = segmentation.copy()
    result[mask & ~largest_component_mask(mask)] = 0
    return result


def apply_postprocessing(segmentation: np.ndarray, steps: Sequence[KeepLargestComponent]) -> np.ndarray:
    """Apply the steps in order; the input is never modified."""
    for step in steps:
        segmentation = keep_largest_component(segmentation, step.labels)
    return segmentation


@dataclass(frozen=True)
class PostprocessingChoice:
    """The chosen steps and the evaluation of the predictions before and after them."""

    steps: Steps
    before: Summary
    after: Summary

    def to_json(self) -> dict:
        def means(summary: Summary) -> dict:
            return {
                "foreground_mean": dict(summary.foreground_mean),
                "mean": {label_key(t): dict(m) for t, m in summary.mean.items()},
            }

        return {
            "steps": [step.to_json() for step in self.steps],
            "input_folder": means(self.before),
            "postprocessed": means(self.after),
        }


def save_postprocessing(choice: PostprocessingChoice, path: Path) -> None:
    write_json_atomically(path, choice.to_json())


def load_postprocessing(path: Path) -> Steps:
    """The steps of a `postprocessing.json`, checked."""
    data = read_json(path, PostprocessingError, "postprocessing file")
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise PostprocessingError(f"{path}: must be an object with a 'steps' list")
    return tuple(KeepLargestComponent.from_json(step) for step in data["steps"])


def _metrics_per_candidate(
    files: tuple[Path, Path],
    candidates: list[Steps],
    labels_or_regions: list[LabelOrRegion],
    ignore_label: int | None,
) -> list[CaseMetrics]:
    prediction_file, reference_file = files
    prediction, _ = read_segmentation(prediction_file)
    reference, _ = read_segmentation(reference_file)
    return [
        CaseMetrics(
            str(prediction_file),
            str(reference_file),
            compute_metrics(
                reference, apply_postprocessing(prediction, steps), labels_or_regions, ignore_label
            ),
        )
        for steps in candidates
    ]


def _evaluate_candidates(
    pairs: list[tuple[Path, Path]],
    candidates: list[Steps],
    labels_or_regions: list[LabelOrRegion],
    ignore_label: int | None,
    workers: int,
    progress: ProgressCallback,
) -> list[Summary]:
    """One summary per candidate step list; each case is read once for all candidates."""
    evaluate = partial(
        _metrics_per_candidate,
        candidates=candidates,
        labels_or_regions=labels_or_regions,
        ignore_label=ignore_label,
    )
    results = dict(
        map_cases(evaluate, pairs, workers, progress, stage="postprocessing", describe=lambda p: p[0].name)
    )
    return [
        summarize([results[pair][index] for pair in pairs], labels_or_regions)
        for index in range(len(candidates))
    ]


def _no_label_worse(after: Summary, before: Summary) -> bool:
    return not any(after.mean[t]["Dice"] < before.mean[t]["Dice"] for t in before.mean)


def determine_postprocessing(
    pred_dir: Path,
    ref_dir: Path,
    spec: DatasetSpec,
    workers: int = 1,
    progress: ProgressCallback = no_progress,
) -> PostprocessingChoice:
    """Choose the steps on a folder of (cross-validation) predictions; write `postprocessing.json` there."""
    targets = evaluation_targets(spec)
    pairs = paired_files(pred_dir, ref_dir, spec.file_ending)
    if len(pairs) < len(prediction_files(ref_dir, spec.file_ending)):
        logger.warning(
            "%s: not every reference has a prediction; postprocessing is chosen on fewer cases", pred_dir
        )
    passes = 1 + (len(targets) if len(targets) > 1 else 0)

    def stage_progress(index: int) -> ProgressCallback:
        def report(fraction: float, stage: str, message: str = "", **metrics: float) -> None:
            progress((index + fraction) / passes, stage, message, **metrics)

        return report

    merged = KeepLargestComponent(tuple(spec.foreground_labels))
    evaluate = partial(_evaluate_candidates, pairs, labels_or_regions=targets, ignore_label=spec.ignore_label)
    before, trial = evaluate([(), (merged,)], workers=workers, progress=stage_progress(0))
    steps: Steps = ()
    current = before
    if trial.foreground_mean_dice > before.foreground_mean_dice and _no_label_worse(trial, before):
        steps, current = (merged,), trial
    if len(targets) > 1:
        for index, target in enumerate(targets, start=1):
            step = KeepLargestComponent(target if isinstance(target, tuple) else (target,))
            (trial,) = evaluate([(*steps, step)], workers=workers, progress=stage_progress(index))
            if trial.mean[target]["Dice"] > current.mean[target]["Dice"]:
                steps, current = (*steps, step), trial
    choice = PostprocessingChoice(steps, before, current)
    save_postprocessing(choice, Path(pred_dir) / POSTPROCESSING_FILE)
    logger.info(
        "postprocessing for %s: %d step(s), foreground mean Dice %.5f -> %.5f",
        pred_dir,
        len(steps),
        before.foreground_mean_dice,
        current.foreground_mean_dice,
    )
    return choice


def postprocess_file(files: tuple[Path, Path], steps: Steps) -> None:
    """Read one segmentation, apply the steps, write it with its own geometry."""
    source, target = files
    segmentation, geometry = read_segmentation(source)
    write_segmentation(apply_postprocessing(segmentation, steps), geometry, target)


def apply_postprocessing_to_folder(
    in_dir: Path,
    out_dir: Path,
    steps: Steps,
    file_ending: str,
    workers: int = 1,
    progress: ProgressCallback = no_progress,
) -> list[Path]:
    """Postprocess every `*<file_ending>` of `in_dir` into `out_dir` (may be the same folder)."""
    sources = prediction_files(in_dir, file_ending)
    jobs = [(source, Path(out_dir) / source.name) for source in sources]
    for _ in map_cases(
        partial(postprocess_file, steps=steps), jobs, workers, progress, "postprocess", lambda j: j[0].name
    ):
        pass
    return [target for _, target in jobs]
