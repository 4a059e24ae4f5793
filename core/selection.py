"""Model selection from cross-validation (METHOD.md 8.3): configurations, pairwise ensembles, the winner.

Model folder layout (what `nnsvc train` and fold validation write, and what this adds):

    MODEL_DIR/<configuration>/plans.json, dataset.json
    MODEL_DIR/<configuration>/fold_K/validation/CASE<ending>, CASE.npz, summary.json
    MODEL_DIR/<configuration>/crossval_results_folds_0_1_2_3_4/   every fold's validation cases + summary.json
    MODEL_DIR/ensembles/<a>__<b>/                                  ensemble of a and b + summary.json
    MODEL_DIR/selection.json                                       the choice (see `Selection`)

Each configuration with validation predictions for every fold is a candidate, and so is every pair of
them (probabilities averaged per case, METHOD.md 8.4). The score is the foreground mean Dice of the
merged cross-validation predictions against the reference folder (the preprocessed dataset's
`gt_segmentations/`); the highest wins, ties going to the earlier candidate (single configurations in
upstream's order, then ensembles). Postprocessing is chosen for the winner only.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.constants import SELECTION_CONFIGURATION_ORDER, SPLITS_NUM_FOLDS
from core.dataset import DatasetSpec
from core.ensembling import PROBABILITIES_SUFFIX, ensemble_folders, probability_cases
from core.errors import ProblemsError
from core.evaluation import Summary, evaluate_folder, prediction_files, save_summary
from core.files import read_json, write_json_atomically
from core.parallel import ProgressCallback, no_progress
from core.postprocessing import POSTPROCESSING_FILE, determine_postprocessing

DEFAULT_FOLDS = tuple(range(SPLITS_NUM_FOLDS))
ENSEMBLES_DIR = "ensembles"
SELECTION_FILE = "selection.json"
SUMMARY_FILE = "summary.json"
ENSEMBLE_SEPARATOR = "__"


class SelectionError(ProblemsError):
    """Cross-validation results are missing or inconsistent, so no configuration can be chosen."""


def crossval_folder_name(folds: Sequence[int]) -> str:
    return "crossval_results_folds_" + "_".join(str(fold) for fold in folds)


def ensemble_name(configurations: Sequence[str]) -> str:
    return ENSEMBLE_SEPARATOR.join(configurations)


def _validation_files(configuration_dir: Path, folds: Sequence[int], file_ending: str) -> dict[str, Path]:
    """Every fold's validation segmentations and probabilities by name; a case in two folds is an error."""
    missing = [
        f"{configuration_dir}/fold_{fold}/validation: not found; train and validate fold {fold} first"
        for fold in folds
        if not (configuration_dir / f"fold_{fold}" / "validation").is_dir()
    ]
    if missing:
        raise SelectionError(missing)
    sources: dict[str, Path] = {}
    problems = []
    for fold in folds:
        for path in sorted((configuration_dir / f"fold_{fold}" / "validation").iterdir()):
            wanted = path.name.endswith(file_ending) or path.name.endswith(PROBABILITIES_SUFFIX)
            if path.name.startswith(".") or not wanted or not path.is_file():
                continue
            if path.name in sources:
                problems.append(f"{configuration_dir.name}: {path.name} is predicted by more than one fold")
            sources[path.name] = path
    if not any(name.endswith(file_ending) for name in sources):
        problems.append(f"{configuration_dir.name}: no validation predictions in folds {list(folds)}")
    if problems:
        raise SelectionError(problems)
    return sources


def _replace_folder(staging: Path, final: Path) -> None:
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)


