"""Queuing webhook deliveries (origin.store.webhooks.deliver) under concurrency, on an
SQLite file and on PostgreSQL: the pending bound holds for deliveries queued at once, and an
endpoint deleted meanwhile gets none (it broke the foreign key: a 500, a failed upload)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

import sqlalchemy as sa

from origin.settings import Settings
from origin.store.database import Database
from origin.store.tables import webhook_deliveries
from origin.store.users import Users
from origin.store.webhooks import FAILED, PENDING, Webhooks
from tests.origin.store.records import make_user


async def endpoint(
    database: Database, users: Users, make_settings: Callable[..., Settings], bound: int = 5
) -> tuple[Webhooks, str, str]:
    background = dataclasses.replace(make_settings().background, webhook_pending_max=bound)
    repository = Webhooks(database, background)
    user_id = await make_user(users)
    made, _ = await repository.create(user_id, "http://127.0.0.1:9/h", ("webhook.test",))
    return repository, user_id, made.id


async def states(database: Database, webhook_id: str) -> list[str]:
    async with database.read() as conn:
        found = await conn.execute(
            sa.select(webhook_deliveries.c.state).where(
                webhook_deliveries.c.webhook_id == webhook_id
            )
        )
        return sorted(found.scalars())


async def test_deliveries_queued_at_once_keep_the_pending_bound(
    database: Database, users: Users, make_settings: Callable[..., Settings]
) -> None:
    repository, user_id, webhook_id = await endpoint(database, users, make_settings)
    await asyncio.gather(*(repository.test(user_id, webhook_id) for _ in range(12)))
    assert await states(database, webhook_id) == [FAILED] * 7 + [PENDING] * 5


async def test_an_endpoint_deleted_meanwhile_gets_no_delivery(
    database: Database, users: Users, make_settings: Callable[..., Settings]
) -> None:
    repository, user_id, webhook_id = await endpoint(database, users, make_settings)
    outcomes = await asyncio.gather(
        *(repository.test(user_id, webhook_id) for _ in range(4)),
        repository.delete(user_id, webhook_id),
        repository.delete(user_id, webhook_id),
        *(repository.test(user_id, webhook_id) for _ in range(4)),
    )
    deletes = outcomes[4:6]
    assert sorted(deletes) == [False, True]  # one of two deletes at once deleted it
    assert await states(database, webhook_id) == []  # what was queued went with it
    assert await repository.test(user_id, webhook_id) is None
