"""Engines and sessions. SQLite gets WAL and a busy timeout so the API and a worker can share the
file; PostgreSQL gets a pre-ping so a restarted server costs one reconnect, not an error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """One engine per URL and process (engines hold connection pools)."""
    return make_engine(url)


def make_engine(
    url: str, *, pool_size: int = 10, max_overflow: int = 20, autocommit: bool = False, pre_ping: bool = True
) -> Engine:
    """A new engine; most code wants get_engine's shared one. `autocommit` (PostgreSQL) runs every
    statement in a transaction of its own, without BEGIN, ROLLBACK or reset round trips: for readers.
    SQLite's driver opens no transaction for a SELECT anyway. Without `pre_ping` a connection the
    server dropped fails one statement (and is replaced) instead of costing a round trip per checkout."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=max_overflow,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    transactions = {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None} if autocommit else {}
    return create_engine(
        url, pool_pre_ping=pre_ping, pool_size=pool_size, max_overflow=max_overflow, **transactions
    )


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with session_factory(url)() as session, session.begin():
        yield session
