"""A ``/r/`` path: ``/r/<source>/<stage>…/-/<object path>[@<format>]``. Pure: no I/O.

- ``<source>`` names an entry of ``SOURCES_FILE``;
- the stages are the ``/i/`` grammar's, zero or more;
- ``-`` ends them; everything after it is the object's path, its segments percent-encoded
  (UTF-8), split on real ``/`` only;
- ``@<format>`` at the very end (``jpg jpeg png webp avif gif json``) names the output; without
  it the answer keeps the object's format. An object whose name ends so writes that ``@`` as
  ``%40``: the suffix is read from the raw path, before decoding.

A path can never leave its source: an empty, ``.`` or ``..`` segment, an encoded ``/`` or
``\\``, a raw ``\\``, a control character, or a segment that is not UTF-8 is 400
``bad_request``, before any network I/O. With a source of ``hosts``, the first segment is
the host and must be one of them.

The pipeline renders a source object through an equivalent ``/i/<object id>/<stages>/o.<ext>``
path (``plan_path``), so every transform, policy and cache rule of ``/i/`` holds unchanged.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from origin.errors import BadRequest, BadTransform, NotFound, shown
from origin.fetch.guard import Policy
from origin.sources.config import NAME, Source
from origin.transforms.formats import FILE_EXTENSIONS
from origin.transforms.limits import Limits
from origin.transforms.parse import parse_path
from origin.transforms.plan import Plan

SEPARATOR = "-"
SUFFIX = re.compile(r"@(jpg|jpeg|png|webp|avif|gif|json)\Z", re.ASCII)
ESCAPES = re.compile(r"%(2f|5c|00)", re.IGNORECASE | re.ASCII)
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*(:|%3a)", re.IGNORECASE | re.ASCII)  # a whole segment
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_KEY_BYTES = 1024
# Characters kept as they are when an object path is written into a URL (RFC 3986 pchar).
URL_SAFE = "!$&'()*+,;=:@-._~"
# Kept as they are when a chain is written into a URL (as admin_api.urls writes /i/ chains).
CHAIN_SAFE = "/,:_.-!~*'()%"


@dataclass(frozen=True)
class SourcePath:
    """What a ``/r/`` path names: the source, its stages (raw), the object and the output."""

    source: str
    stages: tuple[str, ...]
    key: str  # the object's path, decoded: segments joined by "/"
    ext: str | None  # the @suffix (an extension or "json"); None keeps the object's format
    object_id: str  # object_id(source, key), made once

    def plan_path(self, object_format: str | None = None) -> str:
        """The equivalent ``/i/`` path the grammar parses; without ``@`` the object's format
        (``png`` until it is known: only to check the stages)."""
        ext = self.ext or FILE_EXTENSIONS.get(object_format or "png", "png")
        return "/".join(("/i", self.object_id, *self.stages, f"o.{ext}"))


def object_id(source: str, key: str) -> str:
    """A source object's stable id (a row's, a storage prefix's): 32 hex digits."""
    return hashlib.sha256(f"{source}\0{key}".encode()).hexdigest()[:32]


def parse_source_path(path: str) -> SourcePath:
    """The raw path (percent-encoding kept) → what it names; 400 when malformed."""
    if not path.startswith("/r/"):
        raise BadRequest("expected /r/<source>/<stages>/-/<object path>")
    body, ext = path[3:], None
    suffix = SUFFIX.search(body)
    if suffix is not None:
        body, ext = body[: suffix.start()], suffix.group(1)
    segments = body.split("/")
    source = segments[0]
    if not NAME.fullmatch(source):
        raise BadRequest(f"'{shown(source, 40)}' is not a source name")
    try:
        end = segments.index(SEPARATOR, 1)
    except ValueError:
        raise BadRequest(
            "a source URL needs '/-/' between its stages and the object path"
        ) from None
    parts = segments[end + 1 :]
    if not parts or parts == [""]:
        raise BadRequest("a source URL names an object after '/-/'")
    key = "/".join(_segment(raw) for raw in parts)
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise BadRequest(f"an object path is at most {MAX_KEY_BYTES} bytes")
    if SCHEME.fullmatch(parts[0]):
        raise BadRequest("an object path is a path in its source, not a URL")
    return SourcePath(source, tuple(segments[1:end]), key, ext, object_id(source, key))


def _segment(raw: str) -> str:
    if raw in ("", ".", "..") or "\\" in raw or ESCAPES.search(raw):
        raise BadRequest(
            "an object path has no empty, '.' or '..' segment and no encoded '/' or '\\'"
        )
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("an object path is percent-encoded UTF-8") from None
    if text in (".", "..") or CONTROL.search(text) or "/" in text or "\\" in text:
        raise BadRequest("an object path has no '.', '..' or control characters")
    return text


def source_path(source: str, chain: str, key: str, ext: str | None = None) -> str:
    """The ``/r/`` path of object ``key`` (decoded text) of ``source`` through ``chain``, as
    ``@ext``: the reverse of ``parse_source_path``."""
    stages = f"/{quote(chain, safe=CHAIN_SAFE)}" if chain else ""
    return f"/r/{source}{stages}/-/{encode_key(key)}" + (f"@{ext}" if ext else "")


def checked_source_path(
    source: str,
    chain: str,
    key: str,
    ext: str | None,
    *,
    config: Source | None,
    presets: Mapping[str, str],
    limits: Limits,
) -> str:
    """``source_path``, checked as the origin checks a request before any I/O (the path, the
    host of a ``hosts`` source, the chain): a URL it would refuse is never minted."""
    path = source_path(source, chain, key, ext)
    named = parse_source_path(path)
    if config is not None:
        host_and_path(config, named.key)
    refuse_overlays(parse_path(named.plan_path(), presets=presets, limits=limits))
    return path


def refuse_overlays(plan: Plan) -> None:
    """Image overlays name uploads, which a source URL never reads: 400."""
    if plan.overlay_ids:
        raise BadTransform("image overlays (l_<id>) are for uploads, not source URLs")


def encode_key(key: str) -> str:
    """An object path written into a URL: each segment percent-encoded (``@`` at the end of
    the last one too, so no name is read as a format suffix)."""
    encoded = [quote(segment, safe=URL_SAFE) for segment in key.split("/")]
    if SUFFIX.search(encoded[-1]):
        head, _, tail = encoded[-1].rpartition("@")
        encoded[-1] = f"{head}%40{tail}"
    return "/".join(encoded)


def upstream_location(source: Source, key: str) -> str:
    """Where the object lives: an http source's URL, or an s3 source's object key (a source
    of ``hosts``: see ``host_and_path``)."""
    if source.type == "s3":
        return source.prefix + key
    if source.base_url is not None:
        return source.base_url + encode_key(key)
    host, rest = host_and_path(source, key)
    return f"{source.scheme}://{host}/{encode_key(rest)}"


def host_and_path(source: Source, key: str) -> tuple[str, str]:
    """A ``hosts`` source's object path as its host (one of the source's, else 404) and the
    path on it; the whole key for any other source."""
    if not source.hosts:
        return "", key
    host, _, rest = key.partition("/")
    host = host.lower()
    if not rest or not Policy(hosts=source.hosts).host_allowed(host):
        raise NotFound(f"no such object in source '{source.name}'")
    return host, rest
