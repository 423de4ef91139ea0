"""q_auto choices in the store (origin.store.derivatives, migration 3), on SQLite and
PostgreSQL: the table is created on an older database, a choice is stored once, and it goes
with its image."""

from __future__ import annotations

import secrets
from dataclasses import replace

import sqlalchemy as sa

from origin.records import AutoQualityRecord
from origin.store.database import Database
from origin.store.derivatives import Derivatives
from origin.store.images import Images
from origin.store.migrations import current_version, migrate
from origin.store.tables import auto_qualities, schema_version
from origin.store.users import Users
from tests.origin.store.records import NOW, image_record


async def add_image(db: Database) -> tuple[str, str]:
    user_id = secrets.token_hex(16)
    await Users(db).create(user_id, f"{user_id[:8]}@example.com", "hash", NOW)
    record = image_record(user_id)
    image_id = record.id
    await Images(db).add(record, 10**9)
    return image_id, user_id


HASH = image_record("u").content_hash  # every image_record's pixels


def choice(image_id: str, variant: str = "c" * 64, quality: int = 65) -> AutoQualityRecord:
    return AutoQualityRecord(image_id, variant, "jpeg", quality, 0.9612, NOW)


async def tables(db: Database) -> set[str]:
    async with db.read() as conn:
        return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))


async def test_migration_3_creates_the_table_on_an_older_database(database: Database) -> None:
    before = await current_version(database)
    async with database.write() as conn:  # as if migrated before migration 3 existed
        await conn.execute(sa.text("DROP TABLE auto_qualities"))
        await conn.execute(schema_version.delete().where(schema_version.c.version == 3))
    assert "auto_qualities" not in await tables(database)
    assert await migrate(database) == [3]
    assert "auto_qualities" in await tables(database)
    assert await current_version(database) == before
    assert await migrate(database) == []
    derivatives = Derivatives(database)
    image_id, _ = await add_image(database)
    assert await derivatives.add_auto_quality(choice(image_id), HASH)


async def test_a_choice_is_stored_once(database: Database) -> None:
    derivatives = Derivatives(database)
    image_id, _ = await add_image(database)
    assert await derivatives.auto_quality(image_id, "c" * 64) is None
    assert await derivatives.add_auto_quality(choice(image_id, quality=65), HASH)
    assert not await derivatives.add_auto_quality(
        choice(image_id, quality=40), HASH
    )  # the first stays
    assert await derivatives.auto_quality(image_id, "c" * 64) == choice(image_id, quality=65)
    other = replace(choice(image_id), variant="d" * 64, format="avif", quality=55)
    assert await derivatives.add_auto_quality(other, HASH)
    assert await derivatives.auto_quality(image_id, "d" * 64) == other


async def test_choices_go_with_their_image(database: Database) -> None:
    derivatives = Derivatives(database)
    image_id, user_id = await add_image(database)
    kept_id, _ = await add_image(database)
    await derivatives.add_auto_quality(choice(image_id, "c" * 64), HASH)
    await derivatives.add_auto_quality(choice(image_id, "d" * 64), HASH)
    await derivatives.add_auto_quality(choice(kept_id, "c" * 64), HASH)
    assert await Images(database).delete(image_id, user_id) is not None
    async with database.read() as conn:
        left = (await conn.execute(sa.select(auto_qualities.c.image_id))).scalars().all()
    assert left == [kept_id]  # the foreign key cascades (SQLite has foreign keys on)
    assert not await derivatives.add_auto_quality(
        choice(image_id, "e" * 64), HASH
    )  # no row without image
    assert await derivatives.auto_quality(image_id, "e" * 64) is None


async def test_a_choice_made_on_pixels_replaced_meanwhile_is_not_kept(
    database: Database,
) -> None:
    """A search that ends after its image was replaced made its choice on the old pixels:
    nothing is kept (a hunt found six such rows after a replace; the replace removes the
    old pixels' choices, and these came after it)."""
    derivatives = Derivatives(database)
    image_id, user_id = await add_image(database)
    old = await Images(database).get(image_id, user_id=user_id)
    assert old is not None and old.content_hash == HASH
    new = replace(old, content_hash="f" * 64, version=old.version + 1)
    await Images(database).replace(old, new, 10**9)
    assert not await derivatives.add_auto_quality(choice(image_id), HASH)
    assert await derivatives.auto_quality(image_id, "c" * 64) is None
    assert await derivatives.add_auto_quality(choice(image_id), new.content_hash)
