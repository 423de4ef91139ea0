"""The OpenAPI paths of public delivery and change at the edge: named transformations,
``public`` on images and accounts, replace and purge (docs/admin-api.md); admin_api.openapi
merges them into the document."""

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

NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[a-z0-9_-]{1,64}$"},
}
PUBLIC = {
    "type": "object",
    "required": ["public"],
    "additionalProperties": False,
    "properties": {"public": {"type": "boolean"}},
}
NO_TRANSFORMATION = _error("no such transformation, or not the caller's")


def public_paths() -> dict[str, dict[str, Any]]:
    """Paths to add, and methods to add to paths the document has (merged by the caller)."""
    return {
        "/api/transformations": {
            "get": {
                "summary": "The caller's named transformations, by name",
                "security": AUTH,
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "items": {"type": "array", "items": _ref("Transformation")}
                            },
                        },
                        "the transformations",
                    ),
                    "401": UNAUTHORIZED,
                },
            }
        },
        "/api/transformations/{name}": {
            "put": {
                "summary": "Create or replace a named transformation, used as t_<name>",
                "security": AUTH,
                "parameters": [NAME],
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["transform"],
                        "additionalProperties": False,
                        "properties": {
                            "transform": {"type": "string", "examples": ["w_600,h_400,c_fill"]},
                            "unsigned": {"type": "boolean", "default": False},
                            "formats": {
                                "type": "array",
                                "items": {
                                    "enum": ["jpg", "jpeg", "png", "webp", "avif", "gif", "json"]
                                },
                                "default": ["jpg", "png", "webp", "avif", "gif"],
                            },
                        },
                    }
                ),
                "responses": {
                    "200": _json(_ref("Transformation"), "replaced"),
                    "201": _json(_ref("Transformation"), "created"),
                    "400": _error(
                        "bad name or body; bad_transform (t_ inside, a bad chain, an overlay "
                        "not the caller's); limit_exceeded (TRANSFORMATIONS_MAX_PER_USER)"
                    ),
                    "401": UNAUTHORIZED,
                    "409": _error("conflict: an operator preset holds the name"),
                },
            },
            "get": {
                "summary": "One named transformation",
                "security": AUTH,
                "parameters": [NAME],
                "responses": {
                    "200": _json(_ref("Transformation"), "the transformation"),
                    "401": UNAUTHORIZED,
                    "404": NO_TRANSFORMATION,
                },
            },
            "delete": {
                "summary": "Delete a named transformation; URLs using it answer 400 (403 unsigned)",
                "security": AUTH,
                "parameters": [NAME],
                "responses": {
                    "204": {"description": "deleted"},
                    "401": UNAUTHORIZED,
                    "404": NO_TRANSFORMATION,
                },
            },
        },
        "/api/images/{image_id}": {
            "put": {
                "summary": "Replace the original: the image's next version (same id)",
                "security": AUTH,
                "parameters": [IMAGE_ID],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {"file": {"type": "string", "format": "binary"}},
                            }
                        },
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["url"],
                                "properties": {"url": {"type": "string", "format": "uri"}},
                            }
                        },
                    },
                },
                "responses": {
                    "200": _json(_ref("Image"), "the image at its next version"),
                    "400": _error("malformed body, or source_refused"),
                    "401": UNAUTHORIZED,
                    "404": NOT_FOUND,
                    "409": _error("conflict: another replace of the image won"),
                    "413": _error("file_too_large or quota_exceeded (the difference)"),
                    "415": _error("unsupported_media_type"),
                    "422": _error("invalid_image"),
                    "429": _error("rate_limited (a replace from a URL)"),
                    "502": _error("source_unavailable"),
                    "504": _error("source_timeout"),
                },
            },
            "patch": {
                "summary": "Make an image public (served unsigned through unsigned t_) or not",
                "security": AUTH,
                "parameters": [IMAGE_ID],
                "requestBody": _body(PUBLIC),
                "responses": {
                    "200": _json(_ref("Image"), "the image as it now is"),
                    "400": _error("bad body"),
                    "401": UNAUTHORIZED,
                    "404": NOT_FOUND,
                },
            },
        },
        "/api/images/{image_id}/purge": {
            "post": {
                "summary": "Purge the image's answers from the caches in front (deploy.md#purge)",
                "security": AUTH,
                "parameters": [IMAGE_ID],
                "responses": {
                    "202": _json(
                        {
                            "type": "object",
                            "properties": {
                                "queued": {"type": "boolean"},
                                "nginx_keys": {"type": "integer"},
                            },
                        },
                        "the purge is queued",
                    ),
                    "401": UNAUTHORIZED,
                    "404": NOT_FOUND,
                    "429": _error("rate_limited (PURGES_PER_MINUTE)"),
                },
            }
        },
        "/api/me": {
            "patch": {
                "summary": "Set the account's default `public` for new uploads",
                "security": AUTH,
                "requestBody": _body(PUBLIC),
                "responses": {
                    "200": _json({"type": "object"}, "the account as it now is"),
                    "400": _error("bad body"),
                    "401": UNAUTHORIZED,
                },
            }
        },
    }


TRANSFORMATION_SCHEMA = {
    "type": "object",
    "required": [
        "name",
        "transform",
        "unsigned",
        "formats",
        "shadowed",
        "created_at",
        "updated_at",
    ],
    "properties": {
        "name": {"type": "string"},
        "transform": {"type": "string"},
        "unsigned": {"type": "boolean"},
        "formats": {"type": "array", "items": {"type": "string"}},
        "shadowed": {
            "type": "boolean",
            "description": "an operator preset of the same name hides it in URLs",
        },
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
