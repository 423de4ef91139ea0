"""Signing keys: ``GET``/``POST /api/keys`` and ``DELETE /api/keys/{id}``. The origin
accepts URLs signed with a user's key for that user's images; the secret is shown once, at
creation (docs/admin-api.md)."""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin_api.guards import require_user
from admin_api.requests import no_fields, now, services_of
from origin.errors import LimitExceeded, NotFound
from origin.http import NO_STORE
from origin.records import SigningKeyRecord, is_id, new_id
from origin.store.keys import MAX_PER_USER, TooManyKeys


async def list_keys(request: Request) -> Response:
    user_id = require_user(request)
    keys = await services_of(request).keys.of_user(user_id)
    return JSONResponse(
        {"items": [{"id": k.id, "created_at": k.created_at.isoformat()} for k in keys]}
    )


async def create_key(request: Request) -> Response:
    user_id = require_user(request)
    await no_fields(request, "a new key")
    key = SigningKeyRecord(
        id=new_id(), user_id=user_id, secret=secrets.token_urlsafe(32), created_at=now()
    )
    try:
        await services_of(request).keys.add(key)
    except TooManyKeys:
        raise LimitExceeded(
            f"at most {MAX_PER_USER} signing keys per account: delete one first"
        ) from None
    forget_user_keys(request, user_id)  # this process may hold the list without it
    body = {"id": key.id, "secret": key.secret, "created_at": key.created_at.isoformat()}
    return JSONResponse(body, status_code=201, headers=NO_STORE)


async def delete_key(request: Request) -> Response:
    user_id = require_user(request)
    services = services_of(request)
    key_id = request.path_params["key_id"]
    if not is_id(key_id) or not await services.keys.delete(key_id, user_id):
        raise NotFound("no such key")
    forget_user_keys(request, user_id)
    return Response(status_code=204)


def forget_user_keys(request: Request, user_id: str) -> None:
    """Drop this process's cached copy of the user's keys (the origin's hook, when the
    origin runs here): a new key verifies, a deleted one stops, at once."""
    forget = getattr(request.state, "forget_user_keys", None)
    if forget is not None:
        forget(user_id)
