"""One runner per job kind: `run(context) -> result`, each calling one core front door.

A runner returns the job's result JSON, or None when the job goes on in its children (a training
parent). It raises a `core.errors.ProblemsError` for anything the user must change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.db.models import JobKind
from worker.context import JobContext
from worker.runners import evaluation, import_model, plan, prediction, selection, training

Runner = Callable[[JobContext], dict[str, Any] | None]

RUNNERS: dict[JobKind, Runner] = {
    JobKind.plan: plan.run,
    JobKind.train: training.run_parent,
    JobKind.train_fold: training.run_fold,
    JobKind.select: selection.run,
    JobKind.predict: prediction.run,
    JobKind.evaluate: evaluation.run,
    JobKind.import_model: import_model.run,
}
