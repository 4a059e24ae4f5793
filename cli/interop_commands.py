"""`nnsvc import-nnunet` and `nnsvc export-nnunet`: trained models between nnU-Net v2 and nnsvc."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.progress import ProgressBars
from core.training.checkpoint_names import BEST, FINAL


def register(commands: argparse._SubParsersAction) -> None:
    importer = commands.add_parser(
        "import-nnunet",
        help="import a trained nnU-Net v2 model (results folder or export zip)",
        description=(
            "Import an nnU-Net v2 results folder (DatasetXXX_Name/, one Trainer__Plans__configuration/ "
            "folder, or the zip of nnUNetv2_export_model_to_zip) as an nnsvc model folder: plans, "
            "dataset.json, fold checkpoints (loaded weights-only), postprocessing and the "
            "cross-validation choice when present. Everything is checked first; a refused import "
            "writes nothing."
        ),
    )
    importer.add_argument("source", type=Path, help="results folder, model folder or export zip")
    importer.add_argument(
        "-o", "--out", type=Path, required=True, help="model folder to create (must not exist)"
    )
    importer.add_argument(
        "--checkpoint",
        choices=(FINAL, BEST),
        default=FINAL,
        help=f"which fold checkpoint to import (default: {FINAL}); it becomes the model's {FINAL}",
    )
    importer.add_argument("--trainer", help="import only models of this trainer class (when several)")
    importer.add_argument("--plans", help="import only models of this plans identifier (when several)")
    importer.add_argument("-c", "--configurations", nargs="+", help="import only these (default: all)")
    importer.add_argument("-f", "--folds", nargs="+", help="import only these folds (default: all)")
    importer.add_argument("--no-progress", action="store_true", help="log lines instead of progress bars")
    importer.set_defaults(handler=run_import)

    exporter = commands.add_parser(
        "export-nnunet",
        help="export an nnsvc model folder in nnU-Net v2's results layout",
        description=(
            "Write MODEL_DIR as nnU-Net v2 results (OUT/DatasetXXX_Name/nnUNetTrainer__Plans__configuration/"
            "...), which nnU-Net v2's predictor and postprocessing tools use as they are; with --zip, OUT "
            "is a zip that nnUNetv2_install_pretrained_model_from_zip installs."
        ),
    )
    exporter.add_argument("model_dir", type=Path, help="model folder written by `nnsvc train` or imported")
    exporter.add_argument(
        "-o", "--out", type=Path, required=True, help="results folder, or the zip file with --zip"
    )
    exporter.add_argument("--zip", action="store_true", help="write one zip file instead of folders")
    exporter.add_argument(
        "-c", "--configurations", nargs="+", help="export only these (default: all trained)"
    )
    exporter.add_argument(
        "--dataset-name", help="nnU-Net dataset folder name (default: the plans' name, as DatasetXXX_Name)"
    )
    exporter.add_argument("--no-progress", action="store_true", help="log lines instead of progress bars")
    exporter.set_defaults(handler=run_export)


def _tuple(values: list[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)


def run_import(arguments: argparse.Namespace) -> int:
    from core.interop import ImportOptions, import_nnunet_model

    options = ImportOptions(
        checkpoint=arguments.checkpoint,
        trainer=arguments.trainer,
        plans=arguments.plans,
        configurations=_tuple(arguments.configurations),
        folds=_tuple(arguments.folds),
    )
    progress = ProgressBars(enabled=not arguments.no_progress)
    try:
        model = import_nnunet_model(arguments.source, arguments.out, progress, options)
    finally:
        progress.close()
    print(f"imported {model.source} ({model.dataset_name}) into {model.model_dir}:")
    for configuration in model.configurations:
        folds = ", ".join(configuration.folds)
        print(
            f"  {configuration.configuration:<20} {configuration.trainer} / {configuration.plans}, "
            f"{configuration.network_class_name.rsplit('.', 1)[-1]}, folds {folds}"
        )
    for path in model.postprocessing_files:
        print(f"  postprocessing: {path}")
    print("  selection: " + ("selection.json (predict with --best)" if model.has_selection else "none"))
    for note in model.notes:
        print(f"  note: {note}")
    return 0


def run_export(arguments: argparse.Namespace) -> int:
    from core.interop import export_nnunet_model

    progress = ProgressBars(enabled=not arguments.no_progress)
    try:
        exported = export_nnunet_model(
            arguments.model_dir,
            arguments.out,
            as_zip=arguments.zip,
            configurations=_tuple(arguments.configurations),
            dataset_name=arguments.dataset_name,
            progress=progress,
        )
    finally:
        progress.close()
    print(f"exported {arguments.model_dir} as {exported.dataset_name} to {exported.path}:")
    for name in exported.model_folders:
        print(f"  {name}")
    for note in exported.notes:
        print(f"  note: {note}")
    return 0
