"""URL signatures: HMAC-SHA256 over the raw path (plus ``?exp=``), base64url without padding.

    canonical = path exactly as sent (percent-encoding kept) + ("?exp=" + exp if exp)
    s         = base64url_nopad(HMAC-SHA256(key, canonical))      # 43 characters
    URL       = path + "?" + ("exp=" + exp + "&" if exp) + "s=" + s

The key is the UTF-8 bytes of the secret exactly as configured, never hex- or base64-decoded.
Verification compares in constant time against every candidate key (rotation).

A policy URL (``origin.policy``) signs ``template + "?p=" + policy`` the same way: in both
schemes the signature covers the URL up to ``s``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable
from dataclasses import replace

from origin.errors import OriginError
from origin.policy import Policy, check_template, parse_policy, signed_text

SIGNATURE_LENGTH = 43
MAX_EXPIRES_IN = 10 * 365 * 24 * 3600  # the longest expiry a minted URL may be given


def _key_bytes(key: bytes | str) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else key


def canonical(path: str, exp: int | str | None = None) -> str:
    return f"{path}?exp={exp}" if exp is not None else path


def signature(key: bytes | str, path: str, exp: int | str | None = None) -> str:
    digest = hmac.new(
        _key_bytes(key), canonical(path, exp).encode("utf-8"), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign_url(
    path: str,
    key: bytes | str,
    *,
    expires_in: int | None = None,
    exp: int | None = None,
    now: float | None = None,
) -> str:
    """Return ``path`` with its ``?[exp=…&]s=…`` query. ``expires_in`` is seconds from now."""
    if expires_in is not None:
        exp = int(now if now is not None else time.time()) + expires_in
    s = signature(key, path, exp)
    return f"{path}?exp={exp}&s={s}" if exp is not None else f"{path}?s={s}"


def sign_policy(
    template: str,
    key: bytes | str,
    policy: Policy | str,
    *,
    expires_in: int | None = None,
    now: float | None = None,
) -> str:
    """The signed policy URL ``template?p=<policy>&s=<s>``, placeholders (``*``) left in.

    ``policy`` is a ``Policy`` or its text; ``expires_in`` (seconds from now) sets its
    ``exp``. A malformed policy, or a template whose placeholders do not match the policy's
    clauses, is a ValueError.
    """
    try:
        parsed = parse_policy(policy) if isinstance(policy, str) else parse_policy(policy.text())
    except OriginError as exc:
        raise ValueError(exc.message) from None
    if expires_in is not None:
        parsed = replace(parsed, exp=int(now if now is not None else time.time()) + expires_in)
    check_template(template, parsed)
    text = signed_text(template, parsed.text())
    return f"{text}&s={signature(key, text)}"


def verify(path: str, exp: str | None, s: str, keys: Iterable[bytes | str]) -> bool:
    """True when ``s`` is the signature of (path, exp) under any of ``keys``.

    Every key is tried (no early exit), each with ``hmac.compare_digest``.
    """
    return matching(path, exp, s, keys) is not None


def matching(path: str, exp: str | None, s: str, keys: Iterable[bytes | str]) -> bytes | str | None:
    """The key of ``keys`` that ``s`` is the signature of (path, exp) under, else None;
    every key is tried (no early exit), each with ``hmac.compare_digest``."""
    given = s.encode("ascii", "replace")
    found: bytes | str | None = None
    for key in keys:
        expected = signature(key, path, exp).encode("ascii")
        if hmac.compare_digest(expected, given):
            found = key
    return found
