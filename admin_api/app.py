"""The admin API, mounted under ``/api`` by the composition root next to the origin."""

from __future__ import annotations

from collections.abc import Mapping
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

RATE_LIMIT_HEADERS = ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"]


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


def api_routes() -> list[Route]:
    return [
        Route("/auth/signup", accounts.signup, methods=["POST"]),
        Route("/auth/login", accounts.login, methods=["POST"]),
        Route("/auth/refresh", accounts.refresh, methods=["POST"]),
        Route("/auth/logout", accounts.logout, methods=["POST"]),
        Route("/me", accounts.me, methods=["GET"]),
        Route("/me", accounts.update_me, methods=["PATCH"]),
        Route("/images", images.upload, methods=["POST"]),
        Route("/images", images.list_images, methods=["GET"]),
        Route("/images/{image_id}", images.get_image, methods=["GET"]),
        Route("/images/{image_id}", images.delete_image, methods=["DELETE"]),
        Route("/images/{image_id}", images.update_image, methods=["PATCH"]),
        Route("/images/{image_id}", images.replace_image, methods=["PUT"]),
        Route("/images/{image_id}/download", images.download, methods=["GET"]),
        Route("/images/{image_id}/transform", transform.transform, methods=["GET"]),
        Route("/images/{image_id}/url", urls.mint_url, methods=["POST"]),
        Route("/images/{image_id}/srcset", urls.image_srcset, methods=["GET"]),
        Route("/images/{image_id}/eager", eager.add_eager, methods=["POST"]),
        Route("/images/{image_id}/purge", purges.purge, methods=["POST"]),
        Route("/webhooks", webhooks.create_webhook, methods=["POST"]),
        Route("/webhooks", webhooks.list_webhooks, methods=["GET"]),
        Route("/webhooks/{webhook_id}", webhooks.get_webhook, methods=["GET"]),
        Route("/webhooks/{webhook_id}", webhooks.delete_webhook, methods=["DELETE"]),
        Route("/webhooks/{webhook_id}/test", webhooks.test_webhook, methods=["POST"]),
        Route("/webhooks/{webhook_id}/secret", webhooks.rotate_secret, methods=["POST"]),
        Route("/webhooks/{webhook_id}/deliveries", webhooks.list_deliveries, methods=["GET"]),
        Route(
            "/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
            webhooks.retry_delivery,
            methods=["POST"],
        ),
        Route("/sources", sources.list_sources, methods=["GET"]),
        Route("/sources/{name}/url", sources.mint_source_url, methods=["POST"]),
        Route("/transformations", transformations.list_transformations, methods=["GET"]),
        Route(
            "/transformations/{name}",
            transformations.put_transformation,
            methods=["PUT"],
        ),
        Route(
            "/transformations/{name}",
            transformations.get_transformation,
            methods=["GET"],
        ),
        Route(
            "/transformations/{name}",
            transformations.delete_transformation,
            methods=["DELETE"],
        ),
        Route("/keys", keys.list_keys, methods=["GET"]),
        Route("/keys", keys.create_key, methods=["POST"]),
        Route("/keys/{key_id}", keys.delete_key, methods=["DELETE"]),
        Route("/grammar", grammar, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]


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
