"""Who may see what: a request's ``s``, ``exp``, policy ``p`` or bearer token → the image it
may see and whether its answer is public.

In the order imgproxy checks them (the signature before anything is parsed):

1. ``s`` against the operator keys (``URL_SIGNING_KEYS``; a URL that passed is remembered —
   those keys change only with a restart), then against the image owner's keys
   (``/api/keys``, through origin.lookup); each compared in constant time with every key of
   its kind. Neither: 403 ``bad_signature``, whatever the path says.
2. Without ``s``: the owner's ``Authorization: Bearer`` access token (the answer is private);
   an invalid one is 403 ``bad_signature`` too, another user's image is 404. With neither
   (and no query at all): strict public delivery (origin.public) — a public image through
   an unsigned transformation, else 403 ``bad_signature`` (even for an unknown image).
3. A policy URL (``p``): the signature covers the policy's template, then each value the
   request filled in must be one the policy allows (origin.policy).
4. ``exp`` (or the policy's ``exp_``): passed → 403 ``url_expired`` (a URL is good through
   the second ``exp``).
5. The image: unknown, deleted or malformed id → 404 ``not_found`` (also for a valid operator
   signature: the id is the only thing a signature cannot vouch for).

A remote source's URL (``/r/…``, ``check_source``) is signed by an operator key or it is 403:
a user's key or token never reads the operator's sources.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from origin.bearer import bearer_user
from origin.errors import BadSignature, NotFound, UrlExpired
from origin.lookup import Lookup
from origin.policy import (
    Filled,
    Policy,
    check_allowed,
    parse_policy,
    signed_text,
    template_of,
)
from origin.public import unsigned_allowed
from origin.records import ImageRecord
from origin.request import Query, image_id_of
from origin.signing import matching, verify

SIGNED_URLS = 16384  # operator-verified URLs remembered (cleared when full)


@dataclass(frozen=True)
class Access:
    """What a request may see: the image, whether the answer is public (signed, or unsigned
    through strict public delivery) or private (the owner's token), the expiry it is good until
    (unix seconds) and when it was checked."""

    image: ImageRecord
    public: bool
    exp: str | None
    now: float
    unsigned: bool = False
    signer: str | None = None  # a user key's fingerprint, when one signed the URL


class Credentials:
    """The checks above, with this process's operator keys and lookups."""

    def __init__(self, lookup: Lookup, operator_keys: tuple[bytes, ...], jwt_secret: str) -> None:
        self.lookup = lookup
        self.operator_keys = operator_keys
        self.jwt_secret = jwt_secret
        self.signed_urls: dict[tuple[str, str | None, str], bool] = {}

    async def check(self, path: str, query: Query, authorization: str | None) -> Access:
        """The access this request has to the image its path names (errors as above)."""
        exp = query.exp
        if query.s is None and exp is None and authorization is None:
            return Access(await self._unsigned(path), True, None, time.time(), unsigned=True)
        if query.p is None:
            image, public, signer = await self._signed(path, query.s, exp, authorization)
        else:
            assert query.s is not None  # split_query: p comes with s
            image, public, exp, signer = await self._policy(path, query.p, query.s)
        now = unexpired(exp)
        if image is None:
            raise NotFound("no such image")
        return Access(image, public, exp, now, signer=signer)

    async def _signed(
        self, path: str, s: str | None, exp: str | None, authorization: str | None
    ) -> tuple[ImageRecord | None, bool, str | None]:
        """The image, whether the answer is public, and the fingerprint of the user key that
        signed (None for an operator key or a token)."""
        image = await self.lookup.image(image_id_of(path))
        if s is not None:
            if self._operator_signed(path, exp, s):
                return image, True, None
            if image is not None:
                key = matching(path, exp, s, await self.lookup.user_keys(image.user_id))
                if key is not None:
                    return image, True, fingerprint(key)
            raise BadSignature("the URL signature does not match")
        user = bearer_user(authorization, self.jwt_secret)
        if user is None:
            raise BadSignature("the URL has no valid signature (s) and no valid access token")
        return (image if image is not None and image.user_id == user else None), False, None

    async def _unsigned(self, path: str) -> ImageRecord:
        """A public image through one of its unsigned transformations (origin.public)."""
        image = await self.lookup.image(image_id_of(path))
        if image is not None and image.public:
            named = await self.lookup.named(image.user_id)
            if unsigned_allowed(path, image.original_filename, named):
                return image
        raise BadSignature("the URL has no valid signature (s) and no valid access token")

    async def _policy(
        self, path: str, p: str, s: str
    ) -> tuple[ImageRecord | None, bool, str | None, str | None]:
        """The signature over the policy's template, then the values the request put in the
        placeholders; also the policy's exp and the signing user key's fingerprint."""
        policy, filled, text = policy_parts(path, p)
        image, public, signer = await self._signed(text, s, None, None)
        check_allowed(policy, filled)
        return image, public, policy_exp(policy), signer

    def check_source(self, path: str, query: Query) -> tuple[str | None, float]:
        """A ``/r/`` URL's operator signature (``s`` with ``exp``, or a policy): its expiry and
        when it was checked; 403 otherwise."""
        exp = query.exp
        if query.s is None:
            raise BadSignature("a source URL needs an operator signature (s)")
        if query.p is None:
            signed = self._operator_signed(path, exp, query.s)
        else:
            policy, filled, text = policy_parts(path, query.p)
            signed = self._operator_signed(text, None, query.s)
            if signed:
                check_allowed(policy, filled)
            exp = policy_exp(policy)
        if not signed:
            raise BadSignature("the URL signature does not match an operator key")
        return exp, unexpired(exp)

    def _operator_signed(self, path: str, exp: str | None, s: str) -> bool:
        """``s`` verifies under an operator key (verified URLs are remembered, bounded)."""
        url = (path, exp, s)
        if url in self.signed_urls:
            return True
        if not verify(path, exp, s, self.operator_keys):
            return False
        if len(self.signed_urls) >= SIGNED_URLS:
            self.signed_urls.clear()
        self.signed_urls[url] = True
        return True


def fingerprint(key: bytes | str) -> str:
    """A user key's name for its render limit: not the secret, the same in every process."""
    data = key.encode("utf-8") if isinstance(key, str) else key
    return hashlib.sha256(b"imgorigin key:" + data).hexdigest()[:16]


def unexpired(exp: str | None) -> float:
    """Now (unix seconds), unless ``exp`` has passed: 403 ``url_expired`` (a URL is good
    through the second ``exp``)."""
    now = time.time()
    if exp is not None and int(exp) < int(now):
        raise UrlExpired("the URL has expired")
    return now


def policy_parts(path: str, p: str) -> tuple[Policy, Filled, str]:
    """A policy URL's policy, the template its request filled in, and the text signed."""
    policy = parse_policy(p)
    filled = template_of(path, policy)
    return policy, filled, signed_text(filled.template, p)


def policy_exp(policy: Policy) -> str | None:
    return None if policy.exp is None else str(policy.exp)
