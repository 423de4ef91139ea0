"""Upload ingestion: what an upload does once its bytes are read, apart from HTTP.

``ingest_upload`` takes the owner, the client's filename and the file, and:

1. refuses an empty file (400) and one that would put the owner over the quota (413);
2. in one render-pool job (off the event loop): rasterises an SVG to the PNG stored in its
   place (origin.svg), validates it (origin.probe), builds its working copies
   (origin.working_copies), analyses it (origin.analysis: blurhash, colour, focal point,
   faces) and hashes it;
3. stores it (``store_image``): the objects first (the original, then its working copies),
   the row second with the quota accounted in the same transaction; on any failure every
   object written is removed again, so a failed upload leaves no row and no object.

The admin API's ``POST /api/images`` reads the multipart body and calls ``ingest_upload``;
the benchmarks seed their images with ``store_image``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from origin import frames_copy, svg, working_copies
from origin.analysis import analyse
from origin.deadline import Deadline
from origin.errors import BadRequest, InvalidImage, QuotaExceeded, RenderTimeout
from origin.probe import Probe, probe_upload
from origin.records import Analysis, ImageRecord, QuotaWouldBeExceeded, UserRecord, new_id
from origin.services import Services
from origin.store.database import Transaction
from origin.store.objects import StorageUnavailable
from origin.transforms.formats import FILE_EXTENSIONS
from origin.transforms.limits import Limits

log = logging.getLogger("imgorigin.ingest")

OVER_QUOTA = "this upload would exceed your storage quota"


@dataclass(frozen=True)
class Inspected:
    """What the pool job found in an upload, and the bytes stored as its original (the
    upload's, or the PNG an SVG became)."""

    data: bytes
    probe: Probe
    levels: list[working_copies.Level]
    analysis: Analysis | None
    content_hash: str


def stored_filename(filename: str) -> str:
    """The client's filename kept for display: no path, no control characters, ≤ 255 chars."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:255] or "upload"


def inspect_upload(data: bytes, limits: Limits, frames: bool = False) -> Inspected:
    """One pool job: rasterise an SVG, validate the upload, build its working copies (with
    ``frames``, local storage, an animated GIF's frames copy), analyse it from the smallest
    level — the same upright sRGB picture with far fewer pixels to decode — or from the
    original when there is none, and hash it."""
    if svg.is_svg(data):
        data = svg.rasterise(data, limits.max_source_pixels)
    probe = probe_upload(
        data, max_source_pixels=limits.max_source_pixels, max_frames=limits.max_frames
    )
    levels = working_copies.build_for(data, probe, frames)
    stills = [lv for lv in levels if lv.ext != frames_copy.EXT]
    smallest = min(stills, key=lambda lv: lv.width * lv.height).body if stills else data
    analysis = analyse(smallest, limits=limits)
    return Inspected(data, probe, levels, analysis, hashlib.sha256(data).hexdigest())


async def inspect_in_pool(services: Services, data: bytes) -> Inspected:
    """``inspect_upload`` in the render pool, within ``RENDER_TIMEOUT_SECONDS`` as a render
    is (a file that takes longer to decode is 422: a 194 KB PNG of 1×10⁸ pixels held a slot
    for 36 s); an animated GIF's frames copy only on local storage, where a render reads it
    from the page cache (origin.frames_copy)."""
    frames = services.storage.blocking is not None
    seconds = services.settings.render_timeout_seconds
    limit = Deadline(seconds)

    def job() -> Inspected:
        with limit.running():
            return inspect_upload(data, services.limits, frames)

    try:
        return await services.pool.run(job, on_cancel=limit.cancel)
    except RenderTimeout:
        raise InvalidImage(
            f"the image could not be decoded within {seconds:g} s (RENDER_TIMEOUT_SECONDS)"
        ) from None


def original_key(user_id: str, image_id: str, fmt: str, revision: str = "") -> str:
    """Where an original is stored: ``original.{ext}``, a replace's ``original.{revision}.{ext}``
    (`revision_of`: a new object, so readers of the old row still find theirs)."""
    name = f"original.{revision}" if revision else "original"
    return f"{user_id}/{image_id}/{name}.{FILE_EXTENSIONS[fmt]}"


def revision_of(version: int) -> str:
    """The name of one replace's objects: ``v{version}-{8 random hex digits}``. Two replaces
    of one image that race both make version n + 1 and only one commits; each writes (and,
    refused, removes) objects of its own."""
    return f"v{version}-{secrets.token_hex(4)}"


def image_record(
    user_id: str, filename: str, inspected: Inspected, public: bool = False
) -> ImageRecord:
    """The row of a new image (its working copies are added by ``store_image``)."""
    probe = inspected.probe
    image_id = new_id()
    return ImageRecord(
        id=image_id,
        user_id=user_id,
        original_filename=stored_filename(filename),
        mime_type=probe.mime_type,
        format=probe.format,
        size_bytes=len(inspected.data),
        width=probe.width,
        height=probe.height,
        storage_key=original_key(user_id, image_id, probe.format),
        content_hash=inspected.content_hash,
        created_at=datetime.now(UTC),
        metadata=dict(probe.metadata),
        analysis=inspected.analysis,
        public=public,
    )


async def ingest_upload(
    services: Services,
    user: UserRecord,
    filename: str,
    data: bytes,
    *,
    check: Callable[[ImageRecord, int], None] | None = None,
    also: Callable[[Transaction, ImageRecord], Awaitable[None]] | None = None,
    public: bool | None = None,
) -> ImageRecord:
    """Validate, inspect and store ``data`` as a new image of ``user``; the row as stored.
    ``public`` is the account's default when None.
    ``check`` may refuse the image (given with its frame count) once inspected, before
    anything is stored (an eager chain over its budget); ``also`` writes in the row's
    transaction (its jobs and events)."""
    settings = services.settings
    if not data:
        raise BadRequest("the file is empty")
    if user.storage_used_bytes + len(data) > settings.user_quota_bytes:
        raise QuotaExceeded(OVER_QUOTA)
    inspected = await inspect_in_pool(services, data)
    public = user.public if public is None else public
    image = image_record(user.id, filename, inspected, public)
    if check is not None:
        check(image, inspected.probe.frames)
    return await store_image(services, image, inspected.data, inspected.levels, also)


async def store_image(
    services: Services,
    image: ImageRecord,
    data: bytes,
    levels: Sequence[working_copies.Level] = (),
    also: Callable[[Transaction, ImageRecord], Awaitable[None]] | None = None,
) -> ImageRecord:
    """Objects first (the original, then its working copies), row second; on any failure
    every object is removed again. Returns the row as stored (with its working copies)."""
    image = with_copies(image, levels)

    async def row() -> None:
        await services.images.add(
            image,
            services.settings.user_quota_bytes,
            None if also is None else (lambda conn: also(conn, image)),
        )

    await objects_then_row(services, image, data, levels, row)
    return image


def with_copies(
    image: ImageRecord, levels: Sequence[working_copies.Level], revision: str = ""
) -> ImageRecord:
    copies = tuple(
        working_copies.working_copy(image.user_id, image.id, level, revision) for level in levels
    )
    return dataclasses.replace(image, working_copies=copies)


async def objects_then_row(
    services: Services,
    image: ImageRecord,
    data: bytes,
    levels: Sequence[working_copies.Level],
    row: Callable[[], Awaitable[object]],
) -> None:
    """Write the original and its working copies, then ``row()``; on any failure remove
    every object written (a write that failed is not removed: gc takes what lands late)."""
    objects = [(image.storage_key, data, image.mime_type)]
    objects += [
        (c.storage_key, v.body, v.media_type)
        for c, v in zip(image.working_copies, levels, strict=True)
    ]
    written: list[str] = []
    try:
        for key, body, media_type in objects:
            await services.storage.put(key, body, content_type=media_type)
            written.append(key)
        await row()
    except BaseException as exc:
        await remove_objects(services, written)
        if isinstance(exc, QuotaWouldBeExceeded):
            raise QuotaExceeded(OVER_QUOTA) from None
        raise


async def replace_upload(
    services: Services,
    user: UserRecord,
    old: ImageRecord,
    data: bytes,
    also: Callable[[Transaction, ImageRecord], Awaitable[None]] | None = None,
) -> ImageRecord:
    """Replace ``old``'s original with ``data`` (``PUT /api/images/{id}``): validated,
    inspected and stored as an upload is, as version ``old.version + 1`` under new keys; the
    row moves to it with the quota charged the difference, and everything derived from the
    old pixels (derivative rows, q_auto choices) goes in the same transaction (with what
    ``also`` writes: the eager jobs, the event). Then the old objects are removed (what
    cannot be, ``gc`` removes later). ``ReplacedMeanwhile`` when another replace won."""
    settings = services.settings
    if not data:
        raise BadRequest("the file is empty")
    if user.storage_used_bytes + len(data) - old.size_bytes > settings.user_quota_bytes:
        raise QuotaExceeded(OVER_QUOTA)
    inspected = await inspect_in_pool(services, data)
    probe = inspected.probe
    version = old.version + 1
    revision = revision_of(version)
    new = dataclasses.replace(
        old,
        mime_type=probe.mime_type,
        format=probe.format,
        size_bytes=len(inspected.data),
        width=probe.width,
        height=probe.height,
        storage_key=original_key(old.user_id, old.id, probe.format, revision),
        content_hash=inspected.content_hash,
        metadata=dict(probe.metadata),
        analysis=inspected.analysis,
        version=version,
    )
    new = with_copies(new, inspected.levels, revision)
    derived: list[str] = []

    async def row() -> None:
        derived.extend(
            await services.images.replace(
                old,
                new,
                settings.user_quota_bytes,
                None if also is None else (lambda conn: also(conn, new)),
            )
        )

    await objects_then_row(services, new, inspected.data, inspected.levels, row)
    old_objects = [old.storage_key, *(c.storage_key for c in old.working_copies), *derived]
    await remove_objects(services, old_objects)
    return new


async def remove_objects(services: Services, keys: Sequence[str]) -> None:
    """Best effort (after a failed upload, or the old objects after a replace): what cannot
    be removed now, gc removes later. Once storage does not answer, the rest is left to gc
    at once: one ``STORAGE_TIMEOUT_SECONDS`` per object kept a replace of a well-used image
    waiting minutes after it had committed."""
    for n, key in enumerate(reversed(keys)):
        try:
            await services.storage.delete(key)
        except StorageUnavailable:
            log.warning("object storage unavailable: %d objects left for gc", len(keys) - n)
            return
        except Exception:
            log.exception("could not remove %s; gc will", key)
