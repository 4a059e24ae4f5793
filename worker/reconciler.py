"""The reconciler: makes the database's jobs and the broker's messages agree again after a fault.

Each pass:
1. Silent jobs. A `running` job whose heartbeat is older than `settings.heartbeat_timeout_s` lost
   its worker (SIGKILL, out of memory, machine gone). It goes back to `queued` and is sent again
   (a training then resumes from its latest checkpoint), or, after `settings.max_attempts` starts,
   fails with a message saying so. Never left `running`.
2. Training parents. Every running parent is advanced (`worker.trainings.advance_training`), in case
   the child that should have advanced it died first.
3. Lost messages. A `queued` job with no message in the broker's queues, at two passes in a row (a
   message being handed to a worker is briefly in neither place), is sent again. This is what
   repairs a Redis restarted with an empty store. Sending twice is harmless: tasks are idempotent
   by job id.
4. Broker housekeeping, at most once per `BROKER_PRUNE_INTERVAL`: messages workers took more than
   that long ago are deleted from a store that keeps them (the embedded broker's table).

Where it runs: a thread in every worker process (`ReconcilerThread`, started when the worker is
ready), so every deployment has one as soon as it has a worker, and no extra process is needed. Every
change is a conditional UPDATE that only one process can win, so concurrent reconcilers are safe;
on PostgreSQL an advisory lock also keeps them from doing the same scans at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from celery import Celery
from redis.exceptions import RedisError
from sqlalchemy import select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from service.db.base import utc_now
from service.db.models import Job, JobKind, JobStatus
from service.db.session import get_engine, session_scope
from service.queue import QUEUES
from service.settings import Settings
from service.workers import forget_worker, record_worker
from worker.broker_queue import QueueInspector, inspector_for
from worker.dispatch import dispatch
from worker.lifecycle import LOST_HINT, error_document
from worker.progress import append_to_job_log
from worker.trainings import advance_training

logger = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x6E6E737663  # "nnsvc"
BROKER_PRUNE_INTERVAL = timedelta(hours=1)


def reconcile_interval_s(settings: Settings) -> float:
    """Four passes per heartbeat timeout: a dead worker's job waits at most ~1.25 timeouts."""
    return min(30.0, max(0.5, settings.heartbeat_timeout_s / 4))


@dataclass
class PassReport:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    advanced: list[str] = field(default_factory=list)
    pruned: int = 0  # delivered broker messages deleted


@contextmanager
def reconciler_lock(settings: Settings) -> Iterator[bool]:
    """True when this process may run a pass now (always, except on PostgreSQL while another does)."""
    engine = get_engine(str(settings.database_url))
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as connection:
        is_mine = bool(
            connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        )
        try:
            yield is_mine
        finally:
            if is_mine:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
            connection.commit()


