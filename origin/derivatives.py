"""The derivative store: memory → persistent store → render (in the pool) → persist.

``cached`` is the memory tier (origin.cache.MemoryCache, ``CACHE_MAX_BYTES``): the hot path.
``get`` is everything else, one flight per derivative however many requests ask at once:

1. the persistent store: a row in ``transformed_images`` whose object is there and whole;
2. else a render in the pool (origin.render_pool), within the work budget and under
   ``RENDER_TIMEOUT_SECONDS`` (a derivative that timed out is refused at once for
   ``TIMED_OUT_SECONDS``, so replaying its URL cannot keep slots busy). The job reads its
   source itself — the smallest working copy that serves the plan, else the original — and,
   with local storage, writes the derivative's object too, in the thread already running;
3. after the answer, the object (if not written yet) and then its row
   (origin.stored_derivatives). ``drain`` waits for these at shutdown. At most
   ``PENDING_WRITES_MAX`` such writes wait at once per process, each holding its
   derivative's bytes: past it a derivative is answered and not stored (counted in
   ``imgorigin_derivative_writes_skipped_total``), so a slow store bounds memory instead of
   filling it; the next miss renders it again (origin.after_answer).

The render reads its bytes through origin.source_bytes; ``q_auto``'s remembered choices are
origin.quality_choices.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cachetools import TTLCache

from origin import quality, quality_choices, render, source_bytes, stored_derivatives
from origin.access_log import Timings
from origin.after_answer import AfterAnswer
from origin.cache import Derivative, Flights, Key, MemoryCache, etag_of
from origin.deadline import Deadline
from origin.derivative_use import Uses
from origin.errors import RenderTimeout
from origin.metrics import Metrics
from origin.records import Analysis, ImageRecord
from origin.services import Services
from origin.source_bytes import Read
from origin.store.derivatives import Derivatives as DerivativeRows
from origin.transforms.budget import output_size
from origin.transforms.formats import MEDIA_TYPES
from origin.transforms.plan import Plan

log = logging.getLogger("imgorigin.origin")

PENDING_WRITES_MAX = 256  # writes after the answer, per process (each holds its bytes)
# A derivative whose render passed RENDER_TIMEOUT_SECONDS is refused at once for this long,
# so replaying its URL cannot keep slots busy; at most this many are remembered.
TIMED_OUT_SECONDS = 600
TIMED_OUT_ENTRIES = 10_000

# The render job's answer: body, media type, size, the q_auto choice, and the key it stored
# the object under (local files) or None.
Made = tuple[bytes, str, int, int, "quality.Choice | None", str | None]


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
        self.after = AfterAnswer(PENDING_WRITES_MAX)  # writes and q_auto choices
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
                await stored_derivatives.write(
                    self.services, wanted.key, wanted.image, made, None, rows
                )
            t.tier = "render"
        return made, t.tier

    def forget_image(self, image_id: str) -> None:
        self.memory.forget_image(image_id)

    async def drain(self) -> None:
        """Wait (bounded) for derivatives still being written to the store."""
        await self.after.drain()

    # ---- the tiers ----------------------------------------------------------------------

    async def _produce(self, wanted: Wanted, t: Timings, background: bool = False) -> Derivative:
        """The store, else a render. A ``background`` one (an eager derivative) is neither
        counted among the tiers that answered requests nor put in memory: it is for the
        requests of every process, which find it in the store."""
        key = wanted.key
        began = time.perf_counter()
        rows = wanted.rows or self.services.derivatives
        stored = (
            await stored_derivatives.read(self.services, key, wanted.image, rows)
            if wanted.kept
            else None
        )
        t.load += time.perf_counter() - began
        if stored is not None:
            t.tier = "store"
            if wanted.rows is None:  # an upload's: its last use, for the sweep
                self.uses.touch(key.image_id, key.variant)
            if not background:
                self.metrics.hit["store"].inc()
                self.memory.put(key, stored)
            return stored
        self._refuse_early(wanted)  # before admission: a refused request renders nothing
        if wanted.admit is not None:
            await wanted.admit()
        made = await self._render(wanted, rows, t, background)
        t.tier = "render"
        if not background:
            self.metrics.miss["store"].inc()
            self.metrics.hit["render"].inc()
            self.memory.put(key, made)
        return made

    async def _render(
        self, wanted: Wanted, rows: DerivativeRows, t: Timings, background: bool = False
    ) -> Derivative:
        """Render in the pool, within the work budget and under ``RENDER_TIMEOUT_SECONDS``;
        a ``background`` render takes a background slot and is stored before it returns."""
        key, image, plan = wanted.key, wanted.image, wanted.plan
        began = time.perf_counter()
        services = self.services
        read = await source_bytes.reader(services, image, plan)
        extra = {o.id: await source_bytes.original(services.storage, o) for o in wanted.overlays}
        target = services.settings.auto_quality_ssim
        auto = await quality_choices.known(target, key, image, plan, rows)
        t.load += time.perf_counter() - began
        deadline = Deadline(services.settings.render_timeout_seconds)
        started: list[float] = []
        job = functools.partial(self._job, wanted, read, extra, auto, deadline, started)
        queued = time.perf_counter()
        pool = services.pool
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
            self.metrics.auto_quality_searches[key.format] += 1
            record = quality_choices.searched(key, image, choice)
            self.after.start(
                quality_choices.keep(record, key.content_hash, rows)
            )  # a few bytes: never skipped
        made = Derivative(body, media_type, width, height, etag_of(key.variant))
        if wanted.kept and background:
            await stored_derivatives.write(services, key, image, made, stored, rows, raising=True)
        elif wanted.kept:
            write = stored_derivatives.write(services, key, image, made, stored, rows)
            if not self.after.start(write, bounded=True):
                self.metrics.writes_skipped.inc()
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
        # its row after the answer (``stored_derivatives.write``).
        blocking = self.services.storage.blocking
        stored = None
        if wanted.kept and blocking is not None:
            stored = stored_derivatives.write_now(blocking, image, key, media_type, body)
        return body, media_type, made.width, made.height, made.choice, stored

    def _refuse_early(self, wanted: Wanted) -> None:
        """What refuses a render before anything is read: a URL whose render recently timed
        out (503), a chain past the output budget for one frame (400 ``limit_exceeded``)."""
        self._refuse_timed_out(wanted.key)
        image = wanted.image
        if image.width and image.height:
            output_size(image.width, image.height, wanted.plan.stages, self.services.limits)

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


def stored_summary(analysis: Analysis) -> dict[str, object]:
    """The `.json` fields the upload-time analysis stored (no summary run per request)."""
    return {"blurhash": analysis.blurhash, "dominant_color": analysis.dominant_color}
