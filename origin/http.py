"""HTTP glue shared by the origin and the admin API: error answers and common headers."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from origin.errors import OriginError
from origin.store.database import DATABASE_ERRORS, unreachable

RETRY_AFTER_SECONDS = 5  # a 503 for a database that cannot be reached

log = logging.getLogger("imgorigin")

NOT_STORED = "no-store"
NO_STORE = {"Cache-Control": NOT_STORED}
# Cache-Control of a signed derivative without expiry, and of one seen with the owner's token.
YEAR = 31_536_000  # seconds: the longest max-age an answer gets
IMMUTABLE = f"public, max-age={YEAR}, immutable"
PRIVATE = "private, no-store"
# Content-Security-Policy of every image answer and download: no script, no subresource.
CSP = "default-src 'none'; sandbox"
# The admin API's image bytes (a download, a /transform answer): the owner's alone, inert.
PRIVATE_IMAGE = {"Cache-Control": PRIVATE, "Content-Security-Policy": CSP}
HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def error_response(error: OriginError) -> JSONResponse:
    """The contract's error body with ``Cache-Control: no-store``."""
    return error_json(error.status, error.code, error.message, error.headers)


def error_json(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The contract's error body; a message that repeats what the client sent is written
    even when that is not text (a lone surrogate as ``\\ud800``), never failing as a 500."""
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers={**NO_STORE, **(headers or {})})


async def on_origin_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OriginError)
    return error_response(exc)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(
        exc.status_code, "bad_request" if exc.status_code < 500 else "internal_error"
    )
    message = exc.detail if exc.status_code < 500 else "internal error"
    response = error_json(exc.status_code, code, str(message))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def on_client_gone(request: Request, exc: Exception) -> Response:
    """The client went away while its request was being read (a disconnect, or the body
    deadline of ``imgorigin serve``): nothing to answer, nothing to alarm anyone with."""
    log.info("client went away during %s %s", request.method, request.url.path)
    return Response(status_code=499)  # nginx's "client closed request": never delivered


async def on_unexpected(request: Request, exc: Exception) -> Response:
    return unexpected(exc, request.method, request.url.path)


def unexpected(exc: Exception, method: str, path: str) -> Response:
    """A database that cannot be reached is 503 ``unavailable`` with ``Retry-After`` (said
    in one line: a CDN retries, nothing caches it); anything else 500 with its traceback
    in the log."""
    if unreachable(exc):
        log.warning("%s %s: the database is unavailable (%s)", method, path, type(exc).__name__)
        answer = error_json(503, "unavailable", "the database is unavailable: try again shortly")
        answer.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return answer
    log.exception("unhandled error on %s %s", method, path)
    return error_json(500, "internal_error", "internal error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    OriginError: on_origin_error,
    HTTPException: on_http_exception,
    ClientDisconnect: on_client_gone,
    # handled by Starlette's exception middleware, so the answer is the whole story (the
    # catch-all below is the server-error middleware's, which raises again after answering)
    **dict.fromkeys(DATABASE_ERRORS, on_unexpected),
    Exception: on_unexpected,
}
