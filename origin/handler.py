"""``GET|HEAD /i/{image_id}[/{stage}…]/{name}.{ext}``: verify → parse → load → render → respond.

Order of checks (imgproxy's), each a value from ``origin.errors``:

1. query shape: only ``s`` and ``exp``, each at most once, ``exp`` ASCII digits — else 400
   ``bad_request`` (the query is not signed, so this costs nothing to check first);
2. credentials: ``s`` against the operator keys and, when the image exists, its owner's keys
   (constant time over all of them) — else 403 ``bad_signature``, whatever the path says;
   without ``s``, an owner's ``Authorization: Bearer`` access token; an invalid one is 403
   ``bad_signature`` too, another user's image is 404;
3. ``exp``: passed → 403 ``url_expired`` (a URL is good through the second ``exp``);
4. the image: unknown, deleted or malformed id → 404 ``not_found`` (also for a valid operator
   signature: the id is the only thing a signature cannot vouch for);
5. the path: ``origin.transforms.parse.parse_path`` → 400 ``bad_transform`` / ``limit_exceeded``; image
   overlays must belong to the same owner;
6. ``If-None-Match`` → 304 (the ETag is known before any byte is loaded), then the memory
   tier, then — one flight per derivative — the persistent store, then a render in the pool.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from cachetools import LRUCache, TTLCache
from starlette.types import Receive, Scope, Send

from origin import quality, render, working_copies
from origin.bearer import bearer_user
from origin.cache import Derivative, Flights, Key, MemoryCache, etag_of, matches
from origin.deadline import Deadline
from origin.errors import (
    BadRequest,
    BadSignature,
    BadTransform,
    NotFound,
    OriginError,
    RenderTimeout,
    UrlExpired,
)
from origin.hints import ACCEPT_CH, NO_HINTS, Hints, resolve, vary
from origin.hints import HEADERS as HINT_HEADERS
from origin.lookup import Lookup, Source
from origin.metrics import Metrics
from origin.policy import check_allowed, parse_policy, signed_text, template_of
from origin.records import Analysis, AutoQualityRecord, DerivativeRecord
from origin.render_pool import ClientGone, unless_gone
from origin.services import Services
from origin.signing import verify
from origin.store.objects import Blocking, ObjectMissing
from origin.transforms.budget import output_size
from origin.transforms.formats import FILE_EXTENSIONS, MEDIA_TYPES, negotiated_format
from origin.transforms.parse import parse_path
from origin.transforms.plan import Plan
from origin.vips import sniff_format

log = logging.getLogger("imgorigin.origin")

IMMUTABLE = "public, max-age=31536000, immutable"
PRIVATE = "private, no-store"
CSP = "default-src 'none'; sandbox"
CSP_BYTES = CSP.encode("ascii")
TIMINGS = "imgorigin.timings"  # scope key of the request's Timings (set by the access log)
PLAN_CACHE_ENTRIES = 4096
SIGNED_URLS = 16384  # operator-verified URLs remembered (cleared when full)
MAX_EXP_DIGITS = 12
DRAIN_SECONDS = 10.0  # at shutdown, for derivatives still being written to the store
CLIENT_CLOSED = 499  # nginx's "client closed request": logged, never seen by the client
# A derivative whose render passed RENDER_TIMEOUT_SECONDS is refused at once for this long,
# so replaying its URL cannot keep slots busy; at most this many are remembered.
TIMED_OUT_SECONDS = 600
TIMED_OUT_ENTRIES = 10_000


class Timings:
    """What one request spent where (seconds), and how it was answered, for the access log.

    On the fast path (``origin.app.FastObserve``) nothing wraps ``send``: the endpoint adds
    ``headers`` (nosniff, the request id) to its answer and sets ``status`` and ``sent``.
    """

    __slots__ = ("headers", "load", "render", "request_id", "sent", "status", "tier", "wait")

    def __init__(self, request_id: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.request_id = request_id
        self.headers = headers or []
        self.tier = "-"
        self.wait = 0.0
        self.load = 0.0
        self.render = 0.0
        self.status = 500
        self.sent = 0


class Prepared:
    """A parsed path, and the last key made from it (reused while the sources match).

    For an ``f_auto`` path, ``formats`` holds its plans per other format ``Accept`` can
    negotiate (at most two: AVIF, WebP); for a path with ``w_auto``/``dpr_auto``,
    ``variants`` holds its plans per snapped Client Hints (at most AUTO_WIDTHS + 1 times 6).
    """

    __slots__ = ("canonical", "formats", "key", "plan", "variants")

    def __init__(self, plan: Plan, canonical: str) -> None:
        self.plan = plan
        self.canonical = canonical
        self.key: Key | None = None
        self.formats: dict[str, Prepared] | None = None
        self.variants: dict[Hints, Prepared] | None = None


@dataclass
class Origin:
    """Everything the handler keeps per process (made once in the origin part's start)."""

    services: Services
    metrics: Metrics
    lookup: Lookup
    memory: MemoryCache
    operator_keys: tuple[bytes, ...]
    flights: Flights[Derivative] = field(default_factory=Flights)
    plans: LRUCache[str, Prepared] = field(default_factory=lambda: LRUCache(PLAN_CACHE_ENTRIES))
    pending: set[asyncio.Task[None]] = field(default_factory=set)
    signed_urls: dict[tuple[str, str | None, str], bool] = field(default_factory=dict)
    # variant -> until when (monotonic) its renders are refused: they passed the deadline
    timed_out: TTLCache[str, float] = field(
        default_factory=lambda: TTLCache(TIMED_OUT_ENTRIES, TIMED_OUT_SECONDS)
    )

    def operator_signed(self, path: str, exp: str | None, s: str) -> bool:
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

    # ---- hooks for the admin API (request.state.forget_image / forget_user_keys) ----------

    def forget_image(self, image_id: str) -> None:
        self.lookup.forget_image(image_id)
        self.memory.forget_image(image_id)

    def forget_user_keys(self, user_id: str) -> None:
        self.lookup.forget_user_keys(user_id)

    async def drain(self) -> None:
        """Wait (bounded) for derivatives still being written to the store."""
        if self.pending:
            await asyncio.wait(set(self.pending), timeout=DRAIN_SECONDS)

    # ---- steps ------------------------------------------------------------------------

    def prepare(self, path: str, accept: str | None) -> Prepared:
        """The parsed plan of a verified path (an LRU: parsing costs more than the hit).
        ``Accept`` matters only to an ``f_auto`` path, and only through the format it
        negotiates: a plan per format, not one per browser's ``Accept``."""
        cached = self.plans.get(path)
        if cached is None:
            settings = self.services.settings
            plan = parse_path(path, presets=settings.presets, limits=self.services.limits)
            cached = self.plans[path] = Prepared(plan, plan.canonical())
        plan = cached.plan
        if not plan.negotiated:
            return cached
        fmt = negotiated_format(accept, plan.format)
        if fmt is None or fmt == plan.format:
            return cached
        if cached.formats is None:
            cached.formats = {}
        found = cached.formats.get(fmt)
        if found is None:
            other = dataclasses.replace(plan, format=fmt)
            found = cached.formats[fmt] = Prepared(other, other.canonical())
        return found

    def hinted(
        self,
        prepared: Prepared,
        path: str,
        accept: str | None,
        width: bytes | None,
        dpr: bytes | None,
    ) -> Prepared:
        """The plan of a ``w_auto``/``dpr_auto`` path for this request's snapped hints
        (``prepared`` itself, parsed without hints, when the request gave none)."""
        settings = self.services.settings
        hints = resolve(prepared.plan.client_hints, width, dpr, settings.auto_widths)
        if hints == NO_HINTS:
            return prepared
        if prepared.variants is None:
            prepared.variants = {}
        found = prepared.variants.get(hints)
        if found is None:
            plan = parse_path(
                path,
                accept=accept,
                presets=settings.presets,
                limits=self.services.limits,
                hints=hints,
            )
            found = prepared.variants[hints] = Prepared(plan, plan.canonical())
        return found

    async def overlays(self, source: Source, plan: Plan) -> tuple[Source, ...]:
        found = []
        for overlay_id in plan.overlay_ids:
            overlay = await self.lookup.image(overlay_id)
            if overlay is None or overlay.user_id != source.user_id:
                raise BadTransform(f"overlay 'l_{overlay_id}' not found")
            found.append(overlay)
        return tuple(found)

    async def derivative(
        self, key: Key, source: Source, plan: Plan, overlays: tuple[Source, ...], t: Timings
    ) -> Derivative:
        """Not in memory: one flight per key to the store, else the renderer."""
        if self.memory.enabled:
            self.metrics.miss["memory"].inc()
        return await self.flights.join(key, lambda: self.produce(key, source, plan, overlays, t))

    async def produce(
        self, key: Key, source: Source, plan: Plan, overlays: tuple[Source, ...], t: Timings
    ) -> Derivative:
        began = time.perf_counter()
        stored = await self.from_store(key, source)
        t.load += time.perf_counter() - began
        if stored is not None:
            self.metrics.hit["store"].inc()
            t.tier = "store"
            self.memory.put(key, stored)
            return stored
        self.metrics.miss["store"].inc()
        made = await self.render(key, source, plan, overlays, t)
        self.metrics.hit["render"].inc()
        t.tier = "render"
        self.memory.put(key, made)
        return made

    def later(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` after the answer (``drain`` waits for it at shutdown)."""
        task = asyncio.create_task(work)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def from_store(self, key: Key, source: Source) -> Derivative | None:
        """A derivative recorded in ``transformed_images`` whose object is there and whole."""
        services = self.services
        record = await services.derivatives.get(source.image_id, key.variant)
        if record is None:
            return None
        try:
            body = await services.storage.get(record.storage_key)
        except ObjectMissing:
            return None
        if len(body) != record.size_bytes or not whole(body, record.media_type):
            log.warning("stored derivative %s is not whole; rendering", record.storage_key)
            return None
        return Derivative(
            body, record.media_type, record.width, record.height, etag_of(key.variant)
        )

    async def render(
        self, key: Key, source: Source, plan: Plan, overlays: tuple[Source, ...], t: Timings
    ) -> Derivative:
        """Render in the pool, within the work budget and under ``RENDER_TIMEOUT_SECONDS``."""
        self.refuse_timed_out(key)
        limits = self.services.limits
        if source.width and source.height:  # the budget for one frame, before anything is read
            output_size(source.width, source.height, plan.stages, limits)
        began = time.perf_counter()
        read = await self.reader(source, plan)
        extra = {o.image_id: await self.fetch(o) for o in overlays}
        auto = await self.auto_quality(key, source, plan)
        t.load += time.perf_counter() - began
        blocking = self.services.storage.blocking
        observe = self.metrics.render_seconds.labels(key.format).observe
        metadata_only = plan.metadata_only
        analysis = source.analysis
        focal = None if analysis is None else analysis.focal
        summary = None if analysis is None else stored_summary(analysis)
        deadline = Deadline(self.services.settings.render_timeout_seconds)
        started: list[float] = []

        def job() -> tuple[bytes, str, int, int, quality.Choice | None, bool]:
            started.append(time.perf_counter())
            try:
                with deadline.running():
                    original, stand_in = read()
                    made = render.render(
                        original,
                        plan,
                        overlays=extra,
                        limits=limits,
                        stand_in=stand_in,
                        focal=focal,
                        auto=auto,
                    )
                    body, media_type = made.body, made.media_type
                    if metadata_only:
                        facts = render.facts(made, original, limits=limits, summary=summary)
                        body = json.dumps(facts, separators=(",", ":")).encode("utf-8")
                        media_type = MEDIA_TYPES["json"]
            finally:
                observe(time.perf_counter() - started[0])
            # Local files: the object is written here, in the thread already running, and
            # only its row after the answer (``persist``).
            stored = blocking is not None and put_now(
                blocking, stored_key(source, key, media_type), body
            )
            return body, media_type, made.width, made.height, made.choice, stored

        queued = time.perf_counter()
        try:
            ran = await self.services.pool.run(job, on_cancel=deadline.cancel)
        except RenderTimeout as exc:
            if deadline.timed_out:
                raise self.timed_out_now(key, source, plan, exc) from None
            raise
        body, media_type, width, height, choice, stored = ran
        finished = time.perf_counter()
        t.wait += started[0] - queued
        t.render += finished - started[0]
        if choice is not None and choice.searched:
            self.remember(key, source, choice)
        made = Derivative(body, media_type, width, height, etag_of(key.variant))
        self.later(self.persist(key, source, made, stored))
        return made

    def refuse_timed_out(self, key: Key) -> None:
        """503 ``render_timeout`` at once for a derivative whose render recently timed out."""
        until = self.timed_out.get(key.variant)
        if until is not None:
            left = max(1, math.ceil(until - time.monotonic()))
            raise RenderTimeout(
                "a recent render of this URL took longer than RENDER_TIMEOUT_SECONDS; it is "
                f"refused for {left} s more",
                headers={"Retry-After": str(left)},
            )

    def timed_out_now(
        self, key: Key, source: Source, plan: Plan, exc: RenderTimeout
    ) -> RenderTimeout:
        """Remember a derivative whose render passed the deadline; the error to answer."""
        self.timed_out[key.variant] = time.monotonic() + TIMED_OUT_SECONDS
        log.warning(
            "render timed out: image %s chain %s (%s); refused for %d s",
            source.image_id,
            plan.canonical(),
            exc.message,
            TIMED_OUT_SECONDS,
        )
        return RenderTimeout(exc.message, headers={"Retry-After": str(TIMED_OUT_SECONDS)})

    async def auto_quality(self, key: Key, source: Source, plan: Plan) -> quality.AutoQuality:
        """How the render resolves ``q_auto``: the quality remembered for this image, chain and
        format (``Key.choice``), else a search at ``AUTO_QUALITY_SSIM``."""
        target = self.services.settings.auto_quality_ssim
        if not plan.auto_quality or key.format not in quality.RANGES:
            return quality.AutoQuality(target)
        record = await self.services.derivatives.auto_quality(source.image_id, key.choice)
        return quality.AutoQuality(target, None if record is None else record.quality)

    def remember(self, key: Key, source: Source, choice: quality.Choice) -> None:
        """Count a search and store its choice after the answer (the first stored one stays)."""
        self.metrics.auto_quality_searches[key.format] += 1
        log.info(
            "q_auto search: image %s %s quality %d (SSIM %.4f, %d encodes)",
            source.image_id,
            key.format,
            choice.quality,
            choice.ssim or 0.0,
            choice.encodes,
        )
        record = AutoQualityRecord(
            image_id=source.image_id,
            variant=key.choice,
            format=key.format,
            quality=choice.quality,
            ssim=choice.ssim or 0.0,
            created_at=datetime.now(UTC),
        )
        self.later(self.keep_choice(record))

    async def keep_choice(self, record: AutoQualityRecord) -> None:
        try:
            await self.services.derivatives.add_auto_quality(record)
        except Exception:  # the answer is out; the next render without the row searches again
            log.exception("could not store the q_auto choice for image %s", record.image_id)

    async def reader(self, source: Source, plan: Plan) -> Callable[[], Read]:
        """What the render job calls for the bytes to render from: the smallest working copy
        that serves the plan (origin.working_copies), else the original; a copy whose object is
        gone falls back to the original. Local files are read by the job itself, in its
        thread; other storage is read here first. A ``.json`` plan uses the copy its image
        would (its ``bytes`` are the served image's) only when the source summary is
        stored, since it would be computed from the bytes."""
        copy = None
        if not plan.metadata_only or source.analysis is not None:
            copy = working_copies.choose(
                plan, source.width, source.height, source.working_copies, self.services.limits
            )
        candidates: list[tuple[str, render.StandIn | None]] = [(source.storage_key, None)]
        if copy is not None:
            size = render.StandIn(source.width, source.height, source.format)
            candidates.insert(0, (copy.storage_key, size))
        storage = self.services.storage
        if storage.blocking is not None:
            return functools.partial(read_first, storage.blocking.get_blocking, candidates)
        for storage_key, stand_in in candidates:
            try:
                read: Read = (await storage.get(storage_key), stand_in)
            except ObjectMissing:
                missing(storage_key)
            else:
                return lambda: read
        raise NotFound("no such image")

    async def fetch(self, source: Source) -> bytes:
        try:
            return await self.services.storage.get(source.storage_key)
        except ObjectMissing:  # deleted between the lookup and now
            raise NotFound("no such image") from None

    async def persist(self, key: Key, source: Source, made: Derivative, stored: bool) -> None:
        """Object first, row second: a row always has its object; an object alone is junk.
        ``stored``: the render job already wrote the object."""
        services = self.services
        storage_key = stored_key(source, key, made.media_type)
        record = DerivativeRecord(
            image_id=source.image_id,
            variant=key.variant,
            storage_key=storage_key,
            media_type=made.media_type,
            size_bytes=len(made.body),
            width=made.width,
            height=made.height,
            created_at=datetime.now(UTC),
        )
        try:
            if not stored:
                await services.storage.put(
                    storage_key, made.body, content_type=made.media_type, durable=False
                )
            added = await services.derivatives.add(record)
            if not added and await services.derivatives.get(source.image_id, key.variant) is None:
                await services.storage.delete(storage_key)  # the image was deleted meanwhile
        except Exception:  # the answer is already out; the next miss renders again
            log.exception("could not store derivative %s", storage_key)


Read = tuple[bytes, "render.StandIn | None"]


def missing(storage_key: str) -> None:
    log.warning("object %s is missing; trying the next source", storage_key)


def read_first(
    get: Callable[[str], bytes], candidates: list[tuple[str, render.StandIn | None]]
) -> Read:
    """The first of ``candidates`` whose object is there (in a worker thread)."""
    for storage_key, stand_in in candidates:
        try:
            return get(storage_key), stand_in
        except ObjectMissing:
            missing(storage_key)
    raise NotFound("no such image")  # deleted between the lookup and now


def stored_key(source: Source, key: Key, media_type: str) -> str:
    """Where a derivative's object lives: ``{user}/{image}/derived/{variant}.{ext}``."""
    ext = "json" if media_type == MEDIA_TYPES["json"] else FILE_EXTENSIONS[key.format]
    return f"{source.user_id}/{source.image_id}/derived/{key.variant}.{ext}"


def put_now(blocking: Blocking, storage_key: str, body: bytes) -> bool:
    """Write a derivative from the render job; False (logged) when it could not be, and
    ``persist`` tries again through the event loop."""
    try:
        blocking.put_blocking(storage_key, body, durable=False)
    except Exception:
        log.exception("could not write derivative %s in the render job", storage_key)
        return False
    return True


def whole(body: bytes, media_type: str) -> bool:
    """A stored derivative starts as its kind must. Derivatives are written without fsync (a
    cache: ``persist``), so after a power cut one could be an empty or zero-filled file of the
    recorded size; the size check and this catch it, and it is rendered again."""
    if media_type == MEDIA_TYPES["json"]:
        return body.startswith(b"{") and body.endswith(b"}")
    return sniff_format(body) is not None


def stored_summary(analysis: Analysis) -> dict[str, object]:
    """The `.json` fields the upload-time analysis stored (no summary run per request)."""
    return {"blurhash": analysis.blurhash, "dominant_color": analysis.dominant_color}


# ---- request shape ---------------------------------------------------------------------


def raw_path(scope: Scope) -> str:
    """The path exactly as sent (percent-encoding kept), without the query."""
    raw = scope.get("raw_path")
    if raw is None:  # not every server sends it; re-encoding is the best guess
        return quote(scope["path"], safe="/,:;=@!$&'()*+~._-%")
    path_bytes: bytes = raw.split(b"?", 1)[0]  # some clients (httpx's ASGI) include the query
    try:
        return path_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise BadSignature("the URL signature does not match") from None


def _show(raw: bytes) -> str:
    text = raw.decode("ascii", "replace")
    return "".join(c if c.isprintable() else "?" for c in text)[:40]


def split_query(query: bytes) -> tuple[str | None, str | None, str | None]:
    """``(s, exp, p)`` from the raw query string; anything else is a 400.

    ``p`` (a policy, origin.policy) comes only with ``s`` and never with ``exp`` (a policy
    holds its own expiry).
    """
    if not query:
        return None, None, None
    values: dict[bytes, bytes] = {}
    for item in query.split(b"&"):
        name, _, value = item.partition(b"=")
        if name not in (b"s", b"exp", b"p"):
            raise BadRequest(f"unknown query parameter '{_show(name)}': only s, exp and p")
        if name in values:
            raise BadRequest(f"query parameter '{name.decode()}' is repeated")
        values[name] = value
    exp = values.get(b"exp")
    if exp is not None and not (exp.isdigit() and len(exp) <= MAX_EXP_DIGITS):
        raise BadRequest("'exp' must be unix seconds")
    s = values.get(b"s")
    p = values.get(b"p")
    if p is not None:
        policy_query(s, exp)
    return (
        None if s is None else s.decode("ascii", "replace"),
        None if exp is None else exp.decode("ascii"),
        None if p is None else p.decode("ascii", "replace"),
    )


def policy_query(s: bytes | None, exp: bytes | None) -> None:
    if exp is not None:
        raise BadRequest("a policy URL has no 'exp': its expiry is the policy's exp_")
    if s is None:
        raise BadSignature("a policy URL (p) needs its signature (s)")


def image_id_of(path: str) -> str:
    return path[3:].split("/", 1)[0] if path.startswith("/i/") else ""


def cache_control(public: bool, exp: str | None, now: float) -> str:
    """``Cache-Control`` of a 200/304. An answer with an expiry (``exp``, a policy's ``exp_``)
    is fresh for the seconds left and ``must-revalidate``: no cache may serve it stale, since
    the origin's answer after the expiry is 403 ``url_expired``."""
    if not public:
        return PRIVATE
    if exp is None:
        return IMMUTABLE
    return f"public, max-age={max(0, int(exp) - int(now))}, must-revalidate"


def disconnected(receive: Receive) -> Callable[[], Awaitable[object]]:
    """A coroutine function that returns once the client has gone away."""

    async def gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    return gone


# ---- the endpoint ------------------------------------------------------------------------


# The request headers the endpoint reads, by their place in request_headers' list.
HEADER_NAMES = (b"accept", b"if-none-match", b"authorization")
WANTED_HEADERS = {name: index for index, name in enumerate((*HEADER_NAMES, *HINT_HEADERS))}
RequestHeaders = tuple[str | None, str | None, str | None, bytes | None, bytes | None]


def request_headers(scope: Scope) -> RequestHeaders:
    """``Accept``, ``If-None-Match``, ``Authorization`` and the raw width and DPR hints
    (``Sec-CH-*`` before the legacy name), in one pass over the raw headers: one dict
    look-up per header (measured: no slower than three comparisons)."""
    found: list[bytes | None] = [None] * 7
    wanted = WANTED_HEADERS.get
    for name, value in scope["headers"]:
        index = wanted(name)
        if index is not None:
            found[index] = value
    accept, if_none_match, authorization, ch_width, width, ch_dpr, dpr = found
    return (
        None if accept is None else accept.decode("latin-1"),
        None if if_none_match is None else if_none_match.decode("latin-1"),
        None if authorization is None else authorization.decode("latin-1"),
        ch_width or width,
        ch_dpr or dpr,
    )


async def credentials(
    origin: Origin, authorization: str | None, path: str, s: str | None, exp: str | None
) -> tuple[Source | None, bool]:
    """The image (None when unknown to these credentials) and whether the answer is public.

    ``s`` is checked against the operator keys first (a URL that passed is remembered: those
    keys only change with a restart), then against the owner's keys. Each check compares in
    constant time with every key of its kind; which kind matched is not a secret.
    """
    source = await origin.lookup.image(image_id_of(path))
    if s is not None:
        if origin.operator_signed(path, exp, s):
            return source, True
        if source is not None and verify(
            path, exp, s, await origin.lookup.user_keys(source.user_id)
        ):
            return source, True
        raise BadSignature("the URL signature does not match")
    user = bearer_user(authorization, origin.services.settings.jwt_secret)
    if user is None:
        raise BadSignature("the URL has no valid signature (s) and no valid access token")
    return (source if source is not None and source.user_id == user else None), False


async def policy_credentials(
    origin: Origin, path: str, p: str, s: str
) -> tuple[Source | None, bool, str | None]:
    """A policy URL: the signature over its template (origin.policy), then the values the
    request put in the placeholders. Returns the image, publicness and the policy's exp."""
    policy = parse_policy(p)
    filled = template_of(path, policy)
    source, public = await credentials(origin, None, signed_text(filled.template, p), s, None)
    check_allowed(policy, filled)
    return source, public, None if policy.exp is None else str(policy.exp)


@functools.cache
def vary_headers(negotiated: bool, client_hints: tuple[str, ...]) -> list[tuple[bytes, bytes]]:
    """``Vary`` (Accept with f_auto, the hint headers with w_auto/dpr_auto), and
    ``Accept-CH`` when the answer depends on hints."""
    head = [(b"vary", vary(negotiated, client_hints))]
    if client_hints:
        head.append((b"accept-ch", ACCEPT_CH))
    return head


def key_for(prepared: Prepared, source: Source, overlays: tuple[Source, ...]) -> Key:
    """The derivative's key, reused while the sources stay the same (the hot path)."""
    hashes = tuple(o.content_hash for o in overlays)
    last = prepared.key
    if last is not None and last.content_hash == source.content_hash and last.overlays == hashes:
        return last
    plan = prepared.plan
    key = Key(
        source.image_id,
        source.content_hash,
        prepared.canonical,
        plan.format or source.format,
        hashes,
    )
    prepared.key = key
    return key


class ServeImage:
    """The ``/i/…`` endpoint as a plain ASGI app: the memory-hit path builds no Request,
    no Response and no task, and sends the cached body as it is (no copy)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin: Origin = scope["state"]["origin"]
        t: Timings = scope.get(TIMINGS) or Timings("-")
        path = raw_path(scope)
        s, exp, p = split_query(scope["query_string"])
        accept, if_none_match, authorization, width, dpr = request_headers(scope)
        if p is None:
            source, public = await credentials(origin, authorization, path, s, exp)
        else:
            assert s is not None  # split_query: p comes with s
            source, public, exp = await policy_credentials(origin, path, p, s)
        now = time.time()
        if exp is not None and int(exp) < int(now):
            raise UrlExpired("the URL has expired")
        if source is None:
            raise NotFound("no such image")
        prepared = origin.prepare(path, accept)
        if prepared.plan.client_hints:
            prepared = origin.hinted(prepared, path, accept, width, dpr)
        plan = prepared.plan
        overlays = await origin.overlays(source, plan) if plan.overlay_ids else ()
        key = key_for(prepared, source, overlays)
        etag = key.etag
        head = [
            (b"etag", etag.encode("ascii")),
            (b"cache-control", cache_control(public, exp, now).encode("ascii")),
            (b"content-security-policy", CSP_BYTES),
        ]
        if plan.negotiated or plan.client_hints:
            head += vary_headers(plan.negotiated, plan.client_hints)
        if if_none_match is not None and matches(if_none_match, etag):
            t.tier = "304"
            t.status = 304
            head += t.headers
            await send({"type": "http.response.start", "status": 304, "headers": head})
            await send({"type": "http.response.body", "body": b""})
            return
        made = origin.memory.get(key)
        if made is not None:  # the hot path
            origin.metrics.hit["memory"].inc()
            t.tier = "memory"
        else:
            work = origin.derivative(key, source, plan, overlays, t)
            try:
                made = await unless_gone(work, disconnected(receive))
            except ClientGone:
                t.tier = "gone"
                t.status = CLIENT_CLOSED
                await send({"type": "http.response.start", "status": CLIENT_CLOSED})
                await send({"type": "http.response.body", "body": b""})
                return
        head.append((b"content-type", made.media_type.encode("ascii")))
        head.append((b"content-length", made.length))
        head += t.headers
        t.status = 200
        await send({"type": "http.response.start", "status": 200, "headers": head})
        body = b"" if scope["method"] == "HEAD" else made.body
        if body:
            t.sent = len(body)
            origin.metrics.bytes_out.inc(t.sent)
        await send({"type": "http.response.body", "body": body})


serve_image = ServeImage()


def start_origin(services: Services, metrics: Metrics) -> Origin:
    origin = Origin(
        services=services,
        metrics=metrics,
        lookup=Lookup(services.images, services.keys),
        memory=MemoryCache(services.settings.cache_max_bytes),
        operator_keys=tuple(k.secret for k in services.settings.url_signing_keys),
    )
    pool = services.pool
    metrics.watch_queue(lambda: pool.waiting, lambda: pool.busy)
    return origin


def state_of(origin: Origin) -> Mapping[str, Any]:
    return {
        "origin": origin,
        "forget_image": origin.forget_image,
        "forget_user_keys": origin.forget_user_keys,
    }


__all__ = ["Origin", "OriginError", "serve_image", "start_origin", "state_of"]
