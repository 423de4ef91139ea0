"""Derivative caching: keys, ETags, the in-process LRU and single flight.

A derivative is named by what determines its bytes: the source's content hash, the canonical
plan (which holds the image id and the negotiated format), the resolved output format, the
content hashes of image overlays, and the engine version (libvips major.minor and
``ENGINE_REVISION``). ``variant`` is the SHA-256 of that key: the same on every process and
host, so it is both the persistent store's name and the strong ``ETag``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Generic, TypeVar

import pyvips
from cachetools import LRUCache

from origin.records import ImageRecord

T = TypeVar("T")

# Bump when a change to the pipeline changes the bytes of an existing derivative.
ENGINE_REVISION = "1"
ENGINE = f"imgorigin/{ENGINE_REVISION} libvips/{pyvips.version(0)}.{pyvips.version(1)}"
# Bytes counted per entry on top of its body (key, record, LRU links).
ENTRY_OVERHEAD = 512


@dataclass(frozen=True)
class Key:
    """What a derivative's bytes depend on."""

    image_id: str
    content_hash: str
    canonical: str
    format: str  # the resolved output format, or "json"
    overlays: tuple[str, ...] = ()  # content hashes of image overlays, in plan order

    @cached_property
    def variant(self) -> str:
        text = "\n".join((ENGINE, self.content_hash, self.canonical, self.format, *self.overlays))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @cached_property
    def etag(self) -> str:
        return etag_of(self.variant)

    @cached_property
    def choice(self) -> str:
        """Names this derivative's ``q_auto`` choice: what the search's result depends on — the
        variant's parts without the plan's last part (``f_…,q_…,json``), so an image URL and
        its ``.json`` (and ``f_auto`` and ``f_webp`` alike) share one choice."""
        chain = self.canonical.rpartition("/")[0]
        text = "\n".join((ENGINE, "q_auto", self.content_hash, chain, self.format, *self.overlays))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Derivative:
    """An encoded derivative and what its answer needs."""

    body: bytes
    media_type: str
    width: int
    height: int
    etag: str  # quoted, strong

    @property
    def size(self) -> int:
        return len(self.body) + ENTRY_OVERHEAD

    @cached_property
    def length(self) -> bytes:
        """``Content-Length``'s value, made once."""
        return str(len(self.body)).encode("ascii")


def etag_of(variant: str) -> str:
    return f'"{variant}"'


def matches(if_none_match: str, etag: str) -> bool:
    """``If-None-Match`` against our strong tag: weak comparison, lists and ``*``."""
    opaque = etag.removeprefix("W/")
    for item in if_none_match.split(","):
        tag = item.strip()
        if tag == "*" or tag.removeprefix("W/") == opaque:
            return True
    return False


class MemoryCache:
    """A byte-bounded LRU of encoded derivatives; ``max_bytes=0`` disables it."""

    def __init__(self, max_bytes: int) -> None:
        self.enabled = max_bytes > 0
        self._lru: LRUCache[Key, Derivative] = LRUCache(maxsize=max(1, max_bytes), getsizeof=_size)

    def get(self, key: Key) -> Derivative | None:
        return self._lru.get(key) if self.enabled else None

    def put(self, key: Key, value: Derivative) -> None:
        if self.enabled and value.size <= self._lru.maxsize:
            self._lru[key] = value

    def forget_image(self, image_id: str) -> int:
        """Drop every derivative of ``image_id`` (as base or as overlay id); return the count."""
        stale = [k for k in self._lru if k.image_id == image_id or f"l_{image_id}" in k.canonical]
        for key in stale:
            self._lru.pop(key, None)
        return len(stale)

    @property
    def bytes(self) -> int:
        return int(self._lru.currsize) if self.enabled else 0

    def __len__(self) -> int:
        return len(self._lru)


def _size(value: Derivative) -> int:
    return value.size


class Flights(Generic[T]):
    """Single flight: one task per key however many callers want it.

    Callers ``await join(key, make)``; the first one starts ``make()`` as a task, the others
    wait for the same task. A caller cancelled while waiting leaves; when the last one leaves
    before the task is done, the task is cancelled too (nobody wants the answer: a client that
    went away while queued costs no render).
    """

    def __init__(self) -> None:
        self._flights: dict[Hashable, _Flight[T]] = {}

    def __len__(self) -> int:
        return len(self._flights)

    async def join(self, key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = _Flight(asyncio.ensure_future(make()))
            flight.task.add_done_callback(lambda _: self._done(key, flight))
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task)
        except asyncio.CancelledError:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                flight.task.cancel()
            raise

    def _done(self, key: Hashable, flight: _Flight[T]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.task.cancelled():
            flight.task.exception()  # retrieved: no "never retrieved" warning when unwatched


class _Flight(Generic[T]):
    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Future[T]) -> None:
        self.task = task
        self.waiters = 0


def key_of(image: ImageRecord, canonical: str, fmt: str, overlays: Iterable[str] = ()) -> Key:
    """The one way a derivative is named (the origin's answer and the admin API's srcset
    alike): its image, its canonical plan, its resolved format and its overlays' content
    hashes, in plan order."""
    return Key(image.id, image.content_hash, canonical, fmt, tuple(overlays))
