"""Import a trained nnU-Net v2 model, its results folder or its export zip, as one of our model folders.

`import_nnunet_model(source, destination)` is the front door for the CLI and the service. It writes

    MODEL_DIR/<configuration>/plans.json, dataset.json, dataset_fingerprint.json   (as they came)
    MODEL_DIR/<configuration>/fold_K/checkpoint_final.pth                          (weights-only, plain data)
    MODEL_DIR/<configuration>/crossval_results_folds_.../postprocessing.json       (when present)
    MODEL_DIR/ensembles/<a>__<b>/postprocessing.json                               (when present)
    MODEL_DIR/selection.json                       (from inference_information.json, when it fits)
    MODEL_DIR/import.json                          (what was imported from where: `ImportedModel`)

The chosen checkpoint (`checkpoint_final.pth` unless asked otherwise) is stored as our
`checkpoint_final.pth`, the one our predictor uses; `import.json` records which it was. Checkpoints keep
nnU-Net's keys and trainer name, numpy scalars become Python numbers (core.interop.checkpoints).

Everything is checked first and every problem reported at once: the trainer and architecture classes,
plans, dataset.json, every fold's checkpoint (loaded weights-only, its state dict against our network
for the plans), postprocessing files. The model is assembled in a temporary folder beside the
destination and renamed into place only when all is clean, so a refused import leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath

from core.errors import ProblemsError
from core.files import write_json_atomically
from core.interop.archive import DEFAULT_MAX_UNPACKED_BYTES, is_zip, unpack_zip
from core.interop.checkpoints import CheckpointRefused, load_foreign_checkpoint
from core.interop.discovery import choose_models, find_model_folders
from core.interop.imported_extras import import_postprocessing, import_selection
from core.interop.layout import (
    DATASET_FILE,
    FINGERPRINT_FILE,
    IMPORT_RECORD,
    INFERENCE_INFORMATION,
    PLANS_FILE,
    POSTPROCESSING_JSON,
    POSTPROCESSING_PICKLE,
    SUMMARY_FILE,
)
from core.interop.model_check import CheckedModel, check_model_folder, checkpoint_problems
from core.parallel import ProgressCallback, no_progress
from core.training.checkpoints import FINAL, save_checkpoint

logger = logging.getLogger(__name__)

_SMALL_FILES = {
    PLANS_FILE,
    DATASET_FILE,
    FINGERPRINT_FILE,
    POSTPROCESSING_JSON,
    POSTPROCESSING_PICKLE,
    SUMMARY_FILE,
    INFERENCE_INFORMATION,
}


class ModelImportError(ProblemsError):
    """The source is not an importable nnU-Net v2 model; `problems` names every reason."""

    hint = "fix what is named above (nothing was written), or import only the models that are fine"


@dataclass(frozen=True)
class ImportOptions:
    """Which checkpoint and which of several trained models to import (default: all, final weights)."""

    checkpoint: str = FINAL
    trainer: str | None = None
    plans: str | None = None
    configurations: tuple[str, ...] | None = None
    folds: tuple[str, ...] | None = None
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES


@dataclass(frozen=True)
class ImportedConfiguration:
    configuration: str
    trainer: str
    plans: str
    network_class_name: str
    folds: tuple[str, ...]


@dataclass(frozen=True)
class ImportedModel:
    """What an import wrote; `to_json` is `import.json`."""

    model_dir: Path
    source: str
    dataset_name: str
    checkpoint: str
    configurations: tuple[ImportedConfiguration, ...]
    postprocessing_files: tuple[str, ...] = ()
    has_selection: bool = False
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict:
        document = asdict(self)
        document.pop("model_dir")
        return document


def _cascade_problems(models: list[CheckedModel]) -> list[str]:
    by_configuration = {m.configuration: m for m in models}
    problems = []
    for model in models:
        previous = model.plans.configuration(model.configuration).previous_stage
        if previous is None:
            continue
        stage = by_configuration.get(previous)
        if stage is None:
            problems.append(
                f"{model.found.folder.name}: a cascade needs its previous stage {previous}, "
                "which is not part of this import"
            )
            continue
        missing = sorted({f for f, _ in model.fold_checkpoints} - {f for f, _ in stage.fold_checkpoints})
        if missing:
            problems.append(
                f"{model.found.folder.name}: folds {missing} have no {previous} stage to run first"
            )
    return problems


def _copy_model_files(model: CheckedModel, target: Path) -> None:
    target.mkdir(parents=True)
    for name in (PLANS_FILE, DATASET_FILE, FINGERPRINT_FILE):
        if (model.found.folder / name).is_file():
            shutil.copyfile(model.found.folder / name, target / name)


def _import_checkpoints(models: list[CheckedModel], staging: Path, progress: ProgressCallback) -> list[str]:
    """Load, check and write every fold checkpoint; the problems of all of them."""
    problems: list[str] = []
    total = sum(len(m.fold_checkpoints) for m in models)
    done = 0
    for model in models:
        _copy_model_files(model, staging / model.configuration)
        for fold, path in model.fold_checkpoints:
            where = f"{model.found.folder.name}/fold_{fold}/{path.name}"
            try:
                document = load_foreign_checkpoint(path, where)
                found = checkpoint_problems(document, model, where)
            except CheckpointRefused as error:
                document, found = None, error.problems
            problems += found
            if not problems:
                save_checkpoint(staging / model.configuration / f"fold_{fold}" / FINAL, document)
            del document
            done += 1
            progress(done / total, "import", f"{model.configuration} fold {fold}")
    return problems


def _imported_tree(
    root: Path, staging: Path, source: str, options: ImportOptions, progress: ProgressCallback
) -> ImportedModel:
    found = find_model_folders(root)
    if not found:
        raise ModelImportError(
            f"{source}: not an nnU-Net v2 results folder or model export: no "
            "<Trainer>__<Plans>__<configuration> folder with a plans.json in it or two levels below"
        )
    chosen, problems = choose_models(found, options.trainer, options.plans, options.configurations)
    checked = []
    for model in chosen:
        result, model_problems = check_model_folder(model, options.checkpoint, options.folds)
        problems += model_problems
        checked += [result] if result is not None else []
    problems += _cascade_problems(checked)
    if problems:
        raise ModelImportError(problems)
    problems = _import_checkpoints(checked, staging, progress)
    dataset_dir = checked[0].found.folder.parent
    postprocessing, pp_problems, notes = import_postprocessing(checked, dataset_dir, staging)
    if problems or pp_problems:
        raise ModelImportError(problems + pp_problems)
    has_selection, selection_note = import_selection(checked, dataset_dir, staging)
    imported = ImportedModel(
        model_dir=staging,
        source=source,
        dataset_name=checked[0].plans.dataset_name,
        checkpoint=options.checkpoint,
        configurations=tuple(
            ImportedConfiguration(
                m.configuration,
                m.found.model_id.trainer,
                m.found.model_id.plans,
                m.plans.configuration(m.configuration).architecture.network_class_name,
                tuple(f for f, _ in m.fold_checkpoints),
            )
            for m in checked
        ),
        postprocessing_files=tuple(postprocessing),
        has_selection=has_selection,
        notes=tuple(notes + ([selection_note] if selection_note else [])),
    )
    write_json_atomically(staging / IMPORT_RECORD, imported.to_json())
    return imported


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            return candidate
    return Path.cwd()


def _wanted_member(checkpoint: str) -> Callable[[PurePosixPath], bool]:
    def is_wanted(name: PurePosixPath) -> bool:
        return name.name in _SMALL_FILES or name.name == checkpoint

    return is_wanted


def import_nnunet_model(
    source: Path,
    destination: Path,
    progress: ProgressCallback | None = None,
    options: ImportOptions | None = None,
) -> ImportedModel:
    """Import the nnU-Net v2 model at `source` (results folder, model folder or export zip) as our model
    folder `destination`, which must not exist yet (or be empty); see the module docstring."""
    source, destination = Path(source), Path(destination).absolute()
    options = options or ImportOptions()
    progress = progress or no_progress
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise ModelImportError(f"{destination}: already exists; import into a new folder")
    if not source.is_dir() and not is_zip(source):
        raise ModelImportError(f"{source}: not an nnU-Net v2 results folder or model export zip")
    with tempfile.TemporaryDirectory(
        dir=_existing_ancestor(destination.parent), prefix=f".{destination.name}.import-"
    ) as work:
        root = source
        if not source.is_dir():
            root = Path(work) / "unpacked"
            progress(0.0, "unpack", source.name)
            unpack_zip(source, root, _wanted_member(options.checkpoint), options.max_unpacked_bytes)
        staging = Path(work) / "model"
        imported = _imported_tree(root, staging, source.name, options, progress)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, destination)
    logger.info("imported %s into %s", source, destination)
    return replace(imported, model_dir=destination)
