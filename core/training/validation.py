"""Fold validation (METHOD.md 5.8): predict a fold's held-out cases in full and evaluate them.

Runs after a fold's last epoch, on the preprocessed cases (no raw data needed): the final checkpoint,
the sliding window with mirroring, the export to the original grid. Writes
`fold_K/validation/CASE<ending>` with `CASE.npz` probabilities (model selection ensembles them) and
`summary.json` against the reference segmentations kept in the model folder.

Cascade (`core.training.cascade`): a configuration with a next stage (3d_lowres) also writes each case's
segmentation on the next stage's preprocessed grid to `MODEL_DIR/<configuration>/predicted_next_stage/
<next>/CASE.npy` (numbered folds only); a cascade (3d_cascade_fullres) appends those of its previous stage
to the input as one-hot channels, as in training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.dataset import load_dataset_json
from core.evaluation import Summary, evaluate_folder, save_summary
from core.inference.export import export_logits, write_probabilities
from core.inference.predictor import Predictor, one_hot_foreground
from core.io import write_segmentation
from core.parallel import ProgressCallback, no_progress
from core.preprocessed import GT_FOLDER, list_cases, load_case
from core.selection import SUMMARY_FILE
from core.training.cascade import (
    check_previous_stage,
    load_previous_stage,
    next_stage_folder,
    previous_stage_folder,
    write_next_stage_segmentation,
)
from core.training.checkpoints import FINAL
from core.training.splits import SPLITS_FILE_NAME, Fold, load_splits, split_for_fold, stored_splits

VALIDATION_FOLDER = "validation"


def validation_cases(preprocessed_dir: Path, data_dir: Path, fold: Fold) -> tuple[str, ...]:
    identifiers = list_cases(data_dir)
    splits = [] if fold == "all" else load_splits(Path(preprocessed_dir) / SPLITS_FILE_NAME)
    return split_for_fold(splits, identifiers, fold).val


def validate_fold(
    preprocessed_dir: Path,
    model_dir: Path,
    configuration: str,
    fold: Fold,
    device: str = "auto",
    workers: int = 1,
    progress: ProgressCallback = no_progress,
) -> Summary:
    """Predict and evaluate the validation cases of `fold`; returns the summary it also writes."""
    configuration_dir = Path(model_dir) / configuration
    predictor = Predictor.from_model_dir(
        model_dir, configuration, folds=[fold], device=device, checkpoint=FINAL, with_previous_stage=False
    )
    plans = predictor.plans
    data_dir = Path(preprocessed_dir) / predictor.configuration.data_identifier
    out_dir = configuration_dir / f"fold_{fold}" / VALIDATION_FOLDER
    cases = validation_cases(preprocessed_dir, data_dir, fold)
    ending = predictor.spec.file_ending
    previous_dir = previous_stage_folder(model_dir, plans, configuration) if predictor.is_cascade else None
    if previous_dir is not None:
        splits = stored_splits(Path(preprocessed_dir) / SPLITS_FILE_NAME)
        check_previous_stage(previous_dir, data_dir, cases, splits, predictor.configuration.previous_stage)
    next_stage = predictor.configuration.next_stage
    is_next_stage_written = next_stage is not None and fold != "all"
    next_dir = next_stage_folder(model_dir, configuration, next_stage) if is_next_stage_written else None
    for index, identifier in enumerate(cases, start=1):
        data, _, properties = load_case(data_dir, identifier, mmap=False)
        if previous_dir is not None:
            previous = load_previous_stage(previous_dir, identifier, mmap=False)[0]
            data = np.concatenate([data, one_hot_foreground(previous, predictor.spec.foreground_labels)])
        logits = predictor.predict_logits(data)
        if next_dir is not None:
            write_next_stage_segmentation(
                logits,
                properties,
                plans,
                configuration,
                identifier,
                preprocessed_dir,
                next_dir,
                predictor.layout,
            )
        segmentation, probabilities = export_logits(
            logits, properties, plans, configuration, predictor.layout, return_probabilities=True
        )
        write_probabilities(probabilities, properties, out_dir / identifier)
        write_segmentation(segmentation, properties.geometry, out_dir / f"{identifier}{ending}")
        progress(index / len(cases), "validate", f"{index}/{len(cases)} {identifier}")
    spec = load_dataset_json(configuration_dir / "dataset.json")
    summary = evaluate_folder(out_dir, Path(model_dir) / GT_FOLDER, spec, workers=workers)
    save_summary(summary, out_dir / SUMMARY_FILE)
    return summary
