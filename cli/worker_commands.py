"""`nnsvc worker`: a Celery worker process for the service's job queues."""

from __future__ import annotations

import argparse

from cli.service_commands import add_settings_options, settings_from
from service.migrations import ensure_schema_current
from service.queue import QUEUES


def parse_queues(text: str) -> tuple[str, ...]:
    queues = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in queues if name not in QUEUES]
    if unknown or not queues:
        raise argparse.ArgumentTypeError(f"queues are {', '.join(QUEUES)}; got {text!r}")
    return queues


def parse_concurrency(text: str) -> int:
    if text != "1":
        raise argparse.ArgumentTypeError(
            "a worker runs one job at a time (core starts its own processes, which Celery's prefork "
            "children may not); start more `nnsvc worker` processes for more jobs at once"
        )
    return 1


def register(commands: argparse._SubParsersAction) -> None:
    worker = commands.add_parser(
        "worker",
        help="run a worker that takes jobs from the service's queues",
        description=(
            "Take planning, training, prediction and evaluation jobs from the broker and run them, one at "
            "a time. Run one worker per GPU for the gpu queue. Settings come from the NNSVC_ environment "
            "variables (database, broker, data root); the database must be migrated (`nnsvc migrate`)."
        ),
    )
    add_settings_options(worker)
    worker.add_argument(
        "--queues",
        type=parse_queues,
        default=QUEUES,
        help=f"comma-separated queues to serve (default: {','.join(QUEUES)})",
    )
    worker.add_argument(
        "--concurrency", type=parse_concurrency, default=1, help="jobs at once; only 1 (default: 1)"
    )
    worker.set_defaults(handler=run_worker_command)


def run_worker_command(arguments: argparse.Namespace) -> int:
    from worker.celery_app import run_worker

    settings = settings_from(arguments)
    ensure_schema_current(str(settings.database_url))
    return run_worker(settings, arguments.queues)
