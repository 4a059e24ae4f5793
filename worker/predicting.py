"""Prediction inside a worker: loaded predictors kept between jobs, and what to do when memory runs out.

Loading a model (building the network, reading every fold's checkpoint) takes seconds to tens of
seconds; a PACS bridge posts case after case for the same model. So each worker process keeps the
last few predictors it used (least recently used out first), keyed by everything fixed at load time:
model, configuration, folds, device, mirroring, step size and precision.

Running out of GPU memory: core's sliding window already redoes a case with its accumulators on
the host and one window per network call. If that still fails, the worker drops every other cached
predictor, empties torch's cache and tries once more; then the job fails with what to change.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from core.inference.model_prediction import (
    PredictionOptions,
    PredictorLoader,
    predict_with_model,
    predictor_for,
)
from core.inference.predictor import Predictor
from core.parallel import ProgressCallback
from worker.context import JobInputError

logger = logging.getLogger(__name__)

PREDICTORS_KEPT = 2  # each holds a network on the device and every fold's weights on the host
CacheKey = tuple[str, str, tuple[str, ...] | None, str, bool, float, str]
OUT_OF_MEMORY_HINT = (
    "free GPU memory (one worker per GPU, nothing else running on it), predict with a configuration "
    "that has smaller patches (e.g. 3d_lowres or 2d), or predict on a worker with more GPU memory or "
    "on a CPU worker (NNSVC_WORKER_DEVICE=cpu)"
)


class PredictorCache:
    """The least recently used predictors of this process; see the module docstring."""

    def __init__(self, capacity: int = PREDICTORS_KEPT) -> None:
        self.capacity = capacity
        self.entries: OrderedDict[CacheKey, Predictor] = OrderedDict()

    def loader(self, model_id: str) -> PredictorLoader:
        def load(model_dir: Path, configuration: str, options: PredictionOptions) -> Predictor:
            folds = None if options.folds is None else tuple(str(fold) for fold in options.folds)
            key = (
                model_id,
                configuration,
                folds,
                options.device,
                options.use_mirroring,
                options.step_size,
                options.precision,
            )
            predictor = self.entries.get(key)
            if predictor is None:
                predictor = predictor_for(model_dir, configuration, options)
                self.entries[key] = predictor
                while len(self.entries) > self.capacity:
                    self.entries.popitem(last=False)
            self.entries.move_to_end(key)
            predictor.postprocess = None  # predict_with_model sets it when the selection asks for it
            return predictor

        return load

    def keep_only(self, model_id: str) -> None:
        for key in [key for key in self.entries if key[0] != model_id]:
            del self.entries[key]


PREDICTORS = PredictorCache()


def prediction_options(stored: dict[str, Any], device: str) -> PredictionOptions:
    """Options as the API stores them on a Prediction row; "best" or nothing means the selection,
    and `file_ending` is the posted files' (outputs are written with the same one)."""
    configuration = stored.get("configuration")
    folds = stored.get("folds")
    return PredictionOptions(
        configuration=None if configuration in (None, "best") else str(configuration),
        folds=None if folds is None else tuple(folds),
        use_mirroring=bool(stored.get("use_mirroring", True)),
        step_size=float(stored.get("step_size") or 0.5),
        device=device,
        save_probabilities=bool(stored.get("save_probabilities", False)),
        file_ending=stored.get("file_ending"),
    )


def predict_cached(
    model_id: str,
    model_dir: Path,
    in_dir: Path,
    out_dir: Path,
    options: PredictionOptions,
    progress: ProgressCallback,
) -> list[Path]:
    """`predict_with_model` with this process's predictors, and one more try after running out of memory."""
    try:
        return predict_with_model(model_dir, in_dir, out_dir, options, progress, PREDICTORS.loader(model_id))
    except torch.OutOfMemoryError:
        logger.warning("out of memory predicting with model %s; freeing cached models and retrying", model_id)
    PREDICTORS.keep_only(model_id)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        return predict_with_model(model_dir, in_dir, out_dir, options, progress, PREDICTORS.loader(model_id))
    except torch.OutOfMemoryError as error:
        PREDICTORS.keep_only("")
        raise JobInputError(
            f"the device ran out of memory predicting with this model, even with the accumulators "
            f"on the host and one window per pass ({str(error).splitlines()[0]})",
            hint=OUT_OF_MEMORY_HINT,
        ) from None
