"""The origin's Starlette application: ops endpoints, ``/metrics`` and ``/i/…``.

``build_app`` is shared with the composition root (``imgorigin.app``), which adds the admin
API's routes to the same process; the origin itself never imports ``admin_api``.

Every answer goes through ``Observe`` (``FastObserve`` on the ``/i/`` fast path): it sets
``X-Content-Type-Options: nosniff``, takes ``X-Request-ID`` (or makes one) and echoes it,
counts the request by route template and status, and writes one key=value line to the
``imgorigin.access`` logger with the time spent waiting for a worker, loading, rendering
(encoding included: ``pipeline.render`` does both) and in total (see docs/origin.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from origin.addresses import client_address, is_listed
from origin.errors import OriginError
from origin.handler import TIMINGS, Timings, serve_image, start_origin, state_of
from origin.http import EXCEPTION_HANDLERS, NO_STORE, error_json, error_response, log
from origin.memory import cap_arenas
from origin.metrics import CONTENT_TYPE, Metrics
from origin.recent_answers import Answer, RecentAnswers, answer_key, capturing
from origin.services import Services, open_services
from origin.settings import Settings
from origin.vips import configure_libvips

READY_TIMEOUT_SECONDS = 3.0
HOT_SHARE = 4  # the hot tier may hold a quarter of CACHE_MAX_BYTES


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok", headers=NO_STORE)


async def readyz(request: Request) -> Response:
    services: Services = request.state.services
    checks = {"database": services.db.ping(), "storage": services.storage.ping()}
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                await check
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the reason goes to the log
            log.warning("readyz: %s not ready: %r", name, exc)
            results[name] = "unavailable"
    ready = all(v == "ok" for v in results.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": results},
        status_code=200 if ready else 503,
        headers=NO_STORE,
    )


def metrics_endpoint(
    metrics: Metrics, settings: Settings
) -> Callable[[Request], Awaitable[Response]]:
    """``/metrics`` for clients in ``METRICS_ALLOW`` (loopback by default), else 403: the
    client is the peer, or what a trusted proxy (``FORWARDED_ALLOW_IPS``) forwarded for."""

    async def exposition(request: Request) -> Response:
        address = client_address(request.scope, settings.forwarded_allow_ips)
        if not is_listed(address, settings.metrics_allow):
            return error_json(
                403, "forbidden", "metrics are answered only to addresses in METRICS_ALLOW"
            )
        return Response(metrics.exposition(), media_type=CONTENT_TYPE, headers=NO_STORE)

    return exposition


def ops_routes(metrics: Metrics, settings: Settings) -> list[BaseRoute]:
    """``/healthz`` and ``/readyz`` answer anyone (container probes); ``/metrics`` does not."""
    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics_endpoint(metrics, settings), methods=["GET"]),
    ]


access_log = logging.getLogger("imgorigin.access")
REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
NOSNIFF = (b"x-content-type-options", b"nosniff")


class AccessLog:
    """One key=value line per request, handed to the ``imgorigin.access`` logger in batches.

    A ``logging`` record costs ~40 µs (record, caller lookup, formatter, lock, write): more
    than the whole cache-hit answer. Lines are kept and given to the logger as one record
    (lines joined by newlines) every ``INTERVAL`` seconds, at ``MAX_LINES`` lines, and at
    shutdown. Each line carries its own ``ts=`` (unix seconds).
    """

    INTERVAL = 0.5
    MAX_LINES = 256

    def __init__(self, logger: logging.Logger = access_log) -> None:
        self.logger = logger
        self.lines: list[str] = []

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def add(self, line: str) -> None:
        self.lines.append(line)
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
    """Per HTTP request: ``X-Content-Type-Options: nosniff``, the request id (taken from
    ``X-Request-ID`` when sane, else made) echoed in ``X-Request-ID``, the request counter and
    one access-log line."""

    def __init__(self, app: ASGIApp, metrics: Metrics, log: AccessLog) -> None:
        self.app = app
        self.metrics = metrics
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        request_id = _request_id(scope)
        timings = scope[TIMINGS] = Timings(request_id.decode("ascii"))
        status = 500
        sent = 0

        async def observed(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    NOSNIFF,
                    (b"x-request-id", request_id),
                ]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.metrics.count_request(template, method, status)
            if self.log.enabled:
                self.log.add(_line(scope, method, status, sent, timings, began))


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


_REQUEST_PREFIX = os.urandom(4).hex()
_requests = itertools.count(1)


def _request_id(scope: Scope) -> bytes:
    """The client's ``X-Request-ID`` when sane, else this process's prefix and a counter
    (16 hex digits; a counter, not ``os.urandom``: a system call per request shows)."""
    for name, value in scope["headers"]:
        if name == b"x-request-id" and REQUEST_ID.fullmatch(value):
            return bytes(value)
    return f"{_REQUEST_PREFIX}{next(_requests) & 0xFFFFFFFF:08x}".encode("ascii")


def _line(scope: Scope, method: str, status: int, sent: int, t: Timings, began: float) -> str:
    path = scope["path"]
    if len(path) > 200 or not path.isprintable() or " " in path:
        path = repr(path[:200])
    return (
        f"ts={time.time():.3f} request_id={t.request_id} method={method} path={path} "
        f"status={status} bytes={sent} tier={t.tier} wait_us={int(t.wait * 1e6)} "
        f"load_us={int(t.load * 1e6)} render_us={int(t.render * 1e6)} "
        f"total_us={int((time.perf_counter() - began) * 1e6)}"
    )


def _log_to_stderr() -> None:
    """Give the access log a handler when nothing else does (uvicorn configures only its own
    loggers); a host application that configured logging keeps its configuration."""
    if access_log.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False


@dataclass(frozen=True)
class Part:
    """A slice of the app: its routes, and what it opens at start-up.

    ``start`` runs inside the lifespan with the process's services and exit stack and returns
    entries for the lifespan state, which handlers read as ``request.state.<name>``.
    """

    routes: Sequence[BaseRoute]
    start: Callable[[Services, AsyncExitStack], Awaitable[Mapping[str, Any]]] | None = None
    # The part's metrics; build_app serves the first part's at /metrics (or makes its own).
    metrics: Metrics | None = None
    # GET/HEAD requests whose path starts with ``fast_prefix`` go straight to the part's
    # first route (a plain ASGI endpoint), past Starlette's router and middleware; errors
    # are answered as EXCEPTION_HANDLERS would. The route stays in the router (405, HEAD…).
    fast_prefix: str | None = None


def build_app(settings: Settings, parts: Sequence[Part]) -> Starlette:
    metrics = next((p.metrics for p in parts if p.metrics is not None), None) or Metrics()
    log = AccessLog()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        _log_to_stderr()
        cap_arenas()  # before the render threads start (origin.memory)
        configure_libvips()
        async with open_services(settings) as services, AsyncExitStack() as stack:
            flusher = asyncio.create_task(log.run())
            stack.push_async_callback(_stop, flusher)
            state: dict[str, Any] = {"services": services, "metrics": metrics, "access_log": log}
            for part in parts:
                if part.start is not None:
                    state.update(await part.start(services, stack))
            yield state

    fast = [
        (part.fast_prefix, part.routes[0])
        for part in parts
        if part.fast_prefix is not None and part.routes
    ]
    return App(
        routes=[
            *ops_routes(metrics, settings),
            *(route for part in parts for route in part.routes),
        ],
        lifespan=lifespan,
        # Observe also sets X-Content-Type-Options so that
        # the hot path crosses one middleware, not two.
        middleware=[Middleware(Observe, metrics=metrics, log=log)],
        exception_handlers=EXCEPTION_HANDLERS,
        fast=[(prefix, route, FastObserve(route, metrics, log)) for prefix, route in fast],
    )


class App(Starlette):
    """Starlette with a short way in for the hot path (see ``Part.fast_prefix``)."""

    def __init__(self, *, fast: Sequence[tuple[str, BaseRoute, ASGIApp]], **kw: Any) -> None:
        super().__init__(**kw)
        self.fast = tuple(fast)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path = scope["path"]
            for prefix, route, app in self.fast:
                if path.startswith(prefix):
                    scope["app"] = self
                    scope["route"] = route
                    await app(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def _marked(t: Timings, send: Send) -> Send:
    """``send`` adding the fast path's headers and noting status and bytes in ``t``."""

    async def marked(message: Message) -> None:
        if message["type"] == "http.response.start":
            t.status = message["status"]
            message["headers"] = [*message.get("headers", ()), *t.headers]
        elif message["type"] == "http.response.body":
            t.sent += len(message.get("body", b""))
        await send(message)

    return marked


