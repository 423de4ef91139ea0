"""The fetch against a real HTTP server on 127.0.0.1 (through the test switch): the happy
path, redirects, headers dropped across hosts, slow, oversized and compressed bodies,
error statuses, DNS asked once, proxies from the environment ignored."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator

import pytest
from yarl import URL

from origin.errors import (
    PayloadTooLarge,
    SourceMissing,
    SourceRefused,
    SourceTimeout,
    SourceUnavailable,
)
from origin.fetch import Limits, Policy, fetch
from origin.fetch.client import _next_hop
from tests.sources import SourceServer, source_server

LIMITS = Limits(connect_timeout=2, total_timeout=5, max_bytes=100_000)
BODY = bytes(range(256)) * 100  # 25,600 bytes


@pytest.fixture
async def server() -> AsyncIterator[SourceServer]:
    async with source_server() as running:
        yield running


def policy(server: SourceServer, **kw: object) -> Policy:
    return Policy(ports=frozenset({server.port}), allow_loopback=True, **kw)  # type: ignore[arg-type]


async def test_the_body_type_and_final_url(server: SourceServer) -> None:
    url = server.serve("/a.jpg", BODY)
    got = await fetch(url, policy(server), LIMITS)
    assert (got.body, got.status, got.content_type, got.url) == (BODY, 200, "image/jpeg", url)
    sent = server.seen[-1].headers
    assert sent["Accept-Encoding"] == "identity" and sent["Host"] == f"127.0.0.1:{server.port}"
    assert "Cookie" not in sent and "Authorization" not in sent


async def test_redirects_are_followed_three_times_and_no_more(server: SourceServer) -> None:
    server.serve("/end.jpg", BODY)
    server.redirect("/r1", "/r2", 301)
    server.redirect("/r2", server.url("/r3"), 307)
    server.redirect("/r3", "end.jpg", 308)  # relative to /r3
    got = await fetch(server.url("/r1"), policy(server), LIMITS)
    assert got.body == BODY and got.url == server.url("/end.jpg")
    server.redirect("/r0", "/r1", 302)
    with pytest.raises(SourceUnavailable, match="redirected more than 3 times") as failed:
        await fetch(server.url("/r0"), policy(server), LIMITS)
    assert failed.value.status == 502


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::ffff:169.254.169.254]/",
        "http://10.0.0.1/",
        "http://0.0.0.0/",
        "file:///etc/passwd",
        "http://xn--a.com/",
        "http://[v1.x:y.attacker.com]/",
    ],
)
async def test_a_redirect_is_checked_like_the_first_url(server: SourceServer, target: str) -> None:
    url = server.redirect("/jump", target)
    with pytest.raises(SourceRefused):
        await fetch(url, policy(server), LIMITS)


async def test_a_redirect_to_a_host_outside_the_allow_list_is_refused(
    server: SourceServer,
) -> None:
    url = server.redirect("/jump", server.url("/a.jpg", host="localhost"))
    with pytest.raises(SourceRefused, match="not in the allowed hosts"):
        await fetch(url, policy(server, hosts=("127.0.0.1",)), LIMITS)


async def test_credentials_stay_with_the_first_origin(server: SourceServer) -> None:
    server.serve("/a.jpg", BODY)
    server.redirect("/same", "/a.jpg")
    secret = {"Authorization": "Bearer origin-secret"}
    await fetch(server.url("/same"), policy(server), LIMITS, headers=secret)
    assert [s.headers.get("Authorization") for s in server.seen] == ["Bearer origin-secret"] * 2
    server.seen.clear()
    server.redirect("/away", server.url("/a.jpg", host="localhost"))  # another host
    got = await fetch(server.url("/away"), policy(server), LIMITS, headers=secret)
    assert got.body == BODY
    assert [s.headers.get("Authorization") for s in server.seen] == ["Bearer origin-secret", None]


async def test_a_callers_headers_never_replace_the_fetchers_own(server: SourceServer) -> None:
    url = server.gzipped("/a.png", BODY)
    sent = {"Accept-Encoding": "gzip", "X-Api-Key": "k"}
    assert (await fetch(url, policy(server), LIMITS, headers=sent)).body == BODY
    assert server.seen[-1].headers["Accept-Encoding"] == "identity"
    assert server.seen[-1].headers["X-Api-Key"] == "k"


def test_https_never_redirects_to_http() -> None:
    with pytest.raises(SourceRefused, match="from https to http"):
        _next_hop(URL("https://media.example.com/a"), "http://media.example.com/a")
    assert _next_hop(URL("http://a.example/x"), "https://b.example/y#f") == URL(
        "https://b.example/y"
    )


@pytest.mark.parametrize("status", [404, 500, 403, 304])
async def test_error_statuses_are_502_without_the_upstreams_words(
    server: SourceServer, status: int
) -> None:
    url = server.status("/bad", status)
    with pytest.raises(SourceUnavailable) as failed:
        await fetch(url, policy(server), LIMITS)
    assert failed.value.message == f"the source answered HTTP {status}"
    assert "secret" not in str(failed.value.body())


async def test_a_conditional_request_gets_its_304_and_the_validators(
    server: SourceServer,
) -> None:
    url = server.conditional("/v.png", b"\x89PNG\r\n\x1a\nbody", etag='"v1"')
    fresh = await fetch(url, policy(server), LIMITS)
    assert (fresh.status, fresh.etag, fresh.body[:4]) == (200, '"v1"', b"\x89PNG")
    same = await fetch(url, policy(server), LIMITS, headers={"If-None-Match": '"v1"'})
    assert (same.status, same.body, same.etag) == (304, b"", '"v1"')
    missing = server.status("/gone", 410)
    with pytest.raises(SourceMissing) as gone:
        await fetch(missing, policy(server), LIMITS)
    assert (gone.value.status, gone.value.code) == (502, "source_unavailable")


@pytest.mark.parametrize(
    ("etag", "modified"),
    [
        (b'"\xff"', b"\xe9\xff"),  # bytes that are not text (stored, they failed: a 500)
        (b'"' + b"a" * 2000 + b'"', b"Mon, 07 Dec 2026 10:00:00 GMT" + b"x" * 2000),  # too long
        (
            b'"' + b"a" * 600 + b'"',
            b"Mon, 07 Dec 2026 10:00:00 GMT" + b"x" * 40,
        ),  # over the columns
        (b'"caf\xc3\xa9"', b"Mon, 07 Dec 2026 10:00:00 GMT\xc3\xa9"),  # not ASCII
    ],
)
async def test_validators_that_are_not_short_ascii_text_are_dropped(
    etag: bytes, modified: bytes
) -> None:
    """An upstream's ETag and Last-Modified are kept (and sent back) only as short ASCII."""
    body = b"\x89PNG\r\n\x1a\nbody"

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n"
        head += b"Content-Length: %d\r\nETag: %s\r\nLast-Modified: %s\r\n\r\n" % (
            len(body),
            etag,
            modified,
        )
        writer.write(head + body)
        await writer.drain()
        writer.close()

    raw = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = raw.sockets[0].getsockname()[1]
    try:
        got = await fetch(
            f"http://127.0.0.1:{port}/v.png",
            Policy(ports=frozenset({port}), allow_loopback=True),
            LIMITS,
        )
    finally:
        raw.close()
        await raw.wait_closed()
    assert (got.status, got.body, got.etag, got.last_modified) == (200, body, None, None)


