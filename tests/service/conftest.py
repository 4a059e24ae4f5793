"""Database and broker fixtures for the service's tests (migrations, keys, API, workers).

- `sqlite_settings`: `Settings` for a fresh data root under the test's tmp_path, its SQLite database
  already at the head revision; broker = the embedded SQLite one. No `.env` file is read; NNSVC_
  variables other than the data root and the two URLs still apply.
- `postgres_url`: the URL of a fresh PostgreSQL database at the head revision, dropped after the test.
  Cheap: it is copied from a template migrated once per test session.
- `empty_postgres_url`: the same, without any table (for migration tests).
- `redis_url`: `redis://127.0.0.1:6379/N` for a database number N in 1..15 that no other test on this
  machine holds (a file lock per number, released when the test or its process ends), flushed before
  and after the test. Number 0 is left to whoever shares the server.

The servers are the machine's: PostgreSQL on 127.0.0.1:5432 (user postgres, trust authentication)
and Redis on 127.0.0.1:6379. A test that asks for one fails, saying so, when it is not running.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from service.db.session import get_engine
from service.migrations import upgrade
from service.settings import Settings

POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
POSTGRES_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
REDIS_SERVER = "redis://127.0.0.1:6379"
REDIS_DB_NUMBERS = range(1, 16)
REDIS_WAIT_S = 120.0


def _admin() -> psycopg.Connection:
    try:
        return psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is needed at 127.0.0.1:5432 (user postgres) for this test: {error}")


def _create_database(template: str | None = None) -> str:
    name = f"nnsvc_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return name


def _drop_database(name: str) -> None:
    url = f"{POSTGRES_SERVER}/{name}"
    get_engine(url).dispose()  # the application's cached pool, if the test used it
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _migrated_postgres_template() -> Iterator[str]:
    name = _create_database()
    try:
        upgrade(f"{POSTGRES_SERVER}/{name}")
        yield name
    finally:
        _drop_database(name)


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database with no table in it."""
    name = _create_database()
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        _drop_database(name)


@pytest.fixture
def postgres_url(_migrated_postgres_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database at the head revision."""
    name = _create_database(template=_migrated_postgres_template)
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        _drop_database(name)


@pytest.fixture(scope="session")
def _migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite_template") / "nnsvc.sqlite3"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_settings(tmp_path: Path, _migrated_sqlite_file: Path) -> Settings:
    """Settings of an embedded service under tmp_path/data, its database at the head revision."""
    data_root = tmp_path / "data"
    data_root.mkdir()
    shutil.copyfile(_migrated_sqlite_file, data_root / "nnsvc.sqlite3")
    return Settings(
        _env_file=None,
        data_root=data_root,
        database_url=f"sqlite:///{data_root / 'nnsvc.sqlite3'}",
        broker_url=f"sqla+sqlite:///{data_root / 'broker.sqlite3'}",
    )


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database number that only this test uses, empty at the start."""
    lock_dir = Path(tempfile.gettempdir()) / "nnsvc-test-redis-locks"
    lock_dir.mkdir(exist_ok=True)
    deadline = time.monotonic() + REDIS_WAIT_S
    while True:
        for number in REDIS_DB_NUMBERS:
            lock = (lock_dir / f"db{number}.lock").open("w")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            try:
                yield from _flushed_redis(f"{REDIS_SERVER}/{number}")
            finally:
                lock.close()
            return
        if time.monotonic() > deadline:
            pytest.fail(f"every Redis database number 1..15 stayed taken for {REDIS_WAIT_S:.0f} s")
        time.sleep(0.2)


def _flushed_redis(url: str) -> Iterator[str]:
    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        client.flushdb()
    except redis.ConnectionError as error:
        pytest.fail(f"Redis is needed at 127.0.0.1:6379 for this test: {error}")
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
