"""Import job: an uploaded nnU-Net v2 results folder or export zip becomes a registered model.

core.interop converts it into core's model folder layout at `service.paths.model_dir(model_id)`
(it writes beside that place and renames the folder in, so a failed import leaves nothing behind).
The model's id is the import job's id: a retried job finds the folder its previous attempt wrote
and registers it, instead of importing a second copy.
"""

from __future__ import annotations

from typing import Any

from core.interop import import_nnunet_model
from core.selection import SELECTION_FILE, load_selection
from service.paths import model_dir
from worker.context import JobContext, JobInputError
from worker.registry import model_result, register_model


def run(context: JobContext) -> dict[str, Any]:
    model_id = context.job_id
    destination = model_dir(context.settings, model_id)
    if not destination.is_dir():
        archive = context.path(context.param("archive_path"))
        if not archive.exists():
            raise JobInputError(f"{context.param('archive_path')}: the uploaded model is gone")
        import_nnunet_model(archive, destination, progress=context.progress)
    selection_path = destination / SELECTION_FILE
    model = register_model(
        context.settings,
        name=context.param("model_name"),
        path=context.stored(destination),
        job_id=context.job_id,
        dataset_id=None,
        source="imported",
        model_dir=destination,
        selection=load_selection(selection_path) if selection_path.is_file() else None,
        model_id=model_id,
    )
    return model_result(model)
