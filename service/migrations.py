"""Front doors to the database schema: upgrade, downgrade, and the check the API and workers run at
startup so that they never serve an out-of-date schema.

The Alembic configuration is built here in code rather than read from an `alembic.ini`, so it works
from any working directory and from an installed wheel: the scripts live in the top-level
`migrations` folder, which pyproject installs as a package beside `service/` (a sibling in the
source tree and in site-packages alike).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, create_engine, make_url, pool
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
MIGRATE_COMMAND = "nnsvc migrate"


class SchemaOutOfDateError(RuntimeError):
    """The database's schema is not the one this version of nnsvc was written for."""


class DatabaseUnavailableError(RuntimeError):
    """The URL is unusable or no connection could be opened; the message hides the password."""


def safe_url(url: str) -> str:
    """The URL as it may appear in messages and logs: the password replaced by ***."""
    return _parse(url).render_as_string(hide_password=True)


def alembic_config(url: str) -> Config:
    """An Alembic config for `url`; migrations/env.py reads the URL back from `sqlalchemy.url`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    # ConfigParser interpolates `%`, which URL-encoded passwords contain.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The revision this code's models correspond to."""
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration scripts found in {MIGRATIONS_DIR}")
    return head


def current_revision(url: str) -> str | None:
    """The database's revision; None for an empty database (or a SQLite file not created yet)."""
    if _is_missing_sqlite_file(url):
        return None
    with _connection(url) as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrates to `revision` and returns (revision before, revision after).

    For a SQLite file the folder holding it is created first (the embedded default's data root).
    """
    if _is_sqlite_file(url):
        Path(str(_parse(url).database)).parent.mkdir(parents=True, exist_ok=True)
    before = current_revision(url)
    command.upgrade(alembic_config(url), revision)
    return before, current_revision(url)


def downgrade(url: str, revision: str) -> tuple[str | None, str | None]:
    """Migrates down to `revision` ("base" removes every table, "-1" goes one step back)."""
    before = current_revision(url)
    command.downgrade(alembic_config(url), revision)
    return before, current_revision(url)


def ensure_schema_current(url: str) -> None:
    """Raises SchemaOutOfDateError, saying what to run, unless the database is at the head revision."""
    current = current_revision(url)
    scripts = ScriptDirectory(str(MIGRATIONS_DIR))
    known = {script.revision for script in scripts.walk_revisions()}
    problem = schema_problem(current, head_revision(), known)
    if problem is not None:
        raise SchemaOutOfDateError(f"the database {safe_url(url)} {problem}")


def schema_problem(current: str | None, head: str, known: set[str]) -> str | None:
    """What is wrong with a database at `current` for code whose newest revision is `head`."""
    if current == head:
        return None
    if current is None:
        return f"has no schema yet; run `{MIGRATE_COMMAND}` with the same settings to create it"
    if current not in known:
        return (
            f"is at revision {current}, which this version of nnsvc does not know: a newer nnsvc "
            "migrated it; run that version, or downgrade the database with it"
        )
    return f"is at revision {current} but this version of nnsvc needs {head}; run `{MIGRATE_COMMAND}`"


@contextmanager
def _connection(url: str) -> Iterator[Connection]:
    # A private engine without pooling: these calls are rare, and the app's cached engine (with its
    # pragmas and pool) should not hold a connection to a database that is being migrated.
    try:
        engine = create_engine(_parse(url), poolclass=pool.NullPool)
    except NoSuchModuleError as error:
        raise DatabaseUnavailableError(f"cannot use the database {safe_url(url)}: {error}") from error
    try:
        try:
            connection = engine.connect()
        except OperationalError as error:
            reason = str(error.orig or error).strip().splitlines()[0]
            raise DatabaseUnavailableError(
                f"cannot connect to the database {safe_url(url)}: {reason}"
            ) from error
        with connection:
            yield connection
    finally:
        engine.dispose()


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError as error:
        # The message leaves out the URL on purpose: an unparseable one may hold a password in clear.
        raise DatabaseUnavailableError(f"not a database URL that SQLAlchemy can read: {error}") from error


def _is_sqlite_file(url: str) -> bool:
    parsed = _parse(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")


def _is_missing_sqlite_file(url: str) -> bool:
    return _is_sqlite_file(url) and not Path(str(_parse(url).database)).exists()
