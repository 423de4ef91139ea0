"""A derivative in the persistent store: its object under ``{user}/{image}/derived/`` and its
row in a derivative index (``transformed_images``, or the source cache's).

Object first, row second: a row always has its object; an object alone is junk
(``imgorigin gc``). Derivatives are written without fsync (a cache), so one read back is
checked to be whole, and rendered again when it is not.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from origin.cache import Derivative, Key, etag_of
from origin.records import DerivativeRecord, ImageRecord
from origin.services import Services
from origin.store.derivatives import Derivatives as DerivativeRows
from origin.store.objects import Blocking, ObjectMissing
from origin.transforms.formats import FILE_EXTENSIONS, MEDIA_TYPES
from origin.vips import sniff_format

log = logging.getLogger("imgorigin.origin")


async def read(
    services: Services, key: Key, image: ImageRecord, rows: DerivativeRows
) -> Derivative | None:
    """A derivative recorded in ``rows`` whose object is there and whole."""
    record = await rows.get(image.id, key.variant)
    if record is None:
        return None
    try:
        body = await services.storage.get(record.storage_key)
    except ObjectMissing:
        return None
    if len(body) != record.size_bytes or not whole(body, record.media_type):
        log.warning("stored derivative %s is not whole; rendering", record.storage_key)
        return None
    return Derivative(body, record.media_type, record.width, record.height, etag_of(key.variant))


async def write(
    services: Services,
    key: Key,
    image: ImageRecord,
    made: Derivative,
    stored: bool,
    rows: DerivativeRows,
    *,
    raising: bool = False,
) -> None:
    """The object (unless ``stored``: the render job wrote it already), then its row. A
    failure is logged (the answer is out; the next miss renders again), or raised when
    ``raising`` (a background job, which retries)."""
    storage_key = object_key(image, key, made.media_type)
    record = DerivativeRecord(
        image_id=image.id,
        variant=key.variant,
        storage_key=storage_key,
        media_type=made.media_type,
        size_bytes=len(made.body),
        width=made.width,
        height=made.height,
        created_at=datetime.now(UTC),
    )
    try:
        if not stored:
            await services.storage.put(
                storage_key, made.body, content_type=made.media_type, durable=False
            )
        added = await rows.add(record)
        if not added and await rows.get(image.id, key.variant) is None:
            await services.storage.delete(storage_key)  # the image was deleted meanwhile
    except Exception:  # the answer is already out; the next miss renders again
        if raising:
            raise
        log.exception("could not store derivative %s", storage_key)


def object_key(image: ImageRecord, key: Key, media_type: str) -> str:
    """Where a derivative's object lives: ``{user}/{image}/derived/{variant}.{ext}``."""
    ext = "json" if media_type == MEDIA_TYPES["json"] else FILE_EXTENSIONS[key.format]
    return f"{image.user_id}/{image.id}/derived/{key.variant}.{ext}"


def write_now(blocking: Blocking, storage_key: str, body: bytes) -> bool:
    """Write a derivative's object from the render job (local files); False (logged) when it
    could not be, and ``write`` tries again through the event loop."""
    try:
        blocking.put_blocking(storage_key, body, durable=False)
    except Exception:
        log.exception("could not write derivative %s in the render job", storage_key)
        return False
    return True


def whole(body: bytes, media_type: str) -> bool:
    """A stored derivative starts as its kind must: after a power cut one could be an empty or
    zero-filled file of the recorded size; the size check and this catch it."""
    if media_type == MEDIA_TYPES["json"]:
        return body.startswith(b"{") and body.endswith(b"}")
    return sniff_format(body) is not None
