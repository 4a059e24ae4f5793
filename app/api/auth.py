"""Who is calling: the API key of a request, checked with `service.keys.authenticate` and remembered
for KEY_CACHE_TTL_S seconds.

A poller sends the same key many times a second; looking it up each time cost more than the rest of
a 304 answer. The cost of the cache: a revoked key keeps working for at most KEY_CACHE_TTL_S seconds in
each API process that saw it just before. Only keys that authenticated are remembered, by the SHA-256
of the token (never the token itself), and unknown tokens always reach the database.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from service.db.models import Role
from service.keys import authenticate

KEY_CACHE_TTL_S = 5.0
KEY_CACHE_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Caller:
    """The authenticated key, detached from any session: all that routes need to know about it."""

    key_id: int
    role: Role


class KeyCache:
    def __init__(self, ttl_s: float = KEY_CACHE_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: dict[str, tuple[float, Caller]] = {}

    def get(self, token: str) -> Caller | None:
        entry = self._entries.get(_digest(token))
        if entry is None or entry[0] <= self.clock():
            return None
        return entry[1]

    def put(self, token: str, caller: Caller) -> None:
        now = self.clock()
        if len(self._entries) >= KEY_CACHE_MAX_ENTRIES:
            self._entries = {digest: entry for digest, entry in self._entries.items() if entry[0] > now}
        self._entries[_digest(token)] = (now + self.ttl_s, caller)


def look_up(sessions: sessionmaker[Session], token: str) -> Caller | None:
    """Authenticate against the database (recording the key's last use) in a session of its own."""
    with sessions() as session:
        key = authenticate(session, token)
        if key is None:
            return None
        caller = Caller(key.id, key.role)
        session.commit()
    return caller


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
