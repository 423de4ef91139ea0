"""A derivative in the persistent store: its object under ``{user}/{image}/derived/`` and its
row in a derivative index (``transformed_images``, or the source cache's).

Object first, row second: a row always has its object; an object alone is junk
(``imgorigin gc``). Each write makes an object of its own (``object_key``: the variant and a
random suffix), so removing one a row no longer names — an eviction, a render that lost the
race for the row — never removes one a newer row names. Derivatives are written without fsync (a cache), so one read back is
checked to be whole, and rendered again when it is not.
"""

from __future__ import annotations

import logging
import secrets
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
    """A derivative recorded in ``rows`` whose object is there and whole. A row whose object
    is gone or damaged is removed (with the object), so the render that follows records its
    own."""
    record = await rows.get(image.id, key.variant)
    if record is None:
        return None
    try:
        body = await services.storage.get(record.storage_key)
    except ObjectMissing:
        log.warning("stored derivative %s is missing; rendering", record.storage_key)
        await _forget(services, rows, record)
        return None
    if len(body) != record.size_bytes or not whole(body, record.media_type):
        log.warning("stored derivative %s is not whole; rendering", record.storage_key)
        await _forget(services, rows, record)
        return None
    return Derivative(body, record.media_type, record.width, record.height, etag_of(key.variant))


async def _forget(services: Services, rows: DerivativeRows, record: DerivativeRecord) -> None:
    """Remove a row whose object is gone or damaged, then the object; a failure is logged
    (``imgorigin gc`` removes a row without its object later)."""
    try:
        await rows.forget(record)
        await services.storage.delete(record.storage_key)
    except Exception:
        log.warning("could not remove stored derivative %s", record.storage_key, exc_info=True)


async def write(
    services: Services,
    key: Key,
    image: ImageRecord,
    made: Derivative,
    stored: str | None,
    rows: DerivativeRows,
    *,
    raising: bool = False,
) -> None:
    """The object (unless ``stored``: the key the render job wrote it under), then its row;
    the object removed again when no row takes it (the image was deleted or replaced
    meanwhile, or another render recorded the variant first). A failure is logged (the answer is out; the
    next miss renders again), or raised when ``raising`` (a background job, which retries)."""
    storage_key = stored or object_key(image, key, made.media_type)
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
        if stored is None:
            await services.storage.put(
                storage_key, made.body, content_type=made.media_type, durable=False
            )
        if not await rows.add(record, key.content_hash):
            await services.storage.delete(storage_key)
    except Exception:  # the answer is already out; the next miss renders again
        if raising:
            raise
        log.exception("could not store derivative %s", storage_key)


def object_key(image: ImageRecord, key: Key, media_type: str) -> str:
    """A new object for a derivative: ``{user}/{image}/derived/{variant}-{8 hex}.{ext}``."""
    ext = "json" if media_type == MEDIA_TYPES["json"] else FILE_EXTENSIONS[key.format]
    return f"{image.user_id}/{image.id}/derived/{key.variant}-{secrets.token_hex(4)}.{ext}"


def write_now(
    blocking: Blocking, image: ImageRecord, key: Key, media_type: str, body: bytes
) -> str | None:
    """Write a derivative's object from the render job (local files): its key, or None
    (logged) when it could not be, and ``write`` tries again through the event loop."""
    storage_key = object_key(image, key, media_type)
    try:
        blocking.put_blocking(storage_key, body, durable=False)
    except Exception:
        log.exception("could not write derivative %s in the render job", storage_key)
        return None
    return storage_key


def whole(body: bytes, media_type: str) -> bool:
    """A stored derivative starts as its kind must: after a power cut one could be an empty or
    zero-filled file of the recorded size; the size check and this catch it."""
    if media_type == MEDIA_TYPES["json"]:
        return body.startswith(b"{") and body.endswith(b"}")
    return sniff_format(body) is not None
