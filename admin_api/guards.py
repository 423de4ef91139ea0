"""Who is calling: the client address, the bearer token, and the rate limit they spend.

``AdminGate`` wraps every ``/api`` route. It reads the client address (``X-Forwarded-For``
only when the peer is a trusted proxy), reads the bearer token if one is sent, spends one
unit of the right limit (per address on ``/api/auth/*``, per user elsewhere, per address
for anonymous calls), answers 429 past it, and adds ``RateLimit-*`` to every answer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from origin.addresses import client_address
from origin.bearer import TokenError, read_access_token
from origin.errors import NotFound, RateLimited, Unauthorized
from origin.http import error_response
from origin.ratelimit import Decision, Limiter
from origin.settings import Settings

log = logging.getLogger("imgorigin.admin")

USER_KEY = "imgorigin.user_id"
TOKEN_PROBLEM_KEY = "imgorigin.token_problem"
ADDRESS_KEY = "imgorigin.client"


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


async def hit_limit(state: Mapping[str, Any], key: str, limit: int) -> Decision:
    """Count one request against ``key``'s per-minute ``limit`` in the lifespan's limiter;
    a shared store that failed (the request passes) is counted in the metrics."""
    limiter: Limiter = state["limiter"]  # made in the lifespan (admin_part)
    return _noted(state, await limiter.hit(key, limit))


async def peek_limit(state: Mapping[str, Any], key: str, limit: int) -> Decision:
    """Whether one more request against ``key`` would be allowed, without counting it."""
    limiter: Limiter = state["limiter"]
    return _noted(state, await limiter.peek(key, limit))


def _noted(state: Mapping[str, Any], decision: Decision) -> Decision:
    if decision.degraded and "metrics" in state:
        state["metrics"].ratelimit_store_failures.inc()
    return decision


class AdminGate:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if b"%2f" in scope.get("raw_path", b"").lower():  # paths are exact: an encoded slash
            # is no separator (Starlette routes on the decoded path: {id}%2Fdownload downloaded)
            await error_response(NotFound("not found"))(scope, receive, send)
            return
        address = client_address(scope, self.settings.forwarded_allow_ips)
        user_id, problem = self._identify(scope)
        scope[ADDRESS_KEY], scope[USER_KEY], scope[TOKEN_PROBLEM_KEY] = address, user_id, problem
        if scope["path"].startswith("/api/auth/"):
            key, limit = f"auth:{address}", self.settings.auth_rate_limit_per_minute
        elif user_id is not None:
            key, limit = f"user:{user_id}", self.settings.rate_limit_per_minute
        else:
            key, limit = f"anon:{address}", self.settings.rate_limit_per_minute
        decision = await hit_limit(scope["state"], key, limit)
        headers = decision.headers()
        if not decision.allowed:
            log.warning("rate limited: %s on %s", key, scope["path"])
            error = RateLimited(
                "too many requests; slow down",
                headers=decision.refusal_headers(),
            )
            await error_response(error)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                own = message.get("headers", [])
                # an endpoint's own limit (uploads from a URL, purges) answered: its figures
                # stand alone, not beside the account's
                if not any(name.lower() == b"ratelimit-limit" for name, _ in own):
                    extra = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
                    message = {**message, "headers": [*own, *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _identify(self, scope: Scope) -> tuple[str | None, str | None]:
        token = _bearer(scope)
        if token is None:
            return None, "missing bearer token"
        if not token:
            return None, "not a bearer token"
        try:
            return read_access_token(token, self.settings.jwt_secret), None
        except TokenError as exc:
            return None, f"invalid token ({exc})"


def require_user(request: Request) -> str:
    """The caller's user id; 401 with ``WWW-Authenticate: Bearer`` otherwise (and logged)."""
    scope: dict[str, Any] = request.scope  # type: ignore[assignment]
    user_id = scope.get(USER_KEY)
    if user_id is None:
        problem = scope.get(TOKEN_PROBLEM_KEY) or "missing bearer token"
        if problem != "missing bearer token":
            log.warning("refused token from %s: %s", scope.get(ADDRESS_KEY), problem)
        raise Unauthorized("a valid bearer access token is required")
    return str(user_id)


def caller_address(request: Request) -> str:
    return str(request.scope.get(ADDRESS_KEY) or "unknown")
