"""Which jobs have a message waiting in the broker, read straight from its store.

The reconciler compares this with the jobs the database says are `queued`: a queued job without a
message was lost (Redis restarted with an empty store, a broker file deleted) and must be sent
again. Only messages waiting in a queue count: one a worker has taken belongs to a job that worker
claims at once, and a worker that died holding one leaves its job queued and messageless, which is
exactly the case to repair.

Both stores hold kombu's message envelope as JSON, with Celery's (args, kwargs, embed) body inside,
usually base64-encoded; the job id is the task's only argument. Redis keeps one list per queue and
priority level (`cpu`, `cpu\\x06\\x163`, ...); kombu's SQLAlchemy transport (the embedded broker) a
`kombu_message` table whose `visible` flag drops when a worker takes the message.

That transport never deletes a message it handed out (a message a worker held unacknowledged goes back
as a new row), so its table grows by one row per job for as long as the install runs;
`remove_delivered` deletes the handed-out rows, which nothing reads again. Redis drops them itself.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import datetime
from typing import Protocol

import redis
from kombu.transport.redis import PRIORITY_STEPS
from kombu.transport.redis import Channel as RedisChannel
from sqlalchemy import bindparam, create_engine, inspect, pool, text

logger = logging.getLogger(__name__)

SOCKET_TIMEOUT_S = 5.0


class QueueInspector(Protocol):
    def queued_job_ids(self) -> set[str]: ...

    def remove_delivered(self, delivered_before: datetime) -> int:
        """Delete the messages workers took before `delivered_before`; how many went."""
        ...


def job_id_of(payload: bytes | str) -> str | None:
    """The job id a Celery message carries, or None for a message that is not one of ours."""
    try:
        envelope = json.loads(payload)
        body = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return args[0] if args and isinstance(args[0], str) else None


class RedisQueues:
    def __init__(self, url: str, queues: tuple[str, ...]) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S)
        self.keys = [
            queue if priority == 0 else f"{queue}{RedisChannel.sep}{priority}"
            for queue in queues
            for priority in PRIORITY_STEPS
        ]

    def queued_job_ids(self) -> set[str]:
        ids = set()
        for key in self.keys:
            for payload in self.client.lrange(key, 0, -1):
                if (job_id := job_id_of(payload)) is not None:
                    ids.add(job_id)
        return ids

    def remove_delivered(self, delivered_before: datetime) -> int:
        return 0  # Redis pops a message when a worker takes it


class SqlAlchemyQueues:
    def __init__(self, url: str, queues: tuple[str, ...]) -> None:
        self.engine = create_engine(url.removeprefix("sqla+"), poolclass=pool.NullPool)
        self.queues = list(queues)

    def queued_job_ids(self) -> set[str]:
        with self.engine.connect() as connection:
            if not inspect(connection).has_table("kombu_message"):
                return set()
            query = text(
                "SELECT m.payload FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id "
                "WHERE m.visible AND q.name IN :queues"
            ).bindparams(bindparam("queues", expanding=True))
            payloads = connection.execute(query, {"queues": self.queues}).scalars()
            return {job_id for payload in payloads if (job_id := job_id_of(payload)) is not None}

    def remove_delivered(self, delivered_before: datetime) -> int:
        # kombu stamps a row (its `timestamp` column) when it hides it, in local time without a zone
        before = delivered_before.astimezone().replace(tzinfo=None)
        with self.engine.begin() as connection:
            if not inspect(connection).has_table("kombu_message"):
                return 0
            query = text("DELETE FROM kombu_message WHERE NOT visible AND timestamp < :before")
            return connection.execute(query, {"before": before}).rowcount


def inspector_for(broker_url: str, queues: tuple[str, ...]) -> QueueInspector | None:
    """The store reader for this broker; None (lost messages go unnoticed) for other transports."""
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisQueues(broker_url, queues)
    if broker_url.startswith("sqla+"):
        return SqlAlchemyQueues(broker_url, queues)
    logger.warning(
        "cannot read the queues of broker %s; lost messages will not be re-sent", broker_url.split(":")[0]
    )
    return None
