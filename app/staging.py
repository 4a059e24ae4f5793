"""Every upload lands in its own folder under DATA_ROOT/staging and is moved into place only after all
its checks passed. The folder is removed whatever happens, so a refused upload leaves the data root as
it was. Deletions pass through it too (renamed aside, removed once the rows are gone), and the data
root's quota is checked here, before and after the bytes arrive.

The quota check reuses a measured usage for `USAGE_REUSE_S` seconds (plus what it admitted since), as
walking the data root costs about 0.2 s per 100 000 files and a PACS bridge posts case after case; a
deletion in this process measures afresh. Other API processes' admissions are seen when the
measurement expires, so the quota may be passed by what they admit within that time.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.errors import PayloadTooLarge
from service import paths
from service.settings import Settings

USAGE_REUSE_S = 10.0
_measured_usage: dict[Path, tuple[float, int]] = {}  # data root -> (monotonic time measured, bytes)
_usage_lock = threading.Lock()


@asynccontextmanager
async def staging_area(settings: Settings) -> AsyncIterator[Path]:
    folder = paths.staging_dir(settings) / f"upload-{uuid.uuid4().hex}"
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        await run_in_threadpool(shutil.rmtree, folder, ignore_errors=True)


def usage_bytes(folder: Path) -> int:
    """Bytes of every file under `folder`, links not followed."""
    total = 0
    pending = [folder]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    return total


def check_quota(settings: Settings, incoming_bytes: int = 0) -> None:
    """Refuse when the data root, with `incoming_bytes` more, would pass `data_root_quota_gb`."""
    if settings.data_root_quota_gb is None:
        return
    quota = int(settings.data_root_quota_gb * 2**30)
    used = data_root_usage(settings.data_root)
    if used + incoming_bytes > quota:
        raise PayloadTooLarge(
            f"the data root would hold {(used + incoming_bytes) / 2**30:.2f} GiB, over its quota of "
            f"{settings.data_root_quota_gb:g} GiB; delete old datasets, models or predictions first",
            kind="quota",
        )
    if incoming_bytes:
        with _usage_lock:
            if settings.data_root in _measured_usage:
                measured_at, measured = _measured_usage[settings.data_root]
                _measured_usage[settings.data_root] = (measured_at, measured + incoming_bytes)


def data_root_usage(data_root: Path) -> int:
    """`usage_bytes` of the data root, measured at most every `USAGE_REUSE_S` seconds."""
    now = time.monotonic()
    with _usage_lock:
        measured_at, measured = _measured_usage.get(data_root, (-USAGE_REUSE_S, 0))
    if now - measured_at < USAGE_REUSE_S:
        return measured
    used = usage_bytes(data_root) if data_root.is_dir() else 0
    with _usage_lock:
        _measured_usage[data_root] = (now, used)
    return used


def forget_usage(data_root: Path) -> None:
    with _usage_lock:
        _measured_usage.pop(data_root, None)


def remove_with_rows(session: Session, settings: Settings, folders: list[Path], rows: list[object]) -> None:
    """Delete rows and folders together: the folders are renamed aside first and put back if the
    commit fails, then removed for good."""
    aside = paths.staging_dir(settings) / f"deleted-{uuid.uuid4().hex}"
    moved: list[tuple[Path, Path]] = []
    for index, folder in enumerate(folders):
        if folder.exists():
            aside.mkdir(parents=True, exist_ok=True)
            os.replace(folder, aside / str(index))
            moved.append((folder, aside / str(index)))
    try:
        for row in rows:  # one flush each: in the given order, before a database cascade reaches them
            session.delete(row)
            session.flush()
        session.commit()
    except BaseException:
        session.rollback()
        for folder, parked in moved:
            os.replace(parked, folder)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
        forget_usage(settings.data_root)
