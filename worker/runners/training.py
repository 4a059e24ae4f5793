"""Training jobs: the parent `train` job and its `train_fold` children.

The parent checks the request once (configurations, folds, options), writes what it resolved into
its params (`resolved`) and creates its first children (`worker.trainings.advance_training`); then it
stays `running` without a process of its own. Each child that ends advances it again: cascade folds
once the previous stage's folds all succeeded, the `select` child once every fold succeeded, the
parent's own end once `select` ended. Nobody ever waits on another task.

A `train_fold` child trains with `is_resume=True`: a retried attempt (its worker was killed, the
reconciler sent the job again) continues from the fold's latest checkpoint, epoch count included,
and one that finished training but not validation goes straight to validation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from core.constants import SPLITS_NUM_FOLDS, TRAINING_VALIDATION_ITERATIONS
from core.plans import load_plans
from core.training.checkpoints import resumable_checkpoint
from core.training.options import TrainingOptions, TrainingOptionsError
from core.training.trainer import fold_folder_name, train_fold
from core.training.validation import validate_fold
from service.db.models import Job, Plan
from service.paths import plan_dir
from worker.context import JobContext, JobInputError
from worker.progress import json_safe
from worker.trainings import advance_training

logger = logging.getLogger(__name__)


def preprocessed_dir(context: JobContext, dataset_id: str, plan_id: str) -> Path:
    with context.session() as session:
        plan = session.get(Plan, plan_id)
        if plan is None or plan.dataset_id != dataset_id:
            raise JobInputError(f"plan {plan_id} of dataset {dataset_id} not found")
        folder = context.path(plan.path) if plan.path else plan_dir(context.settings, dataset_id, plan_id)
    if not (folder / "plans.json").is_file():
        raise JobInputError(f"plan {plan_id} has no plans.json yet; wait for its planning job to succeed")
    return folder


def training_options(context: JobContext, params: dict[str, Any]) -> TrainingOptions:
    return TrainingOptions(
        epochs=int(params["epochs"]),
        iterations_per_epoch=int(params["iterations_per_epoch"]),
        validation_iterations=int(params.get("validation_iterations") or TRAINING_VALIDATION_ITERATIONS),
        seed=int(params.get("seed", 0)),
        device=context.settings.worker_device,
    )


def resolve_request(context: JobContext, folder: Path) -> dict[str, Any]:
    """The configurations, folds and stage order of a training request; every problem at once.

    "auto" means every planned configuration whose preprocessed data exists, i.e. every one that
    can be trained; "all" folds means the five cross-validation folds (core's fold "all", training
    on every case, is asked for by listing "all").
    """
    plans = load_plans(folder / "plans.json")
    requested = context.param("configurations")
    folds = context.param("folds")
    problems: list[str] = []
    if requested == "auto":
        configurations = [
            name for name, plan in plans.configurations.items() if (folder / plan.data_identifier).is_dir()
        ]
        if not configurations:
            problems.append("no planned configuration has preprocessed data; run the plan job first")
    else:
        configurations = list(requested)
        for name in configurations:
            if name not in plans.configurations:
                problems.append(
                    f"configuration {name!r} is not in the plans: {', '.join(plans.configurations)}"
                )
            elif not (folder / plans.configurations[name].data_identifier).is_dir():
                problems.append(f"configuration {name!r} was not preprocessed; plan it first")
    previous = {
        name: plans.configurations[name].previous_stage
        for name in configurations
        if name in plans.configurations
    }
    problems += [
        f"{name} trains on {stage}'s predictions; train {stage} in the same training"
        for name, stage in previous.items()
        if stage is not None and stage not in configurations
    ]
    if folds == "all":
        folds = list(range(SPLITS_NUM_FOLDS))
    problems += [
        f"fold {fold!r} is neither a fold number nor 'all'"
        for fold in folds
        if fold != "all" and not (isinstance(fold, int) and fold >= 0)
    ]
    if not folds:
        problems.append("no folds to train")
    try:
        training_options(context, context.params)
    except TrainingOptionsError as error:
        problems += error.problems
    except (KeyError, TypeError, ValueError) as error:
        problems.append(f"epochs and iterations_per_epoch must be whole numbers ({error!r})")
    if problems:
        raise JobInputError(problems, hint="change the training request and start it again")
    return {"configurations": configurations, "folds": folds, "previous_stage": previous}


def run_parent(context: JobContext) -> None:
    """Resolve the request, create the first children, and leave the parent running (see module)."""
    folder = preprocessed_dir(context, context.param("dataset_id"), context.param("plan_id"))
    resolved = resolve_request(context, folder)
    with context.session() as session:
        job = session.get(Job, context.job_id)
        job.params = {**job.params, "resolved": resolved}
    advance_training(context.settings, context.celery, context.job_id)


def run_fold(context: JobContext) -> dict[str, Any]:
    params = context.params
    folder = preprocessed_dir(context, context.param("dataset_id"), context.param("plan_id"))
    configuration, fold = context.param("configuration"), context.param("fold")
    model_dir = context.path(context.param("output_dir"))
    options = training_options(context, params)
    fold_dir = model_dir / configuration / fold_folder_name(fold)
    checkpoint = resumable_checkpoint(fold_dir)
    if checkpoint is not None:
        logger.info("resuming %s fold %s from %s", configuration, fold, checkpoint.name)
    trained = train_fold(
        folder,
        configuration,
        fold,
        model_dir,
        options,
        is_resume=True,
        progress=context.progress,
        should_stop=context.should_stop,
    )
    logger.info("trained %d epoch(s); validating the fold's held-out cases", trained.epochs_run)
    summary = validate_fold(
        folder, model_dir, configuration, fold, device=options.device, progress=context.progress
    )
    artifacts = {
        "progress.png": fold_dir / "progress.png",
        "summary.json": fold_dir / "validation" / "summary.json",
    }
    return {
        "configuration": configuration,
        "fold": fold,
        "epochs_run": trained.epochs_run,
        "final_ema_dice": json_safe(trained.final_ema_dice),
        "best_ema_dice": json_safe(trained.best_ema_dice),
        "validation_dice": json_safe(summary.foreground_mean_dice),
        "artifacts": {name: context.stored(path) for name, path in artifacts.items() if path.is_file()},
    }
