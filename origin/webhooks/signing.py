"""Standard Webhooks signatures (https://www.standardwebhooks.com): a secret is ``whsec_``
and base64 of 24 random bytes; a message is signed as
``base64(HMAC-SHA256(secret bytes, "{webhook-id}.{webhook-timestamp}.{body}"))`` and sent as
``webhook-signature: v1,<signature>`` — one space-separated entry per valid secret, so while
a rotated-out secret still overlaps, receivers holding either verify.

Written here (a dozen lines of the standard library) rather than taken from the
``standardwebhooks`` package, whose Python distribution pulls httpx, attrs and dateutil into
the server for this one HMAC; the tests verify every delivery with that package.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable

PREFIX = "whsec_"
SECRET_BYTES = 24


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature."""
    key = base64.b64decode(secret.removeprefix(PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(
    secrets_: Iterable[str], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body``, signed with every secret given."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, message_id, timestamp, body) for s in secrets_),
    }
