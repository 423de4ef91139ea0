"""Accounts and tokens: ``/api/auth/signup``, ``/login`` (with its failed-login throttle),
``/refresh``, ``/logout`` and ``GET /api/me``."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin_api import auth
from admin_api.guards import caller_address, hit_limit, peek_limit, require_user
from admin_api.requests import (
    caller_account,
    is_operator,
    now,
    read_json,
    services_of,
    string_field,
)
from origin.errors import BadRequest, Conflict, RateLimited, Unauthorized
from origin.records import EmailTaken, RefreshTokenRecord, Rotation, UserRecord, new_id
from origin.services import Services
from origin.store import budget

log = logging.getLogger("imgorigin.admin")

EMAIL = re.compile(
    r"[^@\s\x00-\x1f\x7f]{1,64}@[^@\s.\x00-\x1f\x7f]+(?:\.[^@\s.\x00-\x1f\x7f]+)+", re.ASCII
)


class EmailInUse(Conflict):
    code = "email_taken"


class InvalidEmail(BadRequest):
    code = "invalid_email"


class InvalidPassword(BadRequest):
    code = "invalid_password"


def valid_credentials(data: dict[str, Any]) -> tuple[str, str]:
    email = string_field(data, "email").strip()
    password = string_field(data, "password")
    if len(email) > 254 or not EMAIL.fullmatch(email):
        raise InvalidEmail("email is not a valid address")
    if not 8 <= len(password) <= 128:
        raise InvalidPassword("password must be 8 to 128 characters")
    return email, password


async def signup(request: Request) -> Response:
    email, password = valid_credentials(await read_json(request))
    services = services_of(request)
    if await services.users.by_email(email) is not None:
        raise EmailInUse("an account with this email exists")
    password_hash = await auth.hash_password(password)
    try:
        user = await services.users.create(new_id(), email, password_hash, now())
    except EmailTaken:
        raise EmailInUse("an account with this email exists") from None
    body = {"id": user.id, "email": user.email, "created_at": user.created_at.isoformat()}
    return JSONResponse(body, status_code=201)


def refresh_record(
    services: Services, user_id: str, family_id: str, token_hash: str
) -> RefreshTokenRecord:
    issued = now()
    ttl = timedelta(seconds=services.settings.refresh_ttl_seconds)
    return RefreshTokenRecord(new_id(), user_id, family_id, token_hash, issued, issued + ttl)


def tokens_json(services: Services, user_id: str, refresh_token: str) -> dict[str, Any]:
    settings = services.settings
    access = auth.issue_access_token(user_id, settings.jwt_secret, settings.jwt_ttl_seconds)
    return {
        "access_token": access.token,
        "refresh_token": refresh_token,
        "token_type": "bearer",
        "expires_in": access.expires_in,
    }


@dataclass(frozen=True)
class LoginCounters:
    """The failed-login counters one attempt is judged by: per account and client address
    (``pair``), and per account from every address (``account``). The account is the email
    without case, hashed (no email in a key, and a key of bounded length)."""

    pair: str
    account: str

    @classmethod
    def of(cls, request: Request, email: str) -> LoginCounters:
        account = hashlib.sha256(email.lower().encode("utf-8")).hexdigest()[:32]
        return cls(f"login-failed:{account}:{caller_address(request)}", f"login-failed:{account}")


async def throttle_login(request: Request, counters: LoginCounters) -> None:
    """429 before the password is checked, when this address has failed too often for this
    account, or has failed for it at all while the account's failures from every address
    are past their (much higher) ceiling. An address with no failure for the account is
    never refused here, so nobody else's failures lock an owner out (the per-address limit
    on /api/auth/* still applies); the answer is the same for unknown emails."""
    settings = services_of(request).settings
    state = request.scope["state"]
    pair = await peek_limit(state, counters.pair, settings.login_failures_per_minute)
    refused = None if pair.allowed else pair
    if refused is None and pair.remaining < pair.limit:  # this address has failed already
        account = await peek_limit(
            state, counters.account, settings.account_login_failures_per_minute
        )
        refused = None if account.allowed else account
    if refused is not None:
        log.warning("login attempts throttled for an account, from %s", caller_address(request))
        raise RateLimited(
            "too many failed login attempts for this account; retry later",
            headers={"Retry-After": str(refused.reset_seconds)},
        )


async def count_login_failure(request: Request, counters: LoginCounters) -> None:
    settings = services_of(request).settings
    state = request.scope["state"]
    await hit_limit(state, counters.pair, settings.login_failures_per_minute)
    await hit_limit(state, counters.account, settings.account_login_failures_per_minute)


async def login(request: Request) -> Response:
    data = await read_json(request)
    email, password = string_field(data, "email").strip(), string_field(data, "password")
    services = services_of(request)
    counters = LoginCounters.of(request, email)
    await throttle_login(request, counters)
    user = await services.users.by_email(email)
    valid = await auth.verify_password(password, user.password_hash if user else None)
    if user is None or not valid:
        await count_login_failure(request, counters)
        reason = "unknown email" if user is None else "wrong password"
        log.warning("failed login from %s: %s", caller_address(request), reason)
        raise Unauthorized("email or password is wrong", code="invalid_credentials")
    token, token_hash = auth.new_refresh_token()
    await services.users.add_refresh_token(refresh_record(services, user.id, new_id(), token_hash))
    return JSONResponse(tokens_json(services, user.id, token))


async def refresh(request: Request) -> Response:
    """Spend the refresh token and answer a new pair; a spent one revokes its whole family."""
    presented = string_field(await read_json(request), "refresh_token")
    services = services_of(request)
    token, token_hash = auth.new_refresh_token()
    # user_id and family_id of the successor are taken from the spent token by the repository
    successor = refresh_record(services, "", "", token_hash)
    outcome, stored = await services.users.rotate_refresh_token(
        auth.refresh_token_hash(presented), successor, now()
    )
    if outcome is not Rotation.ROTATED or stored is None:
        reason = (
            "spent token reused: family revoked" if outcome is Rotation.REUSED else "invalid token"
        )
        log.warning("refused refresh from %s: %s", caller_address(request), reason)
        raise Unauthorized("the refresh token is not valid", code="invalid_token")
    return JSONResponse(tokens_json(services, stored.user_id, token))


async def logout(request: Request) -> Response:
    token = string_field(await read_json(request), "refresh_token")
    await services_of(request).users.revoke_refresh_token(auth.refresh_token_hash(token), now())
    return Response(status_code=204)


async def me(request: Request) -> Response:
    user_id = require_user(request)
    services = services_of(request)
    return JSONResponse(await full_account(services, await caller_account(services, user_id)))


async def update_me(request: Request) -> Response:
    """``PATCH /api/me``: ``{"public": bool}``, the default of the account's new uploads."""
    user_id = require_user(request)
    services = services_of(request)
    data = await read_json(request)
    public = data.get("public")
    if set(data) != {"public"} or not isinstance(public, bool):
        raise BadRequest('expected {"public": true or false}')
    user = await services.users.set_public(user_id, public)
    if user is None:
        raise Unauthorized("the account no longer exists")
    return JSONResponse(await full_account(services, user))


async def full_account(services: Services, user: UserRecord) -> dict[str, object]:
    """The account as ``GET /api/me`` and ``PATCH /api/me`` answer it."""
    return {**account_json(services, user), **await derivative_usage(services, user.id)}


async def derivative_usage(services: Services, user_id: str) -> dict[str, int]:
    """The user's derivative bytes against their budget (the bounded derivative store)."""
    return {
        "derivative_bytes": await budget.usage(services.db, user_id),
        "derivative_budget_bytes": services.settings.user_derivative_bytes,
    }


def account_json(services: Services, user: UserRecord) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "image_count": user.image_count,
        "storage_used_bytes": user.storage_used_bytes,
        "storage_quota_bytes": services.settings.user_quota_bytes,
        "operator": is_operator(services, user),
        "public": user.public,
    }
