"""The coordinator's C heap: the gauges read what malloc holds, and a trim gives free pages back."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from coordinator import heap


def _resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_freed_memory_shows_as_free_and_a_trim_returns_it() -> None:
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    block, count = 16 * 1024, 4000  # 64 MB in blocks below the mmap threshold: inside the heap
    heap.trim()
    blocks = [libc.malloc(block) for _ in range(count)]
    for pointer in blocks:
        ctypes.memset(pointer, 1, block)
    keep = libc.malloc(block)  # a live block above the others: the heap's top cannot simply shrink
    held = heap.usage()
    assert held is not None
    assert held.in_use >= block * count
    for pointer in blocks:
        libc.free(pointer)
    freed = heap.usage()
    assert freed is not None
    assert freed.free >= block * count * 0.9, freed
    before = _resident_bytes()
    assert heap.trim()
    released = before - _resident_bytes()
    libc.free(keep)
    assert released >= block * count * 0.9, f"trim gave back {released} of {block * count} bytes"
