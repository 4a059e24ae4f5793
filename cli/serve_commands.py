"""`nnsvc api` (the HTTP API alone) and `nnsvc serve` (the embedded default in one command).

`serve` migrates the database if needed, starts one worker process serving both queues (`nnsvc worker
--queues cpu,gpu`) and the API in this process. Ctrl-C (or SIGTERM) stops the API, then the worker: it
is asked to stop (SIGTERM) and killed after WORKER_STOP_GRACE_S; a task it was running is acknowledged
late, so it is taken up again at the next start and a training resumes from its latest checkpoint. If
the worker dies on its own, the API stops too, rather than accept jobs nobody runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading

from cli.service_commands import add_settings_options, settings_from
from service.migrations import ensure_schema_current, safe_url, upgrade
from service.queue import QUEUES
from service.settings import Settings

WORKER_STOP_GRACE_S = 30.0


def register(commands: argparse._SubParsersAction) -> None:
    network = argparse.ArgumentParser(add_help=False)
    network.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    network.add_argument("--port", type=int, default=8000, help="TCP port to listen on (default: 8000)")
    add_settings_options(network)
    api = commands.add_parser(
        "api",
        parents=[network],
        help="run the HTTP API alone (workers run elsewhere)",
        description="Serve the HTTP API with uvicorn. The database must be migrated (`nnsvc migrate`).",
    )
    api.add_argument(
        "--workers",
        type=int,
        default=1,
        help="API processes sharing the port (default: 1); each keeps its own key cache and /metrics counts",
    )
    api.set_defaults(handler=run_api)
    serve = commands.add_parser(
        "serve",
        parents=[network],
        help="run the whole service: migrate, the API and one worker for both queues",
        description=(
            "The embedded default: with no NNSVC_ settings, everything lives under the data root (SQLite "
            "database, SQLite-backed broker, files); no Redis or PostgreSQL needed. Ctrl-C stops it all."
        ),
    )
    serve.set_defaults(handler=run_serve)


def run_api(arguments: argparse.Namespace) -> int:
    settings = settings_from(arguments)
    ensure_schema_current(str(settings.database_url))  # a readable refusal before uvicorn starts
    if arguments.workers == 1:
        return serve_http(settings, arguments.host, arguments.port)
    import uvicorn

    # Worker processes build their app from the environment: hand them the settings chosen here.
    os.environ.update(
        NNSVC_DATA_ROOT=str(settings.data_root),
        NNSVC_DATABASE_URL=str(settings.database_url),
        NNSVC_BROKER_URL=str(settings.broker_url),
    )
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=arguments.host,
        port=arguments.port,
        workers=arguments.workers,
    )
    return 0


def run_serve(arguments: argparse.Namespace) -> int:
    settings = settings_from(arguments)
    url = str(settings.database_url)
    before, after = upgrade(url)
    if before != after:
        print(f"database {safe_url(url)}: migrated from {before or '(empty)'} to {after}", file=sys.stderr)
    # uvicorn re-raises the SIGTERM it shut down on; as an exception it lets `finally` stop the worker.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    worker = start_worker(settings)
    try:
        return serve_http(settings, arguments.host, arguments.port, worker)
    finally:
        stop_worker(worker)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    """In this process's group, so that a terminal's Ctrl-C or a supervisor's kill of the group reaches
    it too (Celery then shuts down warm); `stop_worker` makes sure it ends either way."""
    command = [
        *[sys.executable, "-m", "cli.main", "worker"],
        *["--queues", ",".join(QUEUES), "--data-root", str(settings.data_root)],
        *["--database-url", str(settings.database_url)],
    ]
    return subprocess.Popen(command, env=dict(os.environ))


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is not None:
        return
    worker.terminate()
    try:
        worker.wait(WORKER_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        print(f"worker did not stop within {WORKER_STOP_GRACE_S:.0f} s; killing it", file=sys.stderr)
        worker.kill()
        worker.wait()


def serve_http(
    settings: Settings, host: str, port: int, worker: subprocess.Popen[bytes] | None = None
) -> int:
    """Run uvicorn until Ctrl-C (or until `worker` exits); 1 when the worker died first."""
    import uvicorn  # imported here: every other command starts faster without the web stack

    from app.main import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(settings), host=host, port=port, log_level="info"))
    worker_died = threading.Event()
    if worker is not None:

        def watch() -> None:
            worker.wait()
            if not server.should_exit:
                print(f"worker exited with code {worker.returncode}; stopping the API", file=sys.stderr)
                worker_died.set()
                server.should_exit = True

        threading.Thread(target=watch, daemon=True).start()
    server.run()
    return 1 if worker_died.is_set() else 0
