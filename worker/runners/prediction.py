"""Predict job: the posted case(s) in `input/` segmented into `output/`, with the input's geometry.

The result is written to a hidden staging folder and renamed to `output/` when complete, so the API
never serves a half-written segmentation, and a retried job starts from a clean folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from service.db.models import Model, Prediction
from worker.context import JobContext, JobInputError
from worker.predicting import predict_cached, prediction_options

INPUT, OUTPUT = "input", "output"


def replace_folder(staging: Path, final: Path) -> None:
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)


def run(context: JobContext) -> dict[str, Any]:
    prediction_id = context.param("prediction_id")
    with context.session() as session:
        prediction = session.get(Prediction, prediction_id)
        model = None if prediction is None else session.get(Model, prediction.model_id)
        if prediction is None or model is None:
            raise JobInputError(f"prediction {prediction_id} or its model no longer exists")
        folder, model_dir = context.path(prediction.path), context.path(model.path)
        options = prediction_options(prediction.options, context.settings.worker_device)
        model_id = model.id
    staging = folder / f".{OUTPUT}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    written = predict_cached(model_id, model_dir, folder / INPUT, staging, options, context.progress)
    replace_folder(staging, folder / OUTPUT)
    segmentations = [folder / OUTPUT / path.name for path in written]
    artifacts = {"segmentation": segmentations[0]} if len(segmentations) == 1 else {}
    probabilities = sorted((folder / OUTPUT).glob("*.npz"))
    if len(probabilities) == 1:
        artifacts["probabilities"] = probabilities[0]
    return {
        "prediction_id": prediction_id,
        "model_id": model_id,
        "segmentations": [context.stored(path) for path in segmentations],
        "artifacts": {name: context.stored(path) for name, path in artifacts.items()},
    }
