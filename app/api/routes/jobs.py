"""Jobs: poll one (with ETag/304), list, cancel, follow its progress as server-sent events, read its log
from a cursor and download its artifacts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from app.api.deps import ApiKeyDep, JobDep, JobVersionDep, SessionDep, SettingsDep
from app.api.roles import CANCEL_JOBS, READ_JOBS
from app.operations.jobs import artifact_path, job_public, job_public_by_id, job_version, read_log
from app.schemas.jobs import JobLog, JobPublic, JobsPublic, JobSummary
from service.db.models import Job, JobKind, JobStatus, Role
from service.db.session import session_factory
from service.jobs import request_cancel
from service.settings import Settings

router = APIRouter(prefix="/jobs", tags=["jobs"])

EVENT_POLL_INTERVAL_S = 0.5
EVENT_KEEPALIVE_S = 15.0
MAX_PAGE = 500


@router.get("", dependencies=[READ_JOBS])
def list_jobs(
    session: SessionDep,
    key: ApiKeyDep,
    status: JobStatus | None = None,
    kind: JobKind | None = None,
    parent_id: Annotated[
        str | None, Query(description="children of this job; `none`: top-level jobs")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobsPublic:
    """Newest first. A predictor key sees only the jobs it started."""
    conditions = []
    if status is not None:
        conditions.append(Job.status == status)
    if kind is not None:
        conditions.append(Job.kind == kind)
    if parent_id == "none":
        conditions.append(Job.parent_id.is_(None))
    elif parent_id is not None:
        conditions.append(Job.parent_id == parent_id)
    if key.role == Role.predictor:
        conditions.append(Job.api_key_id == key.key_id)
    count = session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
    rows = session.scalars(
        select(Job).where(*conditions).order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    )
    return JobsPublic(data=[JobSummary.model_validate(job) for job in rows], count=count)


@router.get(
    "/{job_id}",
    dependencies=[READ_JOBS],
    responses={304: {"description": "unchanged since the ETag sent in If-None-Match"}},
)
async def get_job(
    version: JobVersionDep,
    session: SessionDep,
    if_none_match: Annotated[str | None, Header(description="the ETag of the last answer")] = None,
) -> JobPublic:
    """Status, progress, result or error, children and queue place. Send the ETag back in If-None-Match
    to get an empty 304 until something changed: such a poll costs one indexed query."""
    if if_none_match is not None and version.is_held_by(if_none_match):
        return Response(status_code=304, headers={"ETag": version.etag})  # type: ignore[return-value]
    public = await run_in_threadpool(job_public_by_id, session, version.job_id)
    # Serialized here: JobPublic is what was just built, FastAPI's second validation of it would
    # cost as much again.
    headers = {"ETag": version.etag}
    return Response(public.model_dump_json(), media_type="application/json", headers=headers)  # type: ignore[return-value]


@router.post("/{job_id}/cancel", status_code=202, dependencies=[CANCEL_JOBS])
def cancel_job(job: JobDep, session: SessionDep) -> JobPublic:
    """A queued job is cancelled at once; a running one stops within about a second of its worker
    noticing. Cancelling a finished job changes nothing."""
    request_cancel(session, job)
    session.commit()
    return job_public(session, job)


@router.get(
    "/{job_id}/events",
    dependencies=[READ_JOBS],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"example": 'event: job\ndata: {"id": ...}\n\n'}}}},
)
async def job_events(
    job: JobDep,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(description="resume after this event id")] = None,
) -> StreamingResponse:
    """Server-sent events: a `job` event (the job as GET returns it) whenever it changes, then `end`
    once it reaches a final status."""
    return StreamingResponse(
        _events(settings, job.id, last_event_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(settings: Settings, job_id: str, last_sent: str | None) -> AsyncIterator[str]:
    quiet_s = 0.0
    while True:
        etag, status, public = await run_in_threadpool(_snapshot, settings, job_id, last_sent)
        if public is not None:
            yield f"id: {etag}\nevent: job\ndata: {public.model_dump_json()}\n\n"
            last_sent, quiet_s = etag, 0.0
        if status is None or status.is_final:
            final = status.value if status is not None else "deleted"
            yield f"event: end\ndata: {json.dumps({'status': final})}\n\n"
            return
        if quiet_s >= EVENT_KEEPALIVE_S:
            yield ": keep-alive\n\n"
            quiet_s = 0.0
        await asyncio.sleep(EVENT_POLL_INTERVAL_S)
        quiet_s += EVENT_POLL_INTERVAL_S


def _snapshot(
    settings: Settings, job_id: str, last_sent: str | None
) -> tuple[str, JobStatus | None, JobPublic | None]:
    """The job's ETag and status (None once deleted), and its full view only when the ETag differs
    from the one sent last."""
    with session_factory(str(settings.database_url))() as session:
        version = job_version(session, job_id)
        if version is None:
            return "", None, None
        if version.etag == last_sent:
            return version.etag, version.status, None
        return version.etag, version.status, job_public_by_id(session, job_id)


@router.get("/{job_id}/log", dependencies=[READ_JOBS])
def get_job_log(
    job: JobDep,
    settings: SettingsDep,
    cursor: Annotated[int, Query(ge=0, description="byte offset: 0, then the last answer's next_cursor")] = 0,
) -> JobLog:
    """The worker's log, read incrementally: each answer ends at a line end while the job runs."""
    return read_log(settings, job, cursor)


@router.get(
    "/{job_id}/artifacts/{name}",
    dependencies=[READ_JOBS],
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}, "image/png": {}, "application/json": {}}}},
)
def get_job_artifact(job: JobDep, settings: SettingsDep, name: str) -> FileResponse:
    """A file the job's result lists under `artifacts` (progress.png, summary.json, ...)."""
    path = artifact_path(settings, job, name)
    return FileResponse(path, filename=path.name)
