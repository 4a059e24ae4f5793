"""A person's mistakes end in one readable line and a line saying what to do, exit code 1 (2 for wrong
usage), never a traceback; --debug gives the traceback for a bug report."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cli import main as cli_main
from cli.main import main
from core.plans import PlansError

MISTAKES = {
    "training_without_plans": (
        ["train", "{tmp}/missing", "-c", "2d", "-f", "0", "-o", "{tmp}/model"],
        "plans file not found",
        "pass the output folder of `nnsvc plan`",
    ),
    "predicting_with_an_untrained_model": (
        ["predict", "{tmp}", "-i", "{tmp}", "-o", "{tmp}/out"],
        "no selection.json",
        "`nnsvc predict --help`",
    ),
    "keys_before_migrating": (
        ["keys", "list", "--data-root", "{tmp}/root"],
        "has no schema yet",
        "run `nnsvc migrate`",
    ),
    "a_database_that_is_down": (
        ["keys", "list", "--database-url", "postgresql+psycopg://nobody@127.0.0.1:9/none"],
        "cannot connect to the database",
        "start the database",
    ),
    "a_demo_in_someone_elses_folder": (
        ["demo", "--workdir", "{tmp}"],
        "holds files that an earlier demo did not write",
        "pass --workdir with a new or empty folder",
    ),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_a_mistake_is_one_line_and_what_to_do(
    mistake: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, problem, advice = MISTAKES[mistake]
    (tmp_path / "notes.txt").write_text("not the demo's")
    assert main([argument.format(tmp=tmp_path) for argument in argv]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("error: ") and problem in lines[0]
    assert lines[1].startswith("  what to do: ") and advice in lines[1]


def test_several_problems_are_listed_one_per_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["demo", "--workdir", str(tmp_path / "demo"), "--cases", "3", "--test-cases", "0"]
    assert main(argv) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "error: 2 problems:"
    assert [line[:4] for line in lines[1:3]] == ["  - ", "  - "]
    assert lines[3].startswith("  what to do: ")


def test_wrong_usage_exits_2_with_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["plan", "raw", "-o", "out", "--preset", "huge"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "usage: nnsvc plan" in error and "invalid choice: 'huge'" in error


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    with pytest.raises(PlansError):
        main(["--debug", "train", str(tmp_path), "-c", "2d", "-f", "0", "-o", str(tmp_path / "m")])


def test_a_bug_says_to_rerun_with_debug(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(_arguments: object) -> int:
        raise KeyError("internal")

    parser = cli_main.build_parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    subcommands.choices["sample"].set_defaults(handler=broken)
    monkeypatch.setattr(cli_main, "build_parser", lambda: parser)
    assert main(["sample", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert "unexpected error: KeyError" in error and "rerun with --debug" in error
    assert "Traceback" not in error
