"""The derivative store: memory → persistent store → render (in the pool) → persist.

``cached`` is the memory tier (origin.cache.MemoryCache, ``CACHE_MAX_BYTES``): the hot path.
``get`` is everything else, one flight per derivative however many requests ask at once:

1. the persistent store: a row in ``transformed_images`` whose object is there and whole;
2. else a render in the pool (origin.render_pool), within the work budget and under
   ``RENDER_TIMEOUT_SECONDS`` (a derivative that timed out is refused at once for
   ``TIMED_OUT_SECONDS``, so replaying its URL cannot keep slots busy). The job reads its
   source itself — the smallest working copy that serves the plan, else the original — and,
   with local storage, writes the derivative's object too, in the thread already running;
3. after the answer, the object (if not written yet) and then its row: a row always has its
   object, an object alone is junk (``imgorigin gc``). ``drain`` waits for these at shutdown.
   At most ``PENDING_WRITES_MAX`` such writes wait at once per process, each holding its
   derivative's bytes: past it a derivative is answered and not stored (counted in
   ``imgorigin_derivative_writes_skipped_total``), so a slow store bounds memory instead of
   filling it; the next miss renders it again.

``q_auto``: a quality chosen for this image, chain and format is read before the render and
a search's choice stored after the answer (origin.quality).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cachetools import TTLCache

from origin import quality, render, working_copies
from origin.access_log import Timings
from origin.cache import Derivative, Flights, Key, MemoryCache, etag_of
from origin.deadline import Deadline
from origin.derivative_use import Uses
from origin.errors import NotFound, RenderTimeout
from origin.metrics import Metrics
from origin.records import Analysis, AutoQualityRecord, DerivativeRecord, ImageRecord
from origin.services import Services
from origin.store.derivatives import Derivatives as DerivativeRows
from origin.store.objects import Blocking, ObjectMissing
from origin.transforms.budget import output_size
from origin.transforms.formats import FILE_EXTENSIONS, MEDIA_TYPES
from origin.transforms.plan import Plan
from origin.vips import sniff_format

log = logging.getLogger("imgorigin.origin")

DRAIN_SECONDS = 10.0  # at shutdown, for derivatives still being written to the store
# A derivative whose render passed RENDER_TIMEOUT_SECONDS is refused at once for this long,
# so replaying its URL cannot keep slots busy; at most this many are remembered.
PENDING_WRITES_MAX = 256  # writes after the answer, per process (each holds its bytes)
TIMED_OUT_SECONDS = 600
TIMED_OUT_ENTRIES = 10_000

Read = tuple[bytes, "render.StandIn | None"]
Made = tuple[bytes, str, int, int, "quality.Choice | None", bool]


@dataclass(frozen=True)
class Wanted:
    """A derivative one request wants: its key, its image, the plan and the overlays, and
    the index its rows go to (``None``: an upload's, ``Services.derivatives``; a remote
    source object's is ``Services.source_derivatives``), unless it is not ``kept``."""

    key: Key
    image: ImageRecord
    plan: Plan
    overlays: tuple[ImageRecord, ...] = ()
    rows: DerivativeRows | None = None
    kept: bool = True  # False: an image no row stands for (a source's fallback): memory only
    # Awaited before a render (never before a memory or store hit): may refuse it, e.g. an
    # unsigned URL's render over its rate limit (origin.delivery).
    admit: Callable[[], Awaitable[None]] | None = None


class Derivatives:
    """This process's derivative store (made once in the origin's start)."""

    def __init__(self, services: Services, metrics: Metrics) -> None:
        self.services = services
        self.metrics = metrics
        self.memory = MemoryCache(services.settings.cache_max_bytes)
        self.flights: Flights[Derivative] = Flights()
        self.uses = Uses(services.db)  # last uses, for the derivative store's sweep
        self.pending: set[asyncio.Task[None]] = set()
        self.pending_max = PENDING_WRITES_MAX
        # variant -> until when (monotonic) its renders are refused: they passed the deadline
        self.timed_out: TTLCache[str, float] = TTLCache(TIMED_OUT_ENTRIES, TIMED_OUT_SECONDS)

    def cached(self, key: Key) -> Derivative | None:
        """The memory tier (the hot path)."""
        made = self.memory.get(key)
        if made is not None:
            self.metrics.hit["memory"].inc()
            self.uses.hit(key.image_id, key.variant)
        elif self.memory.enabled:
            self.metrics.miss["memory"].inc()
        return made

    async def get(self, wanted: Wanted, t: Timings) -> Derivative:
        """Not in memory: one flight per key to the store, else the renderer."""
        return await self.flights.join(wanted.key, lambda: self._produce(wanted, t))

    async def keep(self, wanted: Wanted) -> tuple[Derivative, str]:
        """Make ``wanted`` as a background job (an eager derivative) and return once it is in
        the store, where a request would find it, with the tier that had it (``store`` or
        ``render``). Its render uses the pool's background share (origin.render_pool)."""
        t = Timings("-")
        made = await self.flights.join(
            wanted.key, lambda: self._produce(wanted, t, background=True)
        )
        if t.tier == "-":  # joined a request's flight, whose write may still be pending
            rows = wanted.rows or self.services.derivatives
            if await rows.get(wanted.image.id, wanted.key.variant) is None:
                await self._persist(wanted.key, wanted.image, made, False, rows)
            t.tier = "render"
        return made, t.tier

    def forget_image(self, image_id: str) -> None:
        self.memory.forget_image(image_id)

    async def drain(self) -> None:
        """Wait (bounded) for derivatives still being written to the store."""
        if self.pending:
            await asyncio.wait(set(self.pending), timeout=DRAIN_SECONDS)

    # ---- the tiers ----------------------------------------------------------------------

    async def _produce(self, wanted: Wanted, t: Timings, background: bool = False) -> Derivative:
        """The store, else a render. A ``background`` one (an eager derivative) is neither
        counted among the tiers that answered requests nor put in memory: it is for the
        requests of every process, which find it in the store."""
        key = wanted.key
        began = time.perf_counter()
        rows = wanted.rows or self.services.derivatives
        stored = await self._from_store(key, wanted.image, rows) if wanted.kept else None
        t.load += time.perf_counter() - began
        if stored is not None:
            t.tier = "store"
            if wanted.rows is None:  # an upload's: its last use, for the sweep
                self.uses.touch(key.image_id, key.variant)
            if not background:
                self.metrics.hit["store"].inc()
                self.memory.put(key, stored)
            return stored
        if wanted.admit is not None:
            await wanted.admit()
        made = await self._render(wanted, rows, t, background)
        t.tier = "render"
        if not background:
            self.metrics.miss["store"].inc()
            self.metrics.hit["render"].inc()
            self.memory.put(key, made)
        return made

    async def _from_store(
        self, key: Key, image: ImageRecord, rows: DerivativeRows
    ) -> Derivative | None:
        """A derivative recorded in the index whose object is there and whole."""
        services = self.services
        record = await rows.get(image.id, key.variant)
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

    async def _render(
        self, wanted: Wanted, rows: DerivativeRows, t: Timings, background: bool = False
    ) -> Derivative:
        """Render in the pool, within the work budget and under ``RENDER_TIMEOUT_SECONDS``;
        a ``background`` render takes a background slot and is stored before it returns."""
        key, image, plan = wanted.key, wanted.image, wanted.plan
        self._refuse_timed_out(key)
        limits = self.services.limits
        if image.width and image.height:  # the budget for one frame, before anything is read
            output_size(image.width, image.height, plan.stages, limits)
        began = time.perf_counter()
        read = await self._reader(image, plan)
        extra = {o.id: await self._fetch(o) for o in wanted.overlays}
        auto = await self._auto_quality(key, image, plan, rows)
        t.load += time.perf_counter() - began
        deadline = Deadline(self.services.settings.render_timeout_seconds)
        started: list[float] = []
        job = functools.partial(self._job, wanted, read, extra, auto, deadline, started)
        queued = time.perf_counter()
        pool = self.services.pool
        run = pool.run_background if background else pool.run
        try:
            ran = await run(job, on_cancel=deadline.cancel)
        except RenderTimeout as exc:
            if deadline.timed_out:
                raise self._timed_out_now(key, image, plan, exc) from None
            raise
        body, media_type, width, height, choice, stored = ran
        t.wait += started[0] - queued
        t.render += time.perf_counter() - started[0]
        if choice is not None and choice.searched:
            self._remember(key, image, choice, rows)
        made = Derivative(body, media_type, width, height, etag_of(key.variant))
        if wanted.kept and background:
            await self._persist(key, image, made, stored, rows, raising=True)
        elif wanted.kept:
            self._later(self._persist(key, image, made, stored, rows))
        return made

    def _job(
        self,
        wanted: Wanted,
        read: Callable[[], Read],
        overlays: dict[str, bytes],
        auto: quality.AutoQuality,
        deadline: Deadline,
        started: list[float],
    ) -> Made:
        """The render job, in a pool thread: read, render (and `.json`), write locally."""
        started.append(time.perf_counter())
        key, image, plan = wanted.key, wanted.image, wanted.plan
        limits = self.services.limits
        analysis = image.analysis
        try:
            with deadline.running():
                original, stand_in = read()
                made = render.render(
                    original,
                    plan,
                    overlays=overlays,
                    limits=limits,
                    stand_in=stand_in,
                    focal=None if analysis is None else analysis.focal,
                    faces=None if analysis is None else analysis.faces,
                    auto=auto,
                )
                body, media_type = made.body, made.media_type
                if plan.metadata_only:
                    summary = None if analysis is None else stored_summary(analysis)
                    facts = render.facts(made, original, limits=limits, summary=summary)
                    body = json.dumps(facts, separators=(",", ":")).encode("utf-8")
                    media_type = MEDIA_TYPES["json"]
        finally:
            self.metrics.render_seconds.labels(key.format).observe(time.perf_counter() - started[0])
        # Local files: the object is written here, in the thread already running, and only
        # its row after the answer (``_persist``).
        blocking = self.services.storage.blocking
        stored = (
            wanted.kept
            and blocking is not None
            and put_now(blocking, stored_key(image, key, media_type), body)
        )
        return body, media_type, made.width, made.height, made.choice, stored

    async def _persist(
        self,
        key: Key,
        image: ImageRecord,
        made: Derivative,
        stored: bool,
        rows: DerivativeRows,
        *,
        raising: bool = False,
    ) -> None:
        """Object first, row second: a row always has its object; an object alone is junk.
        ``stored``: the render job already wrote the object. A failure is logged (the answer
        is out; the next miss renders again), or raised when ``raising`` (a background job,
        which retries)."""
        services = self.services
        storage_key = stored_key(image, key, made.media_type)
        record = DerivativeRecord(
            image_id=image.id,
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
            added = await rows.add(record)
            if not added and await rows.get(image.id, key.variant) is None:
                await services.storage.delete(storage_key)  # the image was deleted meanwhile
        except Exception:  # the answer is already out; the next miss renders again
            if raising:
                raise
            log.exception("could not store derivative %s", storage_key)

    def _later(self, work: Coroutine[Any, Any, None], *, bounded: bool = True) -> None:
        """Run ``work`` after the answer (``drain`` waits for it at shutdown). A ``bounded``
        one (a derivative's write, holding its bytes) is dropped and counted when
        ``pending_max`` writes are pending already; a ``q_auto`` choice holds a few bytes
        and is always kept (searching again costs several encodes)."""
        if bounded and len(self.pending) >= self.pending_max:
            work.close()
            self.metrics.writes_skipped.inc()
            return
        task = asyncio.create_task(work)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    # ---- the render deadline ------------------------------------------------------------

    def _refuse_timed_out(self, key: Key) -> None:
        """503 ``render_timeout`` at once for a derivative whose render recently timed out."""
        until = self.timed_out.get(key.variant)
        if until is not None:
            left = max(1, math.ceil(until - time.monotonic()))
            raise RenderTimeout(
                "a recent render of this URL took longer than RENDER_TIMEOUT_SECONDS; it is "
                f"refused for {left} s more",
                headers={"Retry-After": str(left)},
            )

    def _timed_out_now(
        self, key: Key, image: ImageRecord, plan: Plan, exc: RenderTimeout
    ) -> RenderTimeout:
        """Remember a derivative whose render passed the deadline; the error to answer."""
        self.timed_out[key.variant] = time.monotonic() + TIMED_OUT_SECONDS
        log.warning(
            "render timed out: image %s chain %s (%s); refused for %d s",
            image.id,
            plan.canonical(),
            exc.message,
            TIMED_OUT_SECONDS,
        )
        return RenderTimeout(exc.message, headers={"Retry-After": str(TIMED_OUT_SECONDS)})

    # ---- q_auto ---------------------------------------------------------------------------

    async def _auto_quality(
        self, key: Key, image: ImageRecord, plan: Plan, rows: DerivativeRows
    ) -> quality.AutoQuality:
        """How the render resolves ``q_auto``: the quality remembered for this image, chain and
        format (``Key.choice``), else a search at ``AUTO_QUALITY_SSIM``."""
        target = self.services.settings.auto_quality_ssim
        if not plan.auto_quality or key.format not in quality.RANGES:
            return quality.AutoQuality(target)
        record = await rows.auto_quality(image.id, key.choice)
        return quality.AutoQuality(target, None if record is None else record.quality)

    def _remember(
        self, key: Key, image: ImageRecord, choice: quality.Choice, rows: DerivativeRows
    ) -> None:
        """Count a search and store its choice after the answer (the first stored one stays)."""
        self.metrics.auto_quality_searches[key.format] += 1
        log.info(
            "q_auto search: image %s %s quality %d (SSIM %.4f, %d encodes)",
            image.id,
            key.format,
            choice.quality,
            choice.ssim or 0.0,
            choice.encodes,
        )
        record = AutoQualityRecord(
            image_id=image.id,
            variant=key.choice,
            format=key.format,
            quality=choice.quality,
            ssim=choice.ssim or 0.0,
            created_at=datetime.now(UTC),
        )
        self._later(self._keep_choice(record, rows), bounded=False)

    async def _keep_choice(self, record: AutoQualityRecord, rows: DerivativeRows) -> None:
        try:
            await rows.add_auto_quality(record)
        except Exception:  # the answer is out; the next render without the row searches again
            log.exception("could not store the q_auto choice for image %s", record.image_id)

    # ---- the source's bytes ---------------------------------------------------------------

    async def _reader(self, image: ImageRecord, plan: Plan) -> Callable[[], Read]:
        """What the render job calls for the bytes to render from: the smallest working copy
        that serves the plan (origin.working_copies), else the original; a copy whose object
        is gone falls back to the original. Local files are read by the job itself, in its
        thread; other storage is read here first. A ``.json`` plan uses the copy its image
        would (its ``bytes`` are the served image's) only when the source summary is
        stored, since it would be computed from the bytes."""
        copy = None
        if not plan.metadata_only or image.analysis is not None:
            copy = working_copies.choose(
                plan, image.width, image.height, image.working_copies, self.services.limits
            )
        candidates: list[tuple[str, render.StandIn | None]] = [(image.storage_key, None)]
        if copy is not None:
            size = render.StandIn(image.width, image.height, image.format)
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

    async def _fetch(self, image: ImageRecord) -> bytes:
        try:
            return await self.services.storage.get(image.storage_key)
        except ObjectMissing:  # deleted between the lookup and now
            raise NotFound("no such image") from None


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


def stored_key(image: ImageRecord, key: Key, media_type: str) -> str:
    """Where a derivative's object lives: ``{user}/{image}/derived/{variant}.{ext}``."""
    ext = "json" if media_type == MEDIA_TYPES["json"] else FILE_EXTENSIONS[key.format]
    return f"{image.user_id}/{image.id}/derived/{key.variant}.{ext}"


def put_now(blocking: Blocking, storage_key: str, body: bytes) -> bool:
    """Write a derivative from the render job; False (logged) when it could not be, and
    ``_persist`` tries again through the event loop."""
    try:
        blocking.put_blocking(storage_key, body, durable=False)
    except Exception:
        log.exception("could not write derivative %s in the render job", storage_key)
        return False
    return True


def whole(body: bytes, media_type: str) -> bool:
    """A stored derivative starts as its kind must. Derivatives are written without fsync (a
    cache: ``_persist``), so after a power cut one could be an empty or zero-filled file of
    the recorded size; the size check and this catch it, and it is rendered again."""
    if media_type == MEDIA_TYPES["json"]:
        return body.startswith(b"{") and body.endswith(b"}")
    return sniff_format(body) is not None


def stored_summary(analysis: Analysis) -> dict[str, object]:
    """The `.json` fields the upload-time analysis stored (no summary run per request)."""
    return {"blurhash": analysis.blurhash, "dominant_color": analysis.dominant_color}
