"""The parts of an import beyond the weights: postprocessing choices and the cross-validation selection.

Postprocessing files (`postprocessing.json`/`.pkl`, read safely by core.interop.postprocessing) come
from every imported model's `crossval_results_folds_*/` and from the dataset's `ensembles/` folders
whose members are all imported; they land where our layout keeps them, with the folder's
`summary.json`. `inference_information.json` becomes `selection.json` when every model it selected
is imported and its postprocessing is there; otherwise the import goes on without a selection and
says why in a note (predict then names a configuration).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from core.errors import ProblemsError
from core.files import read_json, write_json_atomically
from core.interop.inference_information import selection_from_information
from core.interop.layout import (
    CROSSVAL_PREFIX,
    ENSEMBLES_DIR,
    INFERENCE_INFORMATION,
    POSTPROCESSING_JSON,
    POSTPROCESSING_PICKLE,
    SUMMARY_FILE,
    ModelId,
    parse_ensemble_folder_name,
)
from core.interop.model_check import CheckedModel
from core.interop.postprocessing import read_nnunet_postprocessing
from core.postprocessing import POSTPROCESSING_FILE
from core.selection import ENSEMBLES_DIR as OUR_ENSEMBLES_DIR
from core.selection import SELECTION_FILE, save_selection
from core.selection import ensemble_name as our_ensemble_name


def configurations_by_model(models: list[CheckedModel]) -> dict[ModelId, str]:
    return {m.found.model_id: m.configuration for m in models}


def _has_postprocessing(folder: Path) -> bool:
    return (folder / POSTPROCESSING_JSON).is_file() or (folder / POSTPROCESSING_PICKLE).is_file()


def _postprocessing_sources(
    models: list[CheckedModel], dataset_dir: Path
) -> list[tuple[Path, str, CheckedModel]]:
    """(nnU-Net folder, our folder relative to the model folder, the model whose labels apply)."""
    sources = [
        (folder, f"{model.configuration}/{folder.name}", model)
        for model in models
        for folder in sorted(model.found.folder.glob(f"{CROSSVAL_PREFIX}*"))
        if _has_postprocessing(folder)
    ]
    configurations = configurations_by_model(models)
    by_configuration = {m.configuration: m for m in models}
    ensembles = dataset_dir / ENSEMBLES_DIR
    for folder in sorted(ensembles.iterdir()) if ensembles.is_dir() else []:
        parsed = parse_ensemble_folder_name(folder.name)
        if parsed is None or not _has_postprocessing(folder):
            continue
        if all(member in configurations for member in parsed[0]):
            names = [configurations[member] for member in parsed[0]]
            target = f"{OUR_ENSEMBLES_DIR}/{our_ensemble_name(names)}"
            sources.append((folder, target, by_configuration[names[0]]))
    return sources


def import_postprocessing(
    models: list[CheckedModel], dataset_dir: Path, staging: Path
) -> tuple[list[str], list[str], list[str]]:
    """Write our postprocessing.json for each source; (files written, problems, notes)."""
    written: list[str] = []
    problems: list[str] = []
    notes: list[str] = []
    for folder, target, model in _postprocessing_sources(models, dataset_dir):
        if target in (Path(w).parent.as_posix() for w in written):
            notes.append(f"{folder.name}: skipped, {target} was already imported from other folds")
            continue
        try:
            choice = read_nnunet_postprocessing(folder, model.spec.foreground_labels, folder.name)
        except ProblemsError as error:
            problems += error.problems
            continue
        write_json_atomically(staging / target / POSTPROCESSING_FILE, choice.to_our_json())
        if (folder / SUMMARY_FILE).is_file():
            shutil.copyfile(folder / SUMMARY_FILE, staging / target / SUMMARY_FILE)
        written.append(f"{target}/{POSTPROCESSING_FILE}")
    return written, problems, notes


def import_selection(models: list[CheckedModel], dataset_dir: Path, staging: Path) -> tuple[bool, str | None]:
    """Write selection.json from the dataset's inference_information.json; (written, why not)."""
    path = dataset_dir / INFERENCE_INFORMATION
    if not path.is_file():
        return False, None
    try:
        selection = selection_from_information(
            read_json(path, ProblemsError, INFERENCE_INFORMATION), configurations_by_model(models)
        )
    except ProblemsError as error:
        return False, f"{INFERENCE_INFORMATION} not imported: {'; '.join(error.problems)}"
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        reason = f"lacks {error}" if isinstance(error, KeyError) else str(error)
        return False, f"{INFERENCE_INFORMATION} not imported: {reason}"
    if not (staging / selection.postprocessing_file).is_file():
        return False, (
            f"{INFERENCE_INFORMATION} not imported: the postprocessing of its choice ({selection.best}) "
            "is not part of the import"
        )
    save_selection(selection, staging / SELECTION_FILE)
    return True, None
