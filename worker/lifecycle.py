"""Job state changes a worker makes: claim, finish, give back. Each is one conditional UPDATE.

A claim moves a job from `queued` (or `running` with a heartbeat older than
`settings.heartbeat_timeout_s`: its worker died) to `running` and counts the attempt; the UPDATE
matches only if the row is still as it was read, so of two deliveries of the same message (a broker
redelivery, a reconciler re-send) exactly one wins and the other returns at once. That, and a
finished job never being claimed again, is what makes every task idempotent by job id.
Later writes match only while the job is still this attempt's (see `progress.owned_by`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, or_, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from service.db.base import utc_now
from service.db.models import Job, JobStatus
from service.db.session import session_scope
from service.settings import Settings
from worker.progress import Claim, owned_by

logger = logging.getLogger(__name__)

# Faults of the database connection (server restarting, network): worth trying again; anything else
# the database says (a constraint, a bad query) is not.
TRANSIENT_DB_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
Result = TypeVar("Result")
LOST_HINT = (
    "the worker process ended without finishing (killed, out of memory, machine restarted); its own "
    "log says why. Free memory or use a machine with more, then start the job again"
)


def error_document(message: str, problems: list[str] | None = None, hint: str = "") -> dict[str, Any]:
    """The job's `error` JSON: what happened, every problem found, and what to change."""
    return {"message": message, "problems": problems or [message], "hint": hint}


def with_db_retries(action: Callable[[], Result], attempts: int = 6, first_wait_s: float = 0.5) -> Result:
    """Run `action`, waiting and retrying while the database connection fails (about 30 s in all)."""
    for attempt in range(attempts):
        try:
            return action()
        except TRANSIENT_DB_ERRORS as error:
            if attempt == attempts - 1:
                raise
            wait = first_wait_s * 2**attempt
            logger.warning("database unavailable (%s); retrying in %.1f s", error.__class__.__name__, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def claimable(cutoff: datetime) -> ColumnElement[bool]:
    return or_(
        Job.status == JobStatus.queued,
        and_(Job.status == JobStatus.running, Job.heartbeat_at < cutoff),
    )


def claim_job(settings: Settings, job_id: str, worker: str, task_id: str | None) -> Claim | None:
    """Own the job for one attempt, or None when there is nothing to do (see the module docstring)."""
    now = utc_now()
    cutoff = now - timedelta(seconds=settings.heartbeat_timeout_s)
    with session_scope(str(settings.database_url)) as session:
        job = session.get(Job, job_id)
        if job is None:
            logger.warning("job %s: no such job; the message is dropped", job_id)
            return None
        if job.status.is_final:
            logger.info("job %s is already %s; nothing to do", job_id, job.status.value)
            return None
        is_stale = (
            job.status == JobStatus.running and job.heartbeat_at is not None and job.heartbeat_at < cutoff
        )
        if job.status == JobStatus.running and not is_stale:
            logger.info("job %s is running on %s; this delivery is a duplicate", job_id, job.worker)
            return None
        if job.is_cancel_requested:
            _finish_unclaimed(session, job, JobStatus.cancelled, None, now)
            return None
        if job.attempts >= settings.max_attempts:
            message = (
                f"the job was started {job.attempts} times without finishing, the most allowed "
                f"(last worker: {job.worker or 'unknown'})"
            )
            _finish_unclaimed(session, job, JobStatus.failed, error_document(message, hint=LOST_HINT), now)
            return None
        attempt = job.attempts + 1
        claimed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.attempts == job.attempts, claimable(cutoff))
            .values(
                status=JobStatus.running,
                attempts=attempt,
                started_at=job.started_at or now,
                heartbeat_at=now,
                worker=worker,
                task_id=task_id or job.task_id,
                progress={"stage": "starting", "fraction": 0.0, "message": f"attempt {attempt}"},
                revision=Job.revision + 1,
            ),
            execution_options={"synchronize_session": False},
        )
        if claimed.rowcount != 1:
            logger.info("job %s was claimed by another delivery first", job_id)
            return None
        return Claim(job_id, job.kind, attempt, dict(job.params), job.parent_id)


def _finish_unclaimed(
    session: Session, job: Job, status: JobStatus, error: dict[str, Any] | None, now: datetime
) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job.id, Job.attempts == job.attempts, Job.status == job.status)
        .values(status=status, error=error, finished_at=now, revision=Job.revision + 1),
        execution_options={"synchronize_session": False},
    )


def finish_job(
    settings: Settings,
    claim: Claim,
    status: JobStatus,
    progress: dict[str, Any],
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> bool:
    """Record the attempt's end; False when the job was no longer this attempt's to finish."""

    def write() -> bool:
        with session_scope(str(settings.database_url)) as session:
            done = session.execute(
                update(Job)
                .where(owned_by(claim))
                .values(
                    status=status,
                    result=result,
                    error=error,
                    progress=progress,
                    finished_at=utc_now(),
                    revision=Job.revision + 1,
                ),
                execution_options={"synchronize_session": False},
            )
            return done.rowcount == 1

    return with_db_retries(write)


def give_back(settings: Settings, claim: Claim, progress: dict[str, Any], is_refunded: bool) -> bool:
    """Put a running job back to `queued`; `is_refunded` uncounts the attempt (a worker shutdown)."""
    with session_scope(str(settings.database_url)) as session:
        done = session.execute(
            update(Job)
            .where(owned_by(claim))
            .values(
                status=JobStatus.queued,
                attempts=claim.attempt - 1 if is_refunded else claim.attempt,
                worker=None,
                heartbeat_at=None,
                enqueued_at=utc_now(),
                progress=progress,
                revision=Job.revision + 1,
            ),
            execution_options={"synchronize_session": False},
        )
        return done.rowcount == 1
