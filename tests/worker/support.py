"""Helpers of the worker tests: a tiny dataset in the data root, job rows sent like the API sends
them, real `nnsvc worker` processes, and waiting for a job to reach a state."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.pipeline import PlanOptions, plan_and_preprocess
from core.synthetic import PRESETS, generate_dataset
from service.db.base import Base
from service.db.models import Dataset, Job, JobKind, JobStatus, Plan, new_id
from service.db.session import session_scope
from service.jobs import create_job
from service.paths import plan_dir, raw_dir, relative
from service.queue import enqueue, make_celery
from service.settings import Settings
from service.workers import seen_workers

HELD_OUT = ("case_006", "case_007")
# 2 epochs of 2 iterations with one validation batch: a model that runs every step, not a good one.
TINY_TRAINING = {"epochs": 2, "iterations_per_epoch": 2, "validation_iterations": 1, "seed": 0}
WORKER_START_S = 120.0


def add_job(settings: Settings, kind: JobKind = JobKind.predict, **fields: object) -> str:
    """A job row as the API writes it; `params` and `job` (create_job's keywords) are taken from
    `fields`, every other field is set on the row afterwards."""
    with session_scope(str(settings.database_url)) as session:
        job = create_job(session, kind, fields.pop("params", {"prediction_id": "p"}), **fields.pop("job", {}))
        for name, value in fields.items():
            setattr(job, name, value)
        return job.id


def read(settings: Settings, job_id: str) -> Job:
    with session_scope(str(settings.database_url)) as session:
        return session.get(Job, job_id)


def make_dataset(settings: Settings) -> str:
    """A 2D dataset of 6 training cases (48 × 48) and 2 labelled test cases (imagesTs, labelsTs)."""
    dataset_id = new_id()
    raw = raw_dir(settings, dataset_id)
    generate_dataset(raw, replace(PRESETS["2d"], num_cases=len(HELD_OUT) + 6, shape=(1, 48, 48)), seed=1)
    for folder in ("imagesTs", "labelsTs"):
        (raw / folder).mkdir()
    for case in HELD_OUT:
        shutil.move(raw / "imagesTr" / f"{case}_0000.nii.gz", raw / "imagesTs" / f"{case}_0000.nii.gz")
        shutil.move(raw / "labelsTr" / f"{case}.nii.gz", raw / "labelsTs" / f"{case}.nii.gz")
    document = json.loads((raw / "dataset.json").read_text())
    document["numTraining"] -= len(HELD_OUT)
    (raw / "dataset.json").write_text(json.dumps(document))
    with session_scope(str(settings.database_url)) as session:
        session.add(Dataset(id=dataset_id, name="tiny", path=relative(settings, raw.parent), spec=document))
    return dataset_id


def add_plan(settings: Settings, dataset_id: str, is_planned: bool) -> str:
    """A Plan row; with `is_planned`, planned and preprocessed here (no plan job needed)."""
    plan_id = new_id()
    folder = plan_dir(settings, dataset_id, plan_id)
    document = None
    if is_planned:
        options = PlanOptions(workers=1)
        document = plan_and_preprocess(raw_dir(settings, dataset_id), folder, options).to_json()
    with session_scope(str(settings.database_url)) as session:
        session.add(
            Plan(id=plan_id, dataset_id=dataset_id, path=relative(settings, folder), document=document)
        )
    return plan_id


def submit(
    settings: Settings,
    kind: JobKind,
    params: dict[str, Any],
    resource: Callable[[str], Base] | None = None,
) -> str:
    """Create a queued job (and the row `resource(job_id)` it works on) and send it, as the API
    does: the message only after the commit."""
    with session_scope(str(settings.database_url)) as session:
        job_id = create_job(session, kind, params).id
        if resource is not None:
            session.add(resource(job_id))
    task_id = enqueue(make_celery(settings), job_id, kind)
    with session_scope(str(settings.database_url)) as session:
        session.get(Job, job_id).task_id = task_id
    return job_id


def get_job(settings: Settings, job_id: str) -> Job:
    with session_scope(str(settings.database_url)) as session:
        return session.get(Job, job_id)


def wait_for(
    settings: Settings, job_id: str, condition: Callable[[Job], bool], timeout_s: float, what: str
) -> Job:
    deadline = time.monotonic() + timeout_s
    while True:
        job = get_job(settings, job_id)
        if condition(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} not {what} after {timeout_s} s: {job_state(settings, job)}")
        time.sleep(0.2)


def wait_until_final(settings: Settings, job_id: str, timeout_s: float) -> Job:
    return wait_for(settings, job_id, lambda job: job.status.is_final, timeout_s, "finished")


def job_log(settings: Settings, job_id: str) -> str:
    path = settings.data_root / "jobs" / job_id / "log.txt"
    return path.read_text() if path.is_file() else "(no log)"


def job_state(settings: Settings, job: Job) -> str:
    tail = job_log(settings, job.id)[-3000:]
    return f"{job.status} attempts={job.attempts} progress={job.progress} error={job.error}\n{tail}"


def assert_succeeded(settings: Settings, job_id: str, timeout_s: float) -> Job:
    job = wait_until_final(settings, job_id, timeout_s)
    assert job.status == JobStatus.succeeded, job_state(settings, job)
    return job


def worker_environment(settings: Settings, heartbeat_timeout_s: float) -> dict[str, str]:
    return {
        **os.environ,
        "NNSVC_DATA_ROOT": str(settings.data_root),
        "NNSVC_DATABASE_URL": str(settings.database_url),
        "NNSVC_BROKER_URL": str(settings.broker_url),
        "NNSVC_HEARTBEAT_TIMEOUT_S": str(heartbeat_timeout_s),
        "NNSVC_PROGRESS_INTERVAL_S": "0.2",
        "NNSVC_WORKER_DEVICE": "cpu",
    }


@dataclass
class Workers:
    """`nnsvc worker` processes started by a test; every one still alive is stopped at the end."""

    settings: Settings
    log_dir: Path
    heartbeat_timeout_s: float = 10.0
    processes: list[subprocess.Popen] = field(default_factory=list)

    def start(self) -> subprocess.Popen:
        """A worker serving both queues, returned once its reconciler reported it alive."""
        before = {worker["pid"] for worker in seen_workers(self.settings, within_s=3600)}
        log = (self.log_dir / f"worker-{len(self.processes)}.log").open("w")
        command = [str(Path(sys.executable).with_name("nnsvc")), "worker", "--queues", "cpu,gpu"]
        env = worker_environment(self.settings, self.heartbeat_timeout_s)
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.processes.append(process)
        deadline = time.monotonic() + WORKER_START_S
        while not {w["pid"] for w in seen_workers(self.settings, within_s=60)} - before:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker did not start:\n{self.log(len(self.processes) - 1)}")
            time.sleep(0.2)
        return process

    def log(self, index: int) -> str:
        return (self.log_dir / f"worker-{index}.log").read_text()

    def kill(self, process: subprocess.Popen) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill(process)
