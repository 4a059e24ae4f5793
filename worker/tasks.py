"""The Celery tasks: one per job kind, named `service.queue.task_name(kind)`, each taking a job id.

They are adapters only (celery docs, testing.rst): claim the job, hand it to `worker.execution`, and
turn a transient database fault into a Celery retry. The retry re-sends the same task; the claim
accepts it because the job was put back to `queued` (or was never claimed).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from celery import Celery, Task

from service.db.models import JobKind
from service.queue import task_name
from service.settings import Settings
from worker.execution import run_claimed
from worker.lifecycle import TRANSIENT_DB_ERRORS, claim_job

MAX_RETRIES = 8
RETRY_WAIT_MAX_S = 60


def retry_wait_s(retries: int) -> int:
    return min(RETRY_WAIT_MAX_S, 2**retries)


def worker_name(task: Task) -> str:
    return f"{task.request.hostname or 'worker'} pid {os.getpid()}"


def register_tasks(app: Celery, settings: Settings) -> None:
    """Register one task per job kind on `app`; each runs with `settings`."""
    for kind in JobKind:
        app.task(name=task_name(kind), bind=True, max_retries=MAX_RETRIES)(job_task(settings, kind))


def job_task(settings: Settings, kind: JobKind) -> Callable[[Task, str], None]:
    def run(task: Task, job_id: str) -> None:
        try:
            claim = claim_job(settings, job_id, worker_name(task), task.request.id)
        except TRANSIENT_DB_ERRORS as error:
            raise task.retry(exc=error, countdown=retry_wait_s(task.request.retries)) from error
        if claim is None:
            return
        outcome = run_claimed(settings, task.app, claim, worker_name(task))
        if outcome.is_transient:
            raise task.retry(countdown=retry_wait_s(task.request.retries))

    run.__name__ = f"run_{kind.value}"
    return run
