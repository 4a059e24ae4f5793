"""Alembic's entry script: compares and migrates against the service's models.

The URL comes from the config's `sqlalchemy.url` when the caller set one (service.migrations does),
otherwise from the service settings (NNSVC_DATABASE_URL or the embedded SQLite default).
"""

from __future__ import annotations

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import create_engine, pool

import service.db.models  # noqa: F401 - registers every table on Base.metadata
from service.db.base import Base, UtcDateTime
from service.settings import get_settings

# Batch mode ("move and copy") lets one script ALTER tables on SQLite as well as on PostgreSQL.
OPTIONS = {"target_metadata": Base.metadata, "render_as_batch": True, "compare_type": True}


def render_item(kind: str, item: object, _context: AutogenContext) -> str | bool:
    """Drafts name the plain column type, so a revision never imports the application's types."""
    if kind == "type" and isinstance(item, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def database_url() -> str:
    return context.config.get_main_option("sqlalchemy.url") or str(get_settings().database_url)


def run_offline() -> None:
    """`--sql`: writes the migration as SQL text for a database administrator to review and run."""
    context.configure(url=database_url(), literal_binds=True, render_item=render_item, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    # No pool and none of the application's SQLite pragmas: with foreign keys enforced, the table copy
    # of a batch migration would cascade deletes into the referencing tables.
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, render_item=render_item, **OPTIONS)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
