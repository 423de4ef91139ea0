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
- ``MAX_CONNECTIONS``: a request that arrives while more connections than that are open in
  the process gets 503 ``overloaded`` (the contract's body) and its connection is closed.

The time between requests on a kept-alive connection stays uvicorn's ``timeout_keep_alive``
(5 s), and nothing limits how long the app takes to answer.
"""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass
from typing import Any, cast

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from origin.http import error_json
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
        self.header_bytes = 0

    # -- the deadline timer: one at a time, for the headers or for the body ------------------

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _headers_late(self) -> None:
        self.deadline = None
        if self.transport.is_closing():
            return
        if self.phase == HEADERS:
            seconds = self.deadlines.header_seconds
            self.transport.write(
                _timeout_answer(f"the request headers did not arrive within {seconds:g} s")
            )
        self.transport.close()

    def _body_late(self) -> None:
        self.deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            seconds = self.deadlines.body_seconds
            self.transport.write(
                _timeout_answer(f"the request body did not arrive within {seconds:g} s")
            )
        if cycle is not None:
            cycle.disconnected = True  # the app's receive() answers http.disconnect, send() drops
            cycle.message_event.set()
        self.transport.close()

    # -- uvicorn's hooks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # From the connection on: a client that connects and sends nothing is closed too.
        self.deadline = self.loop.call_later(self.deadlines.header_seconds, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.phase == IDLE or self.transport.is_closing():
            return
        if self.phase == HEADERS:  # all of this read is headers (they are not complete yet)
            self.header_bytes += len(data)
            if self.header_bytes > MAX_HEADER_BYTES:
                self._disarm()
                self.transport.write(
                    _answer(
                        "431 Request Header Fields Too Large",
                        "headers_too_large",
                        f"the request line and headers are over {MAX_HEADER_BYTES} bytes",
                    )
                )
                self.transport.close()
                return
        if self.deadline is not None:
            return
        if self.phase == HEADERS:
            when = self.phase_began + self.deadlines.header_seconds
            self.deadline = self.loop.call_at(when, self._headers_late)
        else:
            when = self.phase_began + self.deadlines.body_seconds
            self.deadline = self.loop.call_at(when, self._body_late)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.phase = HEADERS
        self.header_bytes = 0
        if self.deadline is None:  # a later request on a kept-alive connection
            self.phase_began = self.loop.time()

    def on_headers_complete(self) -> None:
        self._disarm()
        app = self.app
        if len(self.connections) > self.deadlines.max_connections:
            self.logger.warning("more than MAX_CONNECTIONS open: answering 503")
            self.app = _overloaded
        try:
            super().on_headers_complete()
        finally:
            self.app = app
        upgrade = self.parser.should_upgrade() and self._should_upgrade()
        self.phase = IDLE if upgrade else BODY  # an upgraded connection is no longer ours
        self.phase_began = self.loop.time()

    def on_message_complete(self) -> None:
        self._disarm()
        self.phase = IDLE
        super().on_message_complete()
