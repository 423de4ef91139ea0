"""Errors as values: an HTTP status, a stable code and a message safe to show a client.

Every error the service answers is `{"error": {"code": ..., "message": ...}}` with
`Cache-Control: no-store`. Internal details (libvips text, tracebacks) are logged, never sent.
"""

from __future__ import annotations

from collections.abc import Mapping


def shown(text: str | bytes, limit: int = 40) -> str:
    """Client-supplied text as it may appear in a public message: printable (anything else
    becomes ``?``) and at most ``limit`` characters (cut ones end in ``...``)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    printable = "".join(ch if ch.isprintable() else "?" for ch in text)
    return printable if len(printable) <= limit else printable[: limit - 3] + "..."


class OriginError(Exception):
    """Base class: subclasses fix `status` and `code`; the message is public."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(OriginError):
    """A malformed request (bad query, bad JSON body, bad field)."""

    status = 400
    code = "bad_request"


class BadTransform(OriginError):
    """An unknown or repeated token, or a malformed or out-of-range value."""

    status = 400
    code = "bad_transform"


class LimitExceeded(OriginError):
    """A size, count or length limit of the URL grammar was passed."""

    status = 400
    code = "limit_exceeded"


class Unauthorized(OriginError):
    """Missing, malformed, expired or wrong-type credentials (401 + WWW-Authenticate)."""

    status = 401
    code = "unauthorized"

    def __init__(self, message: str, *, code: str = "unauthorized") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})
        self.code = code


class BadSignature(OriginError):
    status = 403
    code = "bad_signature"


class UrlExpired(OriginError):
    status = 403
    code = "url_expired"


class NotFound(OriginError):
    status = 404
    code = "not_found"


class SourceGone(NotFound):
    """An image row's objects are gone: the row was replaced or deleted after it was read
    (a row cache, or the time between the lookup and the read); reading it again tells."""

    def __init__(self, image_id: str) -> None:
        super().__init__("no such image")
        self.image_id = image_id


class Conflict(OriginError):
    status = 409
    code = "conflict"


class PayloadTooLarge(OriginError):
    status = 413
    code = "file_too_large"


class QuotaExceeded(OriginError):
    status = 413
    code = "quota_exceeded"


class UnsupportedMediaType(OriginError):
    status = 415
    code = "unsupported_media_type"


class InvalidImage(OriginError):
    """The bytes are not a decodable image within the limits."""

    status = 422
    code = "invalid_image"


class RateLimited(OriginError):
    status = 429
    code = "rate_limited"


class Overloaded(OriginError):
    status = 503
    code = "overloaded"


class RenderTimeout(OriginError):
    """A render passed ``RENDER_TIMEOUT_SECONDS`` and was stopped (or its URL did recently)."""

    status = 503
    code = "render_timeout"


class Unavailable(OriginError):
    """A backend (database, object storage) did not answer in time."""

    status = 503
    code = "unavailable"


class SourceRefused(OriginError):
    """The guarded fetcher (origin.fetch) refused a URL: its scheme, port, host or address."""

    status = 400
    code = "source_refused"


class SourceUnavailable(OriginError):
    """A remote source could not be read: no connection, an error status, a broken body."""

    status = 502
    code = "source_unavailable"


class SourceTimeout(OriginError):
    """A remote source did not answer within the fetch's timeouts."""

    status = 504
    code = "source_timeout"


class SourceMissing(SourceUnavailable):
    """The remote answered that the object does not exist (HTTP 404/410, S3 ``NoSuchKey``):
    502 for an upload from a URL; a ``/r/`` URL answers it as 404 ``not_found``."""


class Forbidden(OriginError):
    """The caller is known but may not do this (an admin route for operators only)."""

    status = 403
    code = "forbidden"
