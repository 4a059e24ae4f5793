"""Every command's --help explains every option: walk the whole parser tree, so a new option or
subcommand without help text fails here."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from cli.main import build_parser


def commands(
    parser: argparse.ArgumentParser, path: str = "nnsvc"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(`nnsvc plan`, its parser) for the top parser and every subcommand at any depth."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from commands(subparser, f"{path} {name}")


def undocumented(parser: argparse.ArgumentParser) -> list[str]:
    """Every subcommand and option of the tree without help text (a suppressed option is fine)."""
    missing = []
    for path, command in commands(parser):
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                documented = {choice.dest for choice in action._choices_actions if choice.help}
                missing += [f"{path} {name}" for name in action.choices if name not in documented]
            elif not (action.help or "").strip():
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_command_and_option_has_help_text() -> None:
    assert undocumented(build_parser()) == []


def test_the_check_finds_an_option_or_a_command_without_help() -> None:
    parser = build_parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    bare = subcommands.add_parser("bare")
    bare.add_argument("--undocumented")
    bare.add_argument("path")
    assert undocumented(parser) == ["nnsvc bare", "nnsvc bare --undocumented", "nnsvc bare path"]


@pytest.mark.parametrize("path", [path for path, _ in commands(build_parser())])
def test_every_help_page_renders_and_says_what_the_command_does(path: str) -> None:
    parser = dict(commands(build_parser()))[path]
    page = parser.format_help()  # a stray % in a help text breaks here
    assert parser.description, f"`{path} --help` does not say what the command does:\n{page}"
