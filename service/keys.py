"""API keys: made, checked, listed and revoked here; the API and the CLI both call these.

A key reads `nnsvc_<prefix>_<secret>` and is shown once. The database keeps the prefix (to find the
row without scanning) and the SHA-256 of the whole key, compared in constant time. A plain fast
hash is enough, unlike for passwords: the secret is 256 random bits, so there is nothing to guess
from the hash.

The functions take the caller's session and only flush; the caller's transaction commits, so that
creating a key and recording who did it land together.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.base import utc_now
from service.db.models import ApiKey, Role

SCHEME = "nnsvc"
PREFIX_BYTES = 4
SECRET_BYTES = 32
# Writing last_used_at on every request would turn each authenticated GET into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class KeyNotFoundError(LookupError):
    """No API key has this id."""


def create_key(session: Session, role: Role, label: str = "") -> tuple[ApiKey, str]:
    """A new key for `role`; returns the row and the plaintext, which is never stored."""
    prefix = secrets.token_hex(PREFIX_BYTES)
    plaintext = f"{SCHEME}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
    key = ApiKey(prefix=prefix, key_hash=_digest(plaintext), role=Role(role), label=label)
    session.add(key)
    session.flush()
    return key, plaintext


def authenticate(session: Session, token: str, *, now: datetime | None = None) -> ApiKey | None:
    """The live key that `token` is, or None (malformed, unknown or revoked)."""
    scheme, _, rest = token.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != SCHEME or not prefix or not secret:
        return None
    digest = _digest(token)
    rows = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix))
    key = next((row for row in rows if hmac.compare_digest(row.key_hash, digest)), None)
    if key is None or key.revoked_at is not None:
        return None
    now = now or utc_now()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        key.last_used_at = now
        session.flush()
    return key


def list_keys(session: Session) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_key(session: Session, key_id: int, *, now: datetime | None = None) -> ApiKey:
    """Revokes a key for good; revoking it again keeps the first revocation time."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise KeyNotFoundError(f"no API key has the id {key_id}; `nnsvc keys list` shows the ids")
    if key.revoked_at is None:
        key.revoked_at = now or utc_now()
        session.flush()
    return key


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
