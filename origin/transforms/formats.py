"""The output formats: names, media types, file extensions, and ``f_auto``'s negotiation."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from types import MappingProxyType

FORMATS = ("jpeg", "png", "webp", "avif", "gif")
ANIMATED_FORMATS = ("gif", "webp")
MEDIA_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "jpeg": "image/jpeg",
        "png": "image/png",
        "webp": "image/webp",
        "avif": "image/avif",
        "gif": "image/gif",
        "json": "application/json",
    }
)
EXTENSIONS: Mapping[str, str] = MappingProxyType(
    {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "webp": "webp", "avif": "avif", "gif": "gif"}
)
# The extension a format is written with: stored originals and derivatives, minted URLs.
FILE_EXTENSIONS: Mapping[str, str] = MappingProxyType(
    {"jpeg": "jpg", "png": "png", "webp": "webp", "avif": "avif", "gif": "gif"}
)


def negotiate_format(accept: str | None, fallback: str) -> str:
    """AVIF, then WebP, when `Accept` lists them with q > 0 (explicitly; `*/*` and `image/*`
    don't count, as browsers send them for everything); else `fallback`."""
    accepted: dict[str, float] = {}
    for item in (accept or "").split(","):
        media, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for p in params:
            k, _, v = p.partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v.strip())
                except ValueError:
                    q = 0.0
                if not math.isfinite(q):
                    q = 0.0
        media = media.lower()
        accepted[media] = max(q, accepted.get(media, 0.0)) if media in accepted else q
    for fmt in ("avif", "webp"):
        if accepted.get(f"image/{fmt}", 0.0) > 0:
            return fmt
    return fallback


@functools.lru_cache(maxsize=1024)  # browsers send a handful of distinct Accept strings
def negotiated_format(accept: str | None, fallback: str | None) -> str | None:
    """The format ``f_auto`` answers with: ``negotiate_format``, else ``fallback`` (None for
    ``.json`` without ``f_``: the source's)."""
    return negotiate_format(accept, fallback or "") or fallback
