"""What a benchmark reads about its own process, the same way in both environments (standard library
only): peak resident memory from a chosen moment on, and CPU seconds."""

import os
from pathlib import Path


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    """VmHWM: unlike ru_maxrss it is not inherited from the parent across exec, and it can be reset."""
    return _status_mb("VmHWM")


def reset_peak_rss() -> float:
    """From here on VmHWM is the peak of what follows (Linux's clear_refs "5"); returns the resident
    memory now (libraries, model), which that peak includes."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and all its threads."""
    times = os.times()
    return times.user + times.system
