"""`nnsvc migrate` and `nnsvc keys`, run through the command line's entry point."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cli.main import main
from service.db.models import Role
from service.db.session import session_scope
from service.keys import authenticate
from service.migrations import head_revision


@pytest.fixture(autouse=True)
def isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only the command line's options count: no NNSVC_ variable, no .env file in the cwd."""
    for name in [name for name in os.environ if name.startswith("NNSVC_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_migrate_then_create_list_and_revoke_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = ["--data-root", str(tmp_path / "new" / "data")]
    head = head_revision()
    assert run(capsys, "migrate", *root) == (
        0,
        f"database sqlite:///{tmp_path}/new/data/nnsvc.sqlite3: upgraded from (empty) to {head} (head)\n",
        "",
    )
    code, out, _ = run(capsys, "migrate", *root)
    assert (code, out.endswith(f"already at revision {head} (head), nothing to do\n")) == (0, True)

    code, out, err = run(capsys, "keys", "create", "--role", "trainer", "--label", "ci runner", *root)
    plaintext = out.strip()
    assert code == 0 and plaintext.startswith("nnsvc_") and "\n" not in plaintext
    assert "created API key 1 (role trainer); it will not be shown again" in err

    code, out, _ = run(capsys, "keys", "list", *root)
    header, row = out.splitlines()
    assert header.split() == ["id", "prefix", "role", "label", "created", "(UTC)", "last", "used", "revoked"]
    assert row.split()[:5] == ["1", plaintext.split("_")[1], "trainer", "ci", "runner"]
    assert row.endswith("-") and plaintext not in out

    code, out, _ = run(capsys, "keys", "revoke", "1", *root)
    assert code == 0 and out.startswith("API key 1 (trainer, ci runner) revoked ")
    assert not run(capsys, "keys", "list", *root)[1].splitlines()[1].endswith("-")
    with session_scope(f"sqlite:///{tmp_path}/new/data/nnsvc.sqlite3") as session:
        assert authenticate(session, plaintext) is None


def test_keys_on_an_unmigrated_database_say_to_run_migrate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "keys", "list", "--data-root", str(tmp_path))
    assert (code, out) == (1, "")
    assert "has no schema yet; run `nnsvc migrate`" in err


def test_an_unknown_role_lists_the_valid_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["keys", "create", "--role", "boss", "--data-root", str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'boss'" in err
    assert all(role.value in err for role in Role)


def test_revoking_an_unknown_key_is_one_readable_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "migrate", "--data-root", str(tmp_path))
    assert run(capsys, "keys", "revoke", "42", "--data-root", str(tmp_path)) == (
        1,
        "",
        "error: no API key has the id 42; `nnsvc keys list` shows the ids\n"
        "  what to do: `nnsvc keys list` shows every key's id\n",
    )


def test_an_unreachable_database_is_named_without_its_password(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "migrate", "--database-url", "postgresql+psycopg://ops:s3cret@127.0.0.1:1/nnsvc"
    )
    assert code == 1
    assert "cannot connect to the database postgresql+psycopg://ops:***@127.0.0.1:1/nnsvc" in err
    assert "s3cret" not in err and "Traceback" not in err


def test_environment_settings_apply_and_bad_ones_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NNSVC_DATA_ROOT", str(tmp_path / "from-env"))
    assert run(capsys, "migrate")[0] == 0
    assert (tmp_path / "from-env" / "nnsvc.sqlite3").is_file()
    monkeypatch.setenv("NNSVC_MAX_UPLOAD_MB", "lots")
    code, _, err = run(capsys, "keys", "list")
    assert code == 1 and "NNSVC_MAX_UPLOAD_MB: Input should be a valid integer" in err


def test_migrate_upgrades_postgresql(empty_postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "migrate", "--database-url", empty_postgres_url)
    assert (code, out.endswith(f"upgraded from (empty) to {head_revision()} (head)\n")) == (0, True)
