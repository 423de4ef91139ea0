"""The HTTP protocol ``imgorigin serve`` runs: uvicorn's httptools protocol with deadlines.

uvicorn alone keeps a connection open for as long as its client trickles bytes: it has no
deadline for a request's headers or body (its keep-alive timeout runs only between
requests), so without nginx in front a few hundred slow clients would hold every socket of
a process. ``GuardedProtocol`` adds, per connection:

- a header deadline: a request line and its headers must arrive within
  ``HEADER_TIMEOUT_SECONDS`` of the connection opening, or of the first byte of a later
  request on a kept-alive connection. A connection that sent nothing is closed; one in the
  middle of a request gets 408 ``request_timeout`` first.
- a body deadline: the whole body must arrive within ``BODY_TIMEOUT_SECONDS`` of the headers.
  Past it the client gets 408 (unless the app has begun its answer), the app reads a
  disconnect, so nothing is stored, and the connection is closed.
- a size bound: a request line and headers over ``MAX_HEADER_BYTES`` (64 KiB) get 431
  ``headers_too_large`` and the connection is closed (httptools alone buffers any amount).
- a request httptools cannot parse (an unknown method, a byte no request line may hold) gets
  400 ``bad_request`` with the contract's body, not uvicorn's text/plain one.
- a lingering close after a 400, 408 or 431 (``_answer_early``): what the client still sends is
  read and dropped for up to ``LINGER_SECONDS``, so its unread bytes cannot make the kernel
  reset the connection over the answer.
- ``MAX_CONNECTIONS``: a request that arrives while more connections than that are open in
  the process gets 503 ``overloaded`` (the contract's body) and its connection is closed.

The time between requests on a kept-alive connection stays uvicorn's ``timeout_keep_alive``
(5 s), and nothing limits how long the app takes to answer.

And one shortcut: a ``GET`` that arrives whole on an idle kept-alive HTTP/1.1 connection is
offered to the app's ``AT_ONCE`` (origin.recent_answers.AtOnce, in the lifespan state); a
repeat of a recent answer is written here, without an ASGI cycle or task (about half the
CPU of a cache hit), anything else goes on to uvicorn's ASGI cycle as before.
"""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass
from typing import Any, cast

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from origin.http import error_json
from origin.recent_answers import AT_ONCE, AnswerNow, wire
from origin.settings import Settings


@dataclass(frozen=True)
class Deadlines:
    header_seconds: float
    body_seconds: float
    max_connections: int

    @classmethod
    def of(cls, settings: Settings) -> Deadlines:
        return cls(
            settings.header_timeout_seconds,
            settings.body_timeout_seconds,
            settings.max_connections,
        )


def guarded_protocol(deadlines: Deadlines) -> type[asyncio.Protocol]:
    """What to pass as uvicorn's ``http``: uvicorn only calls it with its keyword arguments,
    and a ``partial`` of a module-level class travels to spawned workers by pickling."""
    return cast(type[asyncio.Protocol], functools.partial(GuardedProtocol, deadlines=deadlines))


# Request line and headers, as nginx's large_client_header_buffers bounds them (4 × 8k there).
MAX_HEADER_BYTES = 65536
# How long a client we answered early (408, 431) may go on sending before its connection is
# closed: nginx's lingering_timeout (5 s).
LINGER_SECONDS = 5.0


def _timeout_answer(message: str) -> bytes:
    return _answer("408 Request Timeout", "request_timeout", message)


