"""The origin's Starlette application: ops endpoints, ``/metrics`` and ``/i/…``.

``build_app`` is shared with the composition root (``imgorigin.app``), which adds the admin
API's routes to the same process; the origin itself never imports ``admin_api``.

Every answer goes through ``Observe``: it takes ``X-Request-ID`` (or makes one) and echoes
it, counts the request by route template and status, and writes one key=value line to the
``imgorigin.access`` logger with the time spent waiting for a worker, loading, rendering
(encoding included: ``pipeline.render`` does both) and in total.
"""

from __future__ import annotations

import asyncio
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

from origin.handler import TIMINGS, Timings, serve_image, start_origin, state_of
from origin.http import EXCEPTION_HANDLERS, NO_STORE, SecurityHeaders, log
from origin.metrics import CONTENT_TYPE, Metrics
from origin.runtime import Runtime, open_runtime
from origin.settings import Settings
from origin.vips import configure_libvips

READY_TIMEOUT_SECONDS = 3.0


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok", headers=NO_STORE)


async def readyz(request: Request) -> Response:
    runtime: Runtime = request.state.runtime
    checks = {"database": runtime.repo.ping(), "storage": runtime.storage.ping()}
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


def metrics_endpoint(metrics: Metrics) -> Callable[[Request], Awaitable[Response]]:
    async def exposition(request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE, headers=NO_STORE)

    return exposition


def ops_routes(metrics: Metrics) -> list[BaseRoute]:
    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics_endpoint(metrics), methods=["GET"]),
    ]


access_log = logging.getLogger("imgorigin.access")
REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


class Observe:
    """Request id, request counter and one access-log line per HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

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
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
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
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(_line(scope, method, status, sent, timings, began))


def _request_id(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == b"x-request-id" and REQUEST_ID.fullmatch(value):
            return bytes(value)
    return os.urandom(8).hex().encode("ascii")


def _line(scope: Scope, method: str, status: int, sent: int, t: Timings, began: float) -> str:
    path = scope["path"]
    if len(path) > 200 or not path.isprintable() or " " in path:
        path = repr(path[:200])
    return (
        f"request_id={t.request_id} method={method} path={path} status={status} bytes={sent} "
        f"tier={t.tier} wait_ms={t.wait * 1000:.1f} load_ms={t.load * 1000:.1f} "
        f"render_ms={t.render * 1000:.1f} total_ms={(time.perf_counter() - began) * 1000:.1f}"
    )


def _log_to_stderr() -> None:
    """Give the access log a handler when nothing else does (uvicorn configures only its own
    loggers); a host application that configured logging keeps its configuration."""
    if access_log.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False


@dataclass(frozen=True)
class Part:
    """A slice of the app: its routes, and what it opens at start-up.

    ``start`` runs inside the lifespan with the process's runtime and exit stack and returns
    entries for the lifespan state, which handlers read as ``request.state.<name>``.
    """

    routes: Sequence[BaseRoute]
    start: Callable[[Runtime, AsyncExitStack], Awaitable[Mapping[str, Any]]] | None = None
    # The part's metrics; build_app serves the first part's at /metrics (or makes its own).
    metrics: Metrics | None = None


def build_app(settings: Settings, parts: Sequence[Part]) -> Starlette:
    metrics = next((p.metrics for p in parts if p.metrics is not None), None) or Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with open_runtime(settings) as runtime, AsyncExitStack() as stack:
            state: dict[str, Any] = {"runtime": runtime, "metrics": metrics}
            for part in parts:
                if part.start is not None:
                    state.update(await part.start(runtime, stack))
            yield state

    return Starlette(
        routes=[*ops_routes(metrics), *(route for part in parts for route in part.routes)],
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders), Middleware(Observe, metrics=metrics)],
        exception_handlers=EXCEPTION_HANDLERS,
    )


def origin_part(settings: Settings) -> Part:
    """The origin's routes (``/i/…``) and its start-up.

    ``start`` configures libvips once (operation cache off, untrusted loaders blocked) and
    puts the per-process ``Origin`` in the lifespan state with the admin API's hooks
    ``forget_image`` and ``forget_user_keys``.
    """
    metrics = Metrics()

    async def start(runtime: Runtime, stack: AsyncExitStack) -> Mapping[str, Any]:
        configure_libvips()
        _log_to_stderr()
        origin = start_origin(runtime, metrics)
        stack.push_async_callback(origin.drain)
        return state_of(origin)

    return Part(
        routes=[Route("/i/{path:path}", serve_image, methods=["GET", "HEAD"])],
        start=start,
        metrics=metrics,
    )


def create_app(settings: Settings) -> Starlette:
    """The origin alone (``imgorigin serve --app origin``)."""
    return build_app(settings, [origin_part(settings)])
