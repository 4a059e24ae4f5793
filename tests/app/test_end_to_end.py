"""The service as a client meets it: HTTP to a real API process and a real `nnsvc worker` process, against
PostgreSQL + Redis, and the same through `nnsvc serve` in the embedded default (SQLite, no Redis).
Create keys, upload a generated dataset archive, plan, train a tiny budget, get the model, predict a
held-out case, download a segmentation with the input's geometry, evaluate with thresholds."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import SimpleITK as sitk

from service.db.models import Role
from service.db.session import session_scope
from service.keys import create_key
from service.settings import Settings
from service.workers import seen_workers
from tests.app.support import tiny_dataset, zip_folder
from tests.service.conftest import (  # noqa: F401 - the shared PostgreSQL and Redis fixtures
    _migrated_postgres_template,
    postgres_url,
    redis_url,
)
from tests.worker.support import worker_environment

NNSVC = str(Path(sys.executable).with_name("nnsvc"))
HELD_OUT = ("case_006", "case_007")
START_S = 180.0
JOB_TIMEOUT_S = 600.0


@dataclass
class Service:
    url: str
    settings: Settings
    logs: list[Path]

    def key(self, role: str) -> dict[str, str]:
        """As `nnsvc keys create` makes one (tests/service runs that command; it costs a process here)."""
        with session_scope(str(self.settings.database_url)) as session:
            _, plaintext = create_key(session, Role(role), label="end-to-end")
        return {"Authorization": f"Bearer {plaintext}"}

    def tail(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-4000:]}" for log in self.logs)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_ready(service: Service, processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        assert all(process.poll() is None for process in processes), service.tail()
        try:
            if httpx.get(f"{service.url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"not ready after {START_S} s\n{service.tail()}")


@pytest.fixture(params=["postgres+redis", "embedded"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    data_root, port = tmp_path / "data", free_port()
    data_root.mkdir()
    url = f"http://127.0.0.1:{port}"
    if request.param == "embedded":
        settings = Settings(_env_file=None, data_root=data_root)
        env = {**worker_environment(settings, heartbeat_timeout_s=60), "NNSVC_DATA_ROOT": str(data_root)}
        del env["NNSVC_DATABASE_URL"], env["NNSVC_BROKER_URL"]  # nothing set: the embedded default
        log = tmp_path / "serve.log"
        serve = start([NNSVC, "serve", "--data-root", str(data_root), "--port", str(port)], env, log)
        running = Service(url, settings, [log])
        wait_ready(running, [serve])
        yield running
        stop_serve(serve, settings, running)
        return
    settings = Settings(
        _env_file=None,
        data_root=data_root,
        database_url=request.getfixturevalue("postgres_url"),
        broker_url=request.getfixturevalue("redis_url"),
    )
    env = worker_environment(settings, heartbeat_timeout_s=60)
    logs = [tmp_path / "api.log", tmp_path / "worker.log"]
    api = start([NNSVC, "api", "--port", str(port)], env, logs[0])
    worker = start([NNSVC, "worker", "--queues", "cpu,gpu"], env, logs[1])
    running = Service(url, settings, logs)
    try:
        wait_ready(running, [api, worker])
        yield running
    finally:
        for process in (api, worker):
            process.send_signal(signal.SIGTERM)
        for process in (api, worker):
            process.wait(timeout=60)


def stop_serve(serve: subprocess.Popen, settings: Settings, service: Service) -> None:
    """Ctrl-C: the API and its worker both stop."""
    worker_pids = [worker["pid"] for worker in seen_workers(settings, within_s=3600)]
    assert worker_pids, service.tail()
    serve.send_signal(signal.SIGINT)
    assert serve.wait(timeout=90) in (0, 130), service.tail()
    for pid in worker_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def dataset_archive(folder: Path) -> Path:
    """8 small 2D cases; two move to imagesTs/ + labelsTs/ for the evaluation."""
    raw = tiny_dataset(folder / "Dataset004_Tiny", seed=1, num_cases=8, shape=(1, 48, 48))
    (raw / "imagesTs").mkdir()
    (raw / "labelsTs").mkdir()
    for case in HELD_OUT:
        shutil.move(raw / "imagesTr" / f"{case}_0000.nii.gz", raw / "imagesTs" / f"{case}_0000.nii.gz")
        shutil.move(raw / "labelsTr" / f"{case}.nii.gz", raw / "labelsTs" / f"{case}.nii.gz")
    document = json.loads((raw / "dataset.json").read_text())
    (raw / "dataset.json").write_text(json.dumps({**document, "numTraining": 6}))
    return zip_folder(raw, folder / "dataset.zip", top=raw.name)


def wait_for_job(client: httpx.Client, service: Service, job_id: str) -> dict:
    """Poll as a client should: If-None-Match with the last ETag, so unchanged polls cost a 304."""
    etag, job, deadline = None, None, time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        response = client.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": etag} if etag else {})
        if response.status_code == 200:
            job, etag = response.json(), response.headers["ETag"]
            if job["status"] in ("succeeded", "failed", "cancelled"):
                assert job["status"] == "succeeded", f"{json.dumps(job, indent=1)}\n{service.tail()}"
                return job
        else:
            assert response.status_code == 304, response.text
        time.sleep(0.5)
    raise AssertionError(
        f"job {job_id} still {job and job['status']} after {JOB_TIMEOUT_S} s\n{service.tail()}"
    )


def geometry(image: sitk.Image) -> tuple:
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


@pytest.mark.slow
def test_upload_plan_train_predict_evaluate_over_http(service: Service, tmp_path: Path) -> None:
    trainer, predictor, evaluator = (service.key(role) for role in ("trainer", "predictor", "evaluator"))
    http = httpx.Client(base_url=service.url, timeout=60)
    archive = dataset_archive(tmp_path)
    with archive.open("rb") as stream:
        uploaded = http.post(
            "/v1/datasets/upload", headers=trainer, files={"archive": (archive.name, stream)}
        )
    assert uploaded.status_code == 201, uploaded.text
    dataset = uploaded.json()
    assert (dataset["num_training"], dataset["num_test"]) == (6, 2)

    planned = http.post(
        "/v1/plans", headers=trainer, json={"dataset_id": dataset["id"], "configurations": ["2d"]}
    )
    assert planned.status_code == 202, planned.text
    with httpx.Client(base_url=service.url, headers=trainer, timeout=60) as as_trainer:
        wait_for_job(as_trainer, service, planned.json()["job"]["id"])
        plan = as_trainer.get(f"/v1/plans/{planned.json()['plan']['id']}").json()
        assert list(plan["document"]["configurations"]) == ["2d"]
        assert as_trainer.get(f"/v1/datasets/{dataset['id']}").json()["has_fingerprint"]

        body = {"plan_id": plan["id"], "configurations": ["2d"], "folds": [0], "epochs": 2}
        body |= {"iterations_per_epoch": 2, "validation_iterations": 1, "model_name": "tiny"}
        training = as_trainer.post("/v1/trainings", json=body)
        assert training.status_code == 202, training.text
        parent = wait_for_job(as_trainer, service, training.json()["id"])
        assert [(child["kind"], child["status"]) for child in parent["children"]] == [
            ("train_fold", "succeeded"),
            ("select", "succeeded"),
        ]

    model = http.get("/v1/models/tiny:latest", headers=predictor).json()
    assert (model["version"], model["configurations"], model["folds"]) == (1, ["2d"], [0])

    case = tmp_path / "Dataset004_Tiny" / "imagesTs" / f"{HELD_OUT[0]}_0000.nii.gz"
    posted = http.post(
        "/v1/predictions",
        headers={**predictor, "Idempotency-Key": "e2e-1"},
        data={"model": "tiny:latest", "case_id": HELD_OUT[0]},
        files=[("channels", (case.name, case.read_bytes()))],
    )
    assert posted.status_code == 202, posted.text
    with httpx.Client(base_url=service.url, headers=predictor, timeout=60) as as_predictor:
        wait_for_job(as_predictor, service, posted.json()["job"]["id"])
        prediction = as_predictor.get(f"/v1/predictions/{posted.json()['prediction']['id']}").json()
        download = as_predictor.get(prediction["segmentation_url"])
    assert download.status_code == 200
    (tmp_path / "segmentation.nii.gz").write_bytes(download.content)
    segmentation = sitk.ReadImage(str(tmp_path / "segmentation.nii.gz"))
    assert geometry(segmentation) == geometry(sitk.ReadImage(str(case)))

    body = {
        "model": "tiny",
        "dataset_id": dataset["id"],
        "thresholds": {"foreground_mean": 0.0, "organ": 0.0},
    }
    evaluation = http.post("/v1/evaluations", headers=evaluator, json=body)
    assert evaluation.status_code == 202, evaluation.text
    with httpx.Client(base_url=service.url, headers=evaluator, timeout=60) as as_evaluator:
        wait_for_job(as_evaluator, service, evaluation.json()["job"]["id"])
        result = as_evaluator.get(f"/v1/evaluations/{evaluation.json()['evaluation']['id']}").json()
    assert result["passed"] is True
    assert (
        len(result["summary"]["metric_per_case"]) == len(HELD_OUT) and "foreground_mean" in result["summary"]
    )
