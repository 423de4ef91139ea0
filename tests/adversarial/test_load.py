"""Load against a live ``imgorigin serve --workers 1`` with ``CONCURRENCY=2``: 10 000 mixed
requests (RSS plateaus, /healthz stays fast, overload is a quick 503; a soak: ``make soak``),
and slow clients that trickle bytes and must not hold the server (``make test``)."""

from __future__ import annotations

import asyncio
import random
import socket
import statistics
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from origin.signing import sign_url
from tests.admin_api.conftest import make_image
from tests.adversarial.live import live_env, new_user, photo, upload
from tests.conftest import OPERATOR_SECRET, Server, serve

QUEUE_TIMEOUT = 2.0
LOAD_ENV = {
    "CONCURRENCY": "2",
    "QUEUE_MAX": "8",
    "QUEUE_TIMEOUT_SECONDS": str(QUEUE_TIMEOUT),
    "CACHE_MAX_BYTES": str(64 * 1024 * 1024),
    "HEADER_TIMEOUT_SECONDS": "4",  # a trickling client is cut off after 4 s, not 10
}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, str]]:
    env = live_env(tmp_path_factory.mktemp("load"), **LOAD_ENV)
    _, headers = asyncio.run(new_user(env))
    with serve(env) as server:
        big = upload(server.url, headers, photo())
        small = upload(server.url, headers, make_image("png", 400, 300), "small.png")
        yield server, big, small


def signed(path: str) -> str:
    return sign_url(path, OPERATOR_SECRET)


def mixed_requests(big: str, small: str, count: int, seed: int = 1) -> list[tuple[str, str]]:
    """(kind, url): mostly cache hits of a few URLs, some cold renders, 404s, 403s, JSON."""
    rng = random.Random(seed)
    hot = [signed(f"/i/{small}/w_{w}/a.webp") for w in (64, 128, 200)]
    hot += [signed(f"/i/{big}/w_320/a.jpg"), signed(f"/i/{big}/w_100/a.json")]
    missing = signed(f"/i/{'0' * 32}/w_100/a.png")
    forged = f"/i/{small}/w_100/a.png?s=" + "A" * 43
    out: list[tuple[str, str]] = []
    cold = 0
    for _ in range(count):
        roll = rng.random()
        if roll < 0.86:
            out.append(("hit", rng.choice(hot)))
        elif roll < 0.90:
            cold += 1
            out.append(("cold", signed(f"/i/{big}/w_{200 + cold},h_{150 + cold % 97}/a.jpg")))
        elif roll < 0.94:
            out.append(("404", missing))
        elif roll < 0.98:
            out.append(("403", forged))
        else:
            cold += 1
            out.append(("json", signed(f"/i/{small}/w_{10 + cold}/a.json")))
    return out


