"""Keeping a worker's memory flat: glibc's malloc arenas capped, freed pages given back.

libvips, Pillow and numpy allocate and free large buffers from the render threads. glibc
gives every thread that contends for the heap an arena of its own (up to eight per core) and
keeps the freed pages of each: a worker rendering many distinct images grew by ~150 MB over
a few hundred animated GIFs and kept growing (docs/deploy.md, *Memory*). Measured on the
benchmark's W1/W3/W5 mix in one process with two render threads (600 renders, RSS in MB):

| allocator setting | RSS after 50 → 600 renders | CPU per render |
|---|---|---|
| glibc defaults | 214 → 250, still growing | — |
| at most 2 arenas | 93 → 130, no trend, noisy | same |
| 2 arenas, ``malloc_trim`` after each render | 74 → 88, flat | +2.8 ms |
| 2 arenas, a static 1 MiB mmap threshold | 77 → 82, flat | +5–10 % |

So: ``cap_arenas()`` once at start (what ``MALLOC_ARENA_MAX=2`` does, set from inside the
process so ``make run`` and every container get it), and ``Trimmer.after_job()`` after every
render job. A trim walks the heaps (~3–6 ms) and hands back every free page, which the next renders
then fault in again: trimming once a second under a steady W5 load cost a worker ~1,800
page faults and ~3 ms of kernel time per request (3,100 faults against 1,300 without
trimming; 9.5–9.8 ms of system time against 5.8–7.2). So the trimmer trims when the pool
falls idle (the job that ends is the only one running and none waits), at most once per
``IDLE_TRIM_SECONDS``, and while jobs keep running only once per ``BUSY_TRIM_SECONDS``:
memory comes back as soon as the load stops, and under load the heap stays about the size
the load needs (10 s under load failed ``make soak``'s 3 % growth criterion once, +3.4 %; 3 s
passes it). Both are no-ops where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import threading
import time
from collections.abc import Callable
from typing import Any

M_ARENA_MAX = -8  # glibc's mallopt parameter
ARENAS = 2
IDLE_TRIM_SECONDS = 1.0  # at most this often when the pool falls idle
BUSY_TRIM_SECONDS = 3.0  # at most this often while other jobs are running


def _glibc() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 (present only in glibc)
        libc.mallopt  # noqa: B018
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def cap_arenas(arenas: int = ARENAS) -> bool:
    """At most ``arenas`` malloc arenas for the threads this process starts from now on
    (True when applied)."""
    return _LIBC is not None and bool(_LIBC.mallopt(M_ARENA_MAX, arenas))


class Trimmer:
    """Gives freed heap pages back to the system from the render thread whose job ends:
    when ``others()`` (the pool's other jobs, running or waiting for a slot) is 0, at most
    once per ``idle_gap`` seconds; otherwise at most once per ``busy_interval``."""

    def __init__(
        self,
        idle_gap: float = IDLE_TRIM_SECONDS,
        busy_interval: float = BUSY_TRIM_SECONDS,
        others: Callable[[], int] = lambda: 0,
    ) -> None:
        self.idle_gap = idle_gap
        self.busy_interval = busy_interval
        self.others = others  # read without a lock: a hint
        self.last = -math.inf  # monotonic time of the last trim
        self.trims = 0
        self.lock = threading.Lock()  # one trim at a time

    def after_job(self) -> None:
        if _LIBC is None:
            return
        gap = self.idle_gap if self.others() == 0 else self.busy_interval
        if time.monotonic() < self.last + gap or not self.lock.acquire(blocking=False):
            return
        try:
            if time.monotonic() >= self.last + gap:  # not trimmed meanwhile by another thread
                _LIBC.malloc_trim(0)
                self.last = time.monotonic()
                self.trims += 1
        finally:
            self.lock.release()