async def test_a_slow_body_times_out(server: SourceServer) -> None:
    url = server.trickle("/slow.jpg", b"x" * 100, every=0.3, times=20)
    limits = Limits(connect_timeout=1, total_timeout=1.0, max_bytes=100_000)
    with pytest.raises(SourceTimeout, match="within 1 s") as late:
        await fetch(url, policy(server), limits)
    assert late.value.status == 504


async def test_an_unreachable_port_is_unavailable(server: SourceServer) -> None:
    closed = server.port + 1 if server.port < 65535 else server.port - 1
    with pytest.raises(SourceUnavailable):
        await fetch(
            f"http://127.0.0.1:{closed}/a.jpg",
            Policy(ports=frozenset({closed}), allow_loopback=True),
            LIMITS,
        )


async def test_oversized_bodies_are_cut(server: SourceServer) -> None:
    small = Limits(connect_timeout=1, total_timeout=5, max_bytes=10_000)
    declared = server.serve("/big.jpg", BODY)  # Content-Length 25,600
    with pytest.raises(PayloadTooLarge, match="10000-byte limit"):
        await fetch(declared, policy(server), small)
    streamed = server.chunked("/stream.jpg", b"y" * 4096, times=1000)  # no length, 4 MB
    with pytest.raises(PayloadTooLarge):
        await fetch(streamed, policy(server), small)
    assert (await fetch(server.chunked("/ok", b"z" * 1000, 10), policy(server), small)).body == (
        b"z" * 10_000
    )


async def test_compressed_bodies_are_decoded_and_counted_decoded(server: SourceServer) -> None:
    url = server.gzipped("/a.png", BODY)
    assert (await fetch(url, policy(server), LIMITS)).body == BODY
    bomb = server.gzipped("/bomb.png", bytes(5_000_000))  # ~5 KB on the wire
    with pytest.raises(PayloadTooLarge):
        await fetch(bomb, policy(server), LIMITS)


async def test_dns_is_asked_once_so_rebinding_cannot_work(server: SourceServer) -> None:
    """The first answer is loopback (allowed by the test switch), every later one private:
    the fetch uses the first, and no second lookup happens — also none by aiohttp itself,
    which could not resolve this name anyway."""
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> list[ipaddress.IPv4Address]:
        asked.append(host)
        return [ipaddress.IPv4Address("127.0.0.1" if len(asked) == 1 else "10.0.0.1")]

    url = server.serve("/a.jpg", BODY).replace("127.0.0.1", "rebind.invalid")
    got = await fetch(url, policy(server), LIMITS, resolve=rebinding)
    assert got.body == BODY and asked == ["rebind.invalid"]
    assert server.seen[-1].headers["Host"] == f"rebind.invalid:{server.port}"


async def test_proxies_from_the_environment_are_ignored(
    server: SourceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # the discard port: nothing answers
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert (await fetch(server.serve("/a.jpg", BODY), policy(server), LIMITS)).body == BODY


def test_no_other_module_makes_http_requests() -> None:
    """All outbound HTTP goes through origin.fetch (object storage through aiobotocore to
    the operator's endpoint)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    pattern = re.compile(
        r"^\s*(import|from)\s+(aiohttp|httpx|requests|urllib3|http\.client|urllib\.request)\b"
        r"|urlopen\(|create_connection\(|open_connection\(",
        re.MULTILINE,
    )
    offenders = [
        str(path.relative_to(root))
        for package in ("origin", "admin_api", "imgorigin")
        for path in (root / package).rglob("*.py")
        if "fetch" not in path.relative_to(root).parts and pattern.search(path.read_text())
    ]
    assert offenders == []
