"""One delivered job, start to end: claim it, run its runner, record how it ended.

How an end is recorded:
- the runner returned a result: `succeeded` with it;
- the job's `should_stop` fired: `cancelled` (the API asked), `failed` (past its time limit), or
  nothing at all when the job is no longer this attempt's (another worker owns it now);
- a `core.errors.ProblemsError` (or a data-loading process that died): `failed`, with every problem
  and a hint of what to change; not retried, as the same input would fail the same way;
- the database connection failed: the job goes back to `queued` and the task is retried (the caller
  sends it again); when even that write fails, the reconciler finds the silent job later;
- the worker is shutting down (SIGTERM): the job goes back to `queued`, its attempt not counted, and
  is sent again; a training resumes from its latest checkpoint on whichever worker takes it;
- anything else is a bug or a fault of the machine: `failed`, with the traceback in the job's log.
After a child job ends, its training parent is advanced.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from celery import Celery

from core.errors import ProblemsError
from core.parallel import WorkerDiedError
from core.process_memory import release_freed_memory
from service.db.models import JobKind, JobStatus
from service.settings import Settings
from worker.context import JobContext
from worker.lifecycle import TRANSIENT_DB_ERRORS, error_document, finish_job, give_back, with_db_retries
from worker.progress import Claim, JobReporter, StopReason, job_log, json_safe
from worker.runners import RUNNERS
from worker.trainings import advance_training

logger = logging.getLogger(__name__)

HINTS: dict[JobKind, str] = {
    JobKind.plan: "fix the dataset as listed, or change the planning options, and plan again",
    JobKind.train: "change the training request as listed and start it again",
    JobKind.train_fold: "change the plans or training options named above and start the training again",
    JobKind.select: "every fold must have trained and validated; train the training's folds again",
    JobKind.predict: "check the posted channel files (number, format, geometry) and the prediction options",
    JobKind.evaluate: "check the evaluation's files, labels and thresholds",
    JobKind.import_model: "upload an nnU-Net v2 results folder (plans, dataset.json, checkpoints) archived",
}
INTERNAL_HINT = (
    "this is a bug or a fault of the machine, not of your input; the traceback is in the job's log. "
    "Start the job again, and report it if it fails the same way"
)
TIME_LIMIT_HINT = (
    "give the job less work (fewer epochs or cases) or raise NNSVC_JOB_TIME_LIMITS_S for its kind"
)
TRAINING_MEMORY_HINT = (
    "plan for less GPU memory (a smaller gpu_memory_gb gives smaller patches and batches), or train on "
    "a GPU with more memory"
)


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended; `status` None leaves the row alone (children go on, or not ours)."""

    status: JobStatus | None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    is_transient: bool = False  # given back to the queue, to be sent again
    is_refunded: bool = False  # ... without counting the attempt (not the job's fault)


def run_claimed(settings: Settings, celery: Celery, claim: Claim, worker: str) -> Outcome:
    """Run a claimed job and record its end; a transient outcome asks the caller to send it again."""
    with job_log(settings, claim, worker):
        with JobReporter(settings, claim) as reporter:
            context = JobContext(settings, celery, claim, reporter, reporter.should_stop)
            try:
                result = RUNNERS[claim.kind](context)
            except Exception as error:
                outcome = failure(claim, reporter, error)
            else:
                outcome = success(reporter, result)
        record(settings, celery, claim, outcome, reporter.progress)
    release_freed_memory()  # a finished job's freed memory goes back to the system
    return outcome


def success(reporter: JobReporter, result: dict[str, Any] | None) -> Outcome:
    if reporter.stop_reason == StopReason.lost:
        return Outcome(None)
    if result is None:
        logger.info("the job goes on in its child jobs")
        return Outcome(None)
    return Outcome(JobStatus.succeeded, result=json_safe(result))


def failure(claim: Claim, reporter: JobReporter, error: Exception) -> Outcome:
    reason = reporter.stop_reason
    if reason == StopReason.lost:
        logger.warning("stopped: the job was taken over (%s)", error)
        return Outcome(None)
    if reason == StopReason.cancelled:
        logger.info("cancelled as asked")
        return Outcome(JobStatus.cancelled)
    if reason == StopReason.shutdown:
        logger.info("the worker is shutting down; the job goes back to the queue")
        return Outcome(None, is_transient=True, is_refunded=True)
    if reason == StopReason.time_limit:
        message = f"the job ran longer than its time limit of {reporter.time_limit_s} s and was stopped"
        return Outcome(JobStatus.failed, error=error_document(message, hint=TIME_LIMIT_HINT))
    if isinstance(error, TRANSIENT_DB_ERRORS):
        logger.warning("database unavailable (%s); the job is given back to the queue", error)
        return Outcome(None, is_transient=True)
    if isinstance(error, ProblemsError | WorkerDiedError):
        problems = getattr(error, "problems", None) or [str(error)]
        message = problems[0] if len(problems) == 1 else f"{len(problems)} problems"
        hint = getattr(error, "hint", "") or HINTS[claim.kind]
        return Outcome(JobStatus.failed, error=error_document(message, problems, hint))
    if isinstance(error, torch.OutOfMemoryError):
        message = f"out of memory: {str(error).splitlines()[0]}"
        return Outcome(JobStatus.failed, error=error_document(message, hint=TRAINING_MEMORY_HINT))
    logger.exception("internal error")
    message = f"internal error: {type(error).__name__}: {error}"
    return Outcome(JobStatus.failed, error=error_document(message, hint=INTERNAL_HINT))


def record(
    settings: Settings, celery: Celery, claim: Claim, outcome: Outcome, progress: dict[str, Any]
) -> None:
    if outcome.is_transient:
        progress = {**progress, "stage": "queued", "eta_s": None}
        with_db_retries(lambda: give_back(settings, claim, progress, outcome.is_refunded))
        return
    if outcome.status is None:
        return
    if outcome.error is not None:
        logger.error("failed: %s", "; ".join(outcome.error["problems"]))
    final = {**progress, "stage": outcome.status.value, "eta_s": None}
    if outcome.status == JobStatus.succeeded:
        final["fraction"] = 1.0
    if not finish_job(settings, claim, outcome.status, final, outcome.result, outcome.error):
        logger.warning("the job was taken over before its end could be recorded")
        return
    logger.info("job %s", outcome.status.value)
    if claim.parent_id is not None:
        try:
            advance_training(settings, celery, claim.parent_id)
        except TRANSIENT_DB_ERRORS as error:  # the reconciler advances every running parent, too
            logger.warning("could not advance the training %s: %s", claim.parent_id, error)
