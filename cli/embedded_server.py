"""`nnsvc serve` as a child process on a loopback port: what the demo and the example tests talk to.

They use a real server over HTTP, as people do, rather than the app in-process, so the API and its
worker start, serve and stop exactly as `nnsvc serve` makes them. The database and broker are forced
to the embedded ones under the data root (an NNSVC_DATABASE_URL in the environment or a .env file
would otherwise point the demo at a production database). The child runs in its own session: a
Ctrl-C in the terminal reaches only the caller, which then stops the server, and a worker of the
server's still alive after it exits is ended with it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import httpx

from core.errors import ProblemsError
from service.db.models import Role
from service.db.session import session_scope
from service.keys import create_key
from service.migrations import upgrade
from service.settings import Settings

START_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 60.0
LOG_TAIL_CHARS = 3000


class ServerStartError(ProblemsError):
    """The server exited, or was not ready in time; the problems end with its log's tail."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def embedded_settings(data_root: Path) -> Settings:
    """Settings of a service living entirely under `data_root`, whatever the environment says."""
    return Settings(_env_file=None, data_root=data_root, database_url=None, broker_url=None)


def create_api_key(settings: Settings, role: Role, label: str) -> str:
    """Migrate the database if needed and return a new key's plaintext."""
    settings.data_root.mkdir(parents=True, exist_ok=True)
    upgrade(str(settings.database_url))
    with session_scope(str(settings.database_url)) as session:
        return create_key(session, role, label)[1]


class EmbeddedServer:
    """`nnsvc serve` over `settings.data_root` on 127.0.0.1:`port`; a context manager that stops it."""

    def __init__(
        self,
        settings: Settings,
        port: int,
        log_path: Path,
        environment: dict[str, str] | None = None,
    ) -> None:
        self.settings, self.port, self.log_path = settings, port, log_path
        self.environment = environment or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, on_wait: Callable[[str], None] | None = None, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the server and return once /readyz answers 200 (database, broker and a worker seen);
        `on_wait` gets the names of the checks still failing while it waits."""
        command = [sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--data-root", str(self.settings.data_root)]
        environment = {
            **os.environ,
            "NNSVC_DATA_ROOT": str(self.settings.data_root),
            "NNSVC_DATABASE_URL": str(self.settings.database_url),
            "NNSVC_BROKER_URL": str(self.settings.broker_url),
            **self.environment,
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True
            )
        self._wait_until_ready(self.process, on_wait, timeout_s)

    def _wait_until_ready(
        self, process: subprocess.Popen[bytes], on_wait: Callable[[str], None] | None, timeout_s: float
    ) -> None:
        deadline = time.monotonic() + timeout_s
        missing, details = "the server to start", ""
        while True:
            if process.poll() is not None:
                self.process = None
                exited = f"`nnsvc serve` exited with code {process.returncode}"
                raise ServerStartError([exited, self.log_tail()])
            try:
                answer = httpx.get(f"{self.url}/readyz", timeout=5.0)
                if answer.status_code == 200:
                    return
                failing = [check for check in answer.json().get("checks", []) if not check["is_ok"]]
                missing = ", ".join(check["name"] for check in failing) or missing
                details = "; ".join(f"{check['name']}: {check['detail']}" for check in failing)
            except (httpx.TransportError, ValueError):
                pass
            if on_wait is not None:
                on_wait(missing)
            if time.monotonic() > deadline:
                self.stop()
                late = f"the server was not ready after {timeout_s:.0f} s; waiting for {details or missing}"
                raise ServerStartError([late, self.log_tail()])
            time.sleep(0.5)

    def log_tail(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""
        return f"last lines of {self.log_path}:\n{text[-LOG_TAIL_CHARS:]}"

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """Ctrl-C (SIGINT): the API stops, then its worker; the server's exit code (None if it had to
        be killed). A worker of the server's still alive afterwards is ended too."""
        process, self.process = self.process, None
        if process is None:
            return None
        workers = child_pids(process.pid)
        if process.poll() is None:
            # SIGINT, not SIGTERM: uvicorn re-raises the signal it stopped on once it has stopped, and
            # only SIGINT's default action (KeyboardInterrupt) lets `nnsvc serve` stop its worker.
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        end_processes(workers)
        return None if process.returncode == -signal.SIGKILL else process.returncode

    def __enter__(self) -> EmbeddedServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid`, from /proc: the server's worker runs in a session of its
    own, so no process group holds both."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            children.append(int(stat.parent.name))
    return children


def end_processes(pids: list[int], grace_s: float = 10.0) -> None:
    """SIGTERM to each still alive, SIGKILL to any left after `grace_s`."""
    deadline, signal_number = time.monotonic() + grace_s, signal.SIGTERM
    while pids:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, signal_number)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive or signal_number == signal.SIGKILL:
            return
        pids, signal_number = alive, 0
        time.sleep(0.2)
        if time.monotonic() > deadline:
            signal_number = signal.SIGKILL
