"""Per-user bounds and one-per-key rows under concurrent requests, on an SQLite file and on
PostgreSQL: a count-then-insert or a check-then-insert in READ COMMITTED lets racing
transactions all pass (a hunt on PostgreSQL: 107 transformations stored against a bound of
100, 20 webhooks against 10, 7 eager rows for one derivative, and a 500 from two PUTs of
one new name). Each now locks its owner's row first."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

import pytest

from origin.errors import NotFound
from origin.records import TransformationRecord
from origin.settings_groups import Background
from origin.store import eager
from origin.store.database import Database
from origin.store.images import Images
from origin.store.transformations import TooMany as TooManyTransformations
from origin.store.transformations import Transformations
from origin.store.users import Users
from origin.store.webhooks import TooMany as TooManyWebhooks
from origin.store.webhooks import Webhooks
from tests.origin.store.records import image_for, make_user

NOW = datetime(2026, 12, 7, tzinfo=UTC)


def named(user_id: str, name: str) -> TransformationRecord:
    return TransformationRecord(user_id, name, "w_100", False, (), NOW, NOW)


async def test_transformations_past_the_bound_and_of_one_name(
    database: Database, users: Users
) -> None:
    user_id = await make_user(users)
    repository = Transformations(database)
    puts = [repository.put(named(user_id, f"c{i}"), max_per_user=20) for i in range(30)]
    results = await asyncio.gather(*puts, return_exceptions=True)
    assert sum(isinstance(r, TooManyTransformations) for r in results) == 10
    assert all(isinstance(r, (TransformationRecord, TooManyTransformations)) for r in results)
    assert len(await repository.of_user(user_id)) == 20

    other = await make_user(users, "other@example.com")
    same = [repository.put(named(other, "card"), max_per_user=20) for _ in range(8)]
    stored = await asyncio.gather(*same)  # one creates it, the others replace it
    assert {r.name for r in stored} == {"card"}
    assert len(await repository.of_user(other)) == 1


async def test_webhooks_past_the_bound(database: Database, users: Users) -> None:
    user_id = await make_user(users)
    repository = Webhooks(database, dataclasses.replace(Background(), webhooks_max_per_user=5))
    creates = [
        repository.create(user_id, f"http://127.0.0.1:9/h{n}", ("image.ready",)) for n in range(12)
    ]
    results = await asyncio.gather(*creates, return_exceptions=True)
    assert sum(isinstance(r, TooManyWebhooks) for r in results) == 7
    assert len(await repository.of_user(user_id)) == 5


async def test_one_eager_row_per_derivative_and_none_for_a_deleted_image(
    database: Database, users: Users, images: Images
) -> None:
    user_id = await make_user(users)
    image = image_for(user_id)
    await images.add(image, quota_bytes=10**9)
    plan = eager.EagerPlan("w_33", "webp", f"/i/{image.id}/w_33/eager.webp", "v" * 64)

    async def add() -> list[str]:
        async with database.write() as conn:
            return await eager.add(conn, Background(), image.id, user_id, [plan])

    added = await asyncio.gather(*(add() for _ in range(8)))
    assert sum(len(ids) for ids in added) == 1
    assert len((await eager.of_images(database, [image.id]))[image.id]) == 1

    await images.delete(image.id, user_id)
    with pytest.raises(NotFound):
        await add()
