"""Eager derivatives' rows: each wanted derivative of an image with its origin path and
state (origin.jobs.eager makes them), added with their jobs in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from origin.errors import NotFound
from origin.records import new_id
from origin.settings_groups import Background
from origin.signing import sign_url
from origin.store import queue
from origin.store.database import Database, lock_row
from origin.store.tables import eager_derivatives, images

KIND = "eager"  # the job kind
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
EVICTED = "evicted"  # done, then removed: the store's sweep (origin.store.budget), or gc


@dataclass(frozen=True)
class EagerPlan:
    """One wanted derivative, checked: its chain and format, its origin path, its variant."""

    transform: str
    format: str
    path: str
    variant: str


@dataclass(frozen=True)
class EagerRecord:
    id: str
    image_id: str
    transform: str
    format: str
    path: str
    state: str
    size_bytes: int | None
    width: int | None
    height: int | None
    error_code: str | None

    def json(self, signing_key: bytes) -> dict[str, Any]:
        """As ``GET /api/images/{id}`` shows it: a done one with its bytes and signed URL,
        a failed one with its error code."""
        shown: dict[str, Any] = {
            "id": self.id,
            "transform": self.transform,
            "format": self.format,
            "state": self.state,
        }
        if self.state == DONE:
            shown.update(
                size_bytes=self.size_bytes,
                width=self.width,
                height=self.height,
                url=sign_url(self.path, signing_key),
            )
        if self.state == FAILED:
            shown["error"] = self.error_code
        return shown


async def add(
    conn: AsyncConnection,
    background: Background,
    image_id: str,
    user_id: str,
    plans: Sequence[EagerPlan],
    notification_url: str | None = None,
) -> list[str]:
    """Record ``plans`` for the image and queue one job each (a variant the image already
    has an eager row for is not added again). The caller's transaction, the image's row
    locked: NotFound when it is gone (deleted meanwhile)."""
    if not await lock_row(conn, images, image_id):
        raise NotFound("no such image")
    have = set(
        (
            await conn.execute(
                sa.select(eager_derivatives.c.variant).where(
                    eager_derivatives.c.image_id == image_id
                )
            )
        ).scalars()
    )
    added = []
    at = datetime.now(UTC)
    for n, plan in enumerate(plans):
        if plan.variant in have:
            continue
        have.add(plan.variant)
        eager_id = new_id()
        await conn.execute(
            eager_derivatives.insert().values(
                id=eager_id,
                image_id=image_id,
                transform=plan.transform,
                format=plan.format,
                path=plan.path,
                variant=plan.variant,
                state=QUEUED,
                notification_url=notification_url,
                created_at=at + timedelta(microseconds=n),  # the order they were asked in
                updated_at=at,
            )
        )
        await queue.add(
            conn,
            KIND,
            {"eager": eager_id},
            retries=len(background.job_retry_schedule),
            user_id=user_id,
        )
        added.append(eager_id)
    return added


COLUMNS = (
    eager_derivatives.c.id,
    eager_derivatives.c.image_id,
    eager_derivatives.c.transform,
    eager_derivatives.c.format,
    eager_derivatives.c.path,
    eager_derivatives.c.state,
    eager_derivatives.c.size_bytes,
    eager_derivatives.c.width,
    eager_derivatives.c.height,
    eager_derivatives.c.error_code,
)


async def of_images(db: Database, image_ids: Sequence[str]) -> dict[str, list[EagerRecord]]:
    """The eager derivatives of each image, oldest first."""
    found: dict[str, list[EagerRecord]] = {i: [] for i in image_ids}
    if not image_ids:
        return found
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(*COLUMNS)
            .where(eager_derivatives.c.image_id.in_(list(image_ids)))
            .order_by(eager_derivatives.c.created_at, eager_derivatives.c.id)
        )
        for row in rows:
            found[row.image_id].append(EagerRecord(**row._mapping))
    return found


async def find(db: Database, eager_id: str) -> tuple[EagerRecord, str, str | None] | None:
    """An eager derivative with its owner and notification URL; None once its image is gone."""
    async with db.read() as conn:
        return await _owned(conn, eager_id)


async def _owned(
    conn: AsyncConnection, eager_id: str
) -> tuple[EagerRecord, str, str | None] | None:
    row = (
        await conn.execute(
            sa.select(*COLUMNS, images.c.user_id, eager_derivatives.c.notification_url)
            .join(images, images.c.id == eager_derivatives.c.image_id)
            .where(eager_derivatives.c.id == eager_id)
        )
    ).first()
    if row is None:
        return None
    values = {c.name: row._mapping[c.name] for c in COLUMNS}
    return EagerRecord(**values), row.user_id, row.notification_url


async def set_state(db: Database, eager_id: str, state: str, **values: Any) -> None:
    async with db.write() as conn:
        await update(conn, eager_id, state=state, **values)


async def update(
    conn: AsyncConnection, eager_id: str, unless: str | None = None, **values: Any
) -> bool:
    """False when the entry is gone (its image deleted, or replaced: ``take_all``), or is in
    state ``unless``: a job that made its derivative passes ``EVICTED``, so an entry the
    budget's sweep evicted while the job ran (taking the row the job had just stored) stays
    evicted. On PostgreSQL a sweep that marks it first holds the entry's row until it
    commits, and this statement then reads ``evicted`` and changes nothing."""
    statement = eager_derivatives.update().where(eager_derivatives.c.id == eager_id)
    if unless is not None:
        statement = statement.where(eager_derivatives.c.state != unless)
    done = await conn.execute(statement.values(**values, updated_at=datetime.now(UTC)))
    return bool(done.rowcount)


async def mark_failed(
    conn: AsyncConnection, eager_id: str, code: str
) -> tuple[EagerRecord, str, str | None] | None:
    """Failed for good: the row, its owner and notification URL (None once it is gone)."""
    found = await _owned(conn, eager_id)
    if found is not None:
        await update(conn, eager_id, state=FAILED, error_code=code[:40])
    return found


async def take_all(conn: AsyncConnection, image_id: str) -> list[tuple[str, str, str | None]]:
    """Forget the image's eager derivatives (their queued jobs find nothing and end) and say
    how they were asked: (transform, format, notification URL), oldest first — to ask for
    them again after a replace. One statement in the caller's transaction, so an entry
    added while the replace was being read is among them, never removed unasked."""
    rows = await conn.execute(
        eager_derivatives.delete()
        .where(eager_derivatives.c.image_id == image_id)
        .returning(
            eager_derivatives.c.transform,
            eager_derivatives.c.format,
            eager_derivatives.c.notification_url,
            eager_derivatives.c.created_at,
            eager_derivatives.c.id,
        )
    )
    taken = sorted(rows, key=lambda r: (r.created_at, r.id))
    return [(r.transform, r.format, r.notification_url) for r in taken]


async def evicted(conn: AsyncConnection, removed: Iterable[tuple[str, str]]) -> None:
    """The ``done`` and ``running`` entries of the (image id, variant) pairs whose derivative
    rows were removed become ``evicted``: their URL is a render again (a running one's job
    may have stored the row just removed: its ``update`` leaves it evicted). The caller's
    transaction."""
    by_image: dict[str, list[str]] = {}
    for image_id, variant in removed:
        by_image.setdefault(image_id, []).append(variant)
    for image_id, variants in by_image.items():
        await conn.execute(
            eager_derivatives.update()
            .where(eager_derivatives.c.image_id == image_id)
            .where(eager_derivatives.c.variant.in_(variants))
            .where(eager_derivatives.c.state.in_((DONE, RUNNING)))
            .values(state=EVICTED)
        )
