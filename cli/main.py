"""`nnsvc`: the command line. Each subcommand parses, calls one `core` front door and prints.

A user's mistake ends in one readable line (a list when there are several problems) and a line saying
what to do, exit code 1 (2 for wrong usage), never a traceback; `--debug` shows the traceback for
reporting a bug.

Command modules import the parts that load torch (training, prediction, import/export, the worker)
inside their handlers, so that `nnsvc --help`, `nnsvc api` and the service commands start in a fraction
of the time and the API process holds no torch (tests/cli/test_startup.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from cli import (
    dataset_commands,
    demo_commands,
    interop_commands,
    model_commands,
    predict_commands,
    serve_commands,
    service_commands,
    training_commands,
    worker_commands,
)
from cli.error_hints import hint_for
from core.errors import ProblemsError
from core.parallel import WorkerDiedError

USER_ERRORS: tuple[type[Exception], ...] = (
    ProblemsError,
    WorkerDiedError,
    FileNotFoundError,
    PermissionError,
    *service_commands.USER_ERRORS,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnsvc",
        description="A self-configuring segmentation service: the nnU-Net method, planned for you.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dataset_commands.register(commands)
    training_commands.register(commands)
    predict_commands.register(commands)
    model_commands.register(commands)
    interop_commands.register(commands)
    service_commands.register(commands)
    worker_commands.register(commands)
    serve_commands.register(commands)
    demo_commands.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = arguments.handler
    try:
        return handler(arguments)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as error:
        if arguments.debug:
            raise
        report_error(error, hint_for(error, arguments.command))
        return 1
    except Exception as error:
        if arguments.debug:
            raise
        print(
            f"unexpected error: {type(error).__name__}: {error}\n"
            "  rerun with --debug for the traceback and report it",
            file=sys.stderr,
        )
        return 1


def report_error(error: Exception, hint: str) -> None:
    """The problem on one line (one line each when there are several; exceptions that collect problems
    carry them as `.problems`), then what to do."""
    problems = getattr(error, "problems", None) or [str(error).strip("'\"") or type(error).__name__]
    if len(problems) == 1:
        print(f"error: {problems[0]}", file=sys.stderr)
    else:
        print(f"error: {len(problems)} problems:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
    print(f"  what to do: {hint}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
