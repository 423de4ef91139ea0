"""The shapes of the admin API's bodies, for its OpenAPI document (admin_api.openapi): the
request bodies and query parameters its routes take, and the components they answer with.
The image formats and media types come from the URL grammar's vocabulary."""

from __future__ import annotations

from typing import Any

from origin.transforms.formats import FORMATS, MEDIA_TYPES


def every_field(properties: dict[str, Any]) -> dict[str, Any]:
    """An object schema whose properties are all required (every body below but the
    placeholder's)."""
    return {"type": "object", "required": list(properties), "properties": properties}


CREDENTIALS = every_field(
    {
        "email": {"type": "string", "format": "email"},
        "password": {"type": "string", "minLength": 8, "maxLength": 128},
    }
)
REFRESH = every_field({"refresh_token": {"type": "string"}})
SRCSET_PARAMS = [
    {"name": n, "in": "query", "required": False, "schema": s, "description": d}
    for n, s, d in [
        (
            "widths",
            {"type": "string", "examples": ["320,640,960,1280"]},
            "comma-separated output widths, at most 16, each 1..MAX_OUTPUT_DIMENSION; default: "
            "320, 640, 960, 1280, 1920 below the width the transform gives, then that width",
        ),
        (
            "formats",
            {"type": "string", "default": "avif,webp,jpg"},
            "comma-separated: avif, webp, jpg, png, gif; the last is the <img> fallback",
        ),
        (
            "transform",
            {"type": "string", "examples": ["c_fill,ar_16:9"]},
            "an origin chain without f_; the width joins its last stage when it can",
        ),
        ("sizes", {"type": "string", "default": "100vw"}, "the sizes attribute"),
        ("alt", {"type": "string", "default": ""}, "the <img> alt text"),
        ("name", {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,100}$"}, "SEO name"),
        ("expires_in", {"type": "integer", "minimum": 1}, "seconds the URLs stay valid"),
    ]
]
VARIANT = every_field(
    {
        "format": {"enum": ["avif", "webp", "jpg", "png", "gif"]},
        "media_type": {"type": "string"},
        "width": {"type": "integer"},
        "height": {"type": "integer"},
        "url": {"type": "string", "description": "signed origin URL, root-relative"},
        "bytes": {
            "type": ["integer", "null"],
            "description": "size of the stored derivative; null until it is rendered",
        },
    }
)
SRCSET = every_field(
    {
        "transform": {"type": "string"},
        "sizes": {"type": "string"},
        "width": {"type": "integer", "description": "of the <img>: the largest fallback"},
        "height": {"type": "integer"},
        "variants": {"type": "array", "items": VARIANT},
        "srcset": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "format → 'url 320w, url 640w, …'",
        },
        "placeholder": {
            "type": "object",
            "properties": {
                "blurhash": {"type": "string"},
                "dominant_color": {"type": "string", "pattern": "^#[0-9a-f]{6}$"},
                "data_uri": {"type": "string", "description": "a tiny PNG of the blurhash"},
            },
        },
        "picture": {"type": "string", "description": "the <picture> element, HTML"},
    }
)

SCHEMAS: dict[str, Any] = {
    "Error": every_field(
        {"error": every_field({"code": {"type": "string"}, "message": {"type": "string"}})}
    ),
    "Tokens": every_field(
        {
            "access_token": {"type": "string"},
            "refresh_token": {"type": "string"},
            "token_type": {"const": "bearer"},
            "expires_in": {"type": "integer"},
        }
    ),
    "Image": every_field(
        {
            "id": {"type": "string"},
            "original_filename": {"type": "string"},
            "mime_type": {"enum": [MEDIA_TYPES[f] for f in FORMATS]},
            "size_bytes": {"type": "integer"},
            "width": {"type": "integer"},
            "height": {"type": "integer"},
            "format": {"enum": list(FORMATS)},
            "created_at": {"type": "string", "format": "date-time"},
            "metadata": {"type": "object", "description": "EXIF without GPS"},
            "url": {
                "type": "string",
                "description": "signed origin URL, root-relative",
            },
            "thumbnail_url": {"type": "string"},
            "public": {
                "type": "boolean",
                "description": "served unsigned through its owner's unsigned transformations",
            },
            "version": {
                "type": "integer",
                "minimum": 1,
                "description": "1, and one more at each replace (minted URLs carry v_<n>)",
            },
            "eager": {"type": "array", "items": {"$ref": "#/components/schemas/Eager"}},
        }
    ),
    "Eager": {
        "type": "object",
        "required": ["id", "transform", "format", "state"],
        "description": "an eager derivative; done: size_bytes, width, height, url; "
        "failed: error (a code)",
        "properties": {
            "id": {"type": "string"},
            "transform": {"type": "string"},
            "format": {"type": "string"},
            "state": {"enum": ["queued", "running", "done", "failed", "evicted"]},
            "size_bytes": {"type": "integer"},
            "width": {"type": "integer"},
            "height": {"type": "integer"},
            "url": {"type": "string"},
            "error": {"type": "string"},
        },
    },
    "Webhook": {
        "type": "object",
        "required": ["id", "url", "events", "created_at"],
        "properties": {
            "id": {"type": "string"},
            "url": {"type": "string"},
            "events": {"type": "array", "items": {"type": "string"}},
            "created_at": {"type": "string"},
            "previous_secret_valid_until": {"type": ["string", "null"]},
            "secret": {"type": "string", "description": "only when made: shown once"},
        },
    },
    "Srcset": SRCSET,
}


# ---- pieces of the document (admin_api.openapi, admin_api.openapi_background) ----------


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


IMAGE_ID = {
    "name": "image_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
}
AUTH: list[dict[str, list[str]]] = [{"bearer": []}]
UNAUTHORIZED = _error("missing, malformed, expired or wrong-type token (WWW-Authenticate: Bearer)")
NOT_FOUND = _error("no such image, or not the caller's")
