"""What the admin API's handlers read from a request: the services, a JSON body and its
fields, and the caller's own image named by the path.

Bodies that are malformed, not JSON or incomplete are 400 ``bad_request``. Every route
answers 404 (never 403) for another user's image.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from admin_api.guards import require_user
from origin.errors import BadRequest, NotFound, OriginError, Unauthorized, shown
from origin.records import ImageRecord, UserRecord, is_id
from origin.services import Services
from origin.store.objects import ObjectMissing

MAX_JSON_BYTES = 64 * 1024


def services_of(request: Request) -> Services:
    services: Services = request.state.services
    return services


def now() -> datetime:
    return datetime.now(UTC)


# ---- JSON bodies ----------------------------------------------------------------------------


async def read_json(request: Request) -> dict[str, Any]:
    """A JSON object body (at most 64 KB); 400 for anything else."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise BadRequest("the JSON body is too large")
    if not body:
        return {}
    data = parse_json(body, "the body is not valid JSON")
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


async def no_fields(request: Request, what: str) -> None:
    """A call that takes no body: none, or ``{}``; anything else 400 (a malformed one too)."""
    if await read_json(request):
        raise BadRequest(f"{what} takes no fields: send no body or {{}}")


def parse_json(text: bytes | bytearray | str, refusal: str) -> Any:
    """``text`` parsed as JSON whose every string is Unicode text; BadRequest(``refusal``)
    for anything else: invalid JSON, nesting deeper than Python's parser recurses, or a lone
    surrogate escape (``"\\ud800"``, valid JSON syntax that no UTF-8 text can hold, which
    would fail later wherever the string is encoded: a key, a query, an answer). A NUL
    character (``"\\u0000"``: no PostgreSQL text can hold it) is refused by name."""
    try:
        data = json.loads(text)
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):  # UnicodeError is a ValueError
        raise BadRequest(refusal) from None
    try:
        found = holds_nul(data)  # the parsed strings: a body may be UTF-16 or UTF-32 too
    except RecursionError:
        raise BadRequest(refusal) from None
    if found:
        raise BadRequest(NUL_REFUSAL)
    return data


NUL_REFUSAL = "text must not hold a NUL character"


def holds_nul(value: Any) -> bool:
    """Whether a string in the parsed JSON ``value`` (a key or a value) holds a NUL."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(holds_nul(item) for item in value)
    if isinstance(value, dict):
        return any("\x00" in key or holds_nul(item) for key, item in value.items())
    return False


def query_of(
    request: Request,
    allowed: Collection[str] | None = None,
    error: type[OriginError] = BadRequest,
) -> dict[str, str]:
    """The query's parameters, each once: ``error`` (400) for a repeated one, and for one
    not in ``allowed`` (when given)."""
    params: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if allowed is not None and name not in allowed:
            raise error(f"unknown query parameter '{shown(name)}'")
        if name in params:
            raise error(f"query parameter '{shown(name)}' is repeated")
        params[name] = value
    return params


def string_field(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise BadRequest(f"'{name}' is required and must be a string")
    return value


def optional(data: dict[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequest(f"'{name}' must be a {kind.__name__}")
    return value


# ---- the caller -------------------------------------------------------------------------------


def is_operator(services: Services, user: UserRecord) -> bool:
    """An operator account (``OPERATOR_EMAILS``): it may sign for the remote sources."""
    return user.email.lower() in services.settings.operator_emails


async def caller_account(services: Services, user_id: str) -> UserRecord:
    """The caller's account; 401 when it was deleted after its token was issued."""
    user = await services.users.by_id(user_id)
    if user is None:
        raise Unauthorized("the account no longer exists")
    return user


# ---- the caller's image -----------------------------------------------------------------------


def image_id_of(request: Request) -> str:
    """The ``{image_id}`` path parameter; an id of the wrong shape is simply not found."""
    image_id: str = request.path_params["image_id"]
    if not is_id(image_id):
        raise NotFound("no such image")
    return image_id


async def owned_image(request: Request) -> tuple[Services, ImageRecord]:
    """The services and the signed-in caller's image the path names (404 for anyone else's)."""
    user_id = require_user(request)
    services = services_of(request)
    image = await services.images.get(image_id_of(request), user_id=user_id)
    if image is None:
        raise NotFound("no such image")
    return services, image


async def read_object(services: Services, key: str) -> bytes:
    """A stored original; a row whose object is gone (a racing delete) is simply not found."""
    try:
        return await services.storage.get(key)
    except ObjectMissing:
        raise NotFound("no such image") from None


def nudge(request: Request) -> None:
    """Tell this process's runner (when it runs one) that jobs were queued."""
    runner = getattr(request.state, "job_runner", None)
    if runner is not None:
        runner.nudge()
