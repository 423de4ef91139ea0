"""``GET|HEAD /r/<source>/<stage>…/-/<object path>[@<format>]``: a remote object, rendered.

The sequence of ``/i/`` (origin.delivery), with the source's own first steps:

1. the query (``s``/``exp``/``p`` only) and an **operator** signature — a user's key or token
   never reads a source: 403 ``bad_signature``;
2. the path (origin.sources.paths): the source, the object path (never leaving its source),
   the stages parsed — 400 / 404 before any network I/O;
3. the object (origin.sources.cache): memory, else one flight per object to the cache row
   and, when stale, a conditional read from the upstream. Missing → 404 ``not_found``; a
   failing upstream → 502 / 504; not an image → 422. With a ``fallback``, the fallback image
   is rendered instead (200, ``max-age`` = the source's ``missing_ttl``,
   ``X-Imgorigin-Fallback: 1``);
4. then as ``/i/``: the plan for the object's format, the ETag (which holds the object's
   content hash) and ``If-None-Match``, the derivative, the answer — ``Cache-Control: public,
   max-age=<the source's max_age>`` (less when the URL expires sooner). Should the kept
   bytes be gone by then (another worker evicted the object), its row is dropped and the
   object read again, once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from starlette.types import Receive, Scope, Send

from origin.decode import read_header
from origin.delivery import Origin, deliver, expires_of
from origin.derivatives import Wanted
from origin.errors import InvalidImage, NotFound, SourceTimeout, SourceUnavailable
from origin.metrics import Metrics
from origin.records import SourceObjectRecord
from origin.request import raw_path, read_headers, split_query
from origin.services import Services
from origin.sources.cache import SourceCache, kept_object
from origin.sources.config import Source
from origin.sources.paths import SourcePath, host_and_path, parse_source_path, refuse_overlays
from origin.sources.upstream import Upstream
from origin.store.objects import StorageUnavailable

log = logging.getLogger("imgorigin.sources")

# What the fallback image stands in for (a missing object, a failing or wrong upstream).
FALLBACK_FOR = (NotFound, SourceUnavailable, SourceTimeout, InvalidImage)
FALLBACK_HEADER = (b"x-imgorigin-fallback", b"1")


@dataclass
class Sources:
    """The configured sources, their cache and their fallback images (per process), and
    which of those are not stored yet (object storage did not answer at start)."""

    config: Mapping[str, Source]
    cache: SourceCache
    fallbacks: Mapping[str, SourceObjectRecord]
    unstored: set[str] = field(default_factory=set)

    async def fallback(self, services: Services, source: Source) -> SourceObjectRecord:
        """``source``'s fallback image, stored first if it could not be at start."""
        if source.name in self.unstored:
            await _store_fallback(services, source)
            self.unstored.discard(source.name)
        return self.fallbacks[source.name]


async def start_sources(services: Services, stack: AsyncExitStack, metrics: Metrics) -> Sources:
    """Open the S3 sources' clients and store each fallback image (once per version). Object
    storage that does not answer yet does not stop the start (``/readyz`` says so): a
    fallback not stored now is stored when it is first needed."""
    upstream = await Upstream.open(services.settings, stack)
    fallbacks, unstored = {}, set()
    for source in services.settings.sources.values():
        if source.fallback is not None:
            fallbacks[source.name] = fallback_record(source, services.limits.max_source_pixels)
            try:
                await _store_fallback(services, source)
            except StorageUnavailable as exc:
                log.warning("source %s: fallback image not stored yet (%s)", source.name, exc)
                unstored.add(source.name)
    cache = SourceCache(services, upstream, metrics)
    return Sources(services.settings.sources, cache, fallbacks, unstored)


async def _store_fallback(services: Services, source: Source) -> None:
    record = fallback_record(source, services.limits.max_source_pixels)
    if await services.storage.head(record.storage_key) is None:
        assert source.fallback is not None
        body, media_type = source.fallback.body, f"image/{record.format}"
        await services.storage.put(record.storage_key, body, content_type=media_type)


def fallback_record(source: Source, max_source_pixels: int) -> SourceObjectRecord:
    """The fallback image of ``source`` as a source object, stored at
    ``sources/<source>/fallback/<hash>.<ext>`` (``imgorigin gc`` keeps it)."""
    assert source.fallback is not None
    body = source.fallback.body
    header = read_header(body, max_source_pixels)
    object_id = hashlib.sha256(f"{source.name}\0fallback".encode()).hexdigest()[:32]
    return kept_object(source.name, object_id, "fallback", body, header, folder="fallback")


def source_cache_control(max_age: int, exp: str | None, now: float) -> str:
    """A source's answers may change upstream: ``max-age`` of the source, never immutable;
    an expiring URL is fresh at most until it expires, and ``must-revalidate``."""
    if exp is None:
        return f"public, max-age={max_age}"
    left = max(0, min(max_age, int(exp) - int(now)))
    return f"public, max-age={left}, must-revalidate"


class ServeSource:
    """The ``/r/…`` endpoint (the sequence of this module's docstring)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin: Origin = scope["state"]["origin"]
        sources: Sources = scope["state"]["sources"]
        path = raw_path(scope)
        query = split_query(scope["query_string"])
        headers = read_headers(scope)
        exp, now = origin.credentials.check_source(path, query)
        named = parse_source_path(path)
        source = sources.config.get(named.source)
        if source is None:
            raise NotFound(f"no source named '{named.source}'")
        host_and_path(source, named.key)  # a host outside the source's: 404, no I/O
        checked = origin.plans.prepared(named.plan_path(), headers)
        refuse_overlays(checked.plan)
        for attempt in (1, 2):
            record, max_age, extra = await self._object(origin.services, sources, source, named)
            image = record.as_image()
            prepared = checked  # with @<format>, the plan checked is the plan
            if named.ext is None:
                prepared = origin.plans.prepared(named.plan_path(record.format), headers)
            wanted = Wanted(
                prepared.key_for(image, ()),
                image,
                prepared.plan,
                rows=origin.services.source_derivatives,
                kept=not extra,  # a fallback's derivatives: no source_objects row to own them
            )
            control = source_cache_control(max_age, exp, now)
            try:
                expires = expires_of(control, now)
                await deliver(
                    origin, scope, receive, send, wanted, control, headers, extra + expires
                )
                return
            except NotFound:
                # The kept bytes went (another worker evicted the object, or they were
                # lost): drop the row it still had, and read the object again, once.
                if attempt == 2 or extra:
                    raise
                await sources.cache.lost(record)

    @staticmethod
    async def _object(
        services: Services, sources: Sources, source: Source, named: SourcePath
    ) -> tuple[SourceObjectRecord, int, tuple[tuple[bytes, bytes], ...]]:
        """The object's record and ``max_age``, or the fallback's (with its header)."""
        try:
            record = await sources.cache.object(source, named.key, named.object_id)
        except FALLBACK_FOR:
            if named.source not in sources.fallbacks:
                raise
            fallback = await sources.fallback(services, source)
            return fallback, source.missing_ttl, (FALLBACK_HEADER,)
        return record, source.max_age, ()


serve_source = ServeSource()
