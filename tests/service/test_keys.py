"""API keys: shown once, stored hashed, refused once revoked, last use recorded at most once a minute."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from service.db.models import ApiKey, Role
from service.db.session import session_scope
from service.keys import KeyNotFoundError, authenticate, create_key, list_keys, revoke_key
from service.settings import Settings

KEY_PATTERN = re.compile(r"nnsvc_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")


@pytest.fixture
def session(sqlite_settings: Settings) -> Iterator[Session]:
    with session_scope(str(sqlite_settings.database_url)) as session:
        yield session


def test_a_key_is_stored_only_as_its_hash(session: Session) -> None:
    key, plaintext = create_key(session, Role.trainer, "ci runner")
    assert KEY_PATTERN.fullmatch(plaintext)
    assert key.prefix == plaintext.split("_")[1]
    assert key.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    secret = plaintext.split("_", 2)[2]
    stored = [str(value) for value in vars(key).values()]
    assert not any(secret in value for value in stored)
    assert (key.role, key.label, key.revoked_at) == (Role.trainer, "ci runner", None)


def test_authenticate_finds_the_key_and_nothing_else(session: Session) -> None:
    key, plaintext = create_key(session, Role.viewer)
    other, _ = create_key(session, Role.admin)
    assert authenticate(session, plaintext) is key
    prefix = plaintext.split("_")[1]
    for wrong in [
        plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B"),  # same prefix, wrong secret
        f"nnsvc_{other.prefix}_{plaintext.split('_', 2)[2]}",  # another key's prefix
        f"nnsvc_{prefix}_",
        f"nnsvc_{prefix}",
        plaintext.replace("nnsvc_", "other_", 1),
        "",
        "Bearer " + plaintext,
    ]:
        assert authenticate(session, wrong) is None, wrong


def test_a_revoked_key_is_refused_and_stays_revoked(session: Session) -> None:
    key, plaintext = create_key(session, Role.predictor)
    first = datetime(2030, 1, 1, tzinfo=UTC)
    assert revoke_key(session, key.id, now=first).revoked_at == first
    assert revoke_key(session, key.id, now=first + timedelta(days=1)).revoked_at == first
    assert authenticate(session, plaintext) is None
    with pytest.raises(KeyNotFoundError, match="no API key has the id 999"):
        revoke_key(session, 999)


def test_last_use_is_written_at_most_once_a_minute(session: Session) -> None:
    key, plaintext = create_key(session, Role.evaluator)
    start = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    for offset_s, expected in [(0, start), (30, start), (59, start), (61, start + timedelta(seconds=61))]:
        authenticate(session, plaintext, now=start + timedelta(seconds=offset_s))
        assert key.last_used_at == expected, offset_s


def test_list_keys_shows_every_key_oldest_first(session: Session) -> None:
    made = [create_key(session, role)[0] for role in (Role.admin, Role.viewer, Role.trainer)]
    revoke_key(session, made[1].id)
    assert [key.id for key in list_keys(session)] == [key.id for key in made]


def test_keys_round_trip_through_postgresql(postgres_url: str) -> None:
    with session_scope(postgres_url) as session:
        key, plaintext = create_key(session, Role.admin, "ops")
        key_id = key.id
    with session_scope(postgres_url) as session:
        used = authenticate(session, plaintext)
        assert used is not None and used.id == key_id and used.last_used_at is not None
    with session_scope(postgres_url) as session:
        stored = session.get(ApiKey, key_id)
        assert stored is not None and stored.last_used_at is not None
        assert stored.last_used_at.tzinfo is not None
        revoke_key(session, key_id)
    with session_scope(postgres_url) as session:
        assert authenticate(session, plaintext) is None
