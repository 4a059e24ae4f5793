"""What a running job tells the database: progress, heartbeats, and whether it should stop.

`JobReporter` is the `progress(fraction, stage, message, **metrics)` and `should_stop()` pair that the
worker hands to `core`. The training thread never waits on the database for progress: the callback
only records the latest report, and a writer thread stores it at most every
`settings.progress_interval_s`, together with `heartbeat_at`. The same thread beats on its own when
core is silent for long (one long epoch, a long validation), so a live job is never mistaken for a
dead one; when its worker dies, the beats stop and the reconciler takes the job up.

Every write is conditional on the job still being this attempt's (`status = running` and the
`attempts` counter the claim set): a worker that lost its job (the reconciler handed it to another
worker) notices because its writes match no row, and stops.

`should_stop` reads the cancel flag at most once a second and also stops a job past its time limit.
Core steps without a `should_stop` parameter (planning, prediction, evaluation) still stop between
cases: the progress callback raises `JobStopped` once a stop is due.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.exc import SQLAlchemyError

from service.db.base import utc_now
from service.db.models import Job, JobKind, JobStatus
from service.db.session import session_scope
from service.paths import job_dir
from service.settings import Settings

logger = logging.getLogger(__name__)

CANCEL_CHECK_INTERVAL_S = 1.0
LOG_FILE = "log.txt"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class StopReason(StrEnum):
    cancelled = "cancelled"  # the API set is_cancel_requested
    time_limit = "time_limit"  # the job ran past settings.job_time_limits_s[kind]
    lost = "lost"  # the job is no longer this attempt's: another worker or the reconciler owns it
    shutdown = "shutdown"  # the worker was told to stop (SIGTERM): the job goes back to the queue


# Set when the worker process is told to stop; the running job stops at its next check instead of
# holding the shutdown for as long as it has left (a training: days).
SHUTDOWN_REQUESTED = threading.Event()


class JobStopped(RuntimeError):
    """Raised from the progress callback to end a core step that takes no `should_stop`."""


@dataclass(frozen=True)
class Claim:
    """A job this worker process owns: `attempt` is the job's `attempts` value the claim wrote."""

    job_id: str
    kind: JobKind
    attempt: int
    params: dict[str, Any]
    parent_id: str | None


def heartbeat_interval_s(settings: Settings) -> float:
    """Four beats per timeout, so one slow write never makes a live job look dead."""
    return min(30.0, max(0.2, settings.heartbeat_timeout_s / 4))


def owned_by(claim: Claim) -> ColumnElement[bool]:
    return (Job.id == claim.job_id) & (Job.status == JobStatus.running) & (Job.attempts == claim.attempt)


