"""Export one of our model folders in nnU-Net v2's results layout, as a folder tree or its export zip.

    OUT/<dataset_name>/<Trainer>__<plans_name>__<configuration>/
        plans.json  dataset.json  [dataset_fingerprint.json]
        fold_K/checkpoint_final.pth  [progress.png  validation/summary.json]
        [crossval_results_folds_.../postprocessing.pkl, postprocessing.json, summary.json]
    OUT/<dataset_name>/[ensembles/ensemble___A___B___folds/postprocessing.pkl ...]
    OUT/<dataset_name>/[inference_information.json]

so that `nnUNetPredictor.initialize_from_trained_model_folder` and nnU-Net's postprocessing tools work
on it, and `nnUNetv2_install_pretrained_model_from_zip` installs the zip. nnU-Net builds the network
through the trainer class its checkpoint names, so our `nnsvcTrainer` checkpoints are written naming
`nnUNetTrainer`, whose network is the plans' network; a model imported from nnU-Net keeps its trainer.
The rest of each checkpoint is unchanged (our `options` stay in it; nnU-Net ignores them).

Everything is written into a temporary folder and moved into place only when complete; an existing
model folder is never overwritten.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from core.errors import ProblemsError
from core.files import read_json, write_json_atomically
from core.interop.inference_information import information_from_selection, nnunet_postprocessing_folder
from core.interop.layout import (
    CROSSVAL_PREFIX,
    DATASET_FILE,
    DEFAULT_TRAINER,
    FINGERPRINT_FILE,
    INFERENCE_INFORMATION,
    PLANS_FILE,
    POSTPROCESSING_JSON,
    POSTPROCESSING_PICKLE,
    SUMMARY_FILE,
    ModelId,
    nnunet_dataset_name,
)
from core.interop.postprocessing import nnunet_postprocessing_json, nnunet_postprocessing_pickle
from core.parallel import ProgressCallback, no_progress
from core.plans import load_plans
from core.postprocessing import POSTPROCESSING_FILE, PostprocessingError, load_postprocessing
from core.selection import DEFAULT_FOLDS, ENSEMBLE_SEPARATOR, ENSEMBLES_DIR, SELECTION_FILE, load_selection
from core.training.checkpoints import FINAL, TRAINER_NAME, load_checkpoint, save_checkpoint

FOLD_EXTRAS = ("progress.png", "validation/summary.json")


class ModelExportError(ProblemsError):
    """The model folder cannot be exported as asked."""

    hint = "fix what is named above; nothing was written"


@dataclass(frozen=True)
class ExportedModel:
    """Where the export went: the zip file, or the dataset folder inside OUT; the model folders' names."""

    path: Path
    dataset_name: str
    model_folders: tuple[str, ...]
    notes: tuple[str, ...] = ()


def _configurations(model_dir: Path, configurations: tuple[str, ...] | None) -> list[str]:
    trained = sorted(p.parent.name for p in model_dir.glob(f"*/{PLANS_FILE}") if any(p.parent.glob("fold_*")))
    if not trained:
        raise ModelExportError(
            f"{model_dir}: no trained configuration (no <configuration>/plans.json with folds)"
        )
    if configurations is None:
        return trained
    missing = sorted(set(configurations) - set(trained))
    if missing:
        raise ModelExportError(
            f"{model_dir}: configuration(s) {', '.join(missing)} not trained; trained: {trained}"
        )
    return list(configurations)


def _export_checkpoint(source: Path, target: Path) -> str:
    """Copy a checkpoint naming a trainer nnU-Net v2 has; the trainer name written."""
    document = load_checkpoint(source)
    if document.get("trainer_name") in (None, TRAINER_NAME):
        document["trainer_name"] = DEFAULT_TRAINER
    save_checkpoint(target, document)
    return str(document["trainer_name"])


def _export_configuration(
    model_dir: Path, configuration: str, staging: Path, progress: ProgressCallback
) -> ModelId:
    source = model_dir / configuration
    plans = load_plans(source / PLANS_FILE)
    work = staging / f".{configuration}"
    trainers = set()
    fold_dirs = sorted(p for p in source.glob("fold_*") if (p / FINAL).is_file())
    if not fold_dirs:
        raise ModelExportError(f"{source}: no fold_K/{FINAL} to export")
    for index, fold_dir in enumerate(fold_dirs):
        trainers.add(_export_checkpoint(fold_dir / FINAL, work / fold_dir.name / FINAL))
        for extra in FOLD_EXTRAS:
            if (fold_dir / extra).is_file():
                (work / fold_dir.name / extra).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(fold_dir / extra, work / fold_dir.name / extra)
        progress((index + 1) / len(fold_dirs), "export", f"{configuration} {fold_dir.name}")
    if len(trainers) != 1:
        raise ModelExportError(f"{source}: folds name different trainers ({', '.join(sorted(trainers))})")
    for name in (PLANS_FILE, DATASET_FILE, FINGERPRINT_FILE):
        if (source / name).is_file():
            shutil.copyfile(source / name, work / name)
    model_id = ModelId(trainers.pop(), plans.plans_name, configuration)
    work.rename(staging / model_id.name)
    return model_id


