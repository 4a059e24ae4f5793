"""Fixtures of the worker tests: settings for PostgreSQL + Redis and for the embedded default, worker
processes, and a private Redis server that a test may restart."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from service.settings import Settings
from tests.service.conftest import (  # noqa: F401 - fixtures shared with the service tests
    _migrated_postgres_template,
    _migrated_sqlite_file,
    postgres_url,
    redis_url,
    sqlite_settings,
)
from tests.worker.support import Workers


def server_settings(tmp_path: Path, database_url: str, broker_url: str) -> Settings:
    data_root = tmp_path / "data"
    data_root.mkdir(exist_ok=True)
    return Settings(_env_file=None, data_root=data_root, database_url=database_url, broker_url=broker_url)


@pytest.fixture
def make_workers(tmp_path: Path) -> Iterator[Callable[..., Workers]]:
    """`make_workers(settings, heartbeat_timeout_s=...)`; every worker still running is stopped after."""
    groups: list[Workers] = []

    def make(settings: Settings, heartbeat_timeout_s: float = 10.0) -> Workers:
        groups.append(Workers(settings, tmp_path, heartbeat_timeout_s))
        return groups[-1]

    yield make
    for group in groups:
        group.stop_all()


class RedisServer:
    """A redis-server of this test alone, keeping nothing on disk: a restart comes back empty."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.folder = folder
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.folder)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        """Killed and started again: every queue and every unacknowledged message is gone."""
        self.stop()
        self.start()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