def json_safe(value: Any) -> Any:
    """`value` as plain JSON: numpy scalars as Python numbers, NaN and infinity as None (PostgreSQL's
    JSON refuses them)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


class JobReporter:
    """Progress, heartbeat and stop signal of one claimed job; use as a context manager."""

    def __init__(self, settings: Settings, claim: Claim, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings, self.claim, self.clock = settings, claim, clock
        self.time_limit_s = settings.job_time_limits_s.get(claim.kind.value)
        self.started = clock()
        self.stop_reason: StopReason | None = None
        self.progress: dict[str, Any] = {"stage": "starting", "fraction": 0.0, "message": ""}
        self._pending = False
        self._lock = threading.Lock()
        self._stage_start: tuple[str, float, float] | None = None  # stage, time, fraction
        self._last_cancel_check = -math.inf
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._write_loop, name=f"job-{claim.job_id}", daemon=True)

    def __enter__(self) -> JobReporter:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._closed.set()
        self._thread.join()

    def __call__(self, fraction: float, stage: str, message: str = "", **metrics: Any) -> None:
        now = self.clock()
        if self._stage_start is None or self._stage_start[0] != stage:
            self._stage_start = (stage, now, fraction)
            logger.info("stage %s: %s", stage, message)
        eta_s = metrics.pop("eta_s", None)
        if eta_s is None:
            _, started, first = self._stage_start
            done = fraction - first
            eta_s = (now - started) * (1 - fraction) / done if done > 0 else None
        epoch = metrics.pop("epoch", None)
        report = {
            "stage": stage,
            "fraction": round(min(max(float(fraction), 0.0), 1.0), 4),
            "message": message,
            # core counts epochs from 0; people and the message ("epoch 3/10") count from 1
            "epoch": None if epoch is None else int(epoch) + 1,
            "metrics": json_safe(metrics),
            "eta_s": json_safe(None if eta_s is None else round(float(eta_s), 1)),
        }
        with self._lock:
            self.progress, self._pending = report, True
        if self.should_stop():
            raise JobStopped(f"job stopped ({self.stop_reason})")

    def should_stop(self) -> bool:
        if self.stop_reason is not None:
            return True
        now = self.clock()
        if SHUTDOWN_REQUESTED.is_set():
            self.stop_reason = StopReason.shutdown
        elif self.time_limit_s is not None and now - self.started > self.time_limit_s:
            self.stop_reason = StopReason.time_limit
        elif now - self._last_cancel_check >= CANCEL_CHECK_INTERVAL_S:
            self._last_cancel_check = now
            self._check_cancel()
        return self.stop_reason is not None

    def _check_cancel(self) -> None:
        try:
            with session_scope(str(self.settings.database_url)) as session:
                row = session.execute(
                    select(Job.is_cancel_requested, Job.status, Job.attempts).where(
                        Job.id == self.claim.job_id
                    )
                ).one_or_none()
        except SQLAlchemyError as error:  # a database hiccup must not stop a training
            logger.warning("could not read the cancel flag: %s", error)
            return
        if row is None or row.status != JobStatus.running or row.attempts != self.claim.attempt:
            self.stop_reason = StopReason.lost
        elif row.is_cancel_requested:
            self.stop_reason = StopReason.cancelled

    def _write_loop(self) -> None:
        interval = max(self.settings.progress_interval_s, 0.05)
        beat_every = heartbeat_interval_s(self.settings)
        last_beat = -math.inf
        while not self._closed.wait(min(interval, beat_every)):
            now = self.clock()
            if self._pending or now - last_beat >= beat_every:
                self._write()
                last_beat = now
        if self._pending:
            self._write()

    def _write(self) -> None:
        with self._lock:
            values: dict[str, Any] = {"heartbeat_at": utc_now()}
            if self._pending:
                values.update(progress=dict(self.progress), revision=Job.revision + 1)
                self._pending = False
        try:
            with session_scope(str(self.settings.database_url)) as session:
                result = session.execute(
                    update(Job).where(owned_by(self.claim)).values(**values),
                    execution_options={"synchronize_session": False},
                )
                is_owned = result.rowcount == 1
        except SQLAlchemyError as error:
            logger.warning("could not write progress of job %s: %s", self.claim.job_id, error)
            return
        if not is_owned and self.stop_reason is None:
            logger.warning(
                "job %s is no longer this worker's attempt %d", self.claim.job_id, self.claim.attempt
            )
            self.stop_reason = StopReason.lost


class _ThreadFilter(logging.Filter):
    def __init__(self, thread_id: int) -> None:
        super().__init__()
        self.thread_id = thread_id

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread == self.thread_id


@contextmanager
def job_log(settings: Settings, claim: Claim, worker_name: str) -> Iterator[None]:
    """Append this thread's log records to DATA_ROOT/jobs/<id>/log.txt while the job runs.

    The file is the job's log as the API serves it (read from a byte cursor), so it is only ever
    appended to, attempt after attempt. Records of other threads (the reconciler, the writer thread)
    stay in the worker's own log.
    """
    folder = job_dir(settings, claim.job_id)
    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(folder / LOG_FILE, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(_ThreadFilter(threading.get_ident()))
    root = logging.getLogger()
    root.addHandler(handler)
    logger.info("%s job %s: attempt %d on %s", claim.kind.value, claim.job_id, claim.attempt, worker_name)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def append_to_job_log(settings: Settings, job_id: str, line: str, source: str) -> None:
    """One line from outside the job's own run (e.g. the reconciler), in the same format."""
    folder = job_dir(settings, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    record = logging.LogRecord(source, logging.WARNING, __file__, 0, line, None, None)
    with (folder / LOG_FILE).open("a", encoding="utf-8") as stream:
        stream.write(logging.Formatter(LOG_FORMAT).format(record) + "\n")