def _answer(status: str, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 answer with the contract's error body that closes the connection."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "cache-control: no-store\r\n"
        "x-content-type-options: nosniff\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _overloaded(scope: Any, receive: Any, send: Any) -> None:
    answer = error_json(503, "overloaded", "too many open connections; retry shortly")
    answer.headers["Retry-After"] = "1"
    answer.headers["Connection"] = "close"
    await answer(scope, receive, send)


_SERVER_LINES: list[Any] = [None, b""]  # the server's default headers, and their lines


def _server_lines(state: ServerState) -> bytes:
    """``HTTP/1.1 200 OK`` and uvicorn's own headers (``date``, ``server``) as uvicorn sends
    them; made again when uvicorn renews its list (every second, for the date)."""
    headers = state.default_headers
    if _SERVER_LINES[0] is not headers:
        _SERVER_LINES[:] = [headers, STATUS_LINE[200] + wire(headers)]
    return cast(bytes, _SERVER_LINES[1])


IDLE, HEADERS, BODY = 0, 1, 2  # where the connection is in reading a request


class GuardedProtocol(HttpToolsProtocol):
    """A request that arrives whole in one read never arms a timer: the deadline of the part
    still missing is armed after a read that leaves a request unfinished."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        deadlines: Deadlines,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.deadlines = deadlines
        self.limit_concurrency = None  # ours instead (on_headers_complete), with the contract body
        self.deadline: asyncio.TimerHandle | None = None
        self.phase = IDLE
        self.phase_began = 0.0
        self.header_bytes = 0  # the reads of headers not yet complete
        self.read_bytes = 0  # the read being parsed
        self.at_once = False  # this request was answered by _answered_at_once
        self.lingering = False  # answered early: what the client still sends is dropped

    # -- the deadline timer: one at a time, for the headers or for the body ------------------

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _headers_late(self) -> None:
        self.deadline = None
        if self.transport.is_closing() or self.lingering:
            return
        if self.phase != HEADERS:  # nothing of a request yet: nothing to answer
            self.transport.close()
            return
        seconds = self.deadlines.header_seconds
        self._answer_early(
            _timeout_answer(f"the request headers did not arrive within {seconds:g} s")
        )

    def _body_late(self) -> None:
        self.deadline = None
        if self.transport.is_closing() or self.lingering:
            return
        cycle = self.cycle
        if cycle is not None:
            cycle.disconnected = True  # the app's receive() answers http.disconnect, send() drops
            cycle.message_event.set()
        if cycle is not None and cycle.response_started:
            self.transport.close()  # its answer is cut: nothing whole can follow
            return
        seconds = self.deadlines.body_seconds
        self._answer_early(_timeout_answer(f"the request body did not arrive within {seconds:g} s"))

    def _answer_early(self, answer: bytes) -> None:
        """Send ``answer`` (one that says ``connection: close``) before the request has
        arrived whole, and close the way nginx's lingering close does: the answer, then our
        side's end (FIN), then what the client still sends is read and dropped until it
        closes too or ``LINGER_SECONDS`` pass. Closing at once with its bytes unread would
        make the kernel reset the connection, and a reset can destroy the answer before the
        client reads it (a client still sending at the deadline got a reset in 11 of 18
        tries)."""
        self._disarm()
        self.lingering = True
        self.transport.write(answer)
        self.transport.write_eof()
        self.transport.resume_reading()  # uvicorn's flow control may have paused it
        self.deadline = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    # -- uvicorn's hooks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # From the connection on: a client that connects and sends nothing is closed too.
        self.deadline = self.loop.call_later(self.deadlines.header_seconds, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return
        self.read_bytes = len(data)
        super().data_received(data)
        if self.lingering or self.phase == IDLE or self.transport.is_closing():
            return
        if self.phase == HEADERS:  # all of this read is headers (they are not complete yet)
            self.header_bytes += len(data)
            if self.header_bytes > MAX_HEADER_BYTES:
                self._headers_too_large()
                return
        if self.deadline is not None:
            return
        if self.phase == HEADERS:
            when = self.phase_began + self.deadlines.header_seconds
            self.deadline = self.loop.call_at(when, self._headers_late)
        else:
            when = self.phase_began + self.deadlines.body_seconds
            self.deadline = self.loop.call_at(when, self._body_late)

    def send_400_response(self, msg: str) -> None:
        """httptools refused the request (an unknown method, a byte no request line may
        hold): the contract's error body, not uvicorn's text/plain one."""
        self._answer_early(
            _answer("400 Bad Request", "bad_request", "the request is not valid HTTP/1.1")
        )

    def _headers_too_large(self) -> None:
        self._answer_early(
            _answer(
                "431 Request Header Fields Too Large",
                "headers_too_large",
                f"the request line and headers are over {MAX_HEADER_BYTES} bytes",
            )
        )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.phase = HEADERS
        self.header_bytes = 0
        if self.deadline is None:  # a later request on a kept-alive connection
            self.phase_began = self.loop.time()

    def _parsed_bytes(self) -> int:
        """The request line's URL and the headers, as parsed (": " and each line's end)."""
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def on_headers_complete(self) -> None:
        # data_received counts the reads that leave the headers incomplete; the one that
        # completes them is counted here, from what was parsed, when it could pass the bound
        # (one comparison for a request of ordinary size)
        if (
            self.header_bytes + self.read_bytes > MAX_HEADER_BYTES
            and self._parsed_bytes() > MAX_HEADER_BYTES
        ):
            self._headers_too_large()  # lingering: the rest of the request is dropped
            self.phase = IDLE
            return
        self._disarm()
        overloaded = len(self.connections) > self.deadlines.max_connections
        self.at_once = not overloaded and self._answered_at_once()
        if not self.at_once:
            app = self.app
            if overloaded:
                self.logger.warning("more than MAX_CONNECTIONS open: answering 503")
                self.app = _overloaded
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        upgrade = self.parser.should_upgrade() and self._should_upgrade()
        self.phase = IDLE if upgrade else BODY  # an upgraded connection is no longer ours
        self.phase_began = self.loop.time()

    def on_body(self, body: bytes) -> None:
        if not self.at_once and not self.lingering:  # else answered: the body is dropped
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self.lingering:  # answered early (431): the lingering close goes on
            return
        self._disarm()
        self.phase = IDLE
        if not self.at_once:
            super().on_message_complete()
            return
        # What uvicorn does when an answer is complete: count it, wait for the next request.
        self.at_once = False
        self.server_state.total_requests += 1
        if not self.transport.is_closing():
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    # -- answers at once ----------------------------------------------------------------------

    def _answered_at_once(self) -> bool:
        """Answer a kept repeat here, without an ASGI cycle (origin.recent_answers.AtOnce):
        only a ``GET`` on a kept-alive HTTP/1.1 connection with nothing else in flight, so
        answers keep their order and uvicorn's flow control has nothing to wait for."""
        answer_now: AnswerNow | None = self.app_state.get(AT_ONCE)
        if (
            answer_now is None
            or self.pipeline
            or self.flow.write_paused
            or self.transport.is_closing()  # the client went: uvicorn's cycle handles it
        ):
            return False
        cycle = self.cycle
        parser = self.parser
        if (
            (cycle is not None and not cycle.response_complete)
            or parser.get_method() != b"GET"
            or parser.get_http_version() != "1.1"
            or not parser.should_keep_alive()
            or parser.should_upgrade()
        ):
            return False
        answer = answer_now(self.url, self.headers)
        if answer is None:
            return False
        lines, body = answer
        self.transport.writelines((_server_lines(self.server_state), lines, b"\r\n", body))
        return True
