"""docker-compose.yml, the Dockerfile and .env.example agree with the code, and the check notices drift."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from service.settings import Settings
from tests.deploy.deployment_check import check_deployment

ROOT = Path(__file__).resolve().parents[2]
FILES = ["docker-compose.yml", "Dockerfile", ".env.example", "scripts/setup-venv.sh"]


def test_the_deployment_files_agree_with_the_code() -> None:
    assert check_deployment(ROOT) == []


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        pytest.param(
            "docker-compose.yml",
            "  worker-gpu:",
            "  gpu-worker:",
            "service worker-gpu is missing",
            id="service renamed",
        ),
        pytest.param(
            "docker-compose.yml",
            "NNSVC_WORKER_DEVICE: cuda",
            "NNSVC_DEVICE: cuda",
            "docker-compose.yml: NNSVC_DEVICE is not a setting",
            id="variable renamed",
        ),
        pytest.param(
            ".env.example",
            "# NNSVC_MAX_ATTEMPTS=3\n",
            "",
            "the setting max_attempts (NNSVC_MAX_ATTEMPTS) is missing",
            id="setting left out",
        ),
        pytest.param(
            ".env.example",
            "NNSVC_MAX_UPLOAD_MB=2048",
            "NNSVC_MAX_UPLOAD_MB=4096",
            "NNSVC_MAX_UPLOAD_MB=4096 is not the default of max_upload_mb",
            id="stale default",
        ),
        pytest.param(
            ".env.example",
            "POSTGRES_DB=nnsvc\n",
            "",
            "${POSTGRES_DB} is not defined in .env.example",
            id="interpolated variable undefined",
        ),
        pytest.param(
            "docker-compose.yml",
            '["migrate"]',
            '["migrate", "--no-such-flag"]',
            "migrate runs `nnsvc migrate --no-such-flag`: nnsvc: error: unrecognized arguments",
            id="command option unknown",
        ),
        pytest.param(
            "docker-compose.yml",
            "target: gpu",
            "target: cuda",
            "worker-gpu builds stage cuda",
            id="stage missing",
        ),
        pytest.param(
            "docker-compose.yml",
            '"${API_PORT:-8000}:8000"',
            '"${API_PORT:-8000}:8080"',
            "api publishes ${API_PORT:-8000}:8080",
            id="port drifted",
        ),
        pytest.param(
            "docker-compose.yml",
            "condition: service_completed_successfully",
            "condition: service_started",
            "must start after migrate completed successfully",
            id="migration not awaited",
        ),
        pytest.param(
            "Dockerfile",
            "ARG TORCH_VERSION=2.13.0",
            "ARG TORCH_VERSION=2.12.0",
            "differs from the torch pin",
            id="torch pin drifted",
        ),
    ],
)
def test_the_check_fails_when_a_file_drifts(
    tmp_path: Path, file: str, old: str, new: str, expected: str
) -> None:
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, tmp_path / name)
    assert not any(expected in problem for problem in check_deployment(tmp_path))
    text = (tmp_path / file).read_text()
    assert old in text
    (tmp_path / file).write_text(text.replace(old, new))
    problems = check_deployment(tmp_path)
    assert any(expected in problem for problem in problems), problems


def test_the_worker_health_check_follows_the_heartbeat(tmp_path: Path) -> None:
    """The same check in the GPU image and for the CPU worker; healthy once this host's worker beats."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["x-worker-healthcheck"]["test"][1:]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"CMD {json.dumps(command)}" in dockerfile
    environment = {**os.environ, "NNSVC_DATA_ROOT": str(tmp_path)}
    script = command[command.index("-c") + 1]

    def healthy() -> bool:
        return subprocess.run([sys.executable, "-c", script], env=environment, cwd=tmp_path).returncode == 0

    assert not healthy()
    from service.workers import record_worker  # the worker's own record; imported here to fail alone

    record_worker(
        Settings(_env_file=None, data_root=tmp_path), f"nnsvc-gpu-1@{socket.gethostname()}", ("gpu",)
    )
    assert healthy()
    assert re.search(r"CMD \[\"python\", \"-c\", \"import urllib", dockerfile), (
        "the API image checks /healthz"
    )
