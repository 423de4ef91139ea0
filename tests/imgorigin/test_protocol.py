"""`imgorigin serve` exposed directly, without nginx (`docker run -p 8000:8000`).

Real servers on loopback and real sockets: ``/metrics`` answers only ``METRICS_ALLOW``
(while ``/healthz`` and ``/readyz`` answer anyone), and a client that trickles its request
headers or body is cut off at ``HEADER_TIMEOUT_SECONDS`` / ``BODY_TIMEOUT_SECONDS``, with
``MAX_CONNECTIONS`` open connections at most per process.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pyvips
from prometheus_client.parser import text_string_to_metric_families

from tests.asgi import _WithState, lifespan
from tests.conftest import Server, migrate_with, serve

# ---- /metrics ------------------------------------------------------------------------------


@pytest.fixture
def server_with(base_env: dict[str, str]) -> Iterator[object]:
    def start(**extra: str) -> Server:
        env = {**base_env, **extra}
        migrate_with(env)
        return stack.enter_context(serve(env))

    from contextlib import ExitStack

    with ExitStack() as stack:
        yield start


def families(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


def test_metrics_answer_loopback_by_default(server_with) -> None:  # type: ignore[no-untyped-def]
    server = server_with()
    answer = httpx.get(f"{server.url}/metrics")
    assert answer.status_code == 200 and "imgorigin_requests" in families(answer.text)
    # Through a trusted proxy (nginx on loopback), the client is the one it forwarded for.
    forwarded = httpx.get(f"{server.url}/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert forwarded.status_code == 403
    assert forwarded.json()["error"]["code"] == "forbidden"


def test_metrics_refused_outside_metrics_allow(server_with) -> None:  # type: ignore[no-untyped-def]
    server = server_with(METRICS_ALLOW="10.0.0.0/8,192.0.2.7")
    refused = httpx.get(f"{server.url}/metrics")
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/json"
    assert refused.json() == {
        "error": {
            "code": "forbidden",
            "message": "metrics are answered only to addresses in METRICS_ALLOW",
        }
    }
    assert "imgorigin_" not in refused.text and refused.headers["cache-control"] == "no-store"
    # Container probes stay open.
    assert httpx.get(f"{server.url}/healthz").text == "ok"
    assert httpx.get(f"{server.url}/readyz").json()["status"] == "ready"
    # A listed client behind the trusted proxy is answered.
    listed = httpx.get(f"{server.url}/metrics", headers={"X-Forwarded-For": "10.1.2.3"})
    assert listed.status_code == 200 and "imgorigin_requests" in families(listed.text)


async def test_an_untrusted_peer_cannot_claim_loopback(make_settings) -> None:  # type: ignore[no-untyped-def]
    from imgorigin.app import create_app

    app = create_app(make_settings())
    async with lifespan(app) as state:
        transport = httpx.ASGITransport(app=_WithState(app, state), client=("198.51.100.7", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://origin") as http:
            answer = await http.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
            assert answer.status_code == 403
            assert (await http.get("/healthz")).status_code == 200


# ---- slow clients --------------------------------------------------------------------------

DEADLINE = 2.0  # HEADER_TIMEOUT_SECONDS and BODY_TIMEOUT_SECONDS of the server below
GIVE_UP = 20.0  # the trickler stops by itself after this long (uvicorn alone never cuts it)


@dataclass
class Trickled:
    answer: bytes
    seconds: float  # from the connection until the server closed it
    sent: int  # bytes of the trickle the server took before closing

    @property
    def status(self) -> int:
        return int(self.answer.split(b" ", 2)[1]) if self.answer else 0

    def body(self) -> dict[str, dict[str, str]]:
        return json.loads(self.answer.partition(b"\r\n\r\n")[2])  # type: ignore[no-any-return]


def trickle(port: int, head: bytes, slow: bytes, every: float = 0.5) -> Trickled:
    """Send ``head`` at once, then ``slow`` one byte every ``every`` seconds, until the
    server closes the connection (or ``GIVE_UP``); return what it answered, and when."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    began = time.monotonic()
    answer = b""
    sent = 0
    try:
        sock.sendall(head)
        while time.monotonic() - began < GIVE_UP:
            readable, _, _ = select.select([sock], [], [], every)
            if readable:
                chunk = sock.recv(65536)
                if not chunk:
                    return Trickled(answer, time.monotonic() - began, sent)
                answer += chunk
                continue
            if sent < len(slow):
                try:
                    sock.sendall(slow[sent : sent + 1])
                except OSError:
                    return Trickled(answer, time.monotonic() - began, sent)
                sent += 1
        return Trickled(answer, GIVE_UP, sent)
    finally:
        sock.close()


