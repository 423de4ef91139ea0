"""The guarded fetch itself: resolve once, connect only to the vetted addresses, follow at
most a few redirects (each one checked again), stream the body up to a limit.

aiohttp is the client (it comes with aiobotocore already). Each hop gets its own connector
whose resolver answers only the hop's host, and only with the addresses vetted by
origin.fetch.guard: aiohttp never asks DNS itself, yet still uses the name for ``Host``,
SNI and the certificate check. Proxies from the environment are ignored (``trust_env``
off: a proxy would resolve names itself). ``Accept-Encoding: identity`` is asked; a body
that comes compressed anyway is decoded and its *decoded* size counted against the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from origin.errors import (
    PayloadTooLarge,
    SourceMissing,
    SourceRefused,
    SourceTimeout,
    SourceUnavailable,
)
from origin.fetch.guard import Address, Policy, check_address, check_url, plain_address

log = logging.getLogger("imgorigin.fetch")

REDIRECTS = frozenset({301, 302, 303, 307, 308})
MISSING = frozenset({404, 410})
# A 304 answers only a request that asked with one of these (else it is an error status).
CONDITIONAL = frozenset({"if-none-match", "if-modified-since"})
# Characters of an ETag and a Last-Modified kept (their columns: origin.store.tables'
# source_objects); an HTTP-date is 29.
MAX_ETAG, MAX_LAST_MODIFIED = 512, 64
CHUNK = 64 * 1024
USER_AGENT = "imgorigin-fetch/1 (+https://github.com/imgorigin)"

Resolve = Callable[[str, int], Awaitable[list[Address]]]


@dataclass(frozen=True)
class Limits:
    """Every bound of one fetch, set by its caller."""

    connect_timeout: float
    total_timeout: float
    max_bytes: int
    max_redirects: int = 3


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    status: int  # 2xx, or 304 to a conditional request (then ``body`` is empty)
    content_type: str
    body: bytes
    etag: str | None = None  # the validators the answer carried
    last_modified: str | None = None


async def system_resolve(host: str, port: int) -> list[Address]:
    """Every address the system resolver gives ``host`` (numeric forms such as ``0x7f.1`` and
    ``2130706433`` come back as the address they spell)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


