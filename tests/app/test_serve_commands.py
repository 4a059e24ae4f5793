"""`nnsvc api` and `nnsvc serve` as commands; their serving is covered end to end in test_end_to_end."""

from __future__ import annotations

from cli.main import build_parser, main


def test_api_refuses_a_database_without_the_current_schema(tmp_path, capsys):
    assert main(["api", "--data-root", str(tmp_path / "fresh"), "--port", "1"]) == 1
    assert "run `nnsvc migrate`" in capsys.readouterr().err


def test_both_commands_take_the_documented_options():
    for command in ("api", "serve"):
        arguments = build_parser().parse_args(
            [command, "--data-root", "/d", "--host", "0.0.0.0", "--port", "9"]
        )
        assert (str(arguments.data_root), arguments.host, arguments.port) == ("/d", "0.0.0.0", 9)