@pytest.fixture
def guarded(server_with) -> Server:  # type: ignore[no-untyped-def]
    return server_with(  # type: ignore[no-any-return]
        HEADER_TIMEOUT_SECONDS=str(DEADLINE),
        BODY_TIMEOUT_SECONDS=str(DEADLINE),
        MAX_CONNECTIONS="3",
    )


def test_trickled_headers_are_cut_off_with_408(guarded: Server) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: origin\r\nUser-Agent: " + b"x" * 200 + b"\r\n\r\n"
    result = trickle(guarded.port, b"", request)
    assert result.status == 408, result
    assert result.body()["error"]["code"] == "request_timeout"
    assert DEADLINE - 0.5 <= result.seconds < DEADLINE + 4, result
    assert 2 <= result.sent < len(request)  # it was still trickling when cut off


EAGER_HEADS = {  # requests a client goes on sending, fast, past the deadline
    "headers": b"GET /healthz HTTP/1.1\r\nHost: origin\r\nX-Slow: ",
    "body": b"POST /api/auth/login HTTP/1.1\r\nHost: origin\r\n"
    b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
}


@pytest.mark.parametrize("part", sorted(EAGER_HEADS))
def test_a_client_still_sending_at_the_deadline_reads_its_408(guarded: Server, part: str) -> None:
    """Closing with the client's bytes unread makes the kernel reset the connection, and the
    reset can destroy the 408 before the client reads it (11 of 18 of these clients got a
    reset): the server sends its end after the answer and drops what still comes."""

    def one(_: int) -> Trickled | str:
        try:  # a byte every 0.1 ms: unread bytes are all but certain at the deadline
            return trickle(guarded.port, EAGER_HEADS[part], b"x" * 60000, every=0.0001)
        except OSError as exc:
            return repr(exc)

    for _ in range(3):  # three connections at once, three times (MAX_CONNECTIONS is 3)
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(one, range(3)))
        for result in results:
            assert isinstance(result, Trickled) and result.status == 408, result
            assert result.body()["error"]["code"] == "request_timeout"
            assert DEADLINE - 0.5 <= result.seconds < DEADLINE + 4, result  # closed, not lingered


def test_a_silent_connection_is_closed(guarded: Server) -> None:
    result = trickle(guarded.port, b"", b"")
    assert result.answer == b"" and DEADLINE - 0.5 <= result.seconds < DEADLINE + 4, result


