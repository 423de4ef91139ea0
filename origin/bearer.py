"""The owner's access token instead of a signature: the same HS256 JWT the admin API issues.

The origin never imports ``admin_api``; these few lines check what ``admin_api.auth`` checks
(algorithm pinned to HS256; ``sub``, ``exp``, ``iat``, ``jti`` and ``type`` required;
``type == "access"``).
"""

from __future__ import annotations

from typing import Any

import jwt

REQUIRED_CLAIMS = ("sub", "exp", "iat", "jti", "type")


def bearer_user(authorization: str | None, secret: str) -> str | None:
    """The user id of a valid ``Authorization: Bearer <access token>``, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        claims: dict[str, Any] = jwt.decode(
            token.strip(),
            secret.encode("utf-8"),
            algorithms=["HS256"],
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.InvalidTokenError:
        return None
    subject = claims.get("sub")
    if claims.get("type") != "access" or not isinstance(subject, str) or not subject:
        return None
    return subject