def accumulate_crossval(
    configuration_dir: Path,
    ref_dir: Path,
    spec: DatasetSpec,
    folds: Sequence[int] = DEFAULT_FOLDS,
    workers: int = 1,
    progress: ProgressCallback = no_progress,
) -> Summary:
    """Merge the folds' validation predictions into `crossval_results_folds_.../` and evaluate them there.

    Segmentations and `CASE.npz` files are copied, with the configuration's plans.json and dataset.json;
    the folder is built beside its final place and renamed, replacing an older one.
    """
    configuration_dir = Path(configuration_dir)
    sources = _validation_files(configuration_dir, folds, spec.file_ending)
    merged = configuration_dir / crossval_folder_name(folds)
    staging = merged.with_name(f".{merged.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, source in sources.items():
        shutil.copyfile(source, staging / name)
    for name in ("plans.json", "dataset.json"):
        if (configuration_dir / name).is_file():
            shutil.copyfile(configuration_dir / name, staging / name)
    _replace_folder(staging, merged)
    summary = evaluate_folder(merged, ref_dir, spec, workers=workers, progress=progress)
    save_summary(summary, merged / SUMMARY_FILE)
    return summary


def ensemble_crossval(
    model_dir: Path,
    configurations: Sequence[str],
    ref_dir: Path,
    spec: DatasetSpec,
    folds: Sequence[int] = DEFAULT_FOLDS,
    workers: int = 1,
    progress: ProgressCallback = no_progress,
) -> Summary:
    """Ensemble the configurations' merged cross-validation probabilities into `ensembles/<a>__<b>/`.

    Needs `accumulate_crossval` to have run for each configuration, with `CASE.npz` beside every case.
    """
    in_dirs = [Path(model_dir) / name / crossval_folder_name(folds) for name in configurations]
    problems = []
    for name, folder in zip(configurations, in_dirs, strict=True):
        cases = {p.name[: -len(spec.file_ending)] for p in prediction_files(folder, spec.file_ending)}
        without = sorted(cases - probability_cases(folder))
        if without:
            problems.append(
                f"{name}: no probabilities (CASE.npz) for {len(without)} case(s), e.g. {without[0]}; "
                "predict the folds' validation cases with probabilities to ensemble"
            )
    if problems:
        raise SelectionError(problems)
    out_dir = Path(model_dir) / ENSEMBLES_DIR / ensemble_name(configurations)
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    ensemble_folders(in_dirs, staging, spec, workers, progress)
    _replace_folder(staging, out_dir)
    summary = evaluate_folder(out_dir, ref_dir, spec, workers=workers, progress=progress)
    save_summary(summary, out_dir / SUMMARY_FILE)
    return summary


def available_configurations(model_dir: Path, folds: Sequence[int] = DEFAULT_FOLDS) -> list[str]:
    """Configurations with a validation folder for every fold, in upstream's order, then by name."""
    names = [
        folder.name
        for folder in Path(model_dir).iterdir()
        if folder.is_dir()
        and folder.name != ENSEMBLES_DIR
        and all((folder / f"fold_{fold}" / "validation").is_dir() for fold in folds)
    ]
    known = [name for name in SELECTION_CONFIGURATION_ORDER if name in names]
    return known + sorted(set(names) - set(known))


@dataclass(frozen=True)
class Selection:
    """`selection.json`: the information of upstream's `inference_information.json`, paths relative to
    the model folder (so it can move), and the lines of `inference_instructions.txt` as `instructions`.
    """

    folds: tuple[int, ...]
    considered_configurations: tuple[str, ...]
    ensembling_allowed: bool
    all_results: dict[str, float]
    best: str
    selected_configurations: tuple[str, ...]
    dice_before_postprocessing: float
    dice_after_postprocessing: float
    postprocessing_file: str
    plans_file: str

    @property
    def is_ensemble(self) -> bool:
        return len(self.selected_configurations) > 1

    def instructions(self) -> list[str]:
        folds = " ".join(str(fold) for fold in self.folds)
        lines = [
            "Predict with the selection, postprocessing included:",
            "nnsvc predict MODEL_DIR -i INPUT_FOLDER -o OUTPUT_FOLDER --best",
            "or step by step:",
        ]
        outputs = []
        for index, configuration in enumerate(self.selected_configurations, start=1):
            output = f"OUTPUT_FOLDER_MODEL_{index}" if self.is_ensemble else "OUTPUT_FOLDER"
            outputs.append(output)
            extra = " --save-probabilities" if self.is_ensemble else ""
            lines.append(
                f"nnsvc predict MODEL_DIR -i INPUT_FOLDER -o {output} -c {configuration} -f {folds}{extra}"
            )
        if self.is_ensemble:
            lines.append(f"nnsvc ensemble -i {' '.join(outputs)} -o OUTPUT_FOLDER")
        lines.append(
            f"then apply the postprocessing steps of MODEL_DIR/{self.postprocessing_file} to OUTPUT_FOLDER"
        )
        return lines

    def to_json(self) -> dict:
        return {
            "folds": list(self.folds),
            "considered_models": [{"configuration": name} for name in self.considered_configurations],
            "ensembling_allowed": self.ensembling_allowed,
            "all_results": dict(self.all_results),
            "best_model_or_ensemble": {
                "name": self.best,
                "result_on_crossval_pre_pp": self.dice_before_postprocessing,
                "result_on_crossval_post_pp": self.dice_after_postprocessing,
                "postprocessing_file": self.postprocessing_file,
                "some_plans_file": self.plans_file,
                "selected_model_or_models": [
                    {"configuration": name} for name in self.selected_configurations
                ],
            },
            "instructions": self.instructions(),
        }

    @classmethod
    def from_json(cls, data: dict) -> Selection:
        best = data["best_model_or_ensemble"]
        return cls(
            folds=tuple(int(fold) for fold in data["folds"]),
            considered_configurations=tuple(str(m["configuration"]) for m in data["considered_models"]),
            ensembling_allowed=bool(data["ensembling_allowed"]),
            all_results={str(k): float(v) for k, v in data["all_results"].items()},
            best=str(best["name"]),
            selected_configurations=tuple(str(m["configuration"]) for m in best["selected_model_or_models"]),
            dice_before_postprocessing=float(best["result_on_crossval_pre_pp"]),
            dice_after_postprocessing=float(best["result_on_crossval_post_pp"]),
            postprocessing_file=str(best["postprocessing_file"]),
            plans_file=str(best["some_plans_file"]),
        )


def save_selection(selection: Selection, path: Path) -> None:
    write_json_atomically(path, selection.to_json())


def load_selection(path: Path) -> Selection:
    data = read_json(path, SelectionError, "selection file")
    if not isinstance(data, dict):
        raise SelectionError(f"{path}: a selection file must be a JSON object")
    try:
        return Selection.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as problem:
        raise SelectionError(f"{path}: not a valid selection file ({problem!r})") from None


def _best_candidate(results: dict[str, float]) -> str:
    """The highest score, NaN counting as lowest; `max` keeps the first of equal scores."""
    return max(results, key=lambda name: -math.inf if math.isnan(results[name]) else results[name])


def find_best_configuration(
    model_dir: Path,
    ref_dir: Path,
    spec: DatasetSpec,
    configurations: Sequence[str] | None = None,
    folds: Sequence[int] = DEFAULT_FOLDS,
    allow_ensembling: bool = True,
    workers: int = 1,
    progress: ProgressCallback = no_progress,
) -> Selection:
    """Score every configuration (all of `available_configurations` when None) and every pair's ensemble,
    choose postprocessing for the winner, and write `MODEL_DIR/selection.json`.
    """
    model_dir = Path(model_dir)
    names = list(configurations) if configurations is not None else available_configurations(model_dir, folds)
    if not names:
        raise SelectionError(
            f"{model_dir}: no configuration has validation predictions for folds {list(folds)}"
        )
    results: dict[str, float] = {}
    folders: dict[str, Path] = {}
    members: dict[str, tuple[str, ...]] = {}
    for name in names:
        results[name] = accumulate_crossval(
            model_dir / name, ref_dir, spec, folds, workers, progress
        ).foreground_mean_dice
        folders[name] = model_dir / name / crossval_folder_name(folds)
        members[name] = (name,)
    if allow_ensembling:
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                pair = (first, second)
                key = ensemble_name(pair)
                results[key] = ensemble_crossval(
                    model_dir, pair, ref_dir, spec, folds, workers, progress
                ).foreground_mean_dice
                folders[key] = model_dir / ENSEMBLES_DIR / key
                members[key] = pair
    best = _best_candidate(results)
    choice = determine_postprocessing(folders[best], ref_dir, spec, workers, progress)
    selection = Selection(
        folds=tuple(folds),
        considered_configurations=tuple(names),
        ensembling_allowed=allow_ensembling,
        all_results=results,
        best=best,
        selected_configurations=members[best],
        dice_before_postprocessing=choice.before.foreground_mean_dice,
        dice_after_postprocessing=choice.after.foreground_mean_dice,
        postprocessing_file=(folders[best] / POSTPROCESSING_FILE).relative_to(model_dir).as_posix(),
        plans_file=f"{members[best][0]}/plans.json",
    )
    save_selection(selection, model_dir / SELECTION_FILE)
    return selection
