"""Repeats answered by ``imgorigin serve``'s protocol itself (``AtOnce``,
origin/recent_answers.py, called from imgorigin/protocol.py): the same answer as the ASGI
path, in order with every other answer on the connection, observed the same way.

A real uvicorn server with the protocol ``imgorigin serve`` runs, in a thread of this
process so the test can count what the protocol answered at once (the lifespan state's
``AT_ONCE`` wrapped); requests go over real sockets.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import pyvips
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from imgorigin.cli import Serving, _config
from imgorigin.protocol import Deadlines
from origin.recent_answers import AT_ONCE
from origin.settings import Settings
from origin.signing import sign_url
from tests.admin_api.conftest import make_image
from tests.conftest import OPERATOR_SECRET, free_port, migrate_with

PER_REQUEST = {"date", "x-request-id"}


@dataclass
class Live:
    url: str
    port: int
    at_once: list[bytes] = field(default_factory=list)  # targets the protocol answered

    def upload(self, width: int, height: int) -> str:
        email = f"{secrets.token_hex(4)}@example.com"
        with httpx.Client(base_url=self.url, timeout=30) as http:
            account = {"email": email, "password": "at once password 1"}
            http.post("/api/auth/signup", json=account)
            token = http.post("/api/auth/login", json=account).json()["access_token"]
            data = make_image(width=width, height=height)
            made = http.post(
                "/api/images",
                headers={"Authorization": f"Bearer {token}"},
                files={"file": ("a.jpg", data)},
            )
        assert made.status_code == 201, made.text
        return str(made.json()["id"])


@pytest.fixture
def live(base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
    migrate_with(base_env)
    for name, value in {**base_env, "IMGORIGIN_APP": "all"}.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_environ(os.environ)
    port = free_port()
    serving = Serving("all", Deadlines.of(settings), "127.0.0.1")
    server = uvicorn.Server(_config(serving, host="127.0.0.1", port=port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    began = time.monotonic()
    while not server.started:
        assert thread.is_alive() and time.monotonic() - began < 30, "the server did not start"
        time.sleep(0.05)
    found = Live(f"http://127.0.0.1:{port}", port)
    state = server.lifespan.state
    answer_now: Callable[..., object] = state[AT_ONCE]

    def counted(target: bytes, headers: list[tuple[bytes, bytes]]) -> object:
        answer = answer_now(target, headers)
        if answer is not None:
            found.at_once.append(target)
        return answer

    state[AT_ONCE] = counted
    try:
        yield found
    finally:
        server.should_exit = True
        thread.join(30)


def stable(answer: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in answer.headers.items() if k not in PER_REQUEST}


def metric(base: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes


def read_answers(sock: socket.socket, count: int, seconds: float = 30) -> list[Raw]:
    """``count`` answers read off ``sock`` (each with a Content-Length), in order."""
    sock.settimeout(seconds)
    buffer = b""
    answers = []
    while len(answers) < count:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(answers)} answers"
            buffer += chunk
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        length = int(headers["content-length"])
        while len(buffer) < length:
            chunk = sock.recv(65536)
            assert chunk, "connection closed in a body"
            buffer += chunk
        answers.append(Raw(int(status_line.split()[1]), headers, buffer[:length]))
        buffer = buffer[length:]
    return answers


def request(path: str, *extra: str, version: str = "1.1") -> bytes:
    """A GET without ``Accept``: the table keeps answers by path, query, Accept and hints."""
    lines = [f"GET {path} HTTP/{version}", "Host: 127.0.0.1", *extra, "", ""]
    return "\r\n".join(lines).encode("latin-1")


def warmed(live: Live, side: int, width: int) -> tuple[str, Raw]:
    """A new image's signed ``w_<width>`` path, answered once (so kept), and that answer."""
    image_id = live.upload(side, side)
    hot = sign_url(f"/i/{image_id}/w_{width}/a.png", OPERATOR_SECRET)
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(request(hot))
        (kept,) = read_answers(sock, 1)
    return hot, kept


