"""Run one function per case over a pool of worker processes, reporting progress as cases finish.

Per-case work (reading, cropping, resampling) is CPU-bound numpy and SimpleITK code, so processes, not
threads. `workers <= 1` runs in the calling process: simpler to debug, and no start-up cost for small
datasets. The "forkserver" start method keeps workers clean of the parent's threads (torch, BLAS) while
starting faster than "spawn".
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class ProgressCallback(Protocol):
    """`progress(fraction, stage, message, **metrics)`, the long-step callback of ARCHITECTURE.md."""

    def __call__(self, fraction: float, stage: str, message: str = "", **metrics: float) -> None: ...


def no_progress(fraction: float, stage: str, message: str = "", **metrics: float) -> None:
    """The callback to pass when nobody is watching."""


class WorkerDiedError(RuntimeError):
    """A worker process vanished, usually killed by the operating system for lack of memory."""


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def map_cases(
    function: Callable[[Item], Result],
    items: Sequence[Item],
    workers: int,
    progress: ProgressCallback = no_progress,
    stage: str = "",
    describe: Callable[[Item], str] = str,
) -> Iterator[tuple[Item, Result]]:
    """Yield `(item, function(item))` in completion order, calling `progress` after each item.

    At most `2 * workers` items are in flight, so results never pile up in memory faster than the
    caller consumes them. An exception in `function` propagates after the pool is shut down.
    """
    total = len(items)
    progress(0.0, stage, f"0/{total}")
    if workers <= 1 or total <= 1:
        for done, item in enumerate(items, start=1):
            result = function(item)
            progress(done / total, stage, f"{done}/{total} {describe(item)}")
            yield item, result
        return
    context = multiprocessing.get_context("forkserver")
    pending: dict[Future[Result], Item] = {}
    queue = iter(items)
    done = 0
    with ProcessPoolExecutor(max_workers=min(workers, total), mp_context=context) as pool:
        try:
            for item in queue:
                pending[pool.submit(function, item)] = item
                if len(pending) >= 2 * workers:
                    break
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    item = pending.pop(future)
                    result = future.result()
                    done += 1
                    progress(done / total, stage, f"{done}/{total} {describe(item)}")
                    yield item, result
                    next_item = next(queue, None)
                    if next_item is not None:
                        pending[pool.submit(function, next_item)] = next_item
        except BrokenProcessPool as error:
            raise WorkerDiedError(
                "a worker process died (often: out of memory); try fewer workers with -j"
            ) from error
        finally:
            for future in pending:
                future.cancel()
