"""nnU-Net v2's `inference_information.json` and our `selection.json`: the same choice, other names.

nnU-Net v2 names a candidate by its model folder (`<Trainer>__<Plans>__<configuration>`) or its
ensemble folder (`ensemble___<A>___<B>___<folds>`) and points at its `postprocessing.pkl` with an
absolute path of the machine that chose it. We name candidates by configuration (`a__b` for a pair)
and keep paths relative to the model folder (core.selection). A choice converts when every model it
selected is part of the import; the absolute paths are not used, the postprocessing is looked up in
the imported tree. Exported files point at paths relative to the dataset folder instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath

from core.interop.layout import (
    ENSEMBLES_DIR,
    POSTPROCESSING_PICKLE,
    ModelId,
    ensemble_folder_name,
    folds_text,
    parse_ensemble_folder_name,
)
from core.postprocessing import POSTPROCESSING_FILE
from core.selection import ENSEMBLE_SEPARATOR, Selection, crossval_folder_name, ensemble_name
from core.selection import ENSEMBLES_DIR as OUR_ENSEMBLES_DIR


def _model_id(entry: Mapping) -> ModelId:
    plans = entry.get("plans_identifier", entry.get("plans"))
    return ModelId(str(entry["trainer"]), str(plans), str(entry["configuration"]))


def _our_candidate(name: str, configurations: Mapping[ModelId, str]) -> str | None:
    model = ModelId.parse(name)
    if model is not None:
        return configurations.get(model)
    parsed = parse_ensemble_folder_name(name)
    if parsed is None or not all(member in configurations for member in parsed[0]):
        return None
    return ensemble_name([configurations[member] for member in parsed[0]])


def our_postprocessing_path(selected: tuple[str, ...], folds: tuple[int, ...]) -> str:
    """Where our layout keeps the postprocessing of a single configuration or an ensemble."""
    if len(selected) == 1:
        return f"{selected[0]}/{crossval_folder_name(folds)}/{POSTPROCESSING_FILE}"
    return f"{OUR_ENSEMBLES_DIR}/{ensemble_name(selected)}/{POSTPROCESSING_FILE}"


def selection_from_information(information: object, configurations: Mapping[ModelId, str]) -> Selection:
    """Our selection for nnU-Net's choice; `configurations` maps each imported model to its
    configuration. Raises KeyError, TypeError or ValueError when the file does not fit."""
    if not isinstance(information, dict):
        raise TypeError("not a JSON object")
    best = information["best_model_or_ensemble"]
    selected = tuple(_model_id(entry) for entry in best["selected_model_or_models"])
    missing = [model.name for model in selected if model not in configurations]
    if missing:
        raise ValueError(f"it selects {', '.join(missing)}, which this import does not include")
    names = tuple(configurations[model] for model in selected)
    folds = tuple(int(fold) for fold in information["folds"])
    results = {}
    for name, score in information["all_results"].items():
        ours = _our_candidate(name, configurations)
        if ours is not None:
            results[ours] = float(score)
    considered = tuple(
        configurations[m] for m in map(_model_id, information["considered_models"]) if m in configurations
    )
    return Selection(
        folds=folds,
        considered_configurations=considered,
        ensembling_allowed=bool(information["ensembling_allowed"]),
        all_results=results,
        best=ensemble_name(names),
        selected_configurations=names,
        dice_before_postprocessing=float(best["result_on_crossval_pre_pp"]),
        dice_after_postprocessing=float(best["result_on_crossval_post_pp"]),
        postprocessing_file=our_postprocessing_path(names, folds),
        plans_file=f"{names[0]}/plans.json",
    )


def nnunet_postprocessing_folder(selected: tuple[ModelId, ...], folds: tuple[int, ...]) -> str:
    """Where nnU-Net v2 keeps a model's or an ensemble's postprocessing, relative to the dataset folder."""
    if len(selected) == 1:
        return f"{selected[0].name}/crossval_results_folds_{folds_text(folds)}"
    return f"{ENSEMBLES_DIR}/{ensemble_folder_name(selected, folds)}"


def information_from_selection(
    selection: Selection, models: Mapping[str, ModelId], dataset_name: str
) -> dict:
    """nnU-Net v2's `inference_information.json` for our selection; `models` maps configurations to
    their exported model folders. Paths are relative to the dataset folder."""
    folds = selection.folds

    def candidate(name: str) -> str:
        if name in models:
            return models[name].name
        return ensemble_folder_name(tuple(models[c] for c in name.split(ENSEMBLE_SEPARATOR)), folds)

    selected = tuple(models[c] for c in selection.selected_configurations)
    folder = PurePosixPath(nnunet_postprocessing_folder(selected, folds))
    return {
        "folds": list(folds),
        "dataset_name_or_id": dataset_name,
        "considered_models": [
            {"plans": models[c].plans, "configuration": c, "trainer": models[c].trainer}
            for c in selection.considered_configurations
        ],
        "ensembling_allowed": selection.ensembling_allowed,
        "all_results": {candidate(name): score for name, score in selection.all_results.items()},
        "best_model_or_ensemble": {
            "result_on_crossval_pre_pp": selection.dice_before_postprocessing,
            "result_on_crossval_post_pp": selection.dice_after_postprocessing,
            "postprocessing_file": str(folder / POSTPROCESSING_PICKLE),
            "some_plans_file": f"{selected[0].name}/plans.json",
            "selected_model_or_models": [
                {"configuration": m.configuration, "trainer": m.trainer, "plans_identifier": m.plans}
                for m in selected
            ],
        },
    }
