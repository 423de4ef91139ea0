"""Cache tags: every ``/i/`` answer names its image (and the images it overlays) and its
owner for CDNs that purge by
tag, in the three conventions — ``Cache-Tag`` (Cloudflare, comma-separated),
``Surrogate-Key`` (Fastly, space-separated) and ``Edge-Cache-Tag`` (Akamai,
comma-separated).

A tag is a keyed hash, so it does not reveal the id: ``i`` (image) or ``u`` (owner)
followed by the first 20 hex digits of HMAC-SHA256(key, "image:" + id) or
HMAC-SHA256(key, "user:" + id), the key being derived from ``JWT_SECRET`` (a tag changes if
that secret does). The shipped nginx strips the three headers from its answers to clients.
"""

from __future__ import annotations

import functools
import hashlib
import hmac

HEADERS = (b"cache-tag", b"surrogate-key", b"edge-cache-tag")
DIGITS = 20


def tag_key(jwt_secret: str) -> bytes:
    return hmac.new(jwt_secret.encode("utf-8"), b"imgorigin cache tags", hashlib.sha256).digest()


def tag(key: bytes, kind: str, ident: str) -> str:
    """``image`` or ``user`` and an id → the tag (``i…`` / ``u…``)."""
    digest = hmac.new(key, f"{kind}:{ident}".encode("ascii"), hashlib.sha256).hexdigest()
    return f"{kind[0]}{digest[:DIGITS]}"


class CacheTags:
    """The tag headers of an image's answers, computed once per (image, owner)."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.headers = functools.lru_cache(maxsize=65536)(self._headers)

    def _headers(
        self, image_id: str, user_id: str, overlay_ids: tuple[str, ...] = ()
    ) -> tuple[tuple[bytes, bytes], ...]:
        """The image's tag, each overlay image's (a composite changes with them) and the
        owner's."""
        images = (image_id, *overlay_ids)
        tags = (*(tag(self.key, "image", i) for i in images), tag(self.key, "user", user_id))
        commas = ",".join(tags).encode("ascii")
        spaces = " ".join(tags).encode("ascii")
        return ((HEADERS[0], commas), (HEADERS[1], spaces), (HEADERS[2], commas))
