"""The bytes a render reads: the smallest working copy that serves its plan, else the
original (origin.working_copies); a copy whose object is gone falls back to the original,
and with both gone the row was replaced or deleted since it was read: ``SourceGone`` (a 404
once origin.delivery has read the row again).

Local files are read by the render job itself, in its pool thread (``read_first``); other
storage is read on the event loop before the job starts.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from origin import render, working_copies
from origin.errors import SourceGone
from origin.records import ImageRecord
from origin.services import Services
from origin.store.objects import ObjectMissing, Storage
from origin.transforms.plan import Plan

log = logging.getLogger("imgorigin.origin")

Read = tuple[bytes, "render.StandIn | None"]  # the bytes, and the original's size for a copy
Candidates = list[tuple[str, "render.StandIn | None"]]


async def reader(services: Services, image: ImageRecord, plan: Plan) -> Callable[[], Read]:
    """What the render job calls for its bytes. A ``.json`` plan uses the copy its image
    would (its ``bytes`` are the served image's) only when the source summary is stored,
    since it would be computed from the bytes."""
    copy = None
    if not plan.metadata_only or image.analysis is not None:
        copy = working_copies.choose(
            plan, image.width, image.height, image.working_copies, services.limits
        )
    candidates: Candidates = [(image.storage_key, None)]
    if copy is not None:
        size = render.StandIn(image.width, image.height, image.format)
        candidates.insert(0, (copy.storage_key, size))
    storage = services.storage
    if storage.blocking is not None:
        return functools.partial(read_first, storage.blocking.get_blocking, candidates, image.id)
    for storage_key, stand_in in candidates:
        try:
            read: Read = (await storage.get(storage_key), stand_in)
        except ObjectMissing:
            missing(storage_key)
        else:
            return lambda: read
    raise SourceGone(image.id)


async def original(storage: Storage, image: ImageRecord) -> bytes:
    """An image's original (an overlay's)."""
    try:
        return await storage.get(image.storage_key)
    except ObjectMissing:  # replaced or deleted between the lookup and now
        raise SourceGone(image.id) from None


def read_first(get: Callable[[str], bytes], candidates: Candidates, image_id: str) -> Read:
    """The first of ``candidates`` whose object is there (in a worker thread)."""
    for storage_key, stand_in in candidates:
        try:
            return get(storage_key), stand_in
        except ObjectMissing:
            missing(storage_key)
    raise SourceGone(image_id)  # replaced or deleted between the lookup and now


def missing(storage_key: str) -> None:
    log.warning("object %s is missing; trying the next source", storage_key)
