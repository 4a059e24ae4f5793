"""Predict with a model folder as `nnsvc predict` does: one configuration, or the cross-validation choice.

`--best` follows `selection.json` (written by `find_best_configuration`): one configuration, or two
whose probabilities are averaged, then the chosen postprocessing. With an explicit configuration the
postprocessing is applied only when the selection chose that configuration alone, because
postprocessing is decided for the winner's cross-validation predictions and may not suit another.
A cascade (3d_cascade_fullres) runs its previous stage (3d_lowres, same folds) from the same model
folder first, wherever it is chosen (see `Predictor`), unless the previous stage's segmentations are
given (`previous_stage_dir`: made elsewhere, e.g. by an earlier call).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from core.dataset import load_dataset_json
from core.ensembling import ensemble_folders
from core.errors import ProblemsError
from core.files import write_json_atomically
from core.inference.predictor import Predictor
from core.parallel import ProgressCallback, no_progress
from core.plans import load_plans
from core.postprocessing import apply_postprocessing, apply_postprocessing_to_folder, load_postprocessing
from core.selection import SELECTION_FILE, Selection, load_selection


class ModelPredictionError(ProblemsError):
    """The model folder cannot predict as asked (no selection yet, unknown configuration)."""


@dataclass(frozen=True)
class PredictionOptions:
    """Per-request choices; each trades accuracy for time in a predictable way (METHOD.md 10.3-10.4)."""

    configuration: str | None = None
    folds: tuple[int | str, ...] | None = None
    use_mirroring: bool = True
    step_size: float = 0.5
    device: str = "auto"
    save_probabilities: bool = False
    precision: str = "auto"
    file_ending: str | None = None  # the input files' ending, if not dataset.json's; outputs follow it

    def to_json(self) -> dict:
        return {
            "configuration": self.configuration or "best",
            "folds": None if self.folds is None else list(self.folds),
            "use_mirroring": self.use_mirroring,
            "step_size": self.step_size,
            "device": self.device,
            "save_probabilities": self.save_probabilities,
            "precision": self.precision,
            "file_ending": self.file_ending,
        }


def read_selection(model_dir: Path) -> Selection | None:
    path = Path(model_dir) / SELECTION_FILE
    return load_selection(path) if path.is_file() else None


def predictor_for(model_dir: Path, configuration: str, options: PredictionOptions) -> Predictor:
    if not (Path(model_dir) / configuration / "plans.json").is_file():
        trained = sorted(p.parent.name for p in Path(model_dir).glob("*/plans.json"))
        raise ModelPredictionError(
            f"configuration {configuration!r} is not trained in {model_dir}; trained: {', '.join(trained)}"
        )
    return Predictor.from_model_dir(
        model_dir,
        configuration,
        folds=options.folds,
        device=options.device,
        use_mirroring=options.use_mirroring,
        step_size=options.step_size,
        precision=options.precision,
    )


PredictorLoader = Callable[[Path, str, PredictionOptions], Predictor]


def predict_with_model(
    model_dir: Path,
    in_dir: Path,
    out_dir: Path,
    options: PredictionOptions,
    progress: ProgressCallback = no_progress,
    load_predictor: PredictorLoader = predictor_for,
    previous_stage_dir: Path | None = None,
) -> list[Path]:
    """Predict every case of `in_dir` into `out_dir` and record the options used there.

    `load_predictor` lets a long-lived caller (the service's worker) reuse loaded predictors; it
    must hand back a predictor without postprocessing, which is set here when the selection asks.
    `previous_stage_dir` feeds the cascade among the configurations (refused when there is none)."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    selection = read_selection(model_dir)
    if options.configuration is None and selection is None:
        raise ModelPredictionError(
            f"{model_dir}: no {SELECTION_FILE}; run `nnsvc find-best {model_dir}` "
            "or name a configuration with -c"
        )
    configurations = (
        (options.configuration,) if options.configuration else tuple(selection.selected_configurations)
    )
    is_selected = selection is not None and configurations == tuple(selection.selected_configurations)
    steps = load_postprocessing(model_dir / selection.postprocessing_file) if is_selected else ()
    if len(configurations) == 1:
        predictor = load_predictor(model_dir, configurations[0], options)
        if steps:
            predictor.postprocess = partial(apply_postprocessing, steps=steps)
        written = predictor.predict_folder(
            in_dir,
            out_dir,
            options.save_probabilities,
            previous_stage_dir,
            progress=progress,
            file_ending=options.file_ending,
        )
        spec_source = model_dir / configurations[0]
    else:
        written = predict_ensemble(
            model_dir, configurations, in_dir, out_dir, options, progress, load_predictor, previous_stage_dir
        )
        spec_source = model_dir / configurations[0]
        if steps:
            spec = load_dataset_json(spec_source / "dataset.json")
            ending = options.file_ending or spec.file_ending
            apply_postprocessing_to_folder(out_dir, out_dir, steps, ending, progress=progress)
    for name in ("dataset.json", "plans.json"):
        shutil.copyfile(spec_source / name, out_dir / name)
    write_json_atomically(out_dir / "prediction_options.json", options.to_json())
    return written


def predict_ensemble(
    model_dir: Path,
    configurations: Sequence[str],
    in_dir: Path,
    out_dir: Path,
    options: PredictionOptions,
    progress: ProgressCallback,
    load_predictor: PredictorLoader = predictor_for,
    previous_stage_dir: Path | None = None,
) -> list[Path]:
    """Each configuration predicts probabilities into a scratch folder; their average is the result.
    `previous_stage_dir` goes to the cascade among them."""
    spec = load_dataset_json(Path(model_dir) / configurations[0] / "dataset.json")
    if options.file_ending:
        spec = replace(spec, file_ending=options.file_ending)
    cascades: set[str] = set()
    if previous_stage_dir is not None:
        # read from the plans, so that the members' weights are still loaded one at a time
        cascades = {
            c
            for c in configurations
            if load_plans(Path(model_dir) / c / "plans.json").configuration(c).previous_stage
        }
        if not cascades:
            raise ModelPredictionError(
                f"previous-stage segmentations were given ({previous_stage_dir}), but none of "
                f"{', '.join(configurations)} has a previous stage"
            )
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".ensemble-") as scratch:
        members = []
        for configuration in configurations:
            member_dir = Path(scratch) / configuration
            load_predictor(model_dir, configuration, options).predict_folder(
                in_dir,
                member_dir,
                save_probabilities=True,
                previous_stage_dir=previous_stage_dir if configuration in cascades else None,
                progress=progress,
                file_ending=spec.file_ending,
            )
            members.append(member_dir)
        return ensemble_folders(
            members, out_dir, spec, progress=progress, save_probabilities=options.save_probabilities
        )
