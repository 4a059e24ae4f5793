"""`nnsvc train`: one fold of one configuration, with a progress bar."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.progress import ProgressBars
from core.constants import TRAINING_EPOCHS, TRAINING_ITERATIONS_PER_EPOCH, TRAINING_VALIDATION_ITERATIONS
from core.training.options import TrainingOptions
from core.training.splits import Fold


def parse_fold(text: str) -> Fold:
    if text == "all":
        return "all"
    try:
        fold = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"fold must be a number or 'all', got {text!r}") from None
    if fold < 0:
        raise argparse.ArgumentTypeError(f"fold must not be negative, got {fold}")
    return fold


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train one fold of one configuration",
        description=(
            "Train a U-Net for one configuration and fold on data preprocessed by `nnsvc plan`. The model "
            "folder gets MODEL_DIR/<CONFIGURATION>/ with plans.json and dataset.json beside fold_<FOLD>/, "
            "which holds the checkpoints, the training log, progress.png and every option of the run. "
            "Validating a 3d_lowres fold also writes its cases' segmentations for the cascade to "
            "MODEL_DIR/3d_lowres/predicted_next_stage/3d_cascade_fullres/, which training "
            "3d_cascade_fullres (into the same MODEL_DIR) reads as extra input channels."
        ),
    )
    train.add_argument("preprocessed_dir", type=Path, help="output folder of `nnsvc plan`")
    train.add_argument(
        "-c",
        "--configuration",
        required=True,
        help="e.g. 3d_fullres, 2d, 3d_lowres; 3d_cascade_fullres after all five 3d_lowres folds",
    )
    train.add_argument("-f", "--fold", type=parse_fold, required=True, help="0-4, or 'all' (every case)")
    train.add_argument("-o", "--out", dest="model_dir", type=Path, required=True, help="model folder")
    schedule = train.add_argument_group("schedule")
    schedule.add_argument("--epochs", type=int, default=TRAINING_EPOCHS, help=f"default: {TRAINING_EPOCHS}")
    schedule.add_argument(
        "--iterations-per-epoch",
        type=int,
        default=TRAINING_ITERATIONS_PER_EPOCH,
        help=f"training batches per epoch (default: {TRAINING_ITERATIONS_PER_EPOCH})",
    )
    schedule.add_argument(
        "--validation-iterations",
        type=int,
        default=TRAINING_VALIDATION_ITERATIONS,
        help=f"pseudo-validation batches per epoch (default: {TRAINING_VALIDATION_ITERATIONS})",
    )
    train.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto")
    train.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="mixed precision: auto = float16 on CUDA, float32 on the CPU (bf16 is refused there)",
    )
    train.add_argument("--seed", type=int, default=0, help="seed of weights, sampling and augmentation")
    train.add_argument("--resume", action="store_true", help="continue from the fold's latest checkpoint")
    train.add_argument("--pretrained", type=Path, help="start from this checkpoint's weights (fine-tuning)")
    train.add_argument(
        "--no-validation",
        action="store_true",
        help="skip predicting the fold's validation cases after training (model selection needs them)",
    )
    train.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    train.set_defaults(handler=run_train)


def run_train(arguments: argparse.Namespace) -> int:
    from core.training.trainer import train_fold
    from core.training.validation import validate_fold

    options = TrainingOptions(
        epochs=arguments.epochs,
        iterations_per_epoch=arguments.iterations_per_epoch,
        validation_iterations=arguments.validation_iterations,
        seed=arguments.seed,
        device=arguments.device,
        precision=arguments.precision,
        pretrained_weights=str(arguments.pretrained) if arguments.pretrained else None,
    )
    progress = ProgressBars(enabled=not arguments.no_progress)
    result = train_fold(
        arguments.preprocessed_dir,
        arguments.configuration,
        arguments.fold,
        arguments.model_dir,
        options,
        is_resume=arguments.resume,
        progress=progress,
    )
    print(
        f"trained {result.epochs_run} epoch(s) into {result.fold_dir}: pseudo dice moving average "
        f"{result.final_ema_dice:.4f} (best {result.best_ema_dice:.4f})"
    )
    if not arguments.no_validation:
        summary = validate_fold(
            arguments.preprocessed_dir,
            arguments.model_dir,
            arguments.configuration,
            arguments.fold,
            device=arguments.device,
            progress=progress,
        )
        print(f"validation: foreground mean Dice {summary.foreground_mean_dice:.4f} over the fold's cases")
    progress.close()
    return 0
