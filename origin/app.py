"""The origin's Starlette application: health endpoints, ``/metrics``, ``/i/…`` and ``/r/…``.

``build_app`` is shared with the composition root (``imgorigin.app``), which adds the admin
API's routes to the same process; the origin itself never imports ``admin_api``.

Every answer is observed on the one access-log path (origin.access_log): ``Observe`` for
the routes Starlette's router answers, ``FastObserve`` for the ``/i/`` and ``/r/`` fast
paths, which also puts the recent-answer table (origin.recent_answers) in front of them and
answers their errors as the exception handlers would.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from origin.access_log import AccessLog, Observe, Timings, begin, log_to_stderr, marked
from origin.addresses import client_address, is_listed
from origin.background import start_background
from origin.delivery import serve_image, start_origin, state_of
from origin.errors import OriginError
from origin.http import EXCEPTION_HANDLERS, NO_STORE, error_json, error_response, log, unexpected
from origin.memory import cap_arenas
from origin.metrics import CONTENT_TYPE, Metrics, Shared, job_counts_exposition
from origin.recent_answers import (
    AT_ONCE,
    Answer,
    AtOnce,
    RecentAnswers,
    answer_key,
    capturing,
    served,
)
from origin.services import Services, open_services
from origin.settings import Settings
from origin.sources.delivery import serve_source, start_sources
from origin.store.queue import JobQueue
from origin.vips import configure_libvips

READY_TIMEOUT_SECONDS = 3.0
RECENT_SHARE = 4  # the recent-answer table may hold a quarter of CACHE_MAX_BYTES


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
        shared: Shared | None = getattr(request.state, "shared_metrics", None)
        body = metrics.exposition() if shared is None else shared.exposition()
        queue: JobQueue | None = getattr(request.state, "job_queue", None)
        if queue is not None:  # the queue as the database holds it, for the whole service
            try:
                body += job_counts_exposition(await queue.counts(), await queue.oldest_due())
            except Exception:
                log.exception("/metrics: the job queue could not be read")
        return Response(body, media_type=CONTENT_TYPE, headers=NO_STORE)

    return exposition


def health_routes(metrics: Metrics, settings: Settings) -> list[BaseRoute]:
    """``/healthz`` and ``/readyz`` answer anyone (container probes); ``/metrics`` does not."""
    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics_endpoint(metrics, settings), methods=["GET"]),
    ]


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


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
    # GET/HEAD requests whose path starts with ``fast_prefixes[n]`` go straight to the part's
    # route n (a plain ASGI endpoint), past Starlette's router and middleware; errors are
    # answered as EXCEPTION_HANDLERS would. The route stays in the router (405, HEAD…).
    fast_prefixes: tuple[str, ...] = ()


def build_app(settings: Settings, parts: Sequence[Part]) -> Starlette:
    metrics = next((p.metrics for p in parts if p.metrics is not None), None) or Metrics()
    log = AccessLog(metrics)
    fast = [
        (prefix, route)
        for part in parts
        for prefix, route in zip(part.fast_prefixes, part.routes, strict=False)
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        log_to_stderr()
        cap_arenas()  # before the render threads start (origin.memory)
        configure_libvips()
        async with open_services(settings) as services, AsyncExitStack() as stack:
            flusher = asyncio.create_task(log.run())
            stack.push_async_callback(_stop, flusher)
            state: dict[str, Any] = {"services": services, "metrics": metrics, "access_log": log}
            if settings.metrics_dir is not None:  # one worker of several (imgorigin.supervisor)
                state["shared_metrics"] = shared = Shared(metrics, settings.metrics_dir)
                stack.push_async_callback(_stop, asyncio.create_task(shared.run()))
            for part in parts:
                if part.start is not None:
                    state.update(await part.start(services, stack))
            recent = state.get("recent_answers")
            if recent is not None:  # repeats answered by imgorigin serve's protocol itself
                templates = [(prefix, getattr(route, "path")) for prefix, route in fast]  # noqa: B009
                state[AT_ONCE] = AtOnce(recent, log, templates)
            yield state

    return App(
        routes=[
            *health_routes(metrics, settings),
            *(route for part in parts for route in part.routes),
        ],
        lifespan=lifespan,
        middleware=[Middleware(Observe, log=log)],
        exception_handlers=EXCEPTION_HANDLERS,
        fast=[(prefix, route, FastObserve(route, log)) for prefix, route in fast],
    )


class App(Starlette):
    """Starlette with a short way in for the hot path (see ``Part.fast_prefixes``)."""

    def __init__(self, *, fast: Sequence[tuple[str, BaseRoute, ASGIApp]], **kw: Any) -> None:
        super().__init__(**kw)
        # A path with a slash too many or too few is 404: Starlette's redirect to the other
        # spelling takes its Location from the Host header (any host a caller names).
        self.router.redirect_slashes = False
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


class FastObserve:
    """The access-log path of a fast-path endpoint (which adds ``Timings.headers`` to its
    answers itself), its errors answered as Starlette's exception handlers would, and the
    recent-answer table in front of it when the lifespan state has one."""

    def __init__(self, route: BaseRoute, log: AccessLog) -> None:
        self.app: ASGIApp = getattr(route, "app")  # noqa: B009 (BaseRoute has no .app)
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        t = begin(scope)
        try:
            recent: RecentAnswers | None = scope["state"].get("recent_answers")
            key = answer_key(scope) if recent is not None and recent.enabled else None
            if recent is None or key is None:
                await self.app(scope, receive, send)
            elif (kept := recent.get(key)) is not None:
                await self.recent_answer(kept, t, send)
            else:
                await self.app(scope, receive, capturing(recent, key, t.headers, send))
        except OriginError as exc:
            await error_response(exc)(scope, receive, marked(t, send))
        except Exception as exc:
            answer = unexpected(exc, scope["method"], scope["path"])
            await answer(scope, receive, marked(t, send))
        finally:
            self.log.finish(scope, t)

    async def recent_answer(self, kept: Answer, t: Timings, send: Send) -> None:
        served(kept, t, self.log.metrics)
        await send(
            {"type": "http.response.start", "status": 200, "headers": [*kept.head, *t.headers]}
        )
        await send({"type": "http.response.body", "body": kept.body})


def origin_part(settings: Settings) -> Part:
    """The origin's routes (``/i/…``, and ``/r/…`` for the remote sources) and its start-up.

    ``start`` puts the per-process ``Origin`` in the lifespan state with the admin API's
    hooks ``forget_image`` and ``forget_user_keys``, and the remote sources (libvips itself
    is configured by ``build_app``'s lifespan, for every app variant).
    """
    metrics = Metrics()

    async def start(services: Services, stack: AsyncExitStack) -> Mapping[str, Any]:
        origin = start_origin(services, metrics)
        stack.push_async_callback(origin.derivatives.drain)
        sources = await start_sources(services, stack, metrics)
        stack.push_async_callback(sources.cache.drain)
        background = await start_background(
            origin, stack, run_jobs=services.settings.background.jobs_in_serve
        )
        # Everything loaded so far (libvips bindings, SQLAlchemy, numpy…) lives as long as
        # the process: keep it out of the collector's full scans, which otherwise stall the
        # event loop in proportion to the heap (measured: see docs/origin.md).
        gc.freeze()
        recent = RecentAnswers(
            lambda: origin.lookup.epoch, services.settings.cache_max_bytes // RECENT_SHARE
        )
        return {
            **state_of(origin),
            **background,
            "recent_answers": recent,
            "sources": sources,
        }

    return Part(
        routes=[
            Route("/i/{path:path}", serve_image, methods=["GET", "HEAD"]),
            Route("/r/{path:path}", serve_source, methods=["GET", "HEAD"]),
        ],
        start=start,
        metrics=metrics,
        fast_prefixes=("/i/", "/r/"),
    )


def create_app(settings: Settings) -> Starlette:
    """The origin alone (``imgorigin serve --app origin``)."""
    return build_app(settings, [origin_part(settings)])
