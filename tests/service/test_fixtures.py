"""The shared fixtures of conftest.py give what they promise, so the API and worker tests can rely on them."""

from __future__ import annotations

import fcntl
import tempfile
from pathlib import Path

import pytest
import redis

from service.migrations import ensure_schema_current
from service.settings import Settings


def test_sqlite_settings_are_migrated_and_under_tmp_path(sqlite_settings: Settings, tmp_path: Path) -> None:
    assert sqlite_settings.data_root == tmp_path / "data"
    assert sqlite_settings.is_embedded
    ensure_schema_current(str(sqlite_settings.database_url))


def test_postgres_url_is_migrated(postgres_url: str) -> None:
    ensure_schema_current(postgres_url)


def test_redis_url_is_empty_and_held_by_this_test_only(redis_url: str) -> None:
    number = int(redis_url.rsplit("/", 1)[1])
    assert 1 <= number <= 15
    client = redis.Redis.from_url(redis_url)
    assert client.dbsize() == 0
    client.close()
    lock = Path(tempfile.gettempdir()) / "nnsvc-test-redis-locks" / f"db{number}.lock"
    with lock.open("w") as other, pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
