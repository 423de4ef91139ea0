"""The cache keys the shipped nginx stores an image's answers under, so a purge can name
each entry exactly (origin.purge).

nginx sends its key with every ``/i/`` request it proxies (``X-Imgorigin-Cache-Key:
$request_uri|$imgorigin_variant$imgorigin_hints``, nginx.conf, which replaces whatever a
client sent). The origin records it with the image on an answer caches may keep (public), in batches every ``FLUSH_SECONDS`` (origin.batches): a request
reaches the origin only when nginx misses, so this costs nothing on nginx's hits. A key must
be the request's own URI and nginx's bucket suffix, and an image keeps at most
``edge_keys.MAX_PER_IMAGE`` (past that its purges are by what was recorded, and nginx's
other entries expire by their max-age).
"""

from __future__ import annotations

import re

from origin.batches import Batch
from origin.store import edge_keys
from origin.store.database import Database

FLUSH_SECONDS = 1.0
MAX_KEY_CHARACTERS = 4096
# What nginx puts after the request URI: the Accept bucket, then the hint buckets.
SUFFIX = re.compile(r"\|(avif|webp|other)?(\|w[0-9]{1,5})?(\|d[0-9.]{1,4})?")


class EdgeKeys(Batch[tuple[str, str], None]):
    def __init__(self, db: Database) -> None:
        super().__init__("nginx cache keys", lambda found: edge_keys.add(db, found), FLUSH_SECONDS)

    def note(self, image_id: str, request_uri: str, key: str) -> None:
        """Record ``key`` when it is this request's own URI and a bucket suffix (a client
        that talks to the origin directly can name nothing else)."""
        if (
            len(key) <= MAX_KEY_CHARACTERS
            and key.startswith(request_uri)
            and SUFFIX.fullmatch(key, len(request_uri))
        ):
            self.put((image_id, key), None)