class FastObserve:
    """``Observe`` for a fast-path endpoint (which adds ``Timings.headers`` itself), its
    errors answered as Starlette's exception handlers would, and the ``RecentAnswers`` tier in front
    of it when the lifespan state has one (``state["recent_answers"]``)."""

    def __init__(self, route: BaseRoute, metrics: Metrics, log: AccessLog) -> None:
        self.app: ASGIApp = getattr(route, "app")  # noqa: B009 (BaseRoute has no .app)
        self.metrics = metrics
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        began = time.perf_counter()
        request_id = _request_id(scope)
        own = [NOSNIFF, (b"x-request-id", request_id)]
        t = scope[TIMINGS] = Timings(request_id.decode("ascii"), own)
        try:
            hot: RecentAnswers | None = scope["state"].get("recent_answers")
            key = answer_key(scope) if hot is not None and hot.enabled else None
            if hot is None or key is None:
                await self.app(scope, receive, send)
            elif (answer := hot.get(key)) is not None:
                await self.hot_answer(answer, t, send)
            else:
                await self.app(scope, receive, capturing(hot, key, own, send))
        except OriginError as exc:
            await error_response(exc)(scope, receive, _marked(t, send))
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            answer_500 = error_json(500, "internal_error", "internal error")
            await answer_500(scope, receive, _marked(t, send))
        finally:
            method = scope["method"]
            self.metrics.count_request(scope["route"].path, method, t.status)
            if self.log.enabled:
                self.log.add(_line(scope, method, t.status, t.sent, t, began))

    async def hot_answer(self, answer: Answer, t: Timings, send: Send) -> None:
        self.metrics.hit["memory"].inc()
        self.metrics.bytes_out.inc(answer.length)
        t.tier = "memory"
        t.status = 200
        t.sent = answer.length
        await send(
            {"type": "http.response.start", "status": 200, "headers": [*answer.head, *t.headers]}
        )
        await send({"type": "http.response.body", "body": answer.body})


