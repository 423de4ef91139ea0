"""``GET|HEAD /i/{image_id}[/{stage}…]/{name}.{ext}``: the origin's answer, step by step.

``ServeImage`` runs this sequence and nothing else:

1. the request's shape — raw path, query, the headers read (origin.request): a query other
   than ``s``/``exp``/``p`` is 400 before anything else;
2. credentials (origin.credentials): the signature, a policy, the owner's token or strict
   public delivery (origin.public), the expiry, the image — 403 / 404;
3. the plan (origin.plans: the registry's parser behind an LRU) for this request's
   ``Accept`` and Client Hints, ``t_`` meaning what it means for the owner (origin.named) —
   400 ``bad_transform`` / ``limit_exceeded``; image overlays must be the same owner's;
4. the derivative's key and ETag; ``If-None-Match`` → 304, before any byte is loaded;
5. the derivative (origin.derivatives): memory, else — one flight per derivative — the
   persistent store, else a render in the pool (an unsigned URL's within its per-image and
   per-owner rate limits: 429 ``rate_limited``); a client gone while it waits costs no
   render;
6. the answer: the body with its ETag, ``Cache-Control``, CSP, ``Vary``, type, length and
   cache tags for the image and its owner (origin.cache_tags).

A render that finds the image's objects gone (``SourceGone``: another worker replaced it
after this process read its row, which it keeps up to 3 s) forgets the row and runs the
sequence once more: the new version is served, or a deleted image's 404.

The endpoint is a plain ASGI app: the memory-hit path builds no Request, no Response and
no task, and sends the cached body as it is (no copy).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from starlette.types import Receive, Scope, Send

from origin.access_log import TIMINGS, Timings
from origin.cache import matches
from origin.cache_tags import CacheTags, tag_key
from origin.credentials import Access, Credentials
from origin.derivatives import Derivatives, Wanted
from origin.edge_keys import EdgeKeys
from origin.errors import BadTransform, RateLimited, SourceGone
from origin.hints import ACCEPT_CH, vary
from origin.http import CSP, IMMUTABLE, NOT_STORED, PRIVATE, YEAR
from origin.lookup import Lookup
from origin.metrics import Metrics
from origin.named import Presets, Uses
from origin.plans import Plans
from origin.ratelimit import Decision
from origin.records import ImageRecord
from origin.render_pool import ClientGone, unless_gone
from origin.request import Headers, disconnected, raw_path, read_headers, split_query
from origin.services import Services
from origin.transforms.plan import Plan

CLIENT_CLOSED = 499  # nginx's "client closed request": logged, never seen by the client
CSP_BYTES = CSP.encode("ascii")
REFUSED = {"unsigned": "image's unsigned URLs", "user_key": "signing key"}


@dataclass
class Origin:
    """What the origin keeps per process (made once in the origin part's start)."""

    services: Services
    metrics: Metrics
    lookup: Lookup
    credentials: Credentials
    plans: Plans
    derivatives: Derivatives
    tags: CacheTags
    edge_keys: EdgeKeys  # the keys nginx stored answers under (origin.edge_keys)

    async def overlays(self, image: ImageRecord, plan: Plan) -> tuple[ImageRecord, ...]:
        """The images ``l_<id>`` names: each must be the same owner's."""
        found = []
        for overlay_id in plan.overlay_ids:
            overlay = await self.lookup.image(overlay_id)
            if overlay is None or overlay.user_id != image.user_id:
                raise BadTransform(f"overlay 'l_{overlay_id}' not found")
            found.append(overlay)
        return tuple(found)

    def admission(self, access: Access) -> Callable[[], Awaitable[None]] | None:
        """The check before a render, if the request has one: an unsigned URL's within the
        image's and the owner's per-minute limits (``UNSIGNED_RENDERS_PER_IMAGE`` /
        ``_PER_USER``), a user key's within ``USER_KEY_RENDERS_PER_MINUTE``; else 429."""
        settings = self.services.settings
        image = access.image
        bounds: tuple[tuple[str, int], ...]
        if access.unsigned:
            by = "unsigned"
            bounds = (
                (f"unsigned:image:{image.id}", settings.unsigned_renders_per_image),
                (f"unsigned:user:{image.user_id}", settings.unsigned_renders_per_user),
            )
        elif access.signer is not None:
            by = "user_key"
            bounds = ((f"key:{access.signer}", settings.user_key_renders_per_minute),)
        else:
            return None
        limiter = self.services.limiter

        def allowed(decision: Decision) -> None:
            if decision.degraded:  # the shared store failed: let through, counted
                self.metrics.ratelimit_store_failures.inc()
            if not decision.allowed:
                self.metrics.renders_refused[by] += 1
                raise RateLimited(
                    f"too many new renders for this {REFUSED[by]}: try again later",
                    headers={**decision.refusal_headers(), "Cache-Control": "no-store"},
                )

        async def admit() -> None:
            if len(bounds) > 1:  # a render one bound refuses is counted by none of them
                for key, limit in bounds:
                    allowed(await limiter.peek(key, limit))
            for key, limit in bounds:
                allowed(await limiter.hit(key, limit))

        return admit

    # ---- hooks for the admin API (request.state.forget_image / forget_user_keys) ----------

    def forget_image(self, image_id: str) -> None:
        self.lookup.forget_image(image_id)
        self.derivatives.forget_image(image_id)

    def forget_user_keys(self, user_id: str) -> None:
        self.lookup.forget_user_keys(user_id)

    def forget_user_transformations(self, user_id: str) -> None:
        self.lookup.forget_user_transformations(user_id)


def changeable(access: Access, uses: Uses) -> bool:
    """Whether the answer at this URL can change without the URL changing: an unsigned one
    (the image may stop being public, the definition be edited) or one through a user's
    own transformation (``uses``: its definition may be edited)."""
    return access.unsigned or bool(uses)


def cache_control(access: Access, max_age: int | None = None) -> str:
    """``Cache-Control`` of a 200/304. An answer with an expiry (``exp``, a policy's ``exp_``)
    is fresh for the seconds left and ``must-revalidate``: no cache may serve it stale, since
    the origin's answer after the expiry is 403 ``url_expired``. One whose URL can keep
    answering differently (``changeable``) is fresh for ``max_age``
    (``TRANSFORMATION_MAX_AGE_SECONDS``), not a year."""
    if not access.public:
        return PRIVATE
    if access.exp is None:
        return IMMUTABLE if max_age is None else f"public, max-age={max_age}"
    left = min(max(0, int(access.exp) - int(access.now)), YEAR)  # no cache keeps longer;
    # an Expires past the year 9999 cannot be written (an exp of 12 digits is valid)
    if max_age is not None:
        left = min(left, max_age)
    return f"public, max-age={left}, must-revalidate"


def expires_of(control: str, now: float) -> tuple[tuple[bytes, bytes], ...]:
    """``Expires`` of an answer with an expiry (its ``Cache-Control`` ends ``must-revalidate``):
    the request's second plus its ``max-age``. nginx sends a stored answer's headers again
    without ``Age``, so a ``max-age`` would count again from each hit; the shipped nginx.conf
    sends such answers on without it, and caches behind nginx count from ``Date`` to this."""
    if not control.endswith(", must-revalidate"):
        return ()
    left = int(control.partition("max-age=")[2].partition(",")[0])
    return ((b"expires", formatdate(int(now) + left, usegmt=True).encode("ascii")),)


@functools.cache
def vary_headers(negotiated: bool, client_hints: tuple[str, ...]) -> list[tuple[bytes, bytes]]:
    """``Vary`` (Accept with f_auto, the hint headers with w_auto/dpr_auto), and
    ``Accept-CH`` when the answer depends on hints."""
    head = [(b"vary", vary(negotiated, client_hints))]
    if client_hints:
        head.append((b"accept-ch", ACCEPT_CH))
    return head


class ServeImage:
    """The ``/i/…`` endpoint (the sequence of this module's docstring)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin: Origin = scope["state"]["origin"]
        try:
            await self.serve(origin, scope, receive, send)
        except SourceGone as gone:  # replaced (or deleted) since this process read its row
            origin.forget_image(gone.image_id)
            await self.serve(origin, scope, receive, send)  # the row read again: which?

    async def serve(self, origin: Origin, scope: Scope, receive: Receive, send: Send) -> None:
        path = raw_path(scope)
        query = split_query(scope["query_string"])
        headers = read_headers(scope)
        access = await origin.credentials.check(path, query, headers.authorization)
        image = access.image
        named = await origin.lookup.named(image.user_id) if "t_" in path else None
        prepared = origin.plans.prepared(path, headers, named)
        plan = prepared.plan
        overlays = await origin.overlays(image, plan) if plan.overlay_ids else ()
        key = prepared.key_for(image, overlays)
        wanted = Wanted(key, image, plan, overlays, admit=origin.admission(access))
        max_age = None
        uses = () if named is None else named.uses(path)
        if changeable(access, uses):
            max_age = origin.services.settings.transformation_max_age_seconds
        control = cache_control(access, max_age)
        overlay_ids = tuple(o.id for o in overlays) if overlays else ()
        tags = origin.tags.headers(image.id, image.user_id, overlay_ids)
        if headers.edge_key is not None and access.public:
            query = scope["query_string"]
            uri = f"{path}?{query.decode('latin-1')}" if query else path
            if not origin.edge_keys.note(image, uri, headers.edge_key, uses, overlays):
                control = NOT_STORED  # nginx would keep it under a key no purge can name
        extra = tags + expires_of(control, access.now)
        await deliver(origin, scope, receive, send, wanted, control, headers, extra)


async def deliver(
    origin: Origin,
    scope: Scope,
    receive: Receive,
    send: Send,
    wanted: Wanted,
    cache_control: str,
    headers: Headers,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """Steps 4–6 (shared with ``/r/``, origin.sources.delivery): the ETag and ``If-None-Match``,
    the derivative from memory, the store or a render, and the answer."""
    t: Timings = scope.get(TIMINGS) or Timings("-")
    key, plan = wanted.key, wanted.plan
    head = [
        (b"etag", key.etag.encode("ascii")),
        (b"cache-control", cache_control.encode("ascii")),
        (b"content-security-policy", CSP_BYTES),
        *extra,
    ]
    if plan.negotiated or plan.client_hints:
        head += vary_headers(plan.negotiated, plan.client_hints)
    if headers.if_none_match is not None and matches(headers.if_none_match, key.etag):
        t.tier = "304"
        await answer(send, t, 304, head, b"")
        return
    made = origin.derivatives.cached(key)
    if made is not None:  # the hot path
        t.tier = "memory"
    else:
        work = origin.derivatives.get(wanted, t)
        try:
            made = await unless_gone(work, disconnected(receive))
        except ClientGone:
            t.tier = "gone"
            await answer(send, t, CLIENT_CLOSED, None, b"")
            return
    head.append((b"content-type", made.media_type.encode("ascii")))
    head.append((b"content-length", made.length))
    body = b"" if scope["method"] == "HEAD" else made.body
    await answer(send, t, 200, head, body)
    if body:
        origin.metrics.bytes_out.inc(len(body))


async def answer(
    send: Send, t: Timings, status: int, head: list[tuple[bytes, bytes]] | None, body: bytes
) -> None:
    """Send an answer with the request's own headers, noting its status and bytes."""
    t.status = status
    t.sent = len(body)
    start: dict[str, Any] = {"type": "http.response.start", "status": status}
    if head is not None:
        start["headers"] = head + t.headers
    await send(start)
    await send({"type": "http.response.body", "body": body})


serve_image = ServeImage()


def start_origin(services: Services, metrics: Metrics) -> Origin:
    settings = services.settings
    lookup = Lookup(
        services.images,
        services.keys,
        services.transformations,
        Presets(settings.presets, settings.unsigned_presets),
    )
    origin = Origin(
        services=services,
        metrics=metrics,
        lookup=lookup,
        credentials=Credentials(
            lookup, tuple(k.secret for k in settings.url_signing_keys), settings.jwt_secret
        ),
        plans=Plans(settings.presets, services.limits, settings.auto_widths),
        derivatives=Derivatives(services, metrics),
        tags=CacheTags(tag_key(settings.jwt_secret)),
        edge_keys=EdgeKeys(services.db, services.settings),
    )
    pool = services.pool
    metrics.watch_queue(lambda: pool.waiting, lambda: pool.busy)
    return origin


def state_of(origin: Origin) -> Mapping[str, Any]:
    return {
        "origin": origin,
        "forget_image": origin.forget_image,
        "forget_user_keys": origin.forget_user_keys,
        "forget_user_transformations": origin.forget_user_transformations,
    }
