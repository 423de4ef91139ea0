"""The OpenAPI paths of background work: eager derivatives and webhooks
(docs/background.md, docs/webhooks.md); admin_api.openapi adds them to the document."""

from __future__ import annotations

from typing import Any

from admin_api.openapi_schemas import (
    AUTH,
    IMAGE_ID,
    NOT_FOUND,
    UNAUTHORIZED,
    _body,
    _error,
    _json,
    _ref,
)

WEBHOOK_ID = {
    "name": "webhook_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
}
NO_WEBHOOK = _error("no such webhook, or not the caller's")
EAGER_LIST = {
    "type": "array",
    "maxItems": 16,
    "items": {
        "type": "object",
        "required": ["transform", "format"],
        "properties": {"transform": {"type": "string"}, "format": {"type": "string"}},
    },
}


def _accepted(description: str) -> dict[str, Any]:
    return _json({"type": "object"}, description)


def background_paths() -> dict[str, Any]:
    """Eager derivatives and webhooks (docs/background.md, docs/webhooks.md)."""
    webhook = [WEBHOOK_ID]
    return {
        "/api/images/{image_id}/eager": {
            "post": {
                "summary": "Queue eager derivatives of an image",
                "security": AUTH,
                "parameters": [IMAGE_ID],
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["eager"],
                        "properties": {
                            "eager": EAGER_LIST,
                            "notification_url": {"type": "string"},
                        },
                    }
                ),
                "responses": {
                    "202": _accepted("the image's eager derivatives and their states"),
                    "400": _error("bad_request, bad_transform or limit_exceeded: nothing queued"),
                    "401": UNAUTHORIZED,
                    "404": NOT_FOUND,
                },
            }
        },
        "/api/webhooks": {
            "post": {
                "summary": "Register a webhook endpoint (its secret is shown once)",
                "security": AUTH,
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["url"],
                        "properties": {
                            "url": {"type": "string"},
                            "events": {"type": "array", "items": {"type": "string"}},
                        },
                    }
                ),
                "responses": {
                    "201": _json(_ref("Webhook"), "the endpoint, with its secret"),
                    "400": _error("bad_request, source_refused or limit_exceeded"),
                    "401": UNAUTHORIZED,
                    "409": _error("conflict: an endpoint at this url already (named)"),
                },
            },
            "get": {
                "summary": "The caller's webhook endpoints",
                "security": AUTH,
                "responses": {"200": _accepted("items"), "401": UNAUTHORIZED},
            },
        },
        "/api/webhooks/{webhook_id}": {
            "get": {
                "summary": "One webhook endpoint",
                "security": AUTH,
                "parameters": webhook,
                "responses": {
                    "200": _json(_ref("Webhook"), "the endpoint"),
                    "401": UNAUTHORIZED,
                    "404": NO_WEBHOOK,
                },
            },
            "delete": {
                "summary": "Delete a webhook endpoint and its delivery log",
                "security": AUTH,
                "parameters": webhook,
                "responses": {
                    "204": {"description": "deleted"},
                    "401": UNAUTHORIZED,
                    "404": NO_WEBHOOK,
                },
            },
        },
        "/api/webhooks/{webhook_id}/test": {
            "post": {
                "summary": "Queue a webhook.test ping",
                "security": AUTH,
                "parameters": webhook,
                "responses": {
                    "202": _accepted("delivery_id"),
                    "401": UNAUTHORIZED,
                    "404": NO_WEBHOOK,
                },
            }
        },
        "/api/webhooks/{webhook_id}/secret": {
            "post": {
                "summary": "Rotate the secret (the old one signs beside it for a while)",
                "security": AUTH,
                "parameters": webhook,
                "responses": {
                    "200": _accepted("secret, previous_secret_valid_until"),
                    "401": UNAUTHORIZED,
                    "404": NO_WEBHOOK,
                },
            }
        },
        "/api/webhooks/{webhook_id}/deliveries": {
            "get": {
                "summary": "The delivery log, newest first",
                "security": AUTH,
                "parameters": [
                    *webhook,
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer"},
                    },
                ],
                "responses": {
                    "200": _accepted("items"),
                    "400": _error("bad limit"),
                    "401": UNAUTHORIZED,
                    "404": NO_WEBHOOK,
                },
            }
        },
        "/api/webhooks/{webhook_id}/deliveries/{delivery_id}/retry": {
            "post": {
                "summary": "Send a delivery again (same webhook-id)",
                "security": AUTH,
                "parameters": [
                    *webhook,
                    {
                        "name": "delivery_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "202": _accepted("delivery_id"),
                    "401": UNAUTHORIZED,
                    "404": _error("no such delivery, or it is still pending"),
                },
            }
        },
    }
