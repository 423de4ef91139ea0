"""Migration 2 (upload-time analysis) on SQLite and PostgreSQL: a database from before it gets
the four nullable columns, its rows read back without an analysis, new rows keep theirs."""

from __future__ import annotations

import secrets

import sqlalchemy as sa

from origin.records import Analysis, ImageRecord
from origin.store.database import Database
from origin.store.images import Images
from origin.store.migrations import LATEST, current_version, migrate
from origin.store.tables import schema_version
from origin.store.users import Users
from tests.origin.store.records import NOW, image_columns, image_record, insert_old_row

COLUMNS = ("blurhash", "dominant_color", "focal_x", "focal_y")


def record(user_id: str, analysis: Analysis | None) -> ImageRecord:
    return image_record(user_id, analysis=analysis)


async def back_to_version_1(db: Database) -> None:
    """Make a fresh database look like one migrated before migration 2 existed (later
    migrations check before they alter, so they may run again)."""
    async with db.write() as conn:
        for name in COLUMNS:
            await conn.execute(sa.text(f"ALTER TABLE images DROP COLUMN {name}"))
        await conn.execute(schema_version.delete().where(schema_version.c.version >= 2))


async def test_migration_2_adds_the_columns_to_an_older_database(database: Database) -> None:
    users, images = Users(database), Images(database)
    user_id = secrets.token_hex(16)
    await users.create(user_id, "old@example.com", "hash", NOW)
    await back_to_version_1(database)
    assert not set(COLUMNS) & await image_columns(database)
    async with database.write() as conn:  # a row written by the old code
        old = record(user_id, None)
        await insert_old_row(conn, old)

    assert 2 in await migrate(database)
    assert set(COLUMNS) <= await image_columns(database)
    assert await current_version(database) == LATEST
    assert await migrate(database) == []  # idempotent: the columns are there now

    stored = await images.get(old.id)
    assert stored is not None and stored.analysis is None
    analysis = Analysis("LEHV6nWB2yk8pyo0adR*.7kCMdnj", "#c81e28", 0.25, 0.75)
    new = record(user_id, analysis)
    await images.add(new, 10**9)
    again = await images.get(new.id)
    assert again is not None and again.analysis == analysis
    assert again.analysis.focal == (0.25, 0.75)


async def test_a_fresh_database_has_the_columns(database: Database) -> None:
    assert set(COLUMNS) <= await image_columns(database)
    assert await migrate(database) == []
