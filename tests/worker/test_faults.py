"""Faults a deployment meets, with real worker processes, PostgreSQL and Redis: a worker killed during
training, Redis restarted with an empty store while jobs wait, a training cancelled while it runs."""

from __future__ import annotations

import re
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from core.training.checkpoints import FINAL, load_checkpoint
from service.db.models import Evaluation, Job, JobKind, JobStatus, new_id
from service.db.session import session_scope
from service.jobs import request_cancel
from service.paths import evaluation_dir, raw_dir, relative
from service.settings import Settings
from tests.worker.conftest import RedisServer, server_settings
from tests.worker.support import (
    Workers,
    add_plan,
    assert_succeeded,
    get_job,
    job_log,
    make_dataset,
    submit,
    wait_for,
    wait_until_final,
)

# Short enough that a dead worker's job is taken up within seconds, long enough for a loaded machine.
HEARTBEAT_TIMEOUT_S = 4.0
STOP_WITHIN_S = 15.0


def fold_params(dataset_id: str, plan_id: str, epochs: int) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "plan_id": plan_id,
        "configuration": "2d",
        "fold": 0,
        "epochs": epochs,
        "iterations_per_epoch": 1,
        "validation_iterations": 1,
        "seed": 0,
        "output_dir": f"trainings/{new_id()}",
    }


def submit_folder_evaluation(settings: Settings, dataset_id: str) -> str:
    """A cheap job: the test labels evaluated against themselves."""
    evaluation_id = new_id()
    folder = evaluation_dir(settings, evaluation_id)
    for name in ("predictions", "references"):
        shutil.copytree(raw_dir(settings, dataset_id) / "labelsTs", folder / name)

    def evaluation(job_id: str) -> Evaluation:
        return Evaluation(id=evaluation_id, job_id=job_id, path=relative(settings, folder))

    return submit(settings, JobKind.evaluate, {"evaluation_id": evaluation_id}, evaluation)


def epoch_at_least(epoch: int) -> Callable[[Job], bool]:
    return lambda job: job.status == JobStatus.running and (job.progress.get("epoch") or 0) >= epoch


def test_killed_worker_training_resumes_on_another_worker(
    tmp_path: Path, postgres_url: str, private_redis: RedisServer, make_workers: Callable[..., Workers]
) -> None:
    settings = server_settings(tmp_path, postgres_url, private_redis.url)
    workers = make_workers(settings, heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S)
    first = workers.start()
    dataset_id = make_dataset(settings)
    params = fold_params(dataset_id, add_plan(settings, dataset_id, is_planned=True), epochs=4)
    job_id = submit(settings, JobKind.train_fold, params)
    wait_for(settings, job_id, epoch_at_least(2), timeout_s=180, what="in its second epoch")
    workers.kill(first)
    assert get_job(settings, job_id).status == JobStatus.running
    workers.start()

    job = assert_succeeded(settings, job_id, timeout_s=240)
    assert job.attempts == 2
    log = job_log(settings, job_id)
    assert "sent no heartbeat" in log
    second_attempt = log.split(": attempt 2 on ")[1]
    assert "resuming 2d fold 0 from checkpoint_latest.pth" in second_attempt
    first_epoch = int(re.search(r"stage train: epoch (\d+)/4", second_attempt)[1])
    assert first_epoch >= 2, second_attempt  # the epoch count continues where the killed run saved it
    final = load_checkpoint(settings.data_root / params["output_dir"] / "2d" / "fold_0" / FINAL)
    assert (final["current_epoch"], len(final["logging"]["ema_fg_dice"])) == (4, 4)


def test_redis_restarted_empty_while_jobs_wait_loses_none(
    tmp_path: Path, postgres_url: str, private_redis: RedisServer, make_workers: Callable[..., Workers]
) -> None:
    settings = server_settings(tmp_path, postgres_url, private_redis.url)
    make_workers(settings, heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S).start()
    dataset_id = make_dataset(settings)
    plan_id = add_plan(settings, dataset_id, is_planned=True)
    busy = submit(settings, JobKind.train_fold, fold_params(dataset_id, plan_id, epochs=3))
    wait_for(settings, busy, epoch_at_least(1), timeout_s=180, what="training")
    waiting = [submit_folder_evaluation(settings, dataset_id) for _ in range(2)]
    broker = redis.Redis.from_url(private_redis.url)
    assert broker.llen("cpu") == len(waiting)
    private_redis.restart()
    assert broker.llen("cpu") == 0

    for job_id in [busy, *waiting]:
        assert_succeeded(settings, job_id, timeout_s=180)
    for job_id in waiting:
        assert "lost by the broker; sent again" in job_log(settings, job_id)
    broker.close()


def test_cancel_or_shutdown_stops_a_training_within_seconds(
    tmp_path: Path, postgres_url: str, redis_url: str, make_workers: Callable[..., Workers]
) -> None:
    settings = server_settings(tmp_path, postgres_url, redis_url)
    worker = make_workers(settings).start()
    dataset_id = make_dataset(settings)
    plan_id = add_plan(settings, dataset_id, is_planned=True)
    job_id = submit(settings, JobKind.train_fold, fold_params(dataset_id, plan_id, epochs=1000))
    wait_for(settings, job_id, epoch_at_least(1), timeout_s=180, what="training")
    next_job = submit_folder_evaluation(settings, dataset_id)

    asked = time.monotonic()
    with session_scope(str(settings.database_url)) as session:
        request_cancel(session, session.get(Job, job_id))
    job = wait_until_final(settings, job_id, timeout_s=60)
    assert job.status == JobStatus.cancelled
    assert time.monotonic() - asked < STOP_WITHIN_S
    assert_succeeded(settings, next_job, timeout_s=60)

    # SIGTERM: the worker gives its training back to the queue, attempt uncounted, and exits.
    job_id = submit(settings, JobKind.train_fold, fold_params(dataset_id, plan_id, epochs=1000))
    wait_for(settings, job_id, epoch_at_least(1), timeout_s=180, what="training")
    asked = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    assert time.monotonic() - asked < STOP_WITHIN_S
    job = get_job(settings, job_id)
    assert (job.status, job.attempts, job.worker) == (JobStatus.queued, 0, None)
