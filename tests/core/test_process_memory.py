"""keep_freed_memory and release_freed_memory, watched through glibc's own accounting in a fresh
process (the settings are process-wide, so the test process keeps glibc's defaults)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]

# Prints glibc's mapped bytes (hblkhd) and heap bytes (arena) around 64 MiB blocks, and the resident
# size of the process after such a block is written, freed, and trimmed.
PROBE = textwrap.dedent(
    """
    import ctypes, json, os
    from core.process_memory import keep_freed_memory, release_freed_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    SIZE = 64 * 2**20

    def resident_bytes():
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def allocate(written=False):
        block = libc.malloc(SIZE)
        if written:
            ctypes.memset(block, 1, SIZE)
        return block, libc.mallinfo2()

    block, info = allocate()
    default_mapped = info.hblkhd
    libc.free(block)
    applied = keep_freed_memory()
    block, info = allocate(written=True)
    kept_mapped, kept_arena = info.hblkhd, info.arena
    libc.free(block)
    block, info = allocate()
    arena_on_reuse = info.arena
    libc.free(block)
    resident_after_free = resident_bytes()
    release_freed_memory()
    print(json.dumps({
        "default_mapped": default_mapped, "applied": applied, "kept_mapped": kept_mapped,
        "kept_arena": kept_arena, "arena_on_reuse": arena_on_reuse,
        "resident_after_free": resident_after_free, "resident_after_release": resident_bytes(),
    }))
    """
)


def probe() -> dict[str, int]:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPOSITORY, capture_output=True, text=True, check=True
    )
    return json.loads(completed.stdout)


def test_large_blocks_come_from_the_heap_are_reused_and_go_back_when_released() -> None:
    size = 64 * 2**20
    figures = probe()
    assert figures["default_mapped"] >= size, "glibc's default serves a 64 MiB block with its own mapping"
    assert figures["applied"] is True
    assert figures["kept_mapped"] < size, "after keep_freed_memory the block comes from the heap"
    assert figures["kept_arena"] >= size
    assert figures["arena_on_reuse"] == figures["kept_arena"], "a second block reuses the freed one"
    freed_but_kept = figures["resident_after_free"] - figures["resident_after_release"]
    assert freed_but_kept >= size // 2, "release_freed_memory hands the written pages back"