def _write_postprocessing(source_dir: Path, target_dir: Path) -> None:
    """Our postprocessing.json → nnU-Net's postprocessing.pkl and postprocessing.json (+ summary.json)."""
    try:
        steps = load_postprocessing(source_dir / POSTPROCESSING_FILE)
    except PostprocessingError as error:
        raise ModelExportError(error.problems) from None
    metrics = read_json(source_dir / POSTPROCESSING_FILE, ModelExportError, "postprocessing file")
    target_dir.mkdir(parents=True, exist_ok=True)
    (target_dir / POSTPROCESSING_PICKLE).write_bytes(nnunet_postprocessing_pickle(steps))
    (target_dir / POSTPROCESSING_JSON).write_text(nnunet_postprocessing_json(steps, metrics))
    if (source_dir / SUMMARY_FILE).is_file():
        shutil.copyfile(source_dir / SUMMARY_FILE, target_dir / SUMMARY_FILE)


def _export_postprocessing(model_dir: Path, models: dict[str, ModelId], staging: Path) -> None:
    for configuration, model_id in models.items():
        for folder in sorted((model_dir / configuration).glob(f"{CROSSVAL_PREFIX}*")):
            if (folder / POSTPROCESSING_FILE).is_file():
                _write_postprocessing(folder, staging / model_id.name / folder.name)
    for folder in sorted((model_dir / ENSEMBLES_DIR).glob("*")):
        members = folder.name.split(ENSEMBLE_SEPARATOR)
        if (folder / POSTPROCESSING_FILE).is_file() and all(m in models for m in members):
            selection_path = model_dir / SELECTION_FILE
            folds = load_selection(selection_path).folds if selection_path.is_file() else DEFAULT_FOLDS
            target = nnunet_postprocessing_folder(tuple(models[m] for m in members), folds)
            _write_postprocessing(folder, staging / target)


def _export_selection(
    model_dir: Path, models: dict[str, ModelId], staging: Path, dataset_name: str
) -> str | None:
    """Write inference_information.json; a note when the selection names configurations not exported."""
    path = model_dir / SELECTION_FILE
    if not path.is_file():
        return None
    selection = load_selection(path)
    needed = {*selection.considered_configurations, *selection.selected_configurations}
    needed |= {name for key in selection.all_results for name in key.split(ENSEMBLE_SEPARATOR)}
    if not needed <= set(models):
        absent = ", ".join(sorted(needed - set(models)))
        return f"{SELECTION_FILE} not exported: it names configurations not exported ({absent})"
    information = information_from_selection(selection, models, dataset_name)
    write_json_atomically(staging / INFERENCE_INFORMATION, information)
    return None


def _zip_folder(folder: Path, target: Path) -> None:
    """Zip `folder` so that member paths start with its name, as nnU-Net's export does."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder.parent).as_posix())


def export_nnunet_model(
    model_dir: Path,
    out: Path,
    as_zip: bool = False,
    configurations: tuple[str, ...] | None = None,
    dataset_name: str | None = None,
    progress: ProgressCallback | None = None,
) -> ExportedModel:
    """Export `model_dir` into the results folder `out` (or the zip file `out`); see the module docstring."""
    model_dir, out = Path(model_dir), Path(out).absolute()
    progress = progress or no_progress
    names = _configurations(model_dir, configurations)
    dataset_name = nnunet_dataset_name(
        dataset_name or load_plans(model_dir / names[0] / PLANS_FILE).dataset_name
    )
    if as_zip and out.exists():
        raise ModelExportError(f"{out}: already exists")
    out_parent = out.parent if as_zip else out
    out_parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_parent, prefix=".nnsvc-export-") as work:
        staging = Path(work) / dataset_name
        staging.mkdir()
        models = {name: _export_configuration(model_dir, name, staging, progress) for name in names}
        _export_postprocessing(model_dir, models, staging)
        note = _export_selection(model_dir, models, staging, dataset_name)
        if as_zip:
            _zip_folder(staging, Path(work) / "export.zip")
            os.replace(Path(work) / "export.zip", out)
            path = out
        else:
            path = out / dataset_name
            entries = sorted(staging.iterdir())
            clashes = [str(path / e.name) for e in entries if (path / e.name).exists()]
            if clashes:
                raise ModelExportError([f"{clash}: already exists; export elsewhere" for clash in clashes])
            path.mkdir(exist_ok=True)
            for entry in entries:
                os.replace(entry, path / entry.name)
    return ExportedModel(path, dataset_name, tuple(m.name for m in models.values()), (note,) if note else ())
