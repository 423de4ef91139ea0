"""Eager derivatives: made by a background job right after the upload (or
``POST /api/images/{id}/eager``), stored exactly where the origin stores that URL's
derivative, so the first ``<img>`` request for it is a store hit.

origin.store.eager records each wanted derivative (its unsigned origin path, parsed and
checked by the admin API before anything is queued) with its job in the caller's
transaction; ``EagerJobs``
renders it through the origin's own derivative store (origin.derivatives ``keep``: the
background share of the render pool) and reports ``derivative.ready`` or
``derivative.failed`` to the owner's webhooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from origin.cache import Derivative
from origin.derivatives import Wanted
from origin.jobs.runner import Failure
from origin.request import Headers
from origin.settings_groups import Background
from origin.signing import sign_url
from origin.store import eager as rows
from origin.store.database import Transaction
from origin.store.eager import DONE, EVICTED, QUEUED, RUNNING, EagerRecord
from origin.store.queue import Job
from origin.store.webhooks import emit

if TYPE_CHECKING:
    from origin.delivery import Origin

NO_HEADERS = Headers(None, None, None, None, None)  # eager chains name their format and size


@dataclass(frozen=True)
class Made:
    record: EagerRecord
    user_id: str
    notification_url: str | None
    derivative: Derivative
    tier: str  # "store": it was there already


class EagerJobs:
    """The handler of ``eager`` jobs (origin.jobs.runner)."""

    def __init__(self, origin: Origin, background: Background) -> None:
        self.origin = origin
        self.background = background
        self.schedule = background.job_retry_schedule
        self.signing_key = origin.services.settings.url_signing_keys[0].secret

    async def run(self, job: Job) -> Made | None:
        """Make the derivative and store it; None when its image is gone (nothing to do)."""
        services = self.origin.services
        found = await rows.find(services.db, job.payload["eager"])
        if found is None:
            return None
        record, user_id, notification_url = found
        image = await services.images.get(record.image_id)
        if image is None:
            return None
        named = await self.origin.lookup.named(image.user_id)
        prepared = self.origin.plans.prepared(record.path, NO_HEADERS, named)
        plan = prepared.plan
        overlays = await self.origin.overlays(image, plan) if plan.overlay_ids else ()
        key = prepared.key_for(image, overlays)
        # the variant made now: a t_ edited or an overlay replaced since the entry was asked
        # for changes it, and the sweep finds the entry by the variant its row is stored under
        await rows.set_state(services.db, record.id, RUNNING, variant=key.variant)
        made, tier = await self.origin.derivatives.keep(Wanted(key, image, plan, overlays))
        return Made(record, user_id, notification_url, made, tier)

    async def done(self, conn: Transaction, job: Job, made: Made | None) -> None:
        if made is None:
            return
        record, body = made.record, made.derivative
        if not await rows.update(
            conn,
            record.id,
            unless=EVICTED,
            state=DONE,
            size_bytes=len(body.body),
            width=body.width,
            height=body.height,
            error_code=None,
        ):
            return  # a replace took the entry (its new entry's job reports), or the sweep
        data = {
            "image_id": record.image_id,
            "eager_id": record.id,
            "transform": record.transform,
            "format": record.format,
            "media_type": body.media_type,
            "size_bytes": len(body.body),
            "width": body.width,
            "height": body.height,
            "url": sign_url(record.path, self.signing_key),
        }
        await emit(
            conn, self.background, made.user_id, "derivative.ready", data, made.notification_url
        )

    async def retrying(self, conn: Transaction, job: Job, failure: Failure, due: datetime) -> None:
        await rows.update(conn, job.payload["eager"], state=QUEUED, error_code=failure.code[:40])

    async def failed(self, conn: Transaction, job: Job, failure: Failure) -> None:
        found = await rows.mark_failed(conn, job.payload["eager"], failure.code)
        if found is None:
            return
        record, user_id, notification_url = found
        data = {
            "image_id": record.image_id,
            "eager_id": record.id,
            "transform": record.transform,
            "format": record.format,
            "error": {"code": failure.code, "message": failure.message},
        }
        await emit(conn, self.background, user_id, "derivative.failed", data, notification_url)
