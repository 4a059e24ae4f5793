"""Evaluate job: a summary in nnU-Net v2's layout and a pass/fail verdict against Dice thresholds.

Two sources. A model and a dataset: the dataset's labelled test cases (imagesTs with labelsTs, or
its training cases when the job's params say `use_training_cases`) are predicted with the model's
selection, then compared with their labels. Or the evaluation folder already holds `predictions/`
and `references/` (unpacked by the API); labels then come from dataset.json (the predictions', the
model's or the dataset's), else from the values found in the references.

Thresholds map a label name (from dataset.json), a label value, or "foreground_mean" to the least
mean Dice that passes; the result lists every threshold missed, so CI can print why it failed.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from core.dataset import DatasetSpec, group_channel_files, load_dataset_json
from core.evaluation import (
    Summary,
    detect_file_ending,
    evaluate_folder,
    evaluate_predictions,
    label_key,
    labels_found_in,
    save_summary,
)
from service.db.models import Evaluation, Model
from service.paths import raw_dir
from worker.context import JobContext, JobInputError
from worker.predicting import predict_cached, prediction_options
from worker.progress import json_safe
from worker.runners.prediction import replace_folder

FOREGROUND_MEAN = "foreground_mean"
SUMMARY_FILE = "summary.json"


def threshold_key(name: str, spec: DatasetSpec | None) -> str | None:
    """The summary key ("1", "(1, 2)") a threshold names, or None for an unknown name."""
    labels = spec.raw.get("labels", {}) if spec is not None else {}
    if name in labels:
        value = labels[name]
        return label_key(tuple(int(v) for v in value) if isinstance(value, list | tuple) else int(value))
    return label_key(int(name)) if name.lstrip("-").isdigit() else None


def threshold_failures(summary: Summary, spec: DatasetSpec | None, thresholds: dict[str, float]) -> list[str]:
    """Every threshold missed; a threshold naming no evaluated label is the caller's mistake."""
    dice = {label_key(target): metrics["Dice"] for target, metrics in summary.mean.items()}
    dice[FOREGROUND_MEAN] = summary.foreground_mean["Dice"]
    keys = {
        name: FOREGROUND_MEAN if name == FOREGROUND_MEAN else threshold_key(name, spec) for name in thresholds
    }
    unknown = [name for name, key in keys.items() if key not in dice]
    if unknown:
        raise JobInputError(
            [
                f"threshold for {name!r}: no such label was evaluated; evaluated: {', '.join(dice)}"
                for name in unknown
            ],
            hint="name labels as dataset.json does, by value, or use 'foreground_mean'",
        )
    failures = []
    for name, least in thresholds.items():
        value = dice[keys[name]]
        if math.isnan(value):
            failures.append(f"{name}: Dice is undefined (the label is in no reference and no prediction)")
        elif value < float(least):
            failures.append(f"{name}: Dice {value:.4f} is below the threshold {float(least):.4f}")
    return failures


def link_labelled_cases(images_dir: Path, labels_dir: Path, spec: DatasetSpec, out_dir: Path) -> int:
    """Link the channel files of every case that has a label into `out_dir`; returns the count."""
    grouped, _ = group_channel_files(images_dir, spec.file_ending)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    count = 0
    for case, channels in grouped.items():
        if (labels_dir / f"{case}{spec.file_ending}").is_file():
            for path in channels.values():
                (out_dir / path.name).symlink_to(path.resolve())
            count += 1
    return count


def predict_dataset(
    context: JobContext, evaluation: Evaluation, model: Model, folder: Path
) -> tuple[Path, Path, DatasetSpec]:
    raw = raw_dir(context.settings, str(evaluation.dataset_id))
    spec = load_dataset_json(raw / "dataset.json")
    which = ("Tr", "training") if context.params.get("use_training_cases") else ("Ts", "test")
    images_dir, labels_dir = raw / f"images{which[0]}", raw / f"labels{which[0]}"
    if link_labelled_cases(images_dir, labels_dir, spec, folder / "input") == 0:
        raise JobInputError(
            f"dataset {evaluation.dataset_id} has no labelled {which[1]} cases "
            f"(images{which[0]}/CASE_0000{spec.file_ending} with labels{which[0]}/CASE{spec.file_ending})",
            hint="add labels for the test cases, or evaluate on the training cases",
        )
    staging = folder / ".predictions.partial"
    shutil.rmtree(staging, ignore_errors=True)
    stored = {**(context.params.get("options") or {}), "file_ending": spec.file_ending}
    options = prediction_options(stored, context.settings.worker_device)
    predict_cached(model.id, context.path(model.path), folder / "input", staging, options, context.progress)
    replace_folder(staging, folder / "predictions")
    return folder / "predictions", labels_dir, spec


def spec_for_folders(
    context: JobContext, evaluation: Evaluation, model: Model | None, pred_dir: Path
) -> DatasetSpec | None:
    candidates = [pred_dir / "dataset.json"]
    if model is not None:
        candidates += sorted(context.path(model.path).glob("*/dataset.json"))[:1]
    if evaluation.dataset_id is not None:
        candidates.append(raw_dir(context.settings, evaluation.dataset_id) / "dataset.json")
    return next((load_dataset_json(path) for path in candidates if path.is_file()), None)


def run(context: JobContext) -> dict[str, Any]:
    evaluation_id = context.param("evaluation_id")
    with context.session() as session:
        evaluation = session.get(Evaluation, evaluation_id)
        if evaluation is None:
            raise JobInputError(f"evaluation {evaluation_id} no longer exists")
        model = None if evaluation.model_id is None else session.get(Model, evaluation.model_id)
    folder = context.path(evaluation.path)
    if model is not None and evaluation.dataset_id is not None and not (folder / "references").is_dir():
        pred_dir, ref_dir, spec = predict_dataset(context, evaluation, model, folder)
    else:
        pred_dir, ref_dir = folder / "predictions", folder / "references"
        spec = spec_for_folders(context, evaluation, model, pred_dir)
    if spec is not None:
        summary = evaluate_folder(pred_dir, ref_dir, spec, progress=context.progress)
    else:
        ending = detect_file_ending(pred_dir)
        targets = labels_found_in(ref_dir, ending)
        summary = evaluate_predictions(pred_dir, ref_dir, targets, None, ending, progress=context.progress)
    save_summary(summary, folder / SUMMARY_FILE)
    failures = threshold_failures(summary, spec, evaluation.thresholds or {})
    with context.session() as session:
        row = session.get(Evaluation, evaluation_id)
        row.summary, row.passed = json_safe(summary.to_json()), not failures
    return {
        "evaluation_id": evaluation_id,
        "passed": not failures,
        "failures": failures,
        "foreground_mean_dice": json_safe(summary.foreground_mean_dice),
        "artifacts": {SUMMARY_FILE: context.stored(folder / SUMMARY_FILE)},
    }
