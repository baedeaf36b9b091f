"""The C heap under the coordinator: what malloc holds in use and free, and giving free pages back.

Every forwarded packet is a few allocations of about a kilobyte, made and freed thousands of times a
second beside buffers that live for seconds. glibc keeps what is freed inside its heap for reuse, so
the process's resident size can climb for hours while nothing is leaked. ``malloc_trim(0)`` returns
the free whole pages of every arena to the system (not only the top of the heap); the gauges tell a
leak (in use grows) from a heap that only keeps free memory.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

TRIM_EVERY = 60.0  # seconds; one trim of a 100 MB heap takes a few milliseconds


_MALLINFO2 = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2.split()]


@dataclass(frozen=True)
class HeapUsage:
    in_use: int  # bytes handed out by malloc and not freed (mmapped blocks included)
    free: int  # bytes malloc holds free inside its arenas


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc 2.33 or later (mallinfo2); None elsewhere (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not hasattr(libc, "mallinfo2") or not hasattr(libc, "malloc_trim"):
        return None
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    return libc


_LIBC = _glibc()


def usage() -> HeapUsage | None:
    if _LIBC is None:
        return None
    info = _LIBC.mallinfo2()
    return HeapUsage(in_use=info.uordblks + info.hblkhd, free=info.fordblks)


def trim() -> bool:
    """Give malloc's free pages back to the system; True when some were."""
    return bool(_LIBC is not None and _LIBC.malloc_trim(0))


async def trim_forever(every: float = TRIM_EVERY) -> None:
    if _LIBC is None:
        log.info("not glibc: the heap is not trimmed")
        return
    while True:
        await asyncio.sleep(every)
        trim()
