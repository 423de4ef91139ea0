"""The OpenAPI 3.1 description of ``/api``, kept true by a test.

The routes are written here and compared with the app's both ways by the test, so a route
cannot be added or removed without this document following; what comes from the transform
registry — the ``/transform`` query parameters, the effects of ``GET /api/grammar`` — is
generated from it, so a new transform needs nothing here.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from admin_api.openapi_background import EAGER_LIST, background_paths
from admin_api.openapi_public import TRANSFORMATION_SCHEMA, public_paths
from admin_api.openapi_schemas import (
    AUTH,
    CREDENTIALS,
    IMAGE_ID,
    NOT_FOUND,
    REFRESH,
    SCHEMAS,
    UNAUTHORIZED,
    _body,
    _error,
    _json,
    _ref,
)
from admin_api.openapi_signing import signing_paths
from origin.transforms.effects import EFFECTS
from origin.transforms.query import documented

# The /transform query API's parameters, from the transform registry (origin.transforms.query).
TRANSFORM_PARAMS = [
    {"name": n, "in": "query", "required": False, "schema": {"type": "string"}, "description": d}
    for n, d in documented().items()
]


@cache
def openapi_document() -> dict[str, Any]:
    document = _document()
    document["paths"].update(signing_paths())
    document["paths"].update(background_paths())
    for path, methods in public_paths().items():
        document["paths"].setdefault(path, {}).update(methods)
    document["components"]["schemas"]["Transformation"] = TRANSFORMATION_SCHEMA
    return document


def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "imgorigin admin API",
            "version": "1",
            "description": "Accounts, uploads, listing, deletion and signed-URL minting. "
            'Errors are {"error": {"code", "message"}}; every answer carries RateLimit-* headers.',
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": SCHEMAS,
        },
        "paths": {
            "/api/auth/signup": {
                "post": {
                    "summary": "Create an account",
                    "requestBody": _body(CREDENTIALS),
                    "responses": {
                        "201": _json(
                            {
                                "type": "object",
                                "properties": {"id": {}, "email": {}, "created_at": {}},
                            },
                            "created",
                        ),
                        "400": _error("bad email, or a password outside 8-128 characters"),
                        "409": _error("email_taken"),
                    },
                }
            },
            "/api/auth/login": {
                "post": {
                    "summary": "Log in: an access token and a refresh token",
                    "requestBody": _body(CREDENTIALS),
                    "responses": {
                        "200": _json(_ref("Tokens"), "tokens"),
                        "401": _error("invalid_credentials"),
                    },
                }
            },
            "/api/auth/refresh": {
                "post": {
                    "summary": "Spend a refresh token for a new pair (reuse revokes the login)",
                    "requestBody": _body(REFRESH),
                    "responses": {
                        "200": _json(_ref("Tokens"), "tokens"),
                        "401": _error("invalid_token"),
                    },
                }
            },
            "/api/auth/logout": {
                "post": {
                    "summary": "Revoke a refresh token",
                    "requestBody": _body(REFRESH),
                    "responses": {"204": {"description": "revoked"}},
                }
            },
            "/api/me": {
                "get": {
                    "summary": "The caller's account, usage and quota",
                    "security": AUTH,
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    k: {}
                                    for k in (
                                        "id",
                                        "email",
                                        "image_count",
                                        "storage_used_bytes",
                                        "storage_quota_bytes",
                                        "operator",
                                        "public",
                                    )
                                },
                            },
                            "account",
                        ),
                        "401": UNAUTHORIZED,
                    },
                }
            },
            "/api/images": {
                "post": {
                    "summary": "Upload an image: multipart field `file`, or JSON `{url}` to fetch",
                    "security": AUTH,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "file": {"type": "string", "format": "binary"},
                                        "eager": {
                                            "type": "string",
                                            "description": "a JSON array of {transform, format}",
                                        },
                                        "notification_url": {"type": "string"},
                                        "public": {
                                            "enum": ["true", "false", "1", "0"],
                                            "description": "default: the account's `public`",
                                        },
                                    },
                                }
                            },
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["url"],
                                    "properties": {
                                        "url": {"type": "string", "format": "uri"},
                                        "filename": {"type": "string"},
                                        "eager": EAGER_LIST,
                                        "notification_url": {"type": "string"},
                                        "public": {"type": "boolean"},
                                    },
                                }
                            },
                        },
                    },
                    "responses": {
                        "201": _json(_ref("Image"), "stored"),
                        "400": _error("malformed body, or source_refused (docs/fetching.md)"),
                        "401": UNAUTHORIZED,
                        "413": _error("file_too_large or quota_exceeded"),
                        "415": _error("unsupported_media_type"),
                        "422": _error("invalid_image"),
                        "429": _error("rate_limited (uploads from a URL)"),
                        "502": _error("source_unavailable"),
                        "504": _error("source_timeout"),
                    },
                },
                "get": {
                    "summary": "The caller's images, newest first",
                    "security": AUTH,
                    "parameters": [
                        {
                            "name": "page",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "default": 1},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 100,
                                "default": 20,
                            },
                        },
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "items": {"type": "array", "items": _ref("Image")},
                                    "page": {},
                                    "limit": {},
                                    "total": {},
                                },
                            },
                            "a page",
                        ),
                        "400": _error("bad page or limit"),
                        "401": UNAUTHORIZED,
                    },
                },
            },
            "/api/images/{image_id}": {
                "get": {
                    "summary": "One image",
                    "security": AUTH,
                    "parameters": [IMAGE_ID],
                    "responses": {
                        "200": _json(_ref("Image"), "the image"),
                        "401": UNAUTHORIZED,
                        "404": NOT_FOUND,
                    },
                },
                "delete": {
                    "summary": "Delete an image, its original and derivatives",
                    "security": AUTH,
                    "parameters": [IMAGE_ID],
                    "responses": {
                        "204": {"description": "deleted"},
                        "401": UNAUTHORIZED,
                        "404": NOT_FOUND,
                    },
                },
            },
            "/api/images/{image_id}/download": {
                "get": {
                    "summary": "The original bytes as an attachment",
                    "security": AUTH,
                    "parameters": [IMAGE_ID],
                    "responses": {
                        "200": {"description": "the original"},
                        "401": UNAUTHORIZED,
                        "404": NOT_FOUND,
                    },
                }
            },
            "/api/images/{image_id}/transform": {
                "get": {
                    "summary": "The image transformed by query parameters (owner only)",
                    "security": AUTH,
                    "parameters": [IMAGE_ID, *TRANSFORM_PARAMS],
                    "responses": {
                        "200": {"description": "the transformed image"},
                        "400": _error("bad_transform or limit_exceeded"),
                        "401": UNAUTHORIZED,
                        "404": NOT_FOUND,
                    },
                }
            },
            "/api/grammar": {
                "get": {
                    "summary": "The URL grammar: every token, its argument and phase (public)",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["version", "tokens", "transforms", "effects"],
                                "properties": {
                                    "tokens": {"type": "array", "items": {"type": "object"}},
                                    "effects": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "name": {"enum": sorted(EFFECTS)},
                                            },
                                        },
                                    },
                                },
                            },
                            "the registry's description (Cache-Control: public, ETag)",
                        ),
                        "304": {"description": "If-None-Match matched"},
                    },
                }
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1"}},
                }
            },
        },
    }