class PinnedResolver(AbstractResolver):
    """aiohttp's resolver for one hop: ``host`` → the vetted addresses, any other name
    refused."""

    def __init__(self, host: str, addresses: list[Address]) -> None:
        self.host = host
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != self.host:
            raise OSError(f"the fetcher resolves only {self.host}")
        return [
            ResolveResult(
                hostname=host,
                host=str(a),
                port=port,
                family=socket.AF_INET if a.version == 4 else socket.AF_INET6,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


async def fetch(
    url: str,
    policy: Policy,
    limits: Limits,
    *,
    headers: Mapping[str, str] | None = None,
    resolve: Resolve = system_resolve,
) -> Fetched:
    """GET ``url`` under ``policy`` and ``limits``. ``headers`` (an origin's credentials, a
    conditional request's validators) go to the first URL's origin only and are dropped once
    a redirect leaves it; they never replace the fetcher's own (``Accept-Encoding:
    identity``…). A 304 to a conditional request (``If-None-Match``, ``If-Modified-Since``) is
    answered as it is; to any other it is an error. Raises SourceRefused (400), SourceMissing
    (404/410), SourceUnavailable (502), SourceTimeout (504) or PayloadTooLarge (413); never
    the upstream's body or headers in a message."""
    try:
        start = URL(url.strip())
    except (ValueError, TypeError):
        raise SourceRefused("not a valid URL") from None
    try:
        async with asyncio.timeout(limits.total_timeout):
            return await _follow(start, policy, limits, dict(headers or {}), resolve)
    except ValueError:  # yarl on a URL it cannot spell (a bad IDNA label: a UnicodeError)
        raise SourceRefused("not a valid URL") from None
    except TimeoutError:
        raise SourceTimeout(
            f"the source did not answer within {limits.total_timeout:g} s"
        ) from None
    except aiohttp.ClientError as exc:
        log.info("fetch of %s failed: %r", start.with_query(None), exc)
        raise SourceUnavailable("the source could not be read") from None
    except OSError as exc:  # resolution and socket errors outside aiohttp's wrapping
        log.info("fetch of %s failed: %r", start.with_query(None), exc)
        raise SourceUnavailable("the source could not be reached") from None


async def vet(url: str, policy: Policy, *, resolve: Resolve = system_resolve) -> None:
    """Check ``url`` as a fetch would, resolving its host once, without connecting:
    SourceRefused (400) for what the policy refuses, SourceUnavailable when the host does not
    resolve. (A registered webhook is checked again at every delivery.)"""
    try:
        target = URL(url.strip())
        host = check_url(target, policy)
    except ValueError:
        raise SourceRefused("not a valid URL") from None
    await _vetted(host, target.port or 0, policy, resolve)


async def post(
    url: str,
    policy: Policy,
    limits: Limits,
    body: bytes,
    headers: Mapping[str, str],
    *,
    resolve: Resolve = system_resolve,
    method: str = "POST",
) -> int:
    """POST (or ``method``) ``body`` to ``url`` under ``policy`` and ``limits``; the answer's status (a
    redirect is a status like any other: never followed). At most ``limits.max_bytes`` of
    the answer are read and dropped. Raises SourceRefused for an address or URL the policy
    refuses, and SourceUnavailable or SourceTimeout when no answer came (one message for
    every such case: a caller showing it tells a closed port from a dead host no better)."""
    try:
        target = URL(url.strip())
    except (ValueError, TypeError):
        raise SourceRefused("not a valid URL") from None
    try:
        async with asyncio.timeout(limits.total_timeout):
            host = check_url(target, policy)
            addresses = await _vetted(host, target.port or 0, policy, resolve)
            async with (
                _session(host, addresses, limits) as session,
                session.request(
                    method,
                    target,
                    data=body,
                    headers={**headers, "User-Agent": USER_AGENT},
                    allow_redirects=False,
                ) as response,
            ):
                with contextlib.suppress(PayloadTooLarge):
                    await _read(response, limits.max_bytes)
                return response.status
    except ValueError:
        raise SourceRefused("not a valid URL") from None
    except TimeoutError:
        raise SourceTimeout("no answer in time") from None
    except (aiohttp.ClientError, OSError):
        raise SourceUnavailable("no answer") from None


async def _follow(
    url: URL, policy: Policy, limits: Limits, sent: dict[str, str], resolve: Resolve
) -> Fetched:
    first = _origin(url)
    for _ in range(limits.max_redirects + 1):
        host = check_url(url, policy)
        addresses = await _vetted(host, url.port or 0, policy, resolve)
        own = sent if _origin(url) == first else {}
        async with (
            _session(host, addresses, limits) as session,
            session.get(url, headers={**own, **_headers()}, allow_redirects=False) as response,
        ):
            if response.status in REDIRECTS and "Location" in response.headers:
                url = _next_hop(url, response.headers["Location"])
                continue
            etag = _validator(response.headers.get("ETag"), MAX_ETAG)
            modified = _validator(response.headers.get("Last-Modified"), MAX_LAST_MODIFIED)
            if response.status == 304 and CONDITIONAL & {name.lower() for name in own}:
                return Fetched(str(url), 304, "", b"", etag, modified)
            if response.status in MISSING:
                raise SourceMissing(f"the source answered HTTP {response.status}")
            if not 200 <= response.status < 300:
                raise SourceUnavailable(f"the source answered HTTP {response.status}")
            body = await _read(response, limits.max_bytes)
            return Fetched(str(url), response.status, response.content_type, body, etag, modified)
    raise SourceUnavailable(f"the source redirected more than {limits.max_redirects} times")


def _validator(value: str | None, limit: int) -> str | None:
    """An upstream's ETag or Last-Modified as kept and sent back, or None: only printable
    ASCII of at most ``limit`` characters (a header of other bytes reaches us as text no
    database or request can take; a longer one is no validator a server means, and its
    column would refuse it: a 500 on PostgreSQL)."""
    if value is None or len(value) > limit or not value.isascii():
        return None
    return value if value.isprintable() else None


def _origin(url: URL) -> tuple[str, str, int | None]:
    return url.scheme, url.raw_host or "", url.port


def _next_hop(url: URL, location: str) -> URL:
    try:
        target = url.join(URL(location)).with_fragment(None)
    except (ValueError, TypeError):
        raise SourceUnavailable("the source redirected to an invalid URL") from None
    if url.scheme == "https" and target.scheme == "http":
        raise SourceRefused("the source redirected from https to http, which is never followed")
    return target


async def _vetted(host: str, port: int, policy: Policy, resolve: Resolve) -> list[Address]:
    """The host's addresses, resolved once, every one checked."""
    fixed = plain_address(host)
    if fixed is not None:
        addresses = [fixed]
    else:
        try:
            addresses = await resolve(host, port)
        except (OSError, UnicodeError):
            raise SourceUnavailable("the source's host could not be resolved") from None
    if not addresses:
        raise SourceUnavailable("the source's host could not be resolved")
    for address in addresses:
        check_address(host, address, policy)
    return addresses


def _session(host: str, addresses: list[Address], limits: Limits) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        resolver=PinnedResolver(host, addresses),
        use_dns_cache=False,
        force_close=True,
        limit=1,
    )
    return aiohttp.ClientSession(
        connector=connector,
        trust_env=False,
        auto_decompress=True,
        timeout=aiohttp.ClientTimeout(sock_connect=limits.connect_timeout),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def _headers() -> dict[str, str]:
    return {"User-Agent": USER_AGENT, "Accept": "image/*", "Accept-Encoding": "identity"}


async def _read(response: Any, max_bytes: int) -> bytes:
    declared = response.content_length
    if (
        declared is not None
        and declared > max_bytes
        and not response.headers.get("Content-Encoding")
    ):
        raise PayloadTooLarge(f"the source is larger than the {max_bytes}-byte limit")
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"the source is larger than the {max_bytes}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