class Reconciler:
    def __init__(self, settings: Settings, celery: Celery, inspector: QueueInspector | None) -> None:
        self.settings, self.celery, self.inspector = settings, celery, inspector
        self.suspects: set[str] = set()  # queued jobs without a message at the previous pass
        self.pruned_at: datetime | None = None

    def run_pass(self) -> PassReport:
        report = PassReport()
        with reconciler_lock(self.settings) as is_mine:
            if is_mine:
                self.recover_silent_jobs(report, utc_now())
                self.advance_parents(report)
                self.resend_lost_messages(report)
                self.prune_broker(report, utc_now())
        return report

    def prune_broker(self, report: PassReport, now: datetime) -> None:
        if self.inspector is None or (self.pruned_at and now - self.pruned_at < BROKER_PRUNE_INTERVAL):
            return
        self.pruned_at = now
        report.pruned = self.inspector.remove_delivered(now - BROKER_PRUNE_INTERVAL)

    def recover_silent_jobs(self, report: PassReport, now: datetime) -> None:
        cutoff = now - timedelta(seconds=self.settings.heartbeat_timeout_s)
        with session_scope(str(self.settings.database_url)) as session:
            silent = session.scalars(
                select(Job).where(Job.status == JobStatus.running, Job.heartbeat_at < cutoff)
            ).all()
            # A training parent with children has no process of its own; advancing it is step 2.
            silent = [job for job in silent if not (job.kind == JobKind.train and "resolved" in job.params)]
            for job in silent:
                ended = self.end_silent_job(session, job, cutoff, now)
                if ended is not None:
                    (report.failed if ended == JobStatus.failed else report.requeued).append(job.id)
        for job in silent:
            if job.id in report.requeued:
                dispatch(self.settings, self.celery, [(job.id, job.kind)])
            elif job.id in report.failed and job.parent_id is not None:
                advance_training(self.settings, self.celery, job.parent_id)

    def end_silent_job(self, session: Session, job: Job, cutoff: datetime, now: datetime) -> JobStatus | None:
        """Requeue or fail one silent job; its new status, or None when another process was first."""
        silence = (
            f"its worker ({job.worker}) sent no heartbeat since {job.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC"
        )
        if job.attempts >= self.settings.max_attempts:
            message = f"{silence}; it was started {job.attempts} times, the most allowed"
            values = {
                "status": JobStatus.failed,
                "error": error_document(message, hint=LOST_HINT),
                "finished_at": now,
            }
        else:
            message = (
                f"{silence}; sent again (attempt {job.attempts + 1} of at most {self.settings.max_attempts})"
            )
            values = {
                "status": JobStatus.queued,
                "worker": None,
                "heartbeat_at": None,
                "enqueued_at": now,
                "progress": {**(job.progress or {}), "stage": "requeued", "message": message, "eta_s": None},
            }
        changed = session.execute(
            update(Job)
            .where(
                Job.id == job.id,
                Job.status == JobStatus.running,
                Job.attempts == job.attempts,
                Job.heartbeat_at < cutoff,
            )
            .values(**values, revision=Job.revision + 1),
            execution_options={"synchronize_session": False},
        )
        if changed.rowcount != 1:
            return None
        logger.warning("job %s: %s", job.id, message)
        append_to_job_log(self.settings, job.id, message, __name__)
        return values["status"]

    def advance_parents(self, report: PassReport) -> None:
        with session_scope(str(self.settings.database_url)) as session:
            parents = session.scalars(
                select(Job.id).where(Job.kind == JobKind.train, Job.status == JobStatus.running)
            ).all()
        for parent_id in parents:
            advance_training(self.settings, self.celery, parent_id)
            report.advanced.append(parent_id)

    def resend_lost_messages(self, report: PassReport) -> None:
        if self.inspector is None:
            return
        with session_scope(str(self.settings.database_url)) as session:
            queued = session.execute(
                select(Job.id, Job.kind, Job.enqueued_at).where(Job.status == JobStatus.queued)
            ).all()
        if not queued:
            self.suspects = set()
            return
        present = self.inspector.queued_job_ids()
        missing = {row.id for row in queued if row.id not in present}
        lost = [row for row in queued if row.id in missing & self.suspects]
        self.suspects = missing - {row.id for row in lost}
        for row in lost:
            if self.claim_resend(row.id, row.enqueued_at):
                logger.warning(
                    "job %s is queued but its message is gone from the broker; sending it again", row.id
                )
                append_to_job_log(
                    self.settings, row.id, "its message was lost by the broker; sent again", __name__
                )
                dispatch(self.settings, self.celery, [(row.id, row.kind)])
                report.resent.append(row.id)

    def claim_resend(self, job_id: str, enqueued_at: datetime | None) -> bool:
        """Only one reconciler re-sends a job: the one whose UPDATE of `enqueued_at` matches."""
        same_send = Job.enqueued_at.is_(None) if enqueued_at is None else Job.enqueued_at == enqueued_at
        with session_scope(str(self.settings.database_url)) as session:
            changed = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == JobStatus.queued, same_send)
                .values(enqueued_at=utc_now()),
                execution_options={"synchronize_session": False},
            )
            return changed.rowcount == 1


class ReconcilerThread(threading.Thread):
    """Runs reconciler passes every `reconcile_interval_s` until stopped; a failed pass is logged
    and the next one tries again (the database or broker may be restarting)."""

    def __init__(self, settings: Settings, celery: Celery, worker: str, queues: tuple[str, ...]) -> None:
        super().__init__(name="nnsvc-reconciler", daemon=True)
        self.settings, self.worker, self.queues = settings, worker, queues
        self.reconciler = Reconciler(settings, celery, inspector_for(str(settings.broker_url), QUEUES))
        self.stopped = threading.Event()

    def run(self) -> None:
        interval = reconcile_interval_s(self.settings)
        while not self.stopped.is_set():
            self.run_once()
            self.stopped.wait(interval)
        forget_worker(self.settings, self.worker)

    def run_once(self) -> None:
        try:
            record_worker(self.settings, self.worker, self.queues)
            report = self.reconciler.run_pass()
        except (SQLAlchemyError, OSError, RedisError) as error:
            logger.warning("reconciler pass failed (%s: %s); trying again", type(error).__name__, error)
            return
        except Exception:  # a bug must not end the thread: jobs would then wait forever
            logger.exception("reconciler pass failed; trying again")
            return
        if report.requeued or report.failed or report.resent or report.pruned:
            logger.info("reconciler: %s", report)

    def stop(self) -> None:
        self.stopped.set()