def origin_part(settings: Settings) -> Part:
    """The origin's routes (``/i/…``) and its start-up.

    ``start`` puts the per-process ``Origin`` in the lifespan state with the admin API's
    hooks ``forget_image`` and ``forget_user_keys`` (libvips itself is configured by
    ``build_app``'s lifespan, for every app variant).
    """
    metrics = Metrics()

    async def start(services: Services, stack: AsyncExitStack) -> Mapping[str, Any]:
        origin = start_origin(services, metrics)
        stack.push_async_callback(origin.drain)
        # Everything loaded so far (libvips bindings, SQLAlchemy, numpy…) lives as long as
        # the process: keep it out of the collector's full scans, which otherwise stall the
        # event loop in proportion to the heap (measured: see docs/origin.md).
        gc.freeze()
        hot = RecentAnswers(
            lambda: origin.lookup.epoch, services.settings.cache_max_bytes // HOT_SHARE
        )
        return {**state_of(origin), "recent_answers": hot}

    return Part(
        routes=[Route("/i/{path:path}", serve_image, methods=["GET", "HEAD"])],
        start=start,
        metrics=metrics,
        fast_prefix="/i/",
    )


def create_app(settings: Settings) -> Starlette:
    """The origin alone (``imgorigin serve --app origin``)."""
    return build_app(settings, [origin_part(settings)])
