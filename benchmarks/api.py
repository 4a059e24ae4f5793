"""API serving cost: job-status polling under 32 concurrent clients, and a 1 GB dataset upload.

What: (1) polls per second and p50/p99 latency of GET /v1/jobs/{id} from 32 concurrent keep-alive
clients on loopback, each polling one of 100 jobs as a well-behaved client does (If-None-Match with
the last ETag, so an unchanged job answers 304), while a writer changes one job every 50 ms so some
polls see a 200 with the full job; measured for SQLite (the embedded default) and PostgreSQL, each with
a burn-in before the timed window; the full-answer path (no If-None-Match) is timed too. (2) a ~1 GB
dataset archive (100 cases of 128³ voxels, uncompressed NIfTI in a stored zip) uploaded through
POST /v1/datasets/upload: request seconds and MB/s (stream to staging, archive checks, unpacking, every
`nnsvc verify` check, move into place), and the growth of the server's resident memory (VmHWM of a fresh
server minus its resident size before the upload); and the bare streaming rate (1 GB that is not an
archive: streamed to staging, then refused).

Why: a web client polls many jobs at once and must stay cheap to serve (target ≥ 1000 polls/s with
p99 ≤ 50 ms); a PACS bridge posts large studies and the server must not hold them in memory (target
≤ 64 MB growth). The server is uvicorn in its own process (`uvicorn --factory app.main:create_app`);
the clients are a minimal asyncio HTTP/1.1 client, so that client overhead stays small next to the
server's on a small machine. No nnU-Net v2 baseline exists for an HTTP service.

Usage, from the repository root (PostgreSQL on 127.0.0.1:5432, user postgres, trust authentication):
  python -m benchmarks.api [--seconds 10] [--clients 32] [--skip-upload] [--skip-postgres]
The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import replace
from pathlib import Path

import httpx
import psycopg

from benchmarks.machine import machine_card
from core.synthetic import PRESETS, generate_dataset
from service.db.models import Job, JobKind, JobStatus, Role
from service.db.session import session_scope
from service.jobs import create_job
from service.keys import create_key
from service.migrations import upgrade
from service.settings import Settings

POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
POSTGRES_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
NUM_JOBS = 100
BURN_IN_S = 2.0
WRITER_INTERVAL_S = 0.05
UPLOAD_CASES = 100
UPLOAD_SHAPE = (128, 128, 128)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """uvicorn serving create_app() for `settings`, in its own process."""

    def __init__(self, settings: Settings, log: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "NNSVC_DATA_ROOT": str(settings.data_root),
            "NNSVC_DATABASE_URL": str(settings.database_url),
            "NNSVC_BROKER_URL": str(settings.broker_url),
            "NNSVC_MAX_UPLOAD_MB": str(settings.max_upload_mb),
        }
        command = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        command += ["--workers", str(workers)]
        self.process = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"the server did not start:\n{log.read_text()}")

    def memory_kb(self, field: str) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise KeyError(field)

    def cpu_s(self) -> float:
        """User + system CPU seconds used so far by the server and its worker processes."""
        total, pids = 0.0, [self.process.pid]
        while pids:
            pid = pids.pop()
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except FileNotFoundError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            pids.extend(int(child) for child in children)
        return total

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def prepare(settings: Settings) -> tuple[str, list[str]]:
    """A viewer key and NUM_JOBS jobs (every tenth a parent with two children)."""
    with session_scope(str(settings.database_url)) as session:
        _, key = create_key(session, Role.viewer, "benchmark")
        ids = []
        for index in range(NUM_JOBS):
            job = create_job(session, JobKind.train if index % 10 == 0 else JobKind.predict, {"n": index})
            job.status = JobStatus.running
            job.progress = {"stage": "train", "fraction": 0.1, "epoch": 3, "metrics": {"loss": -0.5}}
            ids.append(job.id)
            if index % 10 == 0:
                for _ in range(2):
                    create_job(session, JobKind.train_fold, {}, parent_id=job.id)
    return key, ids


def keep_changing(settings: Settings, ids: list[str], stop: threading.Event) -> None:
    """One job's progress moves every WRITER_INTERVAL_S, as workers' progress writes do."""
    rng = random.Random(0)
    while not stop.is_set():
        with session_scope(str(settings.database_url)) as session:
            job = session.get(Job, rng.choice(ids))
            job.progress = {**job.progress, "fraction": rng.random()}
        stop.wait(WRITER_INTERVAL_S)


async def http_get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, dict]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {
        name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:] if line)
    }
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers


async def poll_client(
    port: int, key: str, job_id: str, use_etag: bool, until: float, record_after: float
) -> list[tuple[float, int]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    etag = None
    samples = []
    while (now := time.perf_counter()) < until:
        conditional = f"If-None-Match: {etag}\r\n" if use_etag and etag else ""
        head = f"GET /v1/jobs/{job_id} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n"
        request = f"{head}{conditional}\r\n"
        status, headers = await http_get(reader, writer, request.encode())
        etag = headers.get("etag", etag)
        if now >= record_after:
            samples.append((time.perf_counter() - now, status))
    writer.close()
    return samples


def measure_polls(
    server: Server, key: str, ids: list[str], clients: int, seconds: float, use_etag: bool
) -> dict:
    cpu_window: list[float] = []

    async def mark_cpu(at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        cpu_window.append(server.cpu_s())

    async def run() -> list[tuple[float, int]]:
        start = time.perf_counter()
        until, record_after = start + BURN_IN_S + seconds, start + BURN_IN_S
        clients_done = asyncio.gather(
            *(
                poll_client(server.port, key, ids[i % len(ids)], use_etag, until, record_after)
                for i in range(clients)
            )
        )
        await asyncio.gather(mark_cpu(record_after), mark_cpu(until))
        results = await clients_done
        return [sample for result in results for sample in result]

    samples = asyncio.run(run())
    latencies = sorted(latency for latency, _ in samples)
    statuses = [status for _, status in samples]
    assert set(statuses) <= {200, 304}, set(statuses)
    cpu_ms = 1000 * (cpu_window[1] - cpu_window[0]) / len(samples)
    return {
        "polls_per_s": round(len(samples) / seconds, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 2),
        "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 2),
        "fraction_304": round(statuses.count(304) / len(statuses), 3),
        "server_cpu_ms_per_poll": round(cpu_ms, 3),
        "one_core_ceiling_polls_per_s": round(1000 / cpu_ms, 1),
        "requests": len(samples),
    }


def poll_benchmark(settings: Settings, work: Path, clients: int, seconds: float, workers: int) -> dict:
    key, ids = prepare(settings)
    server = Server(settings, work / "poll-server.log", workers)
    stop = threading.Event()
    writer = threading.Thread(target=keep_changing, args=(settings, ids, stop), daemon=True)
    writer.start()
    try:
        return {
            "etag": measure_polls(server, key, ids, clients, seconds, use_etag=True),
            "full": measure_polls(server, key, ids, clients, seconds, use_etag=False),
        }
    finally:
        stop.set()
        writer.join()
        server.stop()


def upload_archive(work: Path) -> Path:
    """~1 GB: uncompressed NIfTI cases in a zip that stores them as they are."""
    spec = replace(
        PRESETS["mr"],
        name="Dataset900_Upload",
        channel_names={"0": "T1"},
        shape=UPLOAD_SHAPE,
        num_cases=UPLOAD_CASES,
        shape_jitter=0.0,
        spacing_jitter=0.0,
        file_ending=".nii",
    )
    raw = generate_dataset(work / "upload_raw", spec, seed=0)
    archive = work / "upload.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as packed:
        for path in sorted(raw.rglob("*")):
            if path.is_file():
                packed.write(path, path.relative_to(raw).as_posix())
    shutil.rmtree(raw)
    return archive


def timed_upload(server: Server, key: str, path: Path) -> tuple[int, float, int]:
    """(status, seconds, resident growth in bytes) of one upload to a fresh server."""
    headers = {"Authorization": f"Bearer {key}"}
    httpx.get(f"{server.url}/v1/datasets", headers=headers, timeout=30)  # warm: imports, first queries
    before_kb = server.memory_kb("VmRSS")
    started = time.perf_counter()
    with path.open("rb") as stream:
        response = httpx.post(
            f"{server.url}/v1/datasets/upload",
            headers=headers,
            files={"archive": (path.name, stream, "application/zip")},
            timeout=3600,
        )
    seconds = time.perf_counter() - started
    return response.status_code, seconds, (server.memory_kb("VmHWM") - before_kb) * 1024


def upload_benchmark(settings: Settings, work: Path) -> dict:
    with session_scope(str(settings.database_url)) as session:
        _, key = create_key(session, Role.trainer, "benchmark")
    archive = upload_archive(work)
    size = archive.stat().st_size
    results = {"archive_bytes": size}
    junk = work / "junk.bin"
    with junk.open("wb") as stream:
        for _ in range(size >> 24):
            stream.write(os.urandom(1 << 24))
    for name, path, expected in (("dataset", archive, 201), ("stream_only", junk, 422)):
        server = Server(settings, work / f"upload-{name}.log")
        try:
            status, seconds, growth = timed_upload(server, key, path)
        finally:
            server.stop()
        if status != expected:
            raise RuntimeError(f"{name} upload answered {status}; see {work}/upload-{name}.log")
        results[name] = {
            "seconds": round(seconds, 2),
            "mb_per_s": round(path.stat().st_size / 2**20 / seconds, 1),
            "rss_growth_mb": round(growth / 2**20, 1),
        }
    junk.unlink()
    return results


def sqlite_settings(work: Path) -> Settings:
    data_root = work / "sqlite"
    data_root.mkdir()
    settings = Settings(_env_file=None, data_root=data_root, max_upload_mb=4096)
    upgrade(str(settings.database_url))
    return settings


def postgres_settings(work: Path) -> tuple[Settings, str]:
    name = f"nnsvc_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    data_root = work / "postgres"
    data_root.mkdir()
    settings = Settings(_env_file=None, data_root=data_root, database_url=f"{POSTGRES_SERVER}/{name}")
    upgrade(str(settings.database_url))
    return settings, name


def drop_postgres(name: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="timed window per poll run (default 10 s)"
    )
    parser.add_argument("--clients", type=int, default=32, help="concurrent polling clients (default 32)")
    parser.add_argument(
        "--server-workers", type=int, default=1, help="uvicorn processes for polling (default 1)"
    )
    parser.add_argument("--skip-polls", action="store_true", help="skip the polling runs")
    parser.add_argument("--skip-upload", action="store_true", help="skip the 1 GB upload")
    parser.add_argument("--skip-postgres", action="store_true", help="poll SQLite only")
    parser.add_argument("--workdir", type=Path, help="where data goes (default: a temporary folder)")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nnsvc-api-bench-", dir=arguments.workdir))
    report: dict = {
        "machine": machine_card(),
        "clients": arguments.clients,
        "seconds": arguments.seconds,
        "server_workers": arguments.server_workers,
    }
    print(json.dumps(report["machine"]))
    try:
        settings = sqlite_settings(work)
        if not arguments.skip_polls:
            report["sqlite"] = poll_benchmark(
                settings, work, arguments.clients, arguments.seconds, arguments.server_workers
            )
            print(f"sqlite polls: {report['sqlite']}")
        if not (arguments.skip_polls or arguments.skip_postgres):
            postgres, name = postgres_settings(work)
            try:
                report["postgres"] = poll_benchmark(
                    postgres, work, arguments.clients, arguments.seconds, arguments.server_workers
                )
            finally:
                drop_postgres(name)
            print(f"postgres polls: {report['postgres']}")
        if not arguments.skip_upload:
            report["upload"] = upload_benchmark(settings, work)
            print(f"upload: {report['upload']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    etag_runs = [report[name]["etag"] for name in ("sqlite", "postgres") if name in report]
    if etag_runs:
        report["meets_poll_target"] = all(
            run["polls_per_s"] >= 1000 and run["p99_ms"] <= 50 for run in etag_runs
        )
    if "upload" in report:
        report["meets_upload_target"] = report["upload"]["dataset"]["rss_growth_mb"] <= 64
    print(json.dumps(report))


if __name__ == "__main__":
    main()
