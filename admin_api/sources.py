"""The remote sources, for operators: ``GET /api/sources`` and ``POST /api/sources/{name}/url``.

Only operator keys sign source URLs (origin.sources), and no browser ever sees a key: the
console asks this API, which signs with the first operator key on behalf of an **operator
account** — one whose email is in ``OPERATOR_EMAILS`` — and answers 403 ``forbidden`` to
anyone else. The chain is parsed as the origin will parse it, so a URL minted here is one
the origin answers.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin_api.guards import require_user
from admin_api.requests import (
    caller_account,
    is_operator,
    optional,
    read_json,
    services_of,
    string_field,
)
from admin_api.urls import check_expires_in, check_format, signed
from origin.errors import BadRequest, Forbidden, NotFound
from origin.services import Services
from origin.sources.config import Source
from origin.sources.paths import checked_source_path


async def operator(request: Request) -> Services:
    """The services, when the caller is an operator account; 401 / 403 otherwise."""
    services = services_of(request)
    user = await caller_account(services, require_user(request))
    if not is_operator(services, user):
        raise Forbidden("remote sources are for operator accounts (OPERATOR_EMAILS)")
    return services


def described(source: Source) -> dict[str, Any]:
    """What the console shows of a source: never its headers or credentials."""
    where: dict[str, Any] = (
        {"bucket": source.bucket, "prefix": source.prefix}
        if source.type == "s3"
        else {"base_url": source.base_url}
        if source.base_url
        else {"hosts": list(source.hosts)}
    )
    return {
        "name": source.name,
        "type": source.type,
        **where,
        "max_age": source.max_age,
        "ttl": source.ttl,
        "fallback": source.fallback is not None,
    }


async def list_sources(request: Request) -> Response:
    services = await operator(request)
    items = [described(s) for s in services.settings.sources.values()]
    return JSONResponse({"items": items})


async def mint_source_url(request: Request) -> Response:
    """``{"path", "transform"?, "format"?, "expires_in"?}`` → ``{"url"}``: the object path as
    stored upstream (decoded text), encoded and signed."""
    services = await operator(request)
    source = services.settings.sources.get(request.path_params["name"])
    if source is None:
        raise NotFound("no such source")
    data = await read_json(request)
    key = string_field(data, "path").strip("/")
    chain = (optional(data, "transform", str) or "").strip("/")
    fmt = (optional(data, "format", str) or "").lower()
    expires_in = optional(data, "expires_in", int)
    check_expires_in(expires_in)
    if fmt:
        check_format(fmt)
    if not key:
        raise BadRequest("'path' names the object in the source")
    settings = services.settings
    path = checked_source_path(
        source.name,
        chain,
        key,
        fmt or None,
        config=source,
        presets=settings.presets,
        limits=services.limits,
    )
    return JSONResponse({"url": signed(services, path, expires_in)})
