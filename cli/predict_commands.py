"""`nnsvc predict`: segment a folder of cases, or one case's channel files, with a trained model."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from cli.progress import ProgressBars
from cli.training_commands import parse_fold
from core.errors import ProblemsError
from core.io import file_ending_of
from core.precision_choices import PRECISION_CHOICES


class InputError(ProblemsError):
    """The -i arguments name neither one folder nor existing channel files."""


def register(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser(
        "predict",
        help="segment images with a trained model",
        description=(
            "Segment every case of a folder (CASE_0000<ending>, CASE_0001<ending>, ...) or one case given "
            "as its channel files, with one configuration (-c) or the cross-validation choice (--best, "
            "postprocessing included). Outputs keep each input's exact geometry."
        ),
    )
    predict.add_argument("model_dir", type=Path, help="model folder (from `nnsvc train`)")
    predict.add_argument(
        "-i", "--input", dest="inputs", type=Path, nargs="+", required=True, help="folder, or a case's files"
    )
    predict.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    which = predict.add_mutually_exclusive_group()
    which.add_argument(
        "-c",
        "--configuration",
        help="configuration to use, e.g. 3d_fullres; 3d_cascade_fullres first predicts with 3d_lowres",
    )
    which.add_argument(
        "--best", action="store_true", help="the choice of `nnsvc find-best` (the default without -c)"
    )
    predict.add_argument(
        "-f", "--folds", type=parse_fold, nargs="+", help="folds to average (default: every trained fold)"
    )
    predict.add_argument("--no-tta", action="store_true", help="no mirroring: about 8x faster, less accurate")
    predict.add_argument(
        "--step-size", type=float, default=0.5, help="window step as a fraction of the patch (default 0.5)"
    )
    predict.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto")
    predict.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default="auto",
        help="network arithmetic: auto = bf16 on CPUs that compute it natively, fp16 on CUDA, else fp32",
    )
    predict.add_argument(
        "--save-probabilities", action="store_true", help="also write CASE.npz with the class probabilities"
    )
    predict.add_argument(
        "--previous-stage",
        type=Path,
        metavar="FOLDER",
        help="a cascade's previous-stage segmentations (CASE<ending>, e.g. from `-c 3d_lowres`); "
        "default: the cascade predicts them itself",
    )
    predict.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    predict.set_defaults(handler=run_predict)


def stage_single_case(files: list[Path], folder: Path) -> None:
    """Link one case's channel files into `folder` under the names the predictor groups by."""
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise InputError([f"{path}: not found" for path in missing])
    ending = file_ending_of(files[0])
    stem = files[0].name[: -len(ending)]
    case = stem[:-5] if len(stem) > 5 and stem[-5] == "_" and stem[-4:].isdigit() else stem
    for channel, path in enumerate(files):
        (folder / f"{case}_{channel:04d}{ending}").symlink_to(path.resolve())


def run_predict(arguments: argparse.Namespace) -> int:
    from core.inference.model_prediction import PredictionOptions, predict_with_model

    options = PredictionOptions(
        configuration=arguments.configuration,
        folds=tuple(arguments.folds) if arguments.folds else None,
        use_mirroring=not arguments.no_tta,
        step_size=arguments.step_size,
        device=arguments.device,
        save_probabilities=arguments.save_probabilities,
        precision=arguments.precision,
    )
    if not 0 < options.step_size <= 1:
        raise InputError(f"--step-size must be in (0, 1], got {options.step_size}")
    progress = ProgressBars(enabled=not arguments.no_progress)
    inputs: list[Path] = arguments.inputs
    previous: Path | None = arguments.previous_stage
    if len(inputs) == 1 and inputs[0].is_dir():
        written = predict_with_model(
            arguments.model_dir, inputs[0], arguments.out, options, progress, previous_stage_dir=previous
        )
    else:
        with tempfile.TemporaryDirectory(prefix="nnsvc-case-") as staging:
            stage_single_case(inputs, Path(staging))
            written = predict_with_model(
                arguments.model_dir,
                Path(staging),
                arguments.out,
                options,
                progress,
                previous_stage_dir=previous,
            )
    progress.close()
    print(f"{len(written)} segmentation(s) written to {arguments.out}")
    return 0
