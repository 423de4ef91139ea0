"""The cache keys the shipped nginx stores an image's answers under, so a purge can name
each entry exactly (origin.purge).

nginx sends its key with every ``/i/`` request it proxies (``X-Imgorigin-Cache-Key:
$request_uri|$imgorigin_variant$imgorigin_hints``, nginx.conf, which replaces whatever a
client sent). The origin records it with the image on an answer caches may keep (public), in batches every ``FLUSH_SECONDS`` (origin.batches): a request
reaches the origin only when nginx misses, so this costs nothing on nginx's hits. A key must
be the request's own URI and nginx's bucket suffix, and an image keeps at most
``edge_keys.MAX_PER_IMAGE`` (past that its purges are by what was recorded, and nginx's
other entries expire by their max-age).

A batch written after its image was deleted, replaced or made private or public, or after a
transformation its URL went through was edited or deleted (whose purge then ran without these
keys), is purged instead of recorded, so an answer cached in the second before such a change
leaves nginx too — as is one served from a definition another process still had
(origin.lookup keeps them ``TTL_SECONDS``).
"""

from __future__ import annotations

import logging
import re

from origin.batches import Batch
from origin.named import Uses
from origin.purge import queue_purge
from origin.records import ImageRecord
from origin.settings import Settings
from origin.store import edge_keys
from origin.store.database import Database
from origin.store.edge_keys import Served

log = logging.getLogger("imgorigin.purge")

FLUSH_SECONDS = 1.0
STALE: Served = (-1, False, ())  # no image is at version -1: the key is purged at the write
MAX_KEY_CHARACTERS = 4096
# What nginx puts after the request URI: the Accept bucket, then the hint buckets (empty
# when the URL uses w_auto/dpr_auto and the client sent no hint: "|w", "|d").
SUFFIX = re.compile(r"\|(avif|webp|other)?(\|w[0-9]{0,5})?(\|d[0-9.]{0,4})?")


class EdgeKeys(Batch[tuple[str, str], Served]):
    def __init__(self, db: Database, settings: Settings) -> None:
        super().__init__("nginx cache keys", self._write, FLUSH_SECONDS)
        self.db = db
        self.settings = settings

    def note(
        self,
        image: ImageRecord,
        request_uri: str,
        key: str,
        uses: Uses = (),
        overlays: tuple[ImageRecord, ...] = (),
    ) -> bool:
        """Record ``key`` when it is this request's own URI and a bucket suffix (a client
        that talks to the origin directly can name nothing else), with the image as served
        and the owner's transformations its URL went through (``Named.uses``); a composite's
        under each image it overlays too. False when it
        is not — nginx keeps what the origin never sees (a raw ``#…``, an empty ``?``) — or
        when the batch is full: no purge could name that entry, and the caller answers
        ``no-store``. A key served twice before a write with the image changed in between is
        purged then."""
        if not (
            len(key) <= MAX_KEY_CHARACTERS
            and key.startswith(request_uri)
            and SUFFIX.fullmatch(key, len(request_uri))
        ):
            return False
        kept = True
        for each in (image, *overlays):  # a composite is purged with each image it shows
            served = (each.version, each.public, uses)
            if self.pending.get((each.id, key), served) != served:
                served = STALE  # nginx may hold either answer: purge at the write
            kept = self.put((each.id, key), served) and kept
        return kept

    async def _write(self, found: dict[tuple[str, str], Served]) -> None:
        """Record a batch; the keys of answers whose image changed or went before they were
        written (a purge that ran without them) are purged now instead."""
        stale = await edge_keys.add(self.db, found)
        if stale:
            log.info("purging %d nginx keys of images changed since they were served", len(stale))
            async with self.db.write() as conn:
                await queue_purge(conn, self.settings, None, stale, ())
