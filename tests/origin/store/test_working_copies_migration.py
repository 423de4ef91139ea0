"""Migration 4 (working copies) on SQLite and PostgreSQL: a database from before it gets the
nullable column, its rows read back without copies, new rows keep theirs, and gc's list of
referenced keys includes them."""

from __future__ import annotations

import secrets

import sqlalchemy as sa

from origin.records import ImageRecord, WorkingCopy
from origin.store.database import Database
from origin.store.images import Images
from origin.store.migrations import LATEST, current_version, migrate
from origin.store.tables import schema_version
from origin.store.users import Users
from tests.origin.store.records import NOW, image_columns, image_record, insert_old_row


def record(user_id: str, copies: tuple[WorkingCopy, ...] = ()) -> ImageRecord:
    return image_record(
        user_id, original_filename="big.jpg", width=4000, height=3000, working_copies=copies
    )


async def before_migration_4(db: Database) -> None:
    """Make a fresh database look like one migrated before migration 4 existed."""
    async with db.write() as conn:
        await conn.execute(sa.text("ALTER TABLE images DROP COLUMN working_copies"))
        await conn.execute(schema_version.delete().where(schema_version.c.version == 4))


async def test_migration_4_adds_the_column_to_an_older_database(database: Database) -> None:
    users, images = Users(database), Images(database)
    user_id = secrets.token_hex(16)
    await users.create(user_id, "old@example.com", "hash", NOW)
    await before_migration_4(database)
    assert "working_copies" not in await image_columns(database)
    old = record(user_id)
    async with database.write() as conn:  # a row written by the old code
        await insert_old_row(conn, old)

    assert await migrate(database) == [4]
    assert "working_copies" in await image_columns(database)
    assert await current_version(database) == LATEST
    assert await migrate(database) == []

    stored = await images.get(old.id)
    assert stored is not None and stored.working_copies == ()

    prefix = f"{user_id}/new"
    copies = (
        WorkingCopy(2000, 1500, f"{prefix}/work/2000x1500.jpg"),
        WorkingCopy(1000, 750, f"{prefix}/work/1000x750.jpg"),
    )
    new = record(user_id, copies)
    await images.add(new, 10**9)
    again = await images.get(new.id)
    assert again is not None
    assert again.working_copies == (copies[1], copies[0])  # smallest first
    referenced = await images.referenced_keys()
    assert {old.storage_key, new.storage_key, *(c.storage_key for c in copies)} == referenced
    user = await users.by_id(user_id)
    assert user is not None and user.storage_used_bytes == new.size_bytes  # copies are free
