"""The workers' Celery application and how a worker process is started.

Pool: `solo`, one job at a time in the worker's main process. Core starts processes of its own
(planning and evaluation map cases over a process pool); prefork's pool children are daemonic and
may not start processes, so under prefork those steps fail. One process per worker also matches
the hardware: one worker per GPU, and more workers (more `nnsvc worker` processes) for more CPU
jobs. What solo gives up, Celery's time limits, `worker.progress` does itself: `should_stop` ends
a job past its kind's limit.

The reconciler (worker/reconciler.py) runs as a thread of every worker, started when the worker is
ready and stopped when it shuts down. A warm shutdown (SIGTERM) would wait for the running job, days
for a training; instead the job stops at its next progress check and goes back to the queue.
"""

from __future__ import annotations

import logging
import os
import socket

from celery import Celery
from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

from service.queue import make_celery
from service.settings import Settings
from worker.progress import LOG_FORMAT, SHUTDOWN_REQUESTED
from worker.reconciler import ReconcilerThread
from worker.tasks import register_tasks


def create_app(settings: Settings) -> Celery:
    app = make_celery(settings)
    app.conf.update(
        worker_pool="solo",
        worker_concurrency=1,
        # A broker blip must not end a training: the job's state lives in the database, and the
        # unacknowledged message is harmless when delivered again (tasks are idempotent by job id).
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    register_tasks(app, settings)
    return app


def run_worker(settings: Settings, queues: tuple[str, ...]) -> int:
    """Serve `queues` until told to stop (SIGTERM ends after the current job); the exit code."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    settings.data_root.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    hostname = f"nnsvc-{'-'.join(queues)}-{os.getpid()}@{socket.gethostname()}"
    reconciler = ReconcilerThread(settings, app, hostname, queues)
    worker_ready.connect(lambda **_: reconciler.start(), weak=False)
    worker_shutting_down.connect(lambda **_: SHUTDOWN_REQUESTED.set(), weak=False)
    worker_shutdown.connect(lambda **_: reconciler.stop(), weak=False)
    worker = app.Worker(
        hostname=hostname,
        queues=list(queues),
        pool_cls="solo",
        concurrency=1,
        loglevel="INFO",
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
    )
    worker.start()
    return int(worker.exitcode or 0)
