"""The source cache: a remote object's bytes, kept with the upstream's validators.

``SourceCache.object`` answers with the object's record (where its bytes are, their hash,
format and size), in this order:

1. this process's memory (``KNOWN_ENTRIES`` records), while the record is younger than the
   source's ``ttl`` — no I/O at all;
2. an object this process found missing (or not an image, or too large) within the
   source's ``missing_ttl``: the same error again, without asking the upstream;
3. otherwise, one flight per object however many requests ask at once: the row
   (``source_objects``); if it was read or revalidated within ``ttl``, that; else a read
   from the upstream, conditional when the row has validators. A 304, or the same bytes
   again, only marks the row checked. New bytes are inspected in the render pool (a header
   read: format and size), stored at ``sources/<source>/<id>/<hash>.<ext>``
   (content-addressed, so a row never points at bytes of another version), then the row is
   replaced; the earlier version's derivatives (rows, then objects), working copies and
   bytes go. A derivative's key holds the content hash, so a changed object never serves a
   stale derivative once revalidated.
4. past ``SOURCE_CACHE_MAX_BYTES`` (objects, their working copies and derivatives), the
   objects read or revalidated longest ago are removed — rows first, then objects — until
   under it.

An object asked for a second time (in this process) gets, after that answer and once per
version, what an upload gets at once: working copies (origin.working_copies, stored at
``sources/<source>/<id>/work/``) and its analysis (focal point, BlurHash, colour), recorded
on its row only if the row still holds that version. An object asked for once — a page's
one-off image, a crawler's walk — costs one decode and nothing more; one asked for again is
rendered from a working copy from then on.

An upstream that fails (5xx, no connection, a timeout) while a kept copy is revalidated does
not take the copy away: it is answered (stale if error) and the upstream asked again after
the source's ``missing_ttl``. An upstream that says the object is gone (404/410) does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import time
from datetime import UTC, datetime

from cachetools import LRUCache, TTLCache

from origin import svg, working_copies
from origin.after_answer import AfterAnswer
from origin.analysis import analyse
from origin.cache import Flights
from origin.decode import Header, read_header
from origin.errors import (
    InvalidImage,
    NotFound,
    OriginError,
    PayloadTooLarge,
    SourceMissing,
    SourceTimeout,
    SourceUnavailable,
)
from origin.metrics import Metrics
from origin.records import Analysis, SourceObjectRecord, WorkingCopy
from origin.services import Services
from origin.sources.config import Source
from origin.sources.upstream import Read, Upstream
from origin.store.objects import ObjectMissing
from origin.transforms.formats import FILE_EXTENSIONS
from origin.transforms.limits import Limits

log = logging.getLogger("imgorigin.sources")

KNOWN_ENTRIES = 100_000
MISSING_ENTRIES = 100_000
EVICT_BATCH = 64


class SourceCache:
    """This process's view of the source cache (made once in the origin's start)."""

    def __init__(self, services: Services, upstream: Upstream, metrics: Metrics) -> None:
        self.services = services
        self.reads = metrics.source_reads
        self.upstream = upstream
        self.rows = services.sources
        self.known: LRUCache[str, tuple[SourceObjectRecord, float]] = LRUCache(KNOWN_ENTRIES)
        longest = max((s.missing_ttl for s in services.settings.sources.values()), default=60)
        self.missing: TTLCache[str, tuple[OriginError, float]] = TTLCache(
            MISSING_ENTRIES, max(1, longest)
        )
        self.flights: Flights[SourceObjectRecord] = Flights()
        # how often each object was asked for, and the versions whose copies were tried
        self.asked: LRUCache[str, int] = LRUCache(KNOWN_ENTRIES)
        self.tried: LRUCache[str, bool] = LRUCache(KNOWN_ENTRIES)
        self.after = AfterAnswer()  # working copies being made

    async def object(self, source: Source, key: str, object_id: str) -> SourceObjectRecord:
        """The record of a current copy of the object (errors: see the module docstring)."""
        now = time.monotonic()
        known = self.known.get(object_id)
        if known is not None and known[1] > now:
            record = known[0]
        else:
            remembered = self.missing.get(object_id)
            if remembered is not None and remembered[1] > now:
                raise remembered[0]
            record = await self.flights.join(
                object_id, lambda: self._refresh(source, key, object_id)
            )
        self._asked_again(record)
        return record

    async def drain(self) -> None:
        """Wait (bounded) for working copies still being made, at shutdown."""
        await self.after.drain()

    async def lost(self, record: SourceObjectRecord) -> None:
        """The kept bytes of ``record`` are gone: its row (and its derivatives' rows) go too,
        so the next request reads the object again."""
        log.warning("source %s: the kept bytes of %s are gone", record.source, record.id)
        self.forget(record.id)
        if await self.rows.delete(record.id):
            await self._remove_objects(record)

    def forget(self, object_id: str) -> None:
        self.known.pop(object_id, None)
        self.missing.pop(object_id, None)

    # ---- one flight per object ---------------------------------------------------------

    async def _refresh(self, source: Source, key: str, object_id: str) -> SourceObjectRecord:
        row = await self.rows.get(object_id)
        now = datetime.now(UTC)
        if row is not None and (now - row.checked_at).total_seconds() < source.ttl:
            return self._keep(source, row)
        try:
            read = await self.upstream.read(
                source,
                key,
                None if row is None else row.etag,
                None if row is None else row.last_modified,
            )
            return self._keep(source, await self._update(source, key, object_id, row, read))
        except SourceMissing:
            self.reads[source.name, "missing"] += 1
            if row is not None and await self.rows.delete(row.id):  # gone upstream: the
                await self._remove_objects(row)  # copy goes, nothing revalidates it later
            missing = NotFound(f"no such object in source '{source.name}'")
            raise self._remember(source, object_id, missing) from None
        except PayloadTooLarge as exc:
            self.reads[source.name, "failed"] += 1
            raise self._remember(source, object_id, SourceUnavailable(exc.message)) from None
        except InvalidImage as exc:
            self.reads[source.name, "failed"] += 1
            raise self._remember(source, object_id, exc) from None
        except (SourceUnavailable, SourceTimeout) as exc:
            self.reads[source.name, "failed"] += 1
            if row is None:
                raise
            return self._kept_through(source, row, exc)

    async def _update(
        self,
        source: Source,
        key: str,
        object_id: str,
        row: SourceObjectRecord | None,
        read: Read,
    ) -> SourceObjectRecord:
        body = read.body
        record = None
        if body is not None:  # hashed and inspected once, in the pool (an SVG rasterised)
            fetched = body
            body, record = await self.services.pool.run(
                lambda: inspect(source, key, object_id, fetched, read, self.services)
            )
        if record is None or (row is not None and record.content_hash == row.content_hash):
            assert row is not None  # a 304 answers a conditional read, which needs a row
            self.reads[source.name, "not_modified" if body is None else "unchanged"] += 1
            now = datetime.now(UTC)
            await self.rows.checked(object_id, now, read.etag, read.last_modified)
            return dataclasses.replace(
                row, checked_at=now, etag=read.etag, last_modified=read.last_modified
            )
        self.reads[source.name, "fetched"] += 1
        assert body is not None  # a record is made from new bytes only
        await self.services.storage.put(
            record.storage_key, body, content_type=f"image/{record.format}"
        )
        await self.rows.put(record)
        if row is not None:  # the earlier version: its derivatives' rows went with the put
            await self._remove_objects(row, keep=record.storage_key)
        await self._bound(newest=record.id)
        log.info("source %s: kept %s (%d bytes)", source.name, key[:200], record.size_bytes)
        return record

    def _keep(self, source: Source, record: SourceObjectRecord) -> SourceObjectRecord:
        age = (datetime.now(UTC) - record.checked_at).total_seconds()
        self.known[record.id] = (record, time.monotonic() + max(0.0, source.ttl - age))
        self.missing.pop(record.id, None)
        return record

    def _kept_through(
        self, source: Source, row: SourceObjectRecord, error: OriginError
    ) -> SourceObjectRecord:
        """The upstream failed while revalidating a kept copy: answer with the copy (stale if
        error, as a CDN would) and ask again after ``missing_ttl`` (at least a second)."""
        log.warning(
            "source %s: revalidating %s failed (%s); serving the kept copy",
            source.name,
            row.object_key[:200],
            error.message,
        )
        self.known[row.id] = (row, time.monotonic() + max(1, source.missing_ttl))
        return row

    def _remember(self, source: Source, object_id: str, error: OriginError) -> OriginError:
        if source.missing_ttl > 0:
            self.missing[object_id] = (error, time.monotonic() + source.missing_ttl)
        self.known.pop(object_id, None)
        return error

    # ---- working copies, once an object is asked for again ------------------------------

    def _asked_again(self, record: SourceObjectRecord) -> None:
        """An object asked for a second time in this process gets its working copies and
        analysis, after the answer and once per version: one seen once cost one decode."""
        asked = self.asked.get(record.id, 0) + 1
        self.asked[record.id] = asked
        version = f"{record.id}:{record.content_hash}"
        if asked < 2 or record.analysis is not None or self.tried.get(version):
            return
        self.tried[version] = True
        self.after.start(self._improve(record))

    async def _improve(self, record: SourceObjectRecord) -> None:
        services = self.services
        written: list[str] = []
        try:
            body = await services.storage.get(record.storage_key)
            levels, analysis = await services.pool.run(lambda: improve(body, services.limits))
            copies = []
            for level in levels:
                copy = WorkingCopy(level.width, level.height, copy_key(record, level))
                await services.storage.put(
                    copy.storage_key, level.body, content_type=level.media_type, durable=False
                )
                written.append(copy.storage_key)
                copies.append(copy)
            size = sum(len(level.body) for level in levels)
            if not await self.rows.improved(
                record.id, record.content_hash, tuple(copies), size, analysis
            ):
                raise ObjectMissing("the object changed or went meanwhile")
        except Exception as exc:  # an optimisation: the object is served without it
            log.info("source %s: no working copies for %s: %r", record.source, record.id, exc)
            for key in written:
                with contextlib.suppress(Exception):
                    await services.storage.delete(key)
            return
        improved = dataclasses.replace(
            record,
            working_copies=tuple(sorted(copies, key=lambda c: c.width * c.height)),
            analysis=analysis,
        )
        known = self.known.get(record.id)
        if known is not None and known[0].content_hash == record.content_hash:
            self.known[record.id] = (improved, known[1])

    # ---- the bound -----------------------------------------------------------------------

    async def _bound(self, newest: str) -> None:
        """Remove the objects read or revalidated longest ago while past the bound (never
        ``newest``, the object just stored: its request is about to render it)."""
        limit = self.services.settings.source_cache_max_bytes
        total = await self.rows.total_bytes()
        while total > limit:
            oldest = [r for r in await self.rows.oldest(EVICT_BATCH) if r.id != newest]
            if not oldest:
                return
            for record in oldest:
                if total <= limit:
                    return
                if await self.rows.delete(record.id):
                    total -= record.size_bytes  # and its derivatives: recounted below
                    self.forget(record.id)
                    await self._remove_objects(record)
                    log.info("source %s: evicted %s", record.source, record.object_key[:200])
            total = await self.rows.total_bytes()

    async def _remove_objects(self, record: SourceObjectRecord, keep: str | None = None) -> None:
        """An object's bytes and derivatives, after its row changed or went (best effort:
        what is left, ``imgorigin gc`` removes)."""
        storage = self.services.storage
        try:
            await storage.delete_prefix(f"{record.owner}/{record.id}/derived/")
            await storage.delete_prefix(f"{record.owner}/{record.id}/work/")
            if record.storage_key != keep:
                await storage.delete(record.storage_key)
        except Exception:
            log.exception("could not remove the objects of source object %s", record.id)


def inspect(
    source: Source, key: str, object_id: str, body: bytes, read: Read, services: Services
) -> tuple[bytes, SourceObjectRecord]:
    """In a pool thread: the bytes kept (an SVG becomes the PNG origin.svg draws), what they
    are (422 when not an image) and their hash — a header read only: the request's render
    decodes them once, and nothing else does yet."""
    if svg.is_svg(body):
        body = svg.rasterise(body, services.limits.max_source_pixels)
    header = read_header(body, services.limits.max_source_pixels)
    return body, kept_object(source.name, object_id, key, body, header, read)


def improve(body: bytes, limits: Limits) -> tuple[list[working_copies.Level], Analysis | None]:
    """In a pool thread: an object's working copies (as an upload's) and its analysis, made
    from the smallest copy (else from the object)."""
    header = read_header(body, limits.max_source_pixels)
    sizes = working_copies.level_sizes(header.format, header.pages, header.width, header.height)
    levels = working_copies.build(body, sizes)
    smallest = min(levels, key=lambda lv: lv.width * lv.height).body if levels else body
    return levels, analyse(smallest, limits=limits)


def copy_key(record: SourceObjectRecord, level: working_copies.Level) -> str:
    """Where a working copy of this version lives (content-addressed, as the object)."""
    return (
        f"{record.owner}/{record.id}/work/{record.content_hash[:16]}-"
        f"{level.width}x{level.height}.{level.ext}"
    )


def kept_object(
    source: str,
    object_id: str,
    key: str,
    body: bytes,
    header: Header,
    read: Read | None = None,
    folder: str | None = None,
) -> SourceObjectRecord:
    """The record of ``body`` kept for a source at
    ``sources/<source>/<folder: the object id>/<hash>.<ext>`` (content-addressed)."""
    content_hash = hashlib.sha256(body).hexdigest()
    ext = FILE_EXTENSIONS[header.format]
    now = datetime.now(UTC)
    return SourceObjectRecord(
        id=object_id,
        source=source,
        object_key=key,
        storage_key=f"sources/{source}/{folder or object_id}/{content_hash[:16]}.{ext}",
        content_hash=content_hash,
        format=header.format,
        size_bytes=len(body),
        width=header.width,
        height=header.height,
        etag=None if read is None else read.etag,
        last_modified=None if read is None else read.last_modified,
        fetched_at=now,
        checked_at=now,
    )
