"""Migrations 7 (public delivery) and 8 (image versions) on SQLite and PostgreSQL: a database
from before 7 gets ``public`` on users and images (false for every existing row, NOT NULL
with a default) and the transformations table, one from before 8 version 1 for every image;
rows old and new read back as written."""

from __future__ import annotations

import dataclasses
import secrets

import pytest
import sqlalchemy as sa

from origin.records import TransformationRecord
from origin.store.database import Database
from origin.store.images import Images
from origin.store.migrations import LATEST, current_version, migrate
from origin.store.tables import schema_version
from origin.store.transformations import TooMany, Transformations
from origin.store.users import Users
from tests.origin.store.records import NOW, image_columns, image_record, insert_old_row


async def before_migration_7(db: Database) -> None:
    """Make a fresh database look like one migrated before migration 7 existed."""
    async with db.write() as conn:
        await conn.execute(sa.text("DROP TABLE transformations"))
        await conn.execute(sa.text("ALTER TABLE images DROP COLUMN public"))
        await conn.execute(sa.text("ALTER TABLE users DROP COLUMN public"))
        await conn.execute(schema_version.delete().where(schema_version.c.version == 7))


async def test_migration_7_adds_public_delivery_to_an_older_database(database: Database) -> None:
    users, images = Users(database), Images(database)
    user_id = secrets.token_hex(16)
    await before_migration_7(database)
    await users.create(user_id, "old@example.com", "hash", NOW)
    old = image_record(user_id)
    async with database.write() as conn:  # a row written by the old code
        await insert_old_row(conn, old)

    assert await migrate(database) == [7]
    assert "public" in await image_columns(database)
    assert await current_version(database) == LATEST
    assert await migrate(database) == []

    stored = await images.get(old.id)
    assert stored is not None and stored.public is False
    user = await users.by_id(user_id)
    assert user is not None and user.public is False
    async with database.write() as conn:  # NOT NULL: a row without it takes the default
        await insert_old_row(conn, image_record(user_id, original_filename="b.jpg"))

    new = dataclasses.replace(image_record(user_id), public=True)
    await images.add(new, 10**9)
    again = await images.get(new.id)
    assert again is not None and again.public is True
    flipped = await images.set_public(new.id, user_id, False)
    assert flipped is not None and flipped.public is False
    assert await images.set_public(new.id, secrets.token_hex(16), True) is None
    account = await users.set_public(user_id, True)
    assert account is not None and account.public is True


async def test_transformations_are_kept_per_user_and_bounded(database: Database) -> None:
    users, rows = Users(database), Transformations(database)
    owner, other = secrets.token_hex(16), secrets.token_hex(16)
    for user_id in (owner, other):
        await users.create(user_id, f"{user_id[:6]}@example.com", "hash", NOW)
    card = TransformationRecord(owner, "card", "w_120", True, ("webp", "jpg"), NOW, NOW)
    assert await rows.put(card, 2) == card
    later = dataclasses.replace(card, chain="w_60", updated_at=NOW.replace(year=2027))
    replaced = await rows.put(later, 2)
    assert replaced.chain == "w_60" and replaced.created_at == NOW
    assert replaced.updated_at == later.updated_at and replaced.formats == ("webp", "jpg")
    assert await rows.get(owner, "card") == replaced
    await rows.put(dataclasses.replace(card, name="b"), 2)
    with pytest.raises(TooMany):
        await rows.put(dataclasses.replace(card, name="c"), 2)
    assert [r.name for r in await rows.of_user(owner)] == ["b", "card"]
    assert await rows.of_user(other) == []
    assert await rows.get(other, "card") is None
    assert not await rows.delete(other, "card")
    assert await rows.delete(owner, "card")
    assert [r.name for r in await rows.of_user(owner)] == ["b"]


async def test_migration_8_gives_every_image_version_1(database: Database) -> None:
    users, images = Users(database), Images(database)
    user_id = secrets.token_hex(16)
    await users.create(user_id, "v@example.com", "hash", NOW)
    async with database.write() as conn:
        await conn.execute(sa.text("ALTER TABLE images DROP COLUMN version"))
        await conn.execute(schema_version.delete().where(schema_version.c.version == 8))
    old = image_record(user_id)
    async with database.write() as conn:  # a row written by the code before it
        await insert_old_row(conn, old)
    assert await migrate(database) == [8]
    stored = await images.get(old.id)
    assert stored is not None and stored.version == 1
