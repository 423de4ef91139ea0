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
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from origin.store import tables
from origin.store.database import Database

ADVISORY_LOCK_ID = 0x1_4D60_0121  # any constant; "imgorigin migrate"

Migration = Callable[[Connection], None]


def _create_tables(conn: Connection) -> None:
    tables.metadata.create_all(conn, checkfirst=True)


def add_missing_columns(conn: Connection, table: sa.Table, names: tuple[str, ...]) -> None:
    """``ALTER TABLE … ADD COLUMN`` for each of ``names`` the database's ``table`` lacks, typed
    as in tables.py (the columns must be nullable or have a server default)."""
    present = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    preparer = conn.dialect.identifier_preparer
    for name in names:
        if name in present:
            continue
        column = table.c[name]
        kind = column.type.compile(dialect=conn.dialect)
        conn.execute(
            sa.text(
                f"ALTER TABLE {preparer.format_table(table)} "
                f"ADD COLUMN {preparer.format_column(column)} {kind}{_default(conn, column)}"
            )
        )


def _default(conn: Connection, column: sa.Column[Any]) -> str:
    """`` NOT NULL DEFAULT …`` for a column with a server default (existing rows get it)."""
    default = column.server_default
    if not isinstance(default, sa.DefaultClause):
        return ""
    arg = default.arg
    value = arg if isinstance(arg, str) else str(arg.compile(dialect=conn.dialect))
    return f"{'' if column.nullable else ' NOT NULL'} DEFAULT {value}"


def _add_analysis(conn: Connection) -> None:
    add_missing_columns(conn, tables.images, ("blurhash", "dominant_color", "focal_x", "focal_y"))


def _add_auto_qualities(conn: Connection) -> None:
    tables.auto_qualities.create(conn, checkfirst=True)


def _add_working_copies(conn: Connection) -> None:
    add_missing_columns(conn, tables.images, ("working_copies",))


def _add_sources(conn: Connection) -> None:
    for table in (tables.source_objects, tables.source_derivatives, tables.source_auto_qualities):
        table.create(conn, checkfirst=True)


def _add_background(conn: Connection) -> None:
    for table in (
        tables.jobs,
        tables.eager_derivatives,
        tables.webhooks,
        tables.webhook_deliveries,
    ):
        table.create(conn, checkfirst=True)


def _add_public_delivery(conn: Connection) -> None:
    add_missing_columns(conn, tables.users, ("public",))
    add_missing_columns(conn, tables.images, ("public",))
    tables.transformations.create(conn, checkfirst=True)


def _add_versions(conn: Connection) -> None:
    add_missing_columns(conn, tables.images, ("version",))


def _add_last_use(conn: Connection) -> None:
    add_missing_columns(conn, tables.transformed_images, ("last_used_at",))


def _add_edge_keys(conn: Connection) -> None:
    tables.edge_keys.create(conn, checkfirst=True)


def _add_faces(conn: Connection) -> None:
    add_missing_columns(conn, tables.images, ("faces",))
    add_missing_columns(conn, tables.source_objects, ("faces",))


MIGRATIONS: tuple[tuple[int, str, Migration], ...] = (
    (1, "users, images, transformed images, refresh tokens, signing keys", _create_tables),
    (2, "upload-time analysis: blurhash, dominant colour, focal point", _add_analysis),
    (3, "q_auto choices", _add_auto_qualities),
    (4, "working copies of large originals (a pyramid)", _add_working_copies),
    (5, "remote sources: cached objects, their derivatives and q_auto choices", _add_sources),
    (6, "background work: jobs, eager derivatives, webhooks and their deliveries", _add_background),
    (7, "public delivery: named transformations, public images and accounts", _add_public_delivery),
    (8, "image versions: replace", _add_versions),
    (9, "derivatives' last use: the bounded derivative store", _add_last_use),
    (10, "the cache keys nginx stored answers under: purge at the edge", _add_edge_keys),
    (11, "the faces the upload-time analysis found", _add_faces),
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


async def unapplied(db: Database) -> list[int]:
    """The versions of ``MIGRATIONS`` the database has not applied (all of them when it has
    no ``schema_version``)."""
    async with db.read() as conn:
        return await conn.run_sync(_unapplied)


def _unapplied(conn: Connection) -> list[int]:
    if not sa.inspect(conn).has_table(tables.schema_version.name):
        return [version for version, _, _ in MIGRATIONS]
    done = set(conn.execute(sa.select(tables.schema_version.c.version)).scalars())
    return [version for version, _, _ in MIGRATIONS if version not in done]


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
