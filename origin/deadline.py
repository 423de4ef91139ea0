"""A render's deadline (``RENDER_TIMEOUT_SECONDS``), enforced inside libvips and between steps.

libvips checks an image's *kill* flag (``vips_image_set_kill``) each time it computes a
region of that image, so an evaluation that pulls pixels through a killed image fails at its
next tile, wherever it runs: a save, ``copy_memory``, ``avg``, smartcrop. A render tells its
``Deadline`` which images it is working on (``watch``: the loaded source, then each step's
frames); one watchdog thread sets their kill flag when the deadline passes, or at once when
the render is cancelled (its client went away). Work libvips does not run checks the
deadline itself (``check``): between steps, and between frames in Pillow's GIF writer
(origin/gif.py). An encoder call that is already past its last tile (AV1's encode of the
computed image) ends on its own; the render then stops at the next check.

The deadline is ambient to the thread running the render (a ``ContextVar`` set by
``running``), so helpers deep in the pipeline reach it without passing it along, and code
outside a render (upload analysis) runs without one.

Why the kill flag and not libvips' ``eval`` progress signal: the signal would call back into
Python once per tile from libvips' threads, and pyvips frees the callback's handle with the
Python object it was connected through while libvips may still hold the image. The flag is a
plain field of the image, set from the watchdog thread. Killed images are revived when the
render ends, should any outlive it (the service runs with libvips' operation cache off, so
none is shared between renders: origin/vips.py).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import pyvips

from origin.errors import RenderTimeout

TIMEOUT = "timeout"
CANCELLED = "cancelled"


class Deadline:
    """At most ``seconds`` of work for one render, counted from ``running``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.stopped: str | None = None  # TIMEOUT or CANCELLED once stopped
        self.done = False  # the render has ended: the watchdog forgets it
        self._lock = threading.Lock()
        self._images: list[pyvips.Image] = []
        self._killed: list[pyvips.Image] = []

    @property
    def timed_out(self) -> bool:
        return self.stopped == TIMEOUT

    @contextmanager
    def running(self) -> Iterator[Deadline]:
        """Arm the deadline for the render run inside (in this thread)."""
        token = _CURRENT.set(self)
        WATCHDOG.arm(self, time.monotonic() + self.seconds)
        try:
            yield self
        finally:
            _CURRENT.reset(token)
            self._end()

    def watch(self, images: Iterable[pyvips.Image], *, replace: bool = True) -> None:
        """The images the render now works on (``replace``), or one more to watch."""
        with self._lock:
            if replace:
                self._images = list(images)
            else:
                self._images.extend(images)
            if self.stopped is not None:
                self._kill(self._images)

    def stop(self, why: str) -> None:
        """Stop the render: kill what it works on; its next ``check`` raises."""
        with self._lock:
            if self.stopped is None and not self.done:
                self.stopped = why
                self._kill(self._images)

    def cancel(self) -> None:
        """Its client went away (origin/render_pool.py ``RenderPool.run``)."""
        self.stop(CANCELLED)

    def check(self) -> None:
        if self.stopped is not None:
            raise self.error()

    def error(self) -> RenderTimeout:
        if self.stopped == CANCELLED:
            return RenderTimeout("the render was stopped: its client went away")
        return RenderTimeout(
            f"the render took longer than RENDER_TIMEOUT_SECONDS ({self.seconds:g} s)"
        )

    def _kill(self, images: list[pyvips.Image]) -> None:
        for img in images:
            img.set_kill(True)
        self._killed.extend(images)

    def _end(self) -> None:
        with self._lock:
            self.done = True
            for img in self._killed:
                img.set_kill(False)
            self._images, self._killed = [], []


_CURRENT: ContextVar[Deadline | None] = ContextVar("imgorigin_deadline", default=None)


def current() -> Deadline | None:
    """The deadline of the render running in this thread, if any."""
    return _CURRENT.get()


def watch(images: Iterable[pyvips.Image], *, replace: bool = True) -> None:
    """``Deadline.watch`` on the current render's deadline (nothing outside a render)."""
    deadline = _CURRENT.get()
    if deadline is not None:
        deadline.watch(images, replace=replace)


def check() -> None:
    """Raise ``RenderTimeout`` when the current render's deadline has stopped it."""
    deadline = _CURRENT.get()
    if deadline is not None:
        deadline.check()


class Watchdog:
    """One daemon thread that stops each armed deadline when its time comes."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: Deadline, when: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="imgorigin-deadline", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is deadline:  # due before what the thread waits for
                self._cond.notify()

    def _due(self) -> list[Deadline]:
        """Pop the deadlines whose time has come (those already done are just dropped)."""
        now, due = time.monotonic(), []
        while self._heap and (self._heap[0][0] <= now or self._heap[0][2].done):
            _, _, deadline = heapq.heappop(self._heap)
            if not deadline.done:
                due.append(deadline)
        return due

    def _run(self) -> None:
        while True:
            with self._cond:
                due = self._due()
                if not due:
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                    continue
            for deadline in due:
                deadline.stop(TIMEOUT)


WATCHDOG = Watchdog()