def test_a_trickled_body_is_cut_off_and_nothing_is_stored(
    guarded: Server, base_env: dict[str, str]
) -> None:
    account = {"email": "slow@example.com", "password": "a good password"}
    assert httpx.post(f"{guarded.url}/api/auth/signup", json=account).status_code == 201
    token = httpx.post(f"{guarded.url}/api/auth/login", json=account).json()["access_token"]
    data = pyvips.Image.black(64, 48).pngsave_buffer()  # a real image, sent too slowly
    body = (
        b"--b\r\nContent-Disposition: form-data; name=file; filename=a.png\r\n"
        b"Content-Type: image/png\r\n\r\n" + data + b"\r\n--b--\r\n"
    )
    head = (
        f"POST /api/images HTTP/1.1\r\nHost: origin\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    result = trickle(guarded.port, head + body[:100], body[100:])
    assert result.status == 408, result
    assert result.body()["error"] == {
        "code": "request_timeout",
        "message": f"the request body did not arrive within {DEADLINE:g} s",
    }
    assert DEADLINE - 0.5 <= result.seconds < DEADLINE + 4, result
    listed = httpx.get(f"{guarded.url}/api/images", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200 and listed.json()["items"] == []
    storage = Path(base_env["STORAGE_PATH"])
    assert [p for p in storage.rglob("*") if p.is_file()] == []


def test_a_login_body_that_trickles_is_cut_off(guarded: Server) -> None:
    body = json.dumps({"email": "x@example.com", "password": "a good password"}).encode()
    head = (
        "POST /api/auth/login HTTP/1.1\r\nHost: origin\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    result = trickle(guarded.port, head, body)
    assert result.status == 408 and DEADLINE - 0.5 <= result.seconds < DEADLINE + 4, result


def read_answer(sock: socket.socket) -> bytes:
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    return answer


def test_headers_that_keep_coming_are_cut_off_at_64_kib(guarded: Server) -> None:
    """httptools alone buffers headers without bound (77 MB in 8 s over loopback)."""
    sock = socket.create_connection(("127.0.0.1", guarded.port), timeout=5)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: origin\r\nX-Big: ")
        for _ in range(64):  # up to 1 MiB, in reads of 16 KiB, until the server answers
            if select.select([sock], [], [], 0.01)[0]:
                break
            sock.sendall(b"a" * 16384)
    except ConnectionResetError:
        pass
    answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert body["error"]["code"] == "headers_too_large"
    # A request with ordinary headers (a long signed URL, client hints) is answered.
    assert httpx.get(f"{guarded.url}/healthz", headers={"X-Pad": "p" * 8000}).text == "ok"


@pytest.mark.parametrize(
    ("parts", "body"),
    [
        ((70_000,), b""),  # whole in one read: the read that completed them was not counted
        ((60_000, 10_000), b""),  # 60 KB, then the last 10 KB with the end of the headers
        ((100_000,), b"x" * 5000),  # with a body behind them, in the same reads
    ],
)
def test_headers_over_64_kib_that_complete_in_a_read_get_431(
    guarded: Server, parts: tuple[int, ...], body: bytes
) -> None:
    sock = socket.create_connection(("127.0.0.1", guarded.port), timeout=5)
    length = f"Content-Length: {len(body)}\r\n" if body else ""
    head = f"POST /healthz HTTP/1.1\r\nHost: origin\r\n{length}X-Big: ".encode()
    for k, size in enumerate(parts):
        last = k == len(parts) - 1
        sock.sendall(
            (head if k == 0 else b"") + b"a" * size + (b"\r\n\r\n" + body if last else b"")
        )
        time.sleep(0.3)
    answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert answer.count(b"HTTP/1.1 ") == 1  # one answer, and the connection closed
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "headers_too_large"
    assert httpx.get(f"{guarded.url}/healthz").text == "ok"  # the server goes on


@pytest.mark.parametrize(
    "request_line",
    [
        b"FOO /api/images HTTP/1.1",  # a method httptools does not know
        b"GET /api/images?limit=\xef\xbc\x95 HTTP/1.1",  # raw non-ASCII in the target
        b"GET /api/images/\xff HTTP/1.1",
    ],
)
def test_a_request_httptools_refuses_gets_the_error_body(
    guarded: Server, request_line: bytes
) -> None:
    """uvicorn answered these with a text/plain 400 and no Cache-Control."""
    sock = socket.create_connection(("127.0.0.1", guarded.port), timeout=5)
    sock.sendall(request_line + b"\r\nHost: origin\r\n\r\n")
    answer = read_answer(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"cache-control: no-store" in head.lower() and b"application/json" in head
    assert json.loads(body)["error"]["code"] == "bad_request"
    assert httpx.get(f"{guarded.url}/healthz").text == "ok"


def test_more_connections_than_max_connections_get_503(guarded: Server) -> None:
    idle = [socket.create_connection(("127.0.0.1", guarded.port)) for _ in range(3)]
    try:
        over = httpx.get(f"{guarded.url}/healthz", timeout=5)
        assert over.status_code == 503
        assert over.json()["error"]["code"] == "overloaded"
        assert over.headers["retry-after"] == "1" and over.headers["connection"] == "close"
        # The server closes the silent ones at the header deadline; then there is room.
        for sock in idle:
            sock.settimeout(DEADLINE + 4)
            assert sock.recv(1) == b""
        assert httpx.get(f"{guarded.url}/healthz", timeout=5).status_code == 200
    finally:
        for sock in idle:
            sock.close()
