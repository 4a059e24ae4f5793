"""Send committed, queued jobs to the broker from inside a worker (training children, re-sends).

A send that fails (the broker is down or restarting) is only logged: the job row stays `queued`, and
the reconciler finds a queued job without a message and sends it again once the broker is back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from celery import Celery
from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy import update

from service.db.models import Job, JobKind, JobStatus
from service.db.session import session_scope
from service.queue import enqueue
from service.settings import Settings

logger = logging.getLogger(__name__)


def dispatch(settings: Settings, celery: Celery, jobs: Iterable[tuple[str, JobKind]]) -> None:
    """Enqueue each (job id, kind); call only after the rows are committed."""
    for job_id, kind in jobs:
        try:
            task_id = enqueue(celery, job_id, kind)
        except (KombuOperationalError, OSError) as error:
            logger.warning("could not send job %s to the broker (%s); the reconciler will", job_id, error)
            continue
        with session_scope(str(settings.database_url)) as session:
            session.execute(
                update(Job).where(Job.id == job_id, Job.status == JobStatus.queued).values(task_id=task_id),
                execution_options={"synchronize_session": False},
            )