def test_a_repeat_is_the_same_answer_sent_by_the_protocol(live: Live) -> None:
    image_id = live.upload(90, 60)
    path = sign_url(f"/i/{image_id}/w_45/a.png", OPERATOR_SECRET)
    with httpx.Client(base_url=live.url, timeout=30) as http:
        first = http.get(path)
        again = [http.get(path, headers={"X-Request-ID": f"again-{n}"}) for n in range(3)]
    assert first.status_code == 200
    assert len(live.at_once) == 3
    assert all(a.content == first.content and stable(a) == stable(first) for a in again)
    assert [a.headers["x-request-id"] for a in again] == ["again-0", "again-1", "again-2"]
    assert first.headers["content-type"] == "image/png"
    assert first.headers["x-content-type-options"] == "nosniff"
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    image = pyvips.Image.new_from_buffer(again[-1].content, "")
    assert (image.width, image.height) == (45, 30)
    # Observed as the ASGI path observes a hit: counters by tier, by route, bytes out.
    assert metric(live.url, "imgorigin_cache_hits_total", tier="memory") == 3
    route = {"route": "/i/{path:path}", "method": "GET", "status": "200"}
    assert metric(live.url, "imgorigin_requests_total", **route) == 4
    assert metric(live.url, "imgorigin_bytes_out_total") >= 4 * len(first.content)


def test_pipelined_requests_are_answered_in_order(live: Live) -> None:
    """A repeat behind a request still being answered waits its turn (the ASGI path)."""
    image_id = live.upload(80, 40)
    hot = sign_url(f"/i/{image_id}/w_40/a.png", OPERATOR_SECRET)
    cold = sign_url(f"/i/{image_id}/w_20/a.png", OPERATOR_SECRET)
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(request(hot))  # kept for requests with these headers (no Accept)
        read_answers(sock, 1)
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(request(hot) + request("/healthz") + request(hot) + request(cold))
        sock.sendall(request(hot))
        answers = read_answers(sock, 5)
    assert [a.status for a in answers] == [200] * 5
    assert answers[1].body == b"ok"
    widths = [
        pyvips.Image.new_from_buffer(a.body, "").width for i, a in enumerate(answers) if i != 1
    ]
    assert widths == [40, 40, 20, 40]
    assert live.at_once[:1] == [hot.encode()]  # the first, with nothing before it


def test_a_closing_or_old_client_gets_the_asgi_path(live: Live) -> None:
    hot, kept = warmed(live, 60, 30)
    for extra, version in ((("Connection: close",), "1.1"), ((), "1.0")):
        with socket.create_connection(("127.0.0.1", live.port)) as sock:
            sock.sendall(request(hot, *extra, version=version))
            (answer,) = read_answers(sock, 1)
            assert answer.body == kept.body
            assert answer.headers.get("connection") == "close"
            sock.settimeout(5)
            assert sock.recv(1) == b""  # closed after the answer
    assert live.at_once == []


def test_a_get_with_a_body_then_another_request(live: Live) -> None:
    """The body of a GET answered at once is read and dropped; the connection goes on."""
    hot, kept = warmed(live, 50, 25)
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(request(hot, "Content-Length: 5") + b"hello")
        sock.sendall(request("/healthz"))
        first, second = read_answers(sock, 2)
        time.sleep(1.5)  # the keep-alive timeout (5 s) is re-armed, not fired early
        sock.sendall(request(hot))  # the table's second has passed: the ASGI path again
        (third,) = read_answers(sock, 1)
        sock.sendall(request(hot))
        (fourth,) = read_answers(sock, 1)
    assert first.body == kept.body and third.body == kept.body and fourth.body == kept.body
    assert second.body == b"ok"
    assert live.at_once == [hot.encode()] * 2


def test_a_personal_or_conditional_request_is_not_answered_at_once(live: Live) -> None:
    image_id = live.upload(40, 40)
    hot = sign_url(f"/i/{image_id}/w_20/a.png", OPERATOR_SECRET)
    with httpx.Client(base_url=live.url, timeout=30) as http:
        kept = http.get(hot)
        conditional = http.get(hot, headers={"If-None-Match": kept.headers["etag"]})
        head = http.head(hot)
    assert conditional.status_code == 304 and conditional.content == b""
    assert head.status_code == 200 and head.content == b""
    assert live.at_once == []
