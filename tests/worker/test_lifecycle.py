"""Claiming and reporting on job rows, in-process on the embedded database: what makes tasks
idempotent by job id, and what a running job writes and reads."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from service.db.base import utc_now
from service.db.models import Job, JobStatus
from service.db.session import session_scope
from service.jobs import request_cancel
from service.settings import Settings
from tests.worker.support import add_job, read
from worker.lifecycle import claim_job, finish_job
from worker.progress import JobReporter, JobStopped, StopReason


def test_a_queued_job_is_claimed_once(sqlite_settings: Settings) -> None:
    job_id = add_job(sqlite_settings)
    claim = claim_job(sqlite_settings, job_id, "w1", "t1")
    assert claim is not None and claim.attempt == 1
    assert claim_job(sqlite_settings, job_id, "w2", "t1") is None  # a duplicate delivery
    job = read(sqlite_settings, job_id)
    assert (job.status, job.worker, job.attempts) == (JobStatus.running, "w1", 1)


def test_a_running_job_without_heartbeat_is_claimed_again(sqlite_settings: Settings) -> None:
    silent = utc_now() - timedelta(seconds=sqlite_settings.heartbeat_timeout_s + 1)
    job_id = add_job(sqlite_settings, status=JobStatus.running, attempts=1, heartbeat_at=silent)
    claim = claim_job(sqlite_settings, job_id, "w2", None)
    assert claim is not None and claim.attempt == 2


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        pytest.param({"status": JobStatus.succeeded}, JobStatus.succeeded, id="finished"),
        pytest.param({"is_cancel_requested": True}, JobStatus.cancelled, id="cancel-requested"),
        pytest.param({"attempts": 3}, JobStatus.failed, id="attempts-used-up"),
    ],
)
def test_jobs_that_must_not_run(sqlite_settings: Settings, fields: dict, status: JobStatus) -> None:
    job_id = add_job(sqlite_settings, **fields)
    assert claim_job(sqlite_settings, job_id, "w", None) is None
    job = read(sqlite_settings, job_id)
    assert job.status == status
    if status == JobStatus.failed:
        assert "started 3 times" in job.error["message"] and job.error["hint"]


def test_the_end_of_an_attempt_that_lost_its_job_is_not_recorded(sqlite_settings: Settings) -> None:
    job_id = add_job(sqlite_settings)
    claim = claim_job(sqlite_settings, job_id, "w1", None)
    with session_scope(str(sqlite_settings.database_url)) as session:
        session.get(Job, job_id).attempts = 2  # the reconciler handed it to another worker
    assert not finish_job(sqlite_settings, claim, JobStatus.succeeded, {}, result={})
    assert read(sqlite_settings, job_id).status == JobStatus.running


def fast(settings: Settings) -> Settings:
    return settings.model_copy(update={"progress_interval_s": 0.05, "heartbeat_timeout_s": 2})


def wait_for_row(
    settings: Settings, job_id: str, condition: Callable[[Job], bool], timeout_s: float = 10
) -> Job:
    deadline = time.monotonic() + timeout_s
    while not condition(job := read(settings, job_id)):
        assert time.monotonic() < deadline, job.progress
        time.sleep(0.05)
    return job


def test_the_reporter_writes_progress_beats_and_stops_when_cancelled(sqlite_settings: Settings) -> None:
    settings = fast(sqlite_settings)
    job_id = add_job(settings)
    claim = claim_job(settings, job_id, "w", None)
    claimed_beat = read(settings, job_id).heartbeat_at
    with JobReporter(settings, claim) as reporter:
        reporter(0.5, "train", "epoch 1/2", epoch=0, loss=math.nan, eta_s=12.0)
        job = wait_for_row(settings, job_id, lambda job: job.progress.get("stage") == "train")
        assert job.progress == {
            "stage": "train",
            "fraction": 0.5,
            "message": "epoch 1/2",
            "epoch": 1,
            "metrics": {"loss": None},
            "eta_s": 12.0,
        }
        wait_for_row(settings, job_id, lambda job: job.heartbeat_at > claimed_beat)
        assert not reporter.should_stop()
        with session_scope(str(settings.database_url)) as session:
            request_cancel(session, session.get(Job, job_id))
        deadline = time.monotonic() + 3
        while not reporter.should_stop():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert reporter.stop_reason == StopReason.cancelled
        with pytest.raises(JobStopped):
            reporter(0.6, "train")


def test_the_reporter_estimates_time_left_from_the_stage_so_far(sqlite_settings: Settings) -> None:
    claim = claim_job(sqlite_settings, add_job(sqlite_settings), "w", None)
    now = [100.0]
    reporter = JobReporter(sqlite_settings, claim, clock=lambda: now[0])
    reporter(0.2, "predict")
    now[0] += 30.0
    reporter(0.5, "predict")
    assert reporter.progress["eta_s"] == pytest.approx(50.0)  # 0.3 done in 30 s, 0.5 left
