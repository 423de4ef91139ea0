"""One access-log path for every request: its id, its timings, its counter, its line.

Every answer — through Starlette's router (``Observe``) or the ``/i/`` fast path
(origin.app.FastObserve) — is observed the same way: ``begin`` takes ``X-Request-ID`` (or
makes one) and notes the answer's own headers (``X-Content-Type-Options: nosniff`` and the
request id, echoed); ``marked`` adds them to the answer and notes its status and bytes;
``AccessLog.finish`` counts the request by route template and status and writes one
key=value line to the ``imgorigin.access`` logger with the time spent waiting for a render
slot, loading, rendering (encoding included) and in total (docs/origin.md).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import sys
import time
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from origin.metrics import Metrics

access_log = logging.getLogger("imgorigin.access")
TIMINGS = "imgorigin.timings"  # scope key of the request's Timings
REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
NOSNIFF = (b"x-content-type-options", b"nosniff")


class Timings:
    """What one request spent where (seconds), and how it was answered.

    ``headers`` are the answer's own (nosniff, the request id): ``marked`` adds them, and
    the ``/i/`` endpoint adds them itself to the answers it sends.
    """

    __slots__ = (
        "began",
        "headers",
        "load",
        "render",
        "request_id",
        "sent",
        "status",
        "tier",
        "wait",
    )

    def __init__(self, request_id: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.request_id = request_id
        self.headers = headers or []
        self.began = time.perf_counter()
        self.tier = "-"
        self.wait = 0.0
        self.load = 0.0
        self.render = 0.0
        self.status = 500
        self.sent = 0


_REQUEST_PREFIX = os.urandom(4).hex()
_requests = itertools.count(1)


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The client's ``X-Request-ID`` when sane, else this process's prefix and a counter
    (16 hex digits; a counter, not ``os.urandom``: a system call per request shows)."""
    for name, value in headers:
        if name == b"x-request-id" and REQUEST_ID.fullmatch(value):
            return bytes(value)
    return f"{_REQUEST_PREFIX}{next(_requests) & 0xFFFFFFFF:08x}".encode("ascii")


def begin(scope: Scope) -> Timings:
    """The request's Timings, kept in its scope, with the answer's own headers."""
    t = scope[TIMINGS] = own_timings(request_id(scope["headers"]))
    return t


def own_timings(rid: bytes) -> Timings:
    """A request's Timings with the answer's own headers (nosniff, the request id)."""
    return Timings(rid.decode("ascii"), [NOSNIFF, (b"x-request-id", rid)])


def marked(t: Timings, send: Send) -> Send:
    """``send`` adding ``t.headers`` to the answer and noting its status and bytes."""

    async def marking(message: Message) -> None:
        if message["type"] == "http.response.start":
            t.status = message["status"]
            message["headers"] = [*message.get("headers", ()), *t.headers]
        elif message["type"] == "http.response.body":
            t.sent += len(message.get("body", b""))
        await send(message)

    return marking


def line(path: str, method: str, t: Timings) -> str:
    if len(path) > 200 or not path.isprintable() or " " in path:
        path = repr(path[:200])
    return (
        f"ts={time.time():.3f} request_id={t.request_id} method={method} path={path} "
        f"status={t.status} bytes={t.sent} tier={t.tier} wait_us={int(t.wait * 1e6)} "
        f"load_us={int(t.load * 1e6)} render_us={int(t.render * 1e6)} "
        f"total_us={int((time.perf_counter() - t.began) * 1e6)}"
    )


class AccessLog:
    """The lines, handed to the ``imgorigin.access`` logger in batches.

    A ``logging`` record costs ~40 µs (record, caller lookup, formatter, lock, write): more
    than the whole cache-hit answer. Lines are kept and given to the logger as one record
    (lines joined by newlines) every ``INTERVAL`` seconds, at ``MAX_LINES`` lines, and at
    shutdown. Each line carries its own ``ts=`` (unix seconds).
    """

    INTERVAL = 0.5
    MAX_LINES = 256

    def __init__(self, metrics: Metrics, logger: logging.Logger = access_log) -> None:
        self.metrics = metrics
        self.logger = logger
        self.lines: list[str] = []

    def finish(self, scope: Scope, t: Timings) -> None:
        """Count the request by route template, method and status; log its line."""
        route = scope.get("route")
        template = getattr(route, "path", "unmatched")
        method = scope["method"] if scope["method"] in METHODS else "other"
        self.note(template, method, scope["path"], t)

    def note(self, template: str, method: str, path: str, t: Timings) -> None:
        """``finish`` for a request answered without a scope (imgorigin.protocol)."""
        self.metrics.count_request(template, method, t.status)
        if self.logger.isEnabledFor(logging.INFO):
            self.lines.append(line(path, method, t))
            if len(self.lines) >= self.MAX_LINES:
                self.flush()

    def flush(self) -> None:
        if self.lines:
            text = "\n".join(self.lines)
            self.lines.clear()
            self.logger.info(text)

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.INTERVAL)
                self.flush()
        finally:
            self.flush()


class Observe:
    """The access-log path for every route Starlette's router answers."""

    def __init__(self, app: ASGIApp, log: AccessLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t = begin(scope)
        try:
            await self.app(scope, receive, marked(t, send))
        finally:
            self.log.finish(scope, t)


def log_to_stderr() -> None:
    """Give the access log a handler when nothing else does (uvicorn configures only its own
    loggers); a host application that configured logging keeps its configuration."""
    if access_log.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False
