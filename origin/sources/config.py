"""``SOURCES_FILE``: the remote sources an operator names, read and validated at start-up.

A JSON object, one entry per source (docs/sources.md has the reference)::

    {
      "shop": {"type": "http", "base_url": "https://media.shop.example/uploads/",
               "headers": {"Authorization": "Bearer …"}, "max_age": 86400},
      "catalogue": {"type": "s3", "bucket": "catalogue", "prefix": "products/",
                    "endpoint_url": "https://s3.eu-west-1.amazonaws.com"}
    }

Every bad entry is a ``SettingsError`` naming ``SOURCES_FILE``, the source and the field;
the process does not start.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from origin.magic import sniff_format

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}", re.ASCII)
HOST = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:[0-9]{1,5})?", re.ASCII)
# Headers the fetcher sets itself (origin.fetch): a source may not set them.
OWN_HEADERS = frozenset(
    {"host", "accept", "accept-encoding", "user-agent", "content-length", "connection"}
)
HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}", re.ASCII)
MAX_FALLBACK_BYTES = 10 * 1024 * 1024
# Numbers every source may set: name → (default, lowest, highest).
NUMBERS: Mapping[str, tuple[float, float, float]] = MappingProxyType(
    {
        "max_age": (86_400, 0, 31_536_000),  # Cache-Control max-age of its answers
        "ttl": (3_600, 0, 31_536_000),  # revalidate the kept bytes after this long
        "missing_ttl": (60, 0, 86_400),  # remember a missing object (and a fallback's max-age)
        "timeout": (10, 0.1, 600),  # the whole read, seconds
        "connect_timeout": (5, 0.1, 600),
        "max_bytes": (20 * 1024 * 1024, 1, 1024**3),
    }
)
COMMON = frozenset({"type", "fallback", *NUMBERS})
HTTP_FIELDS = COMMON | {"base_url", "hosts", "scheme", "headers"}
S3_FIELDS = COMMON | {
    "bucket",
    "prefix",
    "endpoint_url",
    "region",
    "access_key_id",
    "secret_access_key",
}


class SourceError(ValueError):
    """One bad entry of the sources file (settings turn it into a ``SettingsError``)."""


@dataclass(frozen=True)
class Fallback:
    """The image answered instead of a missing or failing object (off unless configured)."""

    body: bytes = field(repr=False)
    format: str


@dataclass(frozen=True)
class Source:
    """One named source. ``http``: ``base_url`` or ``hosts`` (then the object path's first
    segment is the host); ``s3``: ``bucket`` and ``prefix``."""

    name: str
    type: str
    max_age: int = 86_400
    ttl: int = 3_600
    missing_ttl: int = 60
    timeout: float = 10.0
    connect_timeout: float = 5.0
    max_bytes: int = 20 * 1024 * 1024
    fallback: Fallback | None = None
    base_url: str | None = None
    hosts: tuple[str, ...] = ()
    scheme: str = "https"
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    bucket: str | None = None
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)


def load_sources(path: Path) -> Mapping[str, Source]:
    """The sources ``path`` names, by name; ``SourceError`` naming every bad entry (one line,
    the entries' problems joined by ``; ``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise SourceError(f"{path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise SourceError('expected a JSON object {"name": {"type": "http", …}}')
    sources, problems = {}, []
    for name, entry in data.items():
        try:
            sources[name] = parse_source(name, entry)
        except SourceError as exc:
            problems.append(str(exc))
    if problems:
        raise SourceError("; ".join(problems))
    return MappingProxyType(sources)


def parse_source(name: str, entry: object) -> Source:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise SourceError(f"source {str(name)[:40]!r}: names are [a-z0-9_-], 1 to 32 characters")
    try:
        return _parse(name, entry)
    except SourceError as exc:
        raise SourceError(f"source {name!r}: {exc}") from None


def _parse(name: str, entry: object) -> Source:
    if not isinstance(entry, dict):
        raise SourceError("expected an object")
    kind = entry.get("type")
    allowed = {"http": HTTP_FIELDS, "s3": S3_FIELDS}.get(kind) if isinstance(kind, str) else None
    if allowed is None:
        raise SourceError('"type" must be "http" or "s3"')
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise SourceError(f"unknown field {unknown[0][:40]!r} for a {kind} source")
    values: dict[str, Any] = {name: _number(entry, name) for name in NUMBERS if name in entry}
    for whole in ("max_age", "ttl", "missing_ttl", "max_bytes"):
        if whole in values:
            values[whole] = int(values[whole])
    if "fallback" in entry:
        values["fallback"] = _fallback(entry["fallback"])
    values.update(_http(entry) if kind == "http" else _s3(entry))
    return Source(name=name, type=str(kind), **values)


def _number(entry: dict[str, Any], name: str) -> float:
    value = entry[name]
    _, low, high = NUMBERS[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise SourceError(f'"{name}" must be a number between {low:g} and {high:g}')
    if name in ("max_age", "ttl", "missing_ttl", "max_bytes") and value != int(value):
        raise SourceError(f'"{name}" must be a whole number')
    return float(value)


def _text(entry: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = entry.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SourceError(f'"{name}" must be a non-empty string')
    return value.strip()


def _http(entry: dict[str, Any]) -> dict[str, Any]:
    base_url, hosts = _text(entry, "base_url"), entry.get("hosts")
    if (base_url is None) == (hosts is None):
        raise SourceError('an http source has exactly one of "base_url" and "hosts"')
    out: dict[str, Any] = {"headers": MappingProxyType(_headers(entry.get("headers", {})))}
    if base_url is not None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourceError('"base_url" must be an http or https URL')
        if parts.query or parts.fragment or parts.username or parts.password:
            raise SourceError('"base_url" has no query, fragment or credentials')
        if "scheme" in entry:
            raise SourceError('"scheme" is for a source of "hosts": "base_url" names its own')
        out["base_url"] = base_url if base_url.endswith("/") else base_url + "/"
        out["scheme"] = parts.scheme
        return out
    if not isinstance(hosts, list) or not hosts or len(hosts) > 100:
        raise SourceError('"hosts" must be a list of 1 to 100 host names')
    for host in hosts:
        if not isinstance(host, str) or not HOST.fullmatch(host.lower()):
            raise SourceError(f'"hosts": {str(host)[:60]!r} is not a host name')
    scheme = entry.get("scheme", "https")
    if scheme not in ("http", "https"):
        raise SourceError('"scheme" must be "http" or "https"')
    out.update(hosts=tuple(h.lower() for h in hosts), scheme=scheme)
    return out


def _headers(headers: object) -> dict[str, str]:
    if not isinstance(headers, dict):
        raise SourceError('"headers" must be an object {"Name": "value"}')
    for name, value in headers.items():
        if not HEADER_NAME.fullmatch(name):
            raise SourceError(f'"headers": {name[:40]!r} is not a header name')
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise SourceError(f'"headers": the value of {name!r} must be one line of text')
        if name.lower() in OWN_HEADERS:
            raise SourceError(f'"headers": {name!r} is the fetcher\'s own')
    return dict(headers)


def _s3(entry: dict[str, Any]) -> dict[str, Any]:
    prefix = entry.get("prefix", "")
    if not isinstance(prefix, str) or prefix.startswith("/") or ".." in prefix.split("/"):
        raise SourceError('"prefix" must be a relative key prefix such as "products/"')
    endpoint = _text(entry, "endpoint_url")
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise SourceError('"endpoint_url" must be an http or https URL')
    return dict(
        bucket=_text(entry, "bucket", required=True),
        prefix=prefix if not prefix or prefix.endswith("/") else prefix + "/",
        endpoint_url=endpoint,
        region=_text(entry, "region"),
        access_key_id=_text(entry, "access_key_id"),
        secret_access_key=_text(entry, "secret_access_key"),
    )


def _fallback(value: object) -> Fallback:
    if not isinstance(value, str) or not value:
        raise SourceError('"fallback" must be the path of an image file')
    try:
        with open(value, "rb") as file:
            body = file.read(MAX_FALLBACK_BYTES + 1)
    except OSError as exc:
        raise SourceError(f'"fallback": cannot read {value}: {exc.strerror}') from None
    fmt = sniff_format(body)
    if fmt is None or len(body) > MAX_FALLBACK_BYTES:
        raise SourceError(f'"fallback": {value} is not a JPEG, PNG, WebP, AVIF or GIF up to 10 MB')
    return Fallback(body, fmt)
