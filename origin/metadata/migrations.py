"""Versioned migrations, applied by ``imgorigin migrate`` (and by ``make run`` before serving).

Each migration is a numbered function run inside one transaction together with the row
that records it in ``schema_version``. Two processes migrating at once are safe: PostgreSQL
takes a transaction-scoped advisory lock, SQLite's ``BEGIN IMMEDIATE`` holds the write lock,
so the second process waits, then sees the versions already applied and does nothing.

``tables.py`` is the one schema source: migration 1 creates its tables. A later migration
that changes the schema must check before it alters (``inspect(conn)``), because a new
database gets the latest tables from migration 1 already.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from origin.metadata import tables
from origin.metadata.database import Database

ADVISORY_LOCK_ID = 0x1_4D60_0121  # any constant; "imgorigin migrate"

Migration = Callable[[Connection], None]


def _create_tables(conn: Connection) -> None:
    tables.metadata.create_all(conn, checkfirst=True)


MIGRATIONS: tuple[tuple[int, str, Migration], ...] = (
    (1, "users, images, transformed images, refresh tokens, signing keys", _create_tables),
)

LATEST = MIGRATIONS[-1][0]


async def migrate(db: Database) -> list[int]:
    """Apply every pending migration; return the versions applied by this call."""
    async with db.write() as conn:
        if not db.is_sqlite:
            await conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": ADVISORY_LOCK_ID}
            )
        return await conn.run_sync(_apply_pending)


def _apply_pending(conn: Connection) -> list[int]:
    tables.schema_version.create(conn, checkfirst=True)
    done = set(conn.execute(sa.select(tables.schema_version.c.version)).scalars())
    applied = []
    for version, _title, step in MIGRATIONS:
        if version in done:
            continue
        step(conn)
        conn.execute(
            tables.schema_version.insert().values(version=version, applied_at=datetime.now(UTC))
        )
        applied.append(version)
    return applied


async def current_version(db: Database) -> int:
    """The highest applied version, 0 for an empty database."""
    async with db.read() as conn:
        has_table = await conn.run_sync(
            lambda sync: sa.inspect(sync).has_table(tables.schema_version.name)
        )
        if not has_table:
            return 0
        value = await conn.scalar(sa.select(sa.func.max(tables.schema_version.c.version)))
        return int(value or 0)
