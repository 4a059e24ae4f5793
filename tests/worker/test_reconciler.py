"""Reconciler passes, in-process on the embedded database and broker: silent jobs, lost messages and
training parents are each brought back in line, and nothing else is touched."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

import pytest

from service.db.base import utc_now
from service.db.models import Job, JobKind, JobStatus
from service.db.session import session_scope
from service.queue import QUEUES, make_celery
from service.settings import Settings
from tests.worker.support import add_job, read
from worker.broker_queue import inspector_for
from worker.dispatch import dispatch
from worker.reconciler import Reconciler


@pytest.fixture
def reconciler(sqlite_settings: Settings) -> Reconciler:
    settings = sqlite_settings
    return Reconciler(settings, make_celery(settings), inspector_for(str(settings.broker_url), QUEUES))


def silent_since(settings: Settings) -> dict:
    beat = utc_now() - timedelta(seconds=settings.heartbeat_timeout_s + 5)
    return {"status": JobStatus.running, "heartbeat_at": beat, "worker": "gone@host"}


def test_a_silent_job_is_sent_again(reconciler: Reconciler) -> None:
    settings = reconciler.settings
    job_id = add_job(settings, attempts=1, **silent_since(settings))
    report = reconciler.run_pass()
    assert report.requeued == [job_id]
    job = read(settings, job_id)
    assert (job.status, job.worker, job.progress["stage"]) == (JobStatus.queued, None, "requeued")
    assert job_id in reconciler.inspector.queued_job_ids()
    assert "sent no heartbeat" in (settings.data_root / "jobs" / job_id / "log.txt").read_text()
    assert reconciler.run_pass().requeued == []  # a second pass finds nothing more to do


def test_a_silent_job_out_of_attempts_fails_loudly(reconciler: Reconciler) -> None:
    settings = reconciler.settings
    job_id = add_job(settings, attempts=settings.max_attempts, **silent_since(settings))
    assert reconciler.run_pass().failed == [job_id]
    job = read(settings, job_id)
    assert job.status == JobStatus.failed and job.finished_at is not None
    assert (
        "gone@host" in job.error["message"]
        and f"started {settings.max_attempts} times" in job.error["message"]
    )


def test_a_beating_job_is_left_alone(reconciler: Reconciler) -> None:
    job_id = add_job(reconciler.settings, status=JobStatus.running, heartbeat_at=utc_now(), attempts=1)
    assert reconciler.run_pass().requeued == []
    assert read(reconciler.settings, job_id).status == JobStatus.running


def test_a_lost_message_is_sent_again_at_the_second_pass(reconciler: Reconciler) -> None:
    settings = reconciler.settings
    lost = add_job(settings)
    sent = add_job(settings)
    dispatch(settings, reconciler.celery, [(sent, JobKind.predict)])
    assert reconciler.inspector.queued_job_ids() == {sent}
    assert reconciler.run_pass().resent == []  # it may be on its way to a worker
    assert reconciler.run_pass().resent == [lost]
    assert reconciler.inspector.queued_job_ids() == {sent, lost}
    assert reconciler.run_pass().resent == []


def test_messages_workers_took_are_pruned_from_the_embedded_broker(reconciler: Reconciler) -> None:
    settings = reconciler.settings
    jobs = [add_job(settings) for _ in range(3)]
    dispatch(settings, reconciler.celery, [(job_id, JobKind.predict) for job_id in jobs])
    broker = sqlite3.connect(str(settings.broker_url).removeprefix("sqla+sqlite:///"))
    local_now = datetime.now()
    with broker:  # as kombu hides a message it hands to a worker: visible off, stamped in local time
        ids = [row[0] for row in broker.execute("SELECT id FROM kombu_message ORDER BY id")]
        for message_id, taken in zip(ids[:2], (local_now - timedelta(hours=2), local_now), strict=True):
            broker.execute(
                "UPDATE kombu_message SET visible = 0, timestamp = ? WHERE id = ?", (taken, message_id)
            )
    report = reconciler.run_pass()
    assert report.pruned == 1
    left = {row[0] for row in broker.execute("SELECT id FROM kombu_message")}
    assert left == set(ids[1:])  # the recently taken one and the waiting one stay
    assert reconciler.inspector.queued_job_ids() == {jobs[2]}
    assert reconciler.run_pass().pruned == 0  # at most once per interval
    broker.close()


def resolved_parent(settings: Settings) -> str:
    resolved = {"configurations": ["2d"], "folds": [0, 1], "previous_stage": {"2d": None}}
    params = {"dataset_id": "d", "plan_id": "p", "model_name": "m", "epochs": 1, "iterations_per_epoch": 1}
    return add_job(settings, JobKind.train, params={**params, "resolved": resolved}, status=JobStatus.running)


def add_fold(settings: Settings, parent_id: str, fold: int, status: JobStatus) -> str:
    params = {"configuration": "2d", "fold": fold}
    return add_job(settings, JobKind.train_fold, params=params, job={"parent_id": parent_id}, status=status)


def children(settings: Settings, parent_id: str) -> list[tuple[JobKind, JobStatus]]:
    with session_scope(str(settings.database_url)) as session:
        return [(child.kind, child.status) for child in session.get(Job, parent_id).children]


def test_a_parent_whose_folds_all_succeeded_gets_its_select_child(reconciler: Reconciler) -> None:
    settings = reconciler.settings
    parent_id = resolved_parent(settings)
    for fold in (0, 1):
        add_fold(settings, parent_id, fold, JobStatus.succeeded)
    reconciler.run_pass()
    reconciler.run_pass()  # idempotent: still one select child
    assert children(settings, parent_id)[2:] == [(JobKind.select, JobStatus.queued)]
    assert read(settings, parent_id).progress["fraction"] == pytest.approx(2 / 3, abs=1e-3)


def test_a_failed_fold_fails_the_parent_and_cancels_the_rest(reconciler: Reconciler) -> None:
    settings = reconciler.settings
    parent_id = resolved_parent(settings)
    failed = add_fold(settings, parent_id, 0, JobStatus.failed)
    add_fold(settings, parent_id, 1, JobStatus.queued)
    reconciler.run_pass()
    parent = read(settings, parent_id)
    assert parent.status == JobStatus.failed
    assert parent.error["message"].startswith(f"fold 0 of 2d failed (job {failed})")
    assert children(settings, parent_id) == [
        (JobKind.train_fold, JobStatus.failed),
        (JobKind.train_fold, JobStatus.cancelled),
    ]
