"""The origin's Starlette application: ops endpoints and (later) ``/i/…``.

``build_app`` is shared with the composition root (``imgorigin.app``), which adds the admin
API's routes to the same process; the origin itself never imports ``admin_api``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from origin.http import EXCEPTION_HANDLERS, NO_STORE, SecurityHeaders, log
from origin.runtime import Runtime, open_runtime
from origin.settings import Settings

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


def ops_routes() -> list[BaseRoute]:
    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
    ]


@dataclass(frozen=True)
class Part:
    """A slice of the app: its routes, and what it opens at start-up.

    ``start`` runs inside the lifespan with the process's runtime and exit stack and returns
    entries for the lifespan state, which handlers read as ``request.state.<name>``.
    """

    routes: Sequence[BaseRoute]
    start: Callable[[Runtime, AsyncExitStack], Awaitable[Mapping[str, Any]]] | None = None


def build_app(settings: Settings, parts: Sequence[Part]) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with open_runtime(settings) as runtime, AsyncExitStack() as stack:
            state: dict[str, Any] = {"runtime": runtime}
            for part in parts:
                if part.start is not None:
                    state.update(await part.start(runtime, stack))
            yield state

    return Starlette(
        routes=[*ops_routes(), *(route for part in parts for route in part.routes)],
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers=EXCEPTION_HANDLERS,
    )


def origin_part(settings: Settings) -> Part:
    """The origin's routes (``/i/…``) and its start-up."""
    return Part(routes=[])


def create_app(settings: Settings) -> Starlette:
    """The origin alone (``imgorigin serve --app origin``)."""
    return build_app(settings, [origin_part(settings)])
