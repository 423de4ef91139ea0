"""The admin API, mounted under ``/api`` by the composition root next to the origin."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router

from admin_api import (
    accounts,
    eager,
    images,
    keys,
    purges,
    sources,
    transform,
    transformations,
    urls,
    webhooks,
)
from admin_api.console import console_routes
from admin_api.grammar import grammar
from admin_api.guards import AdminGate
from admin_api.openapi import openapi_document
from admin_api.url_upload import FetchSlots, policy
from origin.app import Part
from origin.services import Services
from origin.settings import Settings

Endpoint = Callable[[Request], Awaitable[Response]]

RATE_LIMIT_HEADERS = ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"]


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


API: list[tuple[str, str, Endpoint]] = [  # (path under /api, method, endpoint)
    ("/auth/signup", "POST", accounts.signup),
    ("/auth/login", "POST", accounts.login),
    ("/auth/refresh", "POST", accounts.refresh),
    ("/auth/logout", "POST", accounts.logout),
    ("/me", "GET", accounts.me),
    ("/me", "PATCH", accounts.update_me),
    ("/images", "POST", images.upload),
    ("/images", "GET", images.list_images),
    ("/images/{image_id}", "GET", images.get_image),
    ("/images/{image_id}", "DELETE", images.delete_image),
    ("/images/{image_id}", "PATCH", images.update_image),
    ("/images/{image_id}", "PUT", images.replace_image),
    ("/images/{image_id}/download", "GET", images.download),
    ("/images/{image_id}/transform", "GET", transform.transform),
    ("/images/{image_id}/url", "POST", urls.mint_url),
    ("/images/{image_id}/srcset", "GET", urls.image_srcset),
    ("/images/{image_id}/eager", "POST", eager.add_eager),
    ("/images/{image_id}/purge", "POST", purges.purge),
    ("/webhooks", "POST", webhooks.create_webhook),
    ("/webhooks", "GET", webhooks.list_webhooks),
    ("/webhooks/{webhook_id}", "GET", webhooks.get_webhook),
    ("/webhooks/{webhook_id}", "DELETE", webhooks.delete_webhook),
    ("/webhooks/{webhook_id}/test", "POST", webhooks.test_webhook),
    ("/webhooks/{webhook_id}/secret", "POST", webhooks.rotate_secret),
    ("/webhooks/{webhook_id}/deliveries", "GET", webhooks.list_deliveries),
    ("/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", "POST", webhooks.retry_delivery),
    ("/sources", "GET", sources.list_sources),
    ("/sources/{name}/url", "POST", sources.mint_source_url),
    ("/transformations", "GET", transformations.list_transformations),
    ("/transformations/{name}", "PUT", transformations.put_transformation),
    ("/transformations/{name}", "GET", transformations.get_transformation),
    ("/transformations/{name}", "DELETE", transformations.delete_transformation),
    ("/keys", "GET", keys.list_keys),
    ("/keys", "POST", keys.create_key),
    ("/keys/{key_id}", "DELETE", keys.delete_key),
    ("/grammar", "GET", grammar),
    ("/openapi.json", "GET", openapi),
]


def api_routes() -> list[Route]:
    """One route per path, so that a 405 names in ``Allow`` every method the path has (a
    route per method answered with the first route's methods only)."""
    paths: dict[str, dict[str, Endpoint]] = {}
    for path, method, endpoint in API:
        paths.setdefault(path, {})[method] = endpoint
    return [
        Route(path, by_method(endpoints), methods=list(endpoints))
        for path, endpoints in paths.items()
    ]


def by_method(endpoints: dict[str, Endpoint]) -> Endpoint:
    """The endpoint of a path's methods (HEAD is GET's)."""
    if len(endpoints) == 1:
        return next(iter(endpoints.values()))

    async def endpoint(request: Request) -> Response:
        return await endpoints["GET" if request.method == "HEAD" else request.method](request)

    return endpoint


def admin_part(settings: Settings) -> Part:
    middleware = []
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=["Authorization", "Content-Type"],
                expose_headers=RATE_LIMIT_HEADERS,
                allow_credentials=False,  # bearer tokens, never cookies: `*` stays safe
                max_age=600,
            )
        )
    middleware.append(Middleware(AdminGate, settings=settings))

    async def start(services: Services, stack: AsyncExitStack) -> Mapping[str, Any]:
        return {
            "limiter": services.limiter,
            "fetch_slots": FetchSlots(),
            "fetch_policy": policy(settings),
        }

    return Part(
        routes=[
            # no slash redirects: Starlette's take their Location from the Host header
            Mount("/api", app=Router(api_routes(), redirect_slashes=False), middleware=middleware),
            *console_routes(),
        ],
        start=start,
    )
