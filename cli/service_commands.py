"""Service administration commands: `migrate` (the database schema) and `keys` (API keys).

Settings come from the NNSVC_ environment variables (or a `.env` file); `--data-root` and
`--database-url` override them for one call.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from service.db.models import Role
from service.db.session import session_scope
from service.keys import KeyNotFoundError, create_key, list_keys, revoke_key
from service.migrations import (
    DatabaseUnavailableError,
    SchemaOutOfDateError,
    ensure_schema_current,
    safe_url,
    upgrade,
)
from service.settings import Settings


class SettingsError(ValueError):
    """NNSVC_ settings (or their command-line overrides) that do not validate."""

    def __init__(self, error: ValidationError) -> None:
        self.problems = [f"{_setting_name(item['loc'])}: {item['msg']}" for item in error.errors()]
        super().__init__("; ".join(self.problems))


def _setting_name(location: tuple[int | str, ...]) -> str:
    if not location:
        return "settings"
    name = f"NNSVC_{str(location[0]).upper()}"
    return f"{name}[{'.'.join(map(str, location[1:]))}]" if len(location) > 1 else name


# Errors that are the user's to fix: cli.main prints them as one readable line each.
USER_ERRORS: tuple[type[Exception], ...] = (
    SchemaOutOfDateError,
    DatabaseUnavailableError,
    KeyNotFoundError,
    SettingsError,
)


def register(commands: argparse._SubParsersAction) -> None:
    settings_options = argparse.ArgumentParser(add_help=False)
    add_settings_options(settings_options)

    migrate = commands.add_parser(
        "migrate",
        parents=[settings_options],
        help="create or upgrade the service's database schema",
        description=(
            "Upgrade the database to the schema this version needs (run it after every nnsvc upgrade, "
            "before starting the API or workers). With no database URL set, the embedded SQLite "
            "database under the data root is created."
        ),
    )
    migrate.set_defaults(handler=run_migrate)

    keys = commands.add_parser(
        "keys",
        help="create, list and revoke API keys",
        description="API keys for `Authorization: Bearer <key>`; each key has one role.",
    )
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        parents=[settings_options],
        help="create a key and print it once",
        description="Print a new key on stdout; the database keeps only its hash, so store it now.",
    )
    create.add_argument(
        "--role",
        required=True,
        choices=[role.value for role in Role],
        help="what the key may do: admin (everything), trainer, predictor, evaluator, viewer (read only)",
    )
    create.add_argument("--label", default="", help="who or what uses the key, shown by `keys list`")
    create.set_defaults(handler=run_keys_create)
    listing = actions.add_parser(
        "list",
        parents=[settings_options],
        help="list every key (no secrets)",
        description="Every key's id, prefix, role, label and when it was created, last used and revoked.",
    )
    listing.set_defaults(handler=run_keys_list)
    revoke = actions.add_parser(
        "revoke",
        parents=[settings_options],
        help="revoke a key for good",
        description="Refuse the key from now on; its row stays, so `keys list` still shows who had it.",
    )
    revoke.add_argument("key_id", type=int, metavar="ID", help="the key's id, as `keys list` shows it")
    revoke.set_defaults(handler=run_keys_revoke)


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-root",
        type=Path,
        help="folder for the service's files and the embedded database (default: NNSVC_DATA_ROOT, "
        "else ./nnsvc-data)",
    )
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL of the database (default: NNSVC_DATABASE_URL, else SQLite in the data root)",
    )


def settings_from(arguments: argparse.Namespace) -> Settings:
    """The NNSVC_ settings with the options given on the command line taken over."""
    overrides = {
        name: value
        for name in ("data_root", "database_url")
        if (value := getattr(arguments, name, None)) is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(error) from error


def run_migrate(arguments: argparse.Namespace) -> int:
    url = str(settings_from(arguments).database_url)
    before, after = upgrade(url)
    where = f"database {safe_url(url)}"
    if before == after:
        print(f"{where}: already at revision {after} (head), nothing to do")
    else:
        print(f"{where}: upgraded from {before or '(empty)'} to {after} (head)")
    return 0


def run_keys_create(arguments: argparse.Namespace) -> int:
    url = _current_database(arguments)
    with session_scope(url) as session:
        key, plaintext = create_key(session, Role(arguments.role), arguments.label)
        key_id = key.id
    # The key alone on stdout, so that `KEY=$(nnsvc keys create ...)` captures just the key.
    print(plaintext)
    print(
        f"created API key {key_id} (role {arguments.role}); it will not be shown again: store it now",
        file=sys.stderr,
    )
    return 0


def run_keys_list(arguments: argparse.Namespace) -> int:
    with session_scope(_current_database(arguments)) as session:
        rows = [
            [
                str(key.id),
                key.prefix,
                key.role.value,
                key.label,
                _when(key.created_at),
                _when(key.last_used_at),
                _when(key.revoked_at),
            ]
            for key in list_keys(session)
        ]
    if not rows:
        print("no API keys yet; create one with `nnsvc keys create --role admin`")
        return 0
    header = ["id", "prefix", "role", "label", "created (UTC)", "last used", "revoked"]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def run_keys_revoke(arguments: argparse.Namespace) -> int:
    with session_scope(_current_database(arguments)) as session:
        key = revoke_key(session, arguments.key_id)
        print(
            f"API key {key.id} ({key.role.value}, {key.label or 'no label'}) revoked {_when(key.revoked_at)}"
        )
    return 0


def _current_database(arguments: argparse.Namespace) -> str:
    url = str(settings_from(arguments).database_url)
    ensure_schema_current(url)
    return url


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M")
