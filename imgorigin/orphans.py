"""``imgorigin gc``: remove stored objects that no row refers to, and derivative rows whose
object is gone (a store emptied by hand, a lost bucket prefix: the next request renders
again instead of answering 500 from a row that points nowhere).

An upload writes its objects (the original, then its working copies) before its row, so an
object younger than ``min_age`` may belong to an upload still in flight and is left alone.
Working copies are referenced by their image's row (``images.working_copies``); the source
cache's objects and derivatives by their rows (``source_objects``, ``source_derivatives``)
and each source's fallback image by ``SOURCES_FILE``. Leftovers of interrupted local
writes (``.tmp/*.part``) older than ``min_age`` are removed too.

Only imgorigin's own layout is ever removed — ``<user id>/<image id>/…`` and
``sources/<source>/<object id or fallback>/…`` (``ours``) —, so a bucket or folder shared with anything else (a
source's objects, a backup) keeps what imgorigin did not write; those are counted, not
touched.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from origin.services import Services
from origin.sources.delivery import fallback_record
from origin.store.objects import InvalidKey, LocalStorage, validate_key

DEFAULT_MIN_AGE_SECONDS = 3600
OURS = re.compile(r"[0-9a-f]{32}/[0-9a-f]{32}/.+|sources/[^/]+/(?:[0-9a-f]{32}|fallback)/.+")


def ours(key: str) -> bool:
    """Whether ``key`` is in the layout imgorigin writes (and is a key it could write)."""
    if not OURS.fullmatch(key):
        return False
    try:
        validate_key(key)
    except InvalidKey:
        return False
    return True


@dataclass
class Collected:
    removed: list[str] = field(default_factory=list)  # keys (and temp files) removed
    foreign: int = 0  # objects outside imgorigin's layout, left alone


async def collect_garbage(
    services: Services, *, min_age: float = DEFAULT_MIN_AGE_SECONDS
) -> Collected:
    """Delete orphan objects of imgorigin's layout; what was removed and left alone."""
    cutoff = time.time() - min_age
    collected = Collected()
    # Objects are listed before rows are read: an object whose row commits in between is
    # then seen as referenced, never removed.
    candidates = []
    async for info in services.storage.objects():
        if not ours(info.key):
            collected.foreign += 1
        elif info.modified <= cutoff:
            candidates.append(info)
    referenced = await services.images.referenced_keys() | await source_keys(services)
    removed = collected.removed
    for info in candidates:
        if info.key not in referenced:
            await services.storage.delete(info.key)
            removed.append(info.key)
    if isinstance(services.storage, LocalStorage):
        for part in services.storage.temporary_files():
            with contextlib.suppress(FileNotFoundError):
                if part.stat().st_mtime <= cutoff:
                    part.unlink()
                    removed.append(f"{part.parent.name}/{part.name}")
    return collected


async def remove_dangling_rows(services: Services) -> int:
    """Delete the derivative rows (uploads' and sources') whose object is not in storage;
    how many. Storage is listed first, and only rows recorded before the listing began are
    considered: a render writes its object, then its row, so one whose object the listing
    missed has a row recorded after it began, and a live derivative is never removed."""
    listed_at = datetime.now(UTC)
    present = {info.key async for info in services.storage.objects()}
    uploads = await services.derivatives.remove_missing(present, listed_at)
    return uploads + await services.source_derivatives.remove_missing(present, listed_at)


async def source_keys(services: Services) -> set[str]:
    """The source cache's objects (rows of origin.store.sources) and the configured
    sources' fallback images: the operator's, never orphans while referenced."""
    keys = await services.sources.referenced_keys()
    limit = services.limits.max_source_pixels
    for source in services.settings.sources.values():
        if source.fallback is not None:
            keys.add(fallback_record(source, limit).storage_key)
    return keys
