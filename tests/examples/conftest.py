"""The README's runnable things against one live service: `nnsvc demo --keep-serving` with a tiny
budget runs once for this folder. test_demo.py checks what it printed and wrote; the example tests use
the service it leaves running (a real `nnsvc serve` on a free port over a temporary data root) and
the model it trained. After the folder's last test, Ctrl-C must stop it all cleanly.

One run serves both because the path costs minutes on a CPU (worker start, planning, training), and
the demo's model is exactly what a user has after running it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cli.embedded_server import create_api_key, embedded_settings
from service.db.models import Role
from service.workers import seen_workers

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TINY_DEMO = ["--cases", "7", "--test-cases", "2", "--image-size", "48", "--epochs", "1"]
TINY_DEMO += ["--iterations-per-epoch", "2", "--validation-iterations", "1"]
DEMO_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class LiveService:
    url: str
    keys: dict[Role, str]
    dataset_id: str
    model: str  # name:version
    training_job_id: str
    test_images: list[Path]
    workdir: Path
    demo_output: str  # what the demo printed up to "serving at ..."

    def get(self, path: str, **params: str) -> dict:
        headers = {"Authorization": f"Bearer {self.keys[Role.admin]}"}
        return (
            httpx.get(f"{self.url}{path}", params=params, headers=headers, timeout=30)
            .raise_for_status()
            .json()
        )

    def jobs(self, kind: str) -> int:
        """How many jobs of `kind` the server holds."""
        return int(self.get("/v1/jobs", kind=kind)["count"])


class DemoProcess:
    """`nnsvc demo --keep-serving`, its stdout collected line by line as it runs."""

    def __init__(self, workdir: Path, stderr: Path) -> None:
        command = [str(Path(sys.executable).with_name("nnsvc")), "demo", "--workdir", str(workdir)]
        command += [*TINY_DEMO, "--no-progress", "--keep-serving"]
        environment = {**os.environ, "NNSVC_WORKER_DEVICE": "cpu", "NNSVC_PROGRESS_INTERVAL_S": "0.2"}
        self.stderr = stderr
        with stderr.open("w") as errors:
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=errors, text=True, env=environment
            )
        self.lines: list[str] = []
        self.serving = threading.Event()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith("serving at "):
                self.serving.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_until_serving(self, workdir: Path) -> str:
        deadline = time.monotonic() + DEMO_TIMEOUT_S
        while not self.serving.wait(1.0):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                log = workdir / "server.log"
                pytest.fail(
                    f"the demo did not reach 'serving at' (exit {self.process.poll()}):\n{self.output}\n"
                    f"{self.stderr.read_text()[-3000:]}\n{log.read_text()[-3000:] if log.is_file() else ''}"
                )
        match = re.search(r"^serving at (http://\S+)", self.output, re.MULTILINE)
        assert match, self.output
        return match.group(1)

    def interrupt(self) -> int:
        """Ctrl-C, as a person ends it; the exit code."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=120)
        finally:
            self.reader.join(timeout=10)


@pytest.fixture(scope="package")
def live_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    root = tmp_path_factory.mktemp("demo")
    workdir = root / "demo-output"
    demo = DemoProcess(workdir, root / "demo-stderr.txt")
    try:
        url = demo.wait_until_serving(workdir)
    except BaseException:
        demo.process.kill()
        raise
    settings = embedded_settings(workdir / "data")
    worker_pids = [worker["pid"] for worker in seen_workers(settings, within_s=3600)]
    assert worker_pids, "the demo's service has no worker"
    keys = {Role.admin: (workdir / "admin-key.txt").read_text().strip()}
    keys |= {
        role: create_api_key(settings, role, f"examples {role.value}") for role in Role if role != Role.admin
    }
    headers = {"Authorization": f"Bearer {keys[Role.admin]}"}
    model = httpx.get(f"{url}/v1/models", headers=headers, timeout=30).json()["data"][0]
    training = httpx.get(f"{url}/v1/jobs", params={"kind": "train"}, headers=headers, timeout=30).json()
    yield LiveService(
        url=url,
        keys=keys,
        dataset_id=model["dataset_id"],
        model=f"{model['name']}:{model['version']}",
        training_job_id=training["data"][0]["id"],
        test_images=sorted((workdir / "sample" / "Dataset003_Synthetic2D" / "imagesTs").iterdir()),
        workdir=workdir,
        demo_output=demo.output,
    )
    code = demo.interrupt()
    assert code == 0, f"the demo exited {code} on Ctrl-C:\n{demo.output}\n{demo.stderr.read_text()[-3000:]}"
    assert demo.output.rstrip().endswith("stopping the service"), demo.output
    with socket.socket() as probe:  # the service stopped with it, its worker too
        assert probe.connect_ex(("127.0.0.1", int(url.rsplit(":", 1)[1]))) != 0
    assert [pid for pid in worker_pids if is_alive(pid)] == []


def is_alive(pid: int) -> bool:
    """Running; a zombie waiting to be reaped counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def run_example(name: str, *arguments: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    """`python examples/NAME.py ARGUMENTS...`, as its docstring says to run it."""
    command = [sys.executable, str(EXAMPLES / name), *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
