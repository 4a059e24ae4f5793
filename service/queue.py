"""The Celery application both sides share: the API only sends task names with a job id; workers
register the tasks under the same names (worker/tasks.py).

Reliability choices (celery docs: tasks.rst, optimizing.rst): late acknowledgement and requeue when a
worker is lost, since every task is idempotent by job id; one message prefetched per process, as tasks
are long; the broker's visibility timeout above the longest task time limit, so Redis does not hand a
still-running task to a second worker.
"""

from __future__ import annotations

from celery import Celery

from service.db.models import JobKind
from service.settings import Settings

QUEUE_OF_KIND: dict[JobKind, str] = {
    JobKind.plan: "cpu",
    JobKind.train: "cpu",
    JobKind.train_fold: "gpu",
    JobKind.select: "cpu",
    JobKind.predict: "gpu",
    JobKind.evaluate: "cpu",
    JobKind.import_model: "cpu",
}
QUEUES = ("cpu", "gpu")


def task_name(kind: JobKind) -> str:
    return f"nnsvc.{kind.value}"


def make_celery(settings: Settings) -> Celery:
    app = Celery("nnsvc", broker=settings.broker_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_default_queue="cpu",
        task_routes={task_name(kind): {"queue": queue} for kind, queue in QUEUE_OF_KIND.items()},
        # Redis's redelivery deadline; kombu's SQLAlchemy transport (embedded) has none and hands
        # every transport option to create_engine, which refuses unknown ones.
        broker_transport_options=(
            {} if settings.is_embedded else {"visibility_timeout": settings.longest_time_limit_s + 3600}
        ),
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return app


def enqueue(celery: Celery, job_id: str, kind: JobKind) -> str:
    """Send one job's task; call only after the job row is committed. Returns the Celery task id."""
    result = celery.send_task(task_name(kind), args=[job_id], queue=QUEUE_OF_KIND[kind])
    return result.id
