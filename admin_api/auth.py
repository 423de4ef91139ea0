"""Passwords (bcrypt), access tokens (HS256 JWT) and opaque refresh tokens.

bcrypt reads at most 72 bytes, so two long passwords sharing a prefix would verify as each
other. Every password is first reduced to ``base64(HMAC-SHA256(pepper, password))`` (44 ASCII
bytes, no NUL) and that is what bcrypt hashes: every character counts, at any length.
bcrypt runs in a worker thread; it costs ~0.3 s at cost 12 and must never block the loop.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio.to_thread
import bcrypt
import jwt

from origin.bearer import ALGORITHM

BCRYPT_COST = 12
# A fixed context string, not a secret: it only separates this use of SHA-256.
_PRE_HASH_KEY = b"imgorigin password v1"


def _pre_hash(password: str) -> bytes:
    digest = hmac.new(_PRE_HASH_KEY, password.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return base64.b64encode(digest.digest())


async def hash_password(password: str) -> str:
    def work() -> str:
        return bcrypt.hashpw(_pre_hash(password), bcrypt.gensalt(BCRYPT_COST)).decode("ascii")

    return await anyio.to_thread.run_sync(work)


# Verified against when the email is unknown, so both failures cost one bcrypt check.
_DUMMY_HASH = bcrypt.hashpw(b"not a password", bcrypt.gensalt(BCRYPT_COST)).decode("ascii")


async def verify_password(password: str, password_hash: str | None) -> bool:
    def work() -> bool:
        try:
            ok = bcrypt.checkpw(_pre_hash(password), (password_hash or _DUMMY_HASH).encode("ascii"))
        except ValueError:
            return False
        return ok and password_hash is not None

    return await anyio.to_thread.run_sync(work)


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_in: int


def issue_access_token(
    user_id: str, secret: str, ttl_seconds: int, now: datetime | None = None
) -> AccessToken:
    issued = now or datetime.now(UTC)
    claims = {
        "sub": user_id,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(seconds=ttl_seconds)).timestamp()),
        "jti": secrets.token_hex(16),
        "type": "access",
    }
    return AccessToken(jwt.encode(claims, secret.encode("utf-8"), algorithm=ALGORITHM), ttl_seconds)


def new_refresh_token() -> tuple[str, str]:
    """A fresh opaque refresh token and the hash that is stored in its place."""
    token = secrets.token_urlsafe(32)
    return token, refresh_token_hash(token)


def refresh_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
