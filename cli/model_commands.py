"""Model selection commands: `evaluate`, `find-best` and `ensemble`."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from cli.dataset_commands import add_workers_and_progress
from cli.progress import ProgressBars
from core.dataset import DatasetError, DatasetSpec, load_dataset_json
from core.ensembling import ensemble_folders
from core.evaluation import (
    detect_file_ending,
    evaluate_predictions,
    evaluation_targets,
    labels_found_in,
    save_summary,
)
from core.postprocessing import apply_postprocessing_to_folder, load_postprocessing
from core.preprocessed import GT_FOLDER
from core.selection import SELECTION_FILE, find_best_configuration


def register(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="compare predicted segmentations with references",
        description=(
            "Dice, IoU, TP/FP/FN/TN and voxel counts per label (or region) for every file of PRED_DIR "
            "against the file of the same name in REF_DIR, written as summary.json in nnU-Net v2's layout."
        ),
    )
    evaluate.add_argument("pred_dir", type=Path, help="folder of predicted segmentations")
    evaluate.add_argument("ref_dir", type=Path, help="folder of reference segmentations (same file names)")
    evaluate.add_argument("-o", "--out", type=Path, required=True, help="summary.json to write")
    evaluate.add_argument(
        "--dataset-json",
        type=Path,
        help="labels, regions and ignore label from this file (default: PRED_DIR/dataset.json if present, "
        "else every label found in the references)",
    )
    add_workers_and_progress(evaluate)
    evaluate.set_defaults(handler=run_evaluate)

    find_best = commands.add_parser(
        "find-best",
        help="choose the best configuration (or pair) and the postprocessing from cross-validation",
        description=(
            "Merge every trained configuration's fold validations, ensemble every pair, choose the best by "
            "foreground mean Dice, decide the postprocessing and write MODEL_DIR/selection.json."
        ),
    )
    find_best.add_argument("model_dir", type=Path, help="model folder written by `nnsvc train`")
    find_best.add_argument("-c", "--configurations", nargs="+", help="consider only these (default: all)")
    find_best.add_argument("--no-ensembling", action="store_true", help="do not consider ensembles")
    find_best.add_argument(
        "--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="folds to use (default: 0 1 2 3 4)"
    )
    add_workers_and_progress(find_best)
    find_best.set_defaults(handler=run_find_best)

    ensemble = commands.add_parser(
        "ensemble",
        help="average saved probabilities of several predictions",
        description=(
            "Average the CASE.npz probabilities of several prediction folders (from `nnsvc predict "
            "--save-probabilities`) and write the segmentations, with the first folder's geometry."
        ),
    )
    ensemble.add_argument("-i", "--inputs", type=Path, nargs="+", required=True, help="prediction folders")
    ensemble.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    ensemble.add_argument("--dataset-json", type=Path, help="default: dataset.json of the first input folder")
    ensemble.add_argument("--postprocessing", type=Path, help="apply this postprocessing.json afterwards")
    ensemble.add_argument("--save-probabilities", action="store_true", help="also write averaged CASE.npz")
    add_workers_and_progress(ensemble)
    ensemble.set_defaults(handler=run_ensemble)


def run_evaluate(arguments: argparse.Namespace) -> int:
    dataset_json = arguments.dataset_json or arguments.pred_dir / "dataset.json"
    progress = ProgressBars(enabled=not arguments.no_progress)
    if dataset_json.is_file():
        spec = load_dataset_json(dataset_json)
        targets, ignore_label, ending = evaluation_targets(spec), spec.ignore_label, spec.file_ending
    else:
        ending = detect_file_ending(arguments.pred_dir)
        targets, ignore_label = labels_found_in(arguments.ref_dir, ending), None
    summary = evaluate_predictions(
        arguments.pred_dir, arguments.ref_dir, targets, ignore_label, ending, arguments.workers, progress
    )
    progress.close()
    save_summary(summary, arguments.out)
    print(f"{len(summary.metric_per_case)} case(s) evaluated; summary written to {arguments.out}")
    for key, metrics in summary.mean.items():
        print(f"  label {key}: Dice {metrics['Dice']:.4f}")
    print(f"  foreground mean Dice {summary.foreground_mean['Dice']:.4f}")
    return 0


def model_spec(model_dir: Path) -> DatasetSpec:
    for candidate in sorted(model_dir.glob("*/dataset.json")):
        return load_dataset_json(candidate)
    raise DatasetError(f"{model_dir}: no trained configuration found (no */dataset.json)")


def run_find_best(arguments: argparse.Namespace) -> int:
    model_dir: Path = arguments.model_dir
    progress = ProgressBars(enabled=not arguments.no_progress)
    selection = find_best_configuration(
        model_dir,
        model_dir / GT_FOLDER,
        model_spec(model_dir),
        configurations=arguments.configurations,
        folds=tuple(arguments.folds),
        allow_ensembling=not arguments.no_ensembling,
        workers=arguments.workers,
        progress=progress,
    )
    progress.close()
    print("cross-validation foreground mean Dice:")
    for name, dice in selection.all_results.items():
        print(f"  {name:<40} {'nan' if math.isnan(dice) else f'{dice:.4f}'}")
    print(
        f"best: {selection.best} ({selection.dice_before_postprocessing:.4f}, "
        f"{selection.dice_after_postprocessing:.4f} after postprocessing); written to "
        f"{model_dir / SELECTION_FILE}"
    )
    for line in selection.instructions():
        print(f"  {line}")
    return 0


def run_ensemble(arguments: argparse.Namespace) -> int:
    dataset_json = arguments.dataset_json or arguments.inputs[0] / "dataset.json"
    spec = load_dataset_json(dataset_json)
    progress = ProgressBars(enabled=not arguments.no_progress)
    written = ensemble_folders(
        arguments.inputs, arguments.out, spec, arguments.workers, progress, arguments.save_probabilities
    )
    if arguments.postprocessing is not None:
        steps = load_postprocessing(arguments.postprocessing)
        apply_postprocessing_to_folder(
            arguments.out, arguments.out, steps, spec.file_ending, arguments.workers, progress
        )
    progress.close()
    print(f"{len(written)} case(s) ensembled into {arguments.out}")
    return 0
