"""The OpenAPI paths that sign URLs or manage what signs them: a signed URL and a srcset of
an image, the remote sources' signed URLs, and the URL-signing keys (docs/admin-api.md);
admin_api.openapi merges them into the document."""

from __future__ import annotations

from typing import Any

from admin_api.openapi_schemas import (
    AUTH,
    IMAGE_ID,
    NOT_FOUND,
    SRCSET_PARAMS,
    UNAUTHORIZED,
    _body,
    _error,
    _json,
    _ref,
)


def signing_paths() -> dict[str, dict[str, Any]]:
    return {
        "/api/images/{image_id}/url": {
            "post": {
                "summary": "Mint a signed origin URL",
                "security": AUTH,
                "parameters": [IMAGE_ID],
                "requestBody": _body(
                    {
                        "type": "object",
                        "properties": {
                            "transform": {
                                "type": "string",
                                "examples": ["w_300,h_200/e_grayscale"],
                            },
                            "name": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,100}$"},
                            "format": {
                                "enum": ["jpg", "jpeg", "png", "webp", "avif", "gif", "json"]
                            },
                            "expires_in": {"type": "integer", "minimum": 1},
                        },
                    }
                ),
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"url": {"type": "string"}}},
                        "the signed URL",
                    ),
                    "400": _error("bad body or transform"),
                    "401": UNAUTHORIZED,
                    "404": NOT_FOUND,
                },
            }
        },
        "/api/images/{image_id}/srcset": {
            "get": {
                "summary": "Signed URLs per width and format, srcset strings and a <picture>",
                "security": AUTH,
                "parameters": [IMAGE_ID, *SRCSET_PARAMS],
                "responses": {
                    "200": _json(_ref("Srcset"), "the variants and the markup"),
                    "400": _error("bad_request, bad_transform or limit_exceeded"),
                    "401": UNAUTHORIZED,
                    "404": NOT_FOUND,
                },
            }
        },
        "/api/sources": {
            "get": {
                "summary": "The remote sources (SOURCES_FILE), for operator accounts",
                "security": AUTH,
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"items": {"type": "array"}}},
                        "the sources, without headers or credentials",
                    ),
                    "401": UNAUTHORIZED,
                    "403": _error("not an operator account (OPERATOR_EMAILS)"),
                },
            },
        },
        "/api/sources/{name}/url": {
            "post": {
                "summary": "Mint a signed /r/ URL of a source object (operator key)",
                "security": AUTH,
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["path"],
                        "properties": {
                            "path": {"type": "string"},
                            "transform": {"type": "string"},
                            "format": {"type": "string"},
                            "expires_in": {"type": "integer"},
                        },
                    }
                ),
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"url": {"type": "string"}}},
                        "the signed URL",
                    ),
                    "400": _error("a bad path, chain or format"),
                    "401": UNAUTHORIZED,
                    "403": _error("not an operator account (OPERATOR_EMAILS)"),
                    "404": _error("no such source"),
                },
            },
        },
        "/api/keys": {
            "get": {
                "summary": "The caller's URL-signing keys (without secrets)",
                "security": AUTH,
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"items": {"type": "array"}}}, "keys"
                    ),
                    "401": UNAUTHORIZED,
                },
            },
            "post": {
                "summary": "Create a URL-signing key; the secret is shown only now",
                "security": AUTH,
                "responses": {
                    "201": _json(
                        {
                            "type": "object",
                            "properties": {"id": {}, "secret": {}, "created_at": {}},
                        },
                        "the new key",
                    ),
                    "400": _error("bad_request (a body with fields) or limit_exceeded (ten keys)"),
                    "401": UNAUTHORIZED,
                },
            },
        },
        "/api/keys/{key_id}": {
            "delete": {
                "summary": "Delete a URL-signing key; it stops verifying at once",
                "security": AUTH,
                "parameters": [
                    {
                        "name": "key_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "204": {"description": "deleted"},
                    "401": UNAUTHORIZED,
                    "404": _error("no such key"),
                },
            }
        },
    }
