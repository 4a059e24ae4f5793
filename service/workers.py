"""Which workers are alive, as files in the data root that the API and the workers share.

Each worker process rewrites `DATA_ROOT/workers/<name>.json` every reconciler pass (see
`worker.reconciler`), from a thread, so a worker busy with a long task still shows up; asking
workers over the broker (Celery's ping) gets no answer from a worker whose only process is busy.
`/readyz` counts the files written recently.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from service.settings import Settings


def workers_dir(settings: Settings) -> Path:
    return settings.data_root / "workers"


def _file(settings: Settings, name: str) -> Path:
    return workers_dir(settings) / f"{re.sub(r'[^A-Za-z0-9_.@-]', '_', name)}.json"


def record_worker(settings: Settings, name: str, queues: tuple[str, ...]) -> None:
    path = _file(settings, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"name": name, "queues": list(queues), "pid": os.getpid(), "seen_at": time.time()}
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(document))
    os.replace(partial, path)


def forget_worker(settings: Settings, name: str) -> None:
    _file(settings, name).unlink(missing_ok=True)


def seen_workers(settings: Settings, within_s: float) -> list[dict[str, Any]]:
    """The workers that recorded themselves in the last `within_s` seconds."""
    now, seen = time.time(), []
    for path in sorted(workers_dir(settings).glob("*.json")):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if now - float(document.get("seen_at", 0)) <= within_s:
            seen.append(document)
    return seen
