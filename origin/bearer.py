"""Access tokens: the one place that decides whether an HS256 JWT is a valid access token.

The admin API issues them (``admin_api.auth``) and checks them through ``read_access_token``;
the origin accepts an owner's token instead of a signature through ``bearer_user``. The
algorithm is pinned to HS256; ``sub``, ``exp``, ``iat``, ``jti`` and ``type`` are required and
``type`` must be ``"access"``.
"""

from __future__ import annotations

from typing import Any

import jwt

from origin.records import is_id

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "exp", "iat", "jti", "type")


class TokenError(Exception):
    """The token is malformed, badly signed, expired, not yet valid or of the wrong type."""


def read_access_token(token: str, secret: str) -> str:
    """The user id of a valid access token; ``TokenError`` with a short reason otherwise."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret.encode("utf-8"),
            algorithms=[ALGORITHM],
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenError("not yet valid") from None
    except jwt.InvalidTokenError as exc:
        raise TokenError(type(exc).__name__) from None
    if claims.get("type") != "access":
        raise TokenError("not an access token")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not is_id(subject):
        raise TokenError("bad subject")  # a signed token names one of our ids (origin.records)
    return subject


def bearer_user(authorization: str | None, secret: str) -> str | None:
    """The user id of a valid ``Authorization: Bearer <access token>``, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        return read_access_token(token.strip(), secret)
    except TokenError:
        return None
