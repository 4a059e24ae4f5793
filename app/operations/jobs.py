"""Reading and submitting jobs: the cheap version check behind ETags and event streams, the full view,
the log read from a byte cursor and the artifact files a job produced."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from celery import Celery
from kombu.exceptions import KombuError
from sqlalchemy import bindparam, case, func, select
from sqlalchemy.orm import Session, aliased

from app.errors import NotFound, Unprocessable
from app.schemas.jobs import JobLog, JobPublic, JobSummary
from service import paths
from service.db.base import utc_now
from service.db.models import Job, JobStatus
from service.jobs import queue_position
from service.queue import enqueue
from service.settings import Settings

logger = logging.getLogger(__name__)

LOG_NAME = "log.txt"
MAX_LOG_SLICE_BYTES = 1 << 20


def submit(session: Session, celery: Celery, job: Job) -> None:
    """Commit the job (and whatever the caller added with it), then send its task.

    A broker that cannot be reached does not fail the request: the job stays queued without a task id
    and the workers' reconciler sends it again.
    """
    session.commit()
    try:
        job.task_id = enqueue(celery, job.id, job.kind)
    except (KombuError, OSError) as error:
        logger.warning("job %s stays queued: the broker refused its task (%s)", job.id, error)
        return
    job.enqueued_at = utc_now()
    session.commit()


@dataclass(frozen=True)
class JobVersion:
    """What a conditional GET needs: who may read the job, whether it is final, and its ETag."""

    job_id: str
    status: JobStatus
    api_key_id: int | None
    etag: str

    def is_held_by(self, if_none_match: str) -> bool:
        """Whether an If-None-Match header (one or more comma-separated ETags) names this version."""
        return self.etag in {tag.strip() for tag in if_none_match.split(",")}


_child, _ahead = aliased(Job), aliased(Job)
# Built once: constructing the aliases costs far more than SQLite takes to run the query.
_VERSION_QUERY = select(
    Job.status,
    Job.api_key_id,
    Job.revision,
    select(func.count()).where(_child.parent_id == Job.id).scalar_subquery(),
    select(func.coalesce(func.sum(_child.revision), 0)).where(_child.parent_id == Job.id).scalar_subquery(),
    case(
        (
            Job.status == JobStatus.queued,
            select(func.count())
            .where(
                _ahead.queue == Job.queue,
                _ahead.status == JobStatus.queued,
                _ahead.created_at < Job.created_at,
            )
            .scalar_subquery(),
        ),
        else_=-1,
    ),
).where(Job.id == bindparam("job_id"))


def job_version(session: Session, job_id: str) -> JobVersion | None:
    """One indexed query: the job's revision, its children's count and revisions, and (while queued)
    how many jobs are ahead of it. Any change to the job, to a child or to its place changes the ETag."""
    row = (
        session.connection().execute(_VERSION_QUERY, {"job_id": job_id}).one_or_none()
    )  # Core: half the cost
    if row is None:
        return None
    status, api_key_id, *parts = row
    return JobVersion(job_id, status, api_key_id, f'"{job_id}.{".".join(str(part) for part in parts)}"')


def job_public(session: Session, job: Job) -> JobPublic:
    public = JobPublic.model_validate(job, from_attributes=True)
    public.queue_position = queue_position(session, job)
    public.children = [JobSummary.model_validate(child) for child in job.children]
    return public


def job_public_by_id(session: Session, job_id: str) -> JobPublic:
    return job_public(session, session.get_one(Job, job_id))


def read_log(settings: Settings, job: Job, cursor: int, max_bytes: int = MAX_LOG_SLICE_BYTES) -> JobLog:
    """The log from byte `cursor` on. While the job runs, a slice ends at a line end, so a line the
    worker is still writing is returned whole on the next read (a line longer than a slice is cut)."""
    path = paths.job_dir(settings, job.id) / LOG_NAME
    size = path.stat().st_size if path.is_file() else 0
    if cursor > size:
        raise Unprocessable(
            f"cursor {cursor} is past the end of the log ({size} bytes)", loc=["query", "cursor"]
        )
    data = b""
    if size > cursor:
        with path.open("rb") as stream:
            stream.seek(cursor)
            data = stream.read(max_bytes)
    is_final = job.status.is_final
    if not is_final and len(data) < max_bytes:
        data = data[: data.rfind(b"\n") + 1]
    next_cursor = cursor + len(data)
    return JobLog(
        cursor=cursor,
        next_cursor=next_cursor,
        text=data.decode("utf-8", errors="replace"),
        is_complete=is_final and next_cursor == size,
    )


def artifact_path(settings: Settings, job: Job, name: str) -> Path:
    """The file a job's result names `name`; it must lie inside the data root."""
    artifacts: dict[str, str] = (job.result or {}).get("artifacts", {})
    if name not in artifacts:
        known = ", ".join(sorted(artifacts)) or "none yet"
        raise NotFound(f"the job has no artifact {name!r}; it has: {known}", loc=["path", "name"])
    path = paths.absolute(settings, artifacts[name]).resolve()
    if not path.is_relative_to(settings.data_root) or not path.is_file():
        raise NotFound(f"the file of artifact {name!r} is gone", loc=["path", "name"])
    return path
