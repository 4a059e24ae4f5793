"""/readyz: can this API do its work right now? Four checks, each reported with what it found.

- database: a `SELECT 1` answers;
- schema: the database is at this code's migration head (service.migrations);
- broker: a connection to the broker opens within BROKER_TIMEOUT_S;
- workers: some worker was seen within `heartbeat_timeout_s`: a heartbeat file under DATA_ROOT/workers
  (service.workers) or a running job's heartbeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from celery import Celery
from sqlalchemy import select, text

from service.db.base import utc_now
from service.db.models import Job, JobStatus
from service.db.session import session_factory
from service.migrations import ensure_schema_current
from service.settings import Settings
from service.workers import seen_workers

BROKER_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Check:
    name: str
    is_ok: bool
    detail: str


def check_readiness(settings: Settings, celery: Celery) -> list[Check]:
    return [
        _run("database", lambda: _database(settings)),
        _run("schema", lambda: _schema(settings)),
        _run("broker", lambda: _broker(celery)),
        _run("workers", lambda: _workers(settings)),
    ]


def _run(name: str, check) -> Check:
    try:
        is_ok, detail = check()
    except Exception as error:  # a readiness probe reports every failure instead of raising it
        return Check(
            name, False, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        )
    return Check(name, is_ok, detail)


def _database(settings: Settings) -> tuple[bool, str]:
    with session_factory(str(settings.database_url))() as session:
        session.execute(text("SELECT 1"))
    return True, "reachable"


def _schema(settings: Settings) -> tuple[bool, str]:
    ensure_schema_current(str(settings.database_url))
    return True, "at the migration head"


def _broker(celery: Celery) -> tuple[bool, str]:
    with celery.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_TIMEOUT_S)
    return True, "reachable"


def _workers(settings: Settings) -> tuple[bool, str]:
    seen = seen_workers(settings, within_s=settings.heartbeat_timeout_s)
    if seen:
        names = ", ".join(f"{worker['name']} ({'/'.join(worker['queues'])})" for worker in seen)
        return True, f"{len(seen)} worker(s) seen: {names}"
    since = utc_now() - timedelta(seconds=settings.heartbeat_timeout_s)
    with session_factory(str(settings.database_url))() as session:
        busy = session.scalar(
            select(Job.worker).where(Job.status == JobStatus.running, Job.heartbeat_at >= since).limit(1)
        )
    if busy is not None:
        return True, f"worker {busy} is running a job"
    return False, f"no worker heartbeat in the last {settings.heartbeat_timeout_s} s; start `nnsvc worker`"
