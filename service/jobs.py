"""Job lifecycle operations that the API and the workers both perform on job rows.

Every change to a job bumps its `revision`, which the API serves as the ETag: a poller that sends
If-None-Match gets 304 until something (status, progress, result) really changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from service.db.base import utc_now
from service.db.models import Job, JobKind, JobStatus
from service.queue import QUEUE_OF_KIND


@event.listens_for(Job, "before_update")
def _bump_revision(_mapper, _connection, job: Job) -> None:
    job.revision = (job.revision or 0) + 1


def create_job(
    session: Session,
    kind: JobKind,
    params: dict[str, Any],
    *,
    parent_id: str | None = None,
    idempotency_key: str | None = None,
    api_key_id: int | None = None,
) -> Job:
    """A queued job row; the caller enqueues it after the commit."""
    job = Job(
        kind=kind,
        queue=QUEUE_OF_KIND[kind],
        params=params,
        parent_id=parent_id,
        idempotency_key=idempotency_key,
        api_key_id=api_key_id,
        status=JobStatus.queued,
        progress={"stage": "queued", "fraction": 0.0},
        created_at=utc_now(),
    )
    session.add(job)
    session.flush()
    return job


def queue_position(session: Session, job: Job) -> int | None:
    """1-based place among the queued jobs of the same queue, oldest first; None unless queued."""
    if job.status != JobStatus.queued:
        return None
    ahead = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.queue == job.queue, Job.status == JobStatus.queued, Job.created_at < job.created_at)
    )
    return int(ahead or 0) + 1


def request_cancel(session: Session, job: Job, now: datetime | None = None) -> None:
    """A queued job is cancelled at once; a running one is flagged and its worker stops it."""
    if job.status.is_final:
        return
    job.is_cancel_requested = True
    if job.status == JobStatus.queued:
        job.status = JobStatus.cancelled
        job.finished_at = now or utc_now()
    for child in job.children:
        request_cancel(session, child, now)
