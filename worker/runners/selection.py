"""Select job: cross-validation, postprocessing and best configuration of a training, then a model.

The model folder is the training folder, registered in place (`Model.path` =
`trainings/<train job id>`): moving it would cost a copy across mounts for no gain, would break the
artifact paths (progress.png, summaries) that the fold jobs' results point at, and would make a
repeated select look for a folder that is gone. `service.paths.model_dir(model_id)` holds the
models that did not come from a training here (imports).
"""

from __future__ import annotations

from typing import Any

from core.dataset import load_dataset_json
from core.preprocessed import GT_FOLDER
from core.selection import SELECTION_FILE, find_best_configuration
from service.db.models import Job, JobKind
from service.paths import training_dir
from worker.context import JobContext, JobInputError
from worker.registry import model_result, register_model, selection_metrics


def run(context: JobContext) -> dict[str, Any]:
    train_job_id = context.param("train_job_id")
    with context.session() as session:
        parent = session.get(Job, train_job_id)
        if parent is None or parent.kind != JobKind.train or "resolved" not in parent.params:
            raise JobInputError(f"training job {train_job_id} not found or not started")
        resolved = parent.params["resolved"]
    model_dir = training_dir(context.settings, train_job_id)
    configurations = resolved["configurations"]
    spec = load_dataset_json(model_dir / configurations[0] / "dataset.json")
    # Cross-validation needs numbered folds; a training of fold "all" alone gives a model without it.
    folds = [fold for fold in resolved["folds"] if fold != "all"]
    selection = None
    if folds:
        selection = find_best_configuration(
            model_dir,
            model_dir / GT_FOLDER,
            spec,
            configurations=configurations,
            folds=folds,
            progress=context.progress,
        )
    model = register_model(
        context.settings,
        name=context.param("model_name"),
        path=context.stored(model_dir),
        job_id=train_job_id,
        dataset_id=context.params.get("dataset_id"),
        source="trained",
        model_dir=model_dir,
        selection=selection,
    )
    result = {**model_result(model), "metrics": selection_metrics(selection)}
    if selection is not None:
        result["best"] = selection.best
        result["selected_configurations"] = list(selection.selected_configurations)
        result["artifacts"][SELECTION_FILE] = context.stored(model_dir / SELECTION_FILE)
    return result
