"""The bounded derivative store: each user's derivative bytes against ``USER_DERIVATIVE_BYTES``.

The budget is swept, not checked per request (origin.jobs.sweep): a user over it loses their
least recently used derivatives — rows first, in one transaction (an eager derivative among
them becomes ``evicted``), then their objects (what cannot be removed, ``imgorigin gc``
removes; never a row without its object). "Recently used" is ``last_used_at``, written in
batches by origin.derivative_use (never one write per hit), else ``created_at``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa

from origin.store import eager
from origin.store.database import Database, lock_row
from origin.store.tables import images, transformed_images, users

BATCH = 500
T = transformed_images
LAST_USE = sa.func.coalesce(T.c.last_used_at, T.c.created_at)


class Evicted(NamedTuple):
    rows: int
    bytes: int
    keys: list[str]  # their objects, to remove once the rows are gone
    left: int  # the user's derivative bytes after


async def touch(db: Database, used: Mapping[tuple[str, str], datetime]) -> None:
    """Record when each (image id, variant) was last used, in one transaction."""
    if not used:
        return
    statement = (
        T.update()
        .where(T.c.image_id == sa.bindparam("b_image"))
        .where(T.c.variant == sa.bindparam("b_variant"))
        .values(last_used_at=sa.bindparam("b_at"))
    )
    params = [{"b_image": i, "b_variant": v, "b_at": at} for (i, v), at in used.items()]
    async with db.write() as conn:
        await conn.execute(statement, params)


def _owned_by(user_id: str) -> sa.ColumnElement[bool]:
    return T.c.image_id.in_(sa.select(images.c.id).where(images.c.user_id == user_id))


def _bytes_of(user_id: str) -> sa.Select[Any]:
    return sa.select(sa.func.sum(T.c.size_bytes)).where(_owned_by(user_id))


async def usage(db: Database, user_id: str) -> int:
    """The user's derivative bytes."""
    async with db.read() as conn:
        total = await conn.scalar(_bytes_of(user_id))
    return int(total or 0)


async def over_budget(db: Database, budget: int) -> list[tuple[str, int]]:
    """(user id, derivative bytes) of every user over ``budget``."""
    query = (
        sa.select(images.c.user_id, sa.func.sum(T.c.size_bytes))
        .join(images, images.c.id == T.c.image_id)
        .group_by(images.c.user_id)
        .having(sa.func.sum(T.c.size_bytes) > budget)
    )
    async with db.read() as conn:
        return [(user_id, int(total)) for user_id, total in await conn.execute(query)]


async def evict(db: Database, user_id: str, budget: int) -> Evicted:
    """Remove the user's least recently used derivative rows until their bytes are within
    ``budget`` (or a batch of ``BATCH`` rows is done); their eager entries become ``evicted``.
    The bytes are summed under the user's row lock, in the transaction that deletes: two
    sweeps at once (two processes' timers) remove the excess once, not once each."""
    async with db.write() as conn:
        await lock_row(conn, users, user_id)
        total = int(await conn.scalar(_bytes_of(user_id)) or 0)
        rows = await conn.execute(
            sa.select(T.c.seq, T.c.image_id, T.c.variant, T.c.storage_key, T.c.size_bytes)
            .where(_owned_by(user_id))
            .order_by(LAST_USE, T.c.seq)
            .limit(BATCH)
        )
        picked: list[Any] = []
        freed = 0
        for row in rows:
            if total - freed <= budget:
                break
            picked.append(row)
            freed += int(row.size_bytes)
        if not picked:
            return Evicted(0, 0, [], total)
        await conn.execute(T.delete().where(T.c.seq.in_([r.seq for r in picked])))
        await eager.evicted(conn, [(r.image_id, r.variant) for r in picked])
    return Evicted(len(picked), freed, [r.storage_key for r in picked], total - freed)
