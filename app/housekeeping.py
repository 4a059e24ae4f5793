"""Periodic housekeeping run by the API's lifespan: predictions older than `prediction_retention_days`
are deleted with their files and job rows. Deleting rows by age is idempotent, so several API
processes may run it side by side."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from app.operations.predictions import delete_prediction
from service.db.base import utc_now
from service.db.models import Job, JobStatus, Prediction
from service.db.session import session_factory
from service.settings import Settings

logger = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL_S = 3600.0
FINAL_STATUSES = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


def remove_expired_predictions(settings: Settings, now: datetime | None = None) -> int:
    """Delete finished predictions older than the retention; returns how many went."""
    if settings.prediction_retention_days is None:
        return 0
    cutoff = (now or utc_now()) - timedelta(days=settings.prediction_retention_days)
    removed = 0
    with session_factory(str(settings.database_url))() as session:
        expired = session.scalars(
            select(Prediction)
            .join(Job, Job.id == Prediction.job_id)
            .where(Prediction.created_at < cutoff, Job.status.in_(FINAL_STATUSES))
        ).all()
        for prediction in expired:
            delete_prediction(session, settings, prediction)
            removed += 1
    return removed


async def housekeeping_loop(settings: Settings, interval_s: float = HOUSEKEEPING_INTERVAL_S) -> None:
    while True:
        try:
            removed = await run_in_threadpool(remove_expired_predictions, settings)
        except Exception:  # the loop must outlive a failed round; the next one tries again
            logger.exception("housekeeping failed")
        else:
            if removed:
                logger.info(
                    "removed %d prediction(s) older than %g days", removed, settings.prediction_retention_days
                )
        await asyncio.sleep(interval_s)