def rss_curve(samples: list[int]) -> list[tuple[int, int]]:
    size = max(1, len(samples) // 10)
    return [
        (min(samples[i : i + size]), max(samples[i : i + size]))
        for i in range(0, size * 10, size)
        if samples[i : i + size]
    ]


@pytest.mark.soak
@pytest.mark.slow
async def test_ten_thousand_mixed_requests(loaded: tuple[Server, str, str]) -> None:
    server, big, small = loaded
    requests = mixed_requests(big, small, 10_000)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as warm:
        for kind, url in requests:
            if kind == "hit":
                assert (await warm.get(url)).status_code == 200
    results: list[tuple[str, int, float, httpx.Response | None]] = []
    rss: list[int] = []
    health: list[float] = []
    done = asyncio.Event()

    async def sample_rss() -> None:
        while not done.is_set():
            rss.append(server.rss_kib())
            await asyncio.sleep(0.2)

    async def poll_health() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
            while not done.is_set():
                began = time.perf_counter()
                answer = await http.get("/healthz")
                health.append(time.perf_counter() - began)
                assert answer.status_code == 200
                await asyncio.sleep(0.05)

    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            kind, url = queue.get_nowait()
            began = time.perf_counter()
            answer = await http.get(url)
            results.append((kind, answer.status_code, time.perf_counter() - began, answer))

    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    began = time.monotonic()
    watchers = [asyncio.create_task(sample_rss()), asyncio.create_task(poll_health())]
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as http:
            await asyncio.gather(*(client(http) for _ in range(32)))
    finally:
        done.set()
        await asyncio.gather(*watchers)
    took = time.monotonic() - began

    statuses = Counter((kind, status) for kind, status, _, _ in results)
    latencies = sorted(t for _, _, t, _ in results)
    curve = rss_curve(rss)
    p99_health = statistics.quantiles(health, n=100)[98]
    print(
        f"\n10 000 requests in {took:.1f} s ({len(results) / took:.0f} req/s); "
        f"statuses {dict(sorted(statuses.items()))}"
    )
    print(
        f"latency p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms, max {latencies[-1]:.2f} s"
    )
    print(
        f"/healthz: {len(health)} polls, p50 {statistics.median(health) * 1000:.1f} ms, "
        f"p99 {p99_health * 1000:.1f} ms, max {max(health) * 1000:.1f} ms"
    )
    print(
        "RSS MB per decile (min-max): "
        + ", ".join(f"{a / 1024:.0f}-{b / 1024:.0f}" for a, b in curve)
    )

    assert len(results) == 10_000
    allowed = {
        "hit": {200},
        "cold": {200, 503},
        "404": {404},
        "403": {403},
        "json": {200, 503},
    }
    for kind, status, _, answer in results:
        assert status in allowed[kind], (kind, status, answer.text[:200] if answer else "")
        if status == 503 and answer is not None:
            assert answer.json()["error"]["code"] == "overloaded"
            assert answer.headers["retry-after"] == "2"
            assert answer.headers["cache-control"] == "no-store"
    overloaded = [t for kind, status, t, _ in results if status == 503]
    if overloaded:
        print(f"503 overloaded: {len(overloaded)}, max {max(overloaded):.2f} s to answer")
        assert max(overloaded) < QUEUE_TIMEOUT + 1.0
    assert latencies[-1] < QUEUE_TIMEOUT + 1.0 + 2.0  # wait + one render + margin
    # Liveness, not speed (that is benchmarks/): the client shares the machine's two cores
    # with the server, so its own timings wobble (p99 33-140 ms over runs); a loop held by a
    # render or a slow client shows as whole seconds.
    assert p99_health < 0.250
    quarter = len(rss) // 4
    second, last = max(rss[quarter : 2 * quarter]), max(rss[3 * quarter :])
    assert last <= second * 1.15, f"RSS still growing: {second} KiB then {last} KiB"


# ---- slow clients ------------------------------------------------------------------------


def _trickle(port: int, data: bytes, pause: float, limit: float) -> tuple[float, str]:
    """Send ``data`` a byte at a time; (seconds the connection lasted, how it ended)."""
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
        sock.settimeout(pause)
        for byte in data:
            if time.monotonic() - began > limit:
                return time.monotonic() - began, "still open at the limit"
            try:
                sock.sendall(bytes([byte]))
            except OSError as exc:
                return time.monotonic() - began, f"cut off ({type(exc).__name__})"
            try:
                got = sock.recv(200)
            except TimeoutError:
                continue
            except OSError as exc:
                return time.monotonic() - began, f"cut off ({type(exc).__name__})"
            ended = got.decode("latin-1").split("\r\n")[0] if got else "closed by the server"
            return time.monotonic() - began, ended
    return time.monotonic() - began, "all sent"


async def _served_quickly(server: Server, small: str, seconds: float) -> list[float]:
    """Render and /healthz requests while the slow client trickles; their latencies."""
    times = []
    deadline = time.monotonic() + seconds
    n = 0
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        while time.monotonic() < deadline:
            n += 1
            began = time.perf_counter()
            health = await http.get("/healthz")
            render = await http.get(signed(f"/i/{small}/w_{30 + n}/a.png"))
            times.append(time.perf_counter() - began)
            assert health.status_code == 200 and render.status_code == 200, render.text
            await asyncio.sleep(0.1)
    return times


@pytest.mark.slow
@pytest.mark.parametrize("what", ["GET headers", "POST upload body"])
async def test_a_trickling_client_cannot_hold_the_server(
    loaded: tuple[Server, str, str], what: str
) -> None:
    server, _, small = loaded
    if what == "GET headers":
        data = (
            f"GET {signed(f'/i/{small}/w_77/a.png')} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + "X-Pad: "
            + "a" * 200
            + "\r\n\r\n"
        ).encode()
    else:
        body = b"--b\r\nContent-Disposition: form-data; name=file; filename=a.png\r\n\r\n"
        body += make_image("png", 40, 30) + b"\r\n--b--\r\n"
        data = (
            "POST /api/images HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
    limit = 12.0
    trickle = asyncio.create_task(asyncio.to_thread(_trickle, server.port, data, 0.2, limit))
    await asyncio.sleep(0.5)
    times = await _served_quickly(server, small, 3.0)
    held, ended = await trickle
    print(
        f"\n{what} at 1 byte / 0.2 s: held {held:.1f} s ({ended}); meanwhile "
        f"{len(times)} healthz+render pairs, max {max(times) * 1000:.0f} ms"
    )
    # Liveness, not speed: a pair takes ~15 ms; one held by the slow client would take the
    # whole 4 s the server gives it (HEADER_TIMEOUT_SECONDS). (One 0.5 s outlier was seen once on a loaded CI run.)
    assert statistics.median(times) < 0.1
    assert max(times) < 2.0
    assert held < limit and ended.startswith("HTTP/1.1 408"), (held, ended)
