"""The async engine for SQLite (aiosqlite) and PostgreSQL (asyncpg), with transactions.

SQLite runs in WAL mode with foreign keys on and a busy timeout; its file (with users'
signing secrets and password hashes) is created 0600. Write transactions begin
with ``BEGIN IMMEDIATE`` so two writers queue on the busy timeout instead of failing on a
lock upgrade; read transactions use a plain deferred ``BEGIN``.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from origin.permissions import create_private_file, make_private_dirs
from origin.store.derivative_index import Direct, PostgresDirect, SqliteDirect

# A transaction as code outside the store holds it: passed to the store's functions, never
# spoken to in SQL there (a job's outcome and its handler's writes commit together).
Transaction = AsyncConnection

SQLITE_BUSY_TIMEOUT_MS = 10_000
PG_TIMEOUT_SECONDS = 10
# Every SQLite connection, the engine's and the direct one's: WAL, foreign keys, a busy timeout.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
    "PRAGMA synchronous=NORMAL",
)


async def lock_row(conn: Transaction, table: sa.Table, row_id: str) -> bool:
    """Lock the row of ``table`` whose ``id`` is ``row_id`` until the caller's transaction
    ends (PostgreSQL's ``FOR NO KEY UPDATE``, which leaves rows that refer to it free to be
    inserted; SQLite's write transaction holds the whole database); whether it is there.
    What a transaction then counts or checks under that row cannot be changed by another one
    doing the same: per-user bounds, one row per key."""
    locked = sa.select(table.c.id).where(table.c.id == row_id).with_for_update(key_share=True)
    found = await conn.scalar(locked)
    return found is not None


async def count_of_user(conn: Transaction, table: sa.Table, user_id: str) -> int:
    """How many rows of ``table`` the user holds (under ``lock_row`` of the user: a bound)."""
    found = await conn.scalar(
        sa.select(sa.func.count()).select_from(table).where(table.c.user_id == user_id)
    )
    return int(found or 0)


def async_url(database_url: str) -> str:
    """``sqlite:///x`` / ``postgresql://…`` → the SQLAlchemy URL with the async driver."""
    scheme, rest = database_url.split("://", 1)
    if scheme == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+asyncpg://{rest}"
    raise ValueError(f"unsupported database URL scheme {scheme!r}")


# What a database that cannot be reached raises on the request path: the exception types
# origin.http answers for (503 when ``unreachable`` says so, else 500).
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    sa.exc.DBAPIError,
    sa.exc.TimeoutError,
    ConnectionError,
    socket.gaierror,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
)


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached now (down, refusing, unknown
    host, a dropped connection, the pool's wait timed out): a request that meets it answers
    503, not 500 (origin.http). Errors of a statement (a missing table, a bad value) are
    not: they are bugs, and keep their traceback."""
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if isinstance(exc.orig, BaseException) else exc
        if isinstance(exc, sa.exc.DBAPIError):
            return False
        cause = exc.__cause__  # SQLAlchemy's asyncpg adapter keeps asyncpg's error here
        if isinstance(cause, BaseException) and not isinstance(exc, OSError):
            exc = cause
    if isinstance(exc, sa.exc.TimeoutError):
        return True
    return isinstance(
        exc,
        (
            ConnectionError,
            socket.gaierror,
            asyncpg.PostgresConnectionError,
            asyncpg.CannotConnectNowError,
            asyncpg.TooManyConnectionsError,
            asyncpg.ConnectionDoesNotExistError,
        ),
    )


def failure_line(exc: BaseException) -> str | None:
    """One line for an error of the database's driver or the file system (a command's
    operator sees it instead of a traceback: ``imgorigin.cli``), or None for anything else
    (a bug keeps its traceback)."""
    said = str(exc)
    if isinstance(exc, sa.exc.DBAPIError) and isinstance(exc.orig, BaseException):
        said = str(exc.orig)  # the driver's words, without SQLAlchemy's decoration
        if isinstance(exc.orig, OSError):
            exc = exc.orig
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}".strip()
    if isinstance(exc, (sa.exc.DBAPIError, asyncpg.PostgresError)):
        text = said.strip().splitlines()[0] if said.strip() else type(exc).__name__
        return f"the database: {text[:300]}"
    return None


class Database:
    """One engine per process, made in the lifespan; ``read()`` and ``write()`` transactions,
    and ``direct`` for the derivative index's statements on the request path
    (origin.store.derivative_index)."""

    def __init__(self, database_url: str) -> None:
        self.url = async_url(database_url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            path = self.url.split(":///", 1)[1]
            if path and path != ":memory:":
                # Made here, 0600 in a 0700 folder, before SQLite would make it 0644; SQLite
                # gives the -wal and -shm files the database file's mode.
                make_private_dirs(Path(path).parent)
                create_private_file(Path(path))
            self.engine: AsyncEngine = create_async_engine(
                self.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
            )
            _configure_sqlite(self.engine)
            self.direct: Direct[Any] = SqliteDirect(
                self.engine.dialect, path, SQLITE_BUSY_TIMEOUT_MS / 1000, SQLITE_PRAGMAS
            )
        else:
            self.engine = create_async_engine(
                self.url,
                pool_size=10,
                max_overflow=10,
                pool_timeout=PG_TIMEOUT_SECONDS,
                pool_pre_ping=True,
                connect_args={
                    "timeout": PG_TIMEOUT_SECONDS,
                    "command_timeout": PG_TIMEOUT_SECONDS,
                },
            )
            self.direct = PostgresDirect(self.engine.dialect, database_url, PG_TIMEOUT_SECONDS)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that will write: committed on success, rolled back on error."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (deferred on SQLite, so readers never queue)."""
        async with self.engine.connect() as conn:
            await conn.execution_options(imgorigin_begin="BEGIN")
            async with conn.begin():
                yield conn

    async def insert_new(self, table: sa.Table, values: Mapping[str, object]) -> bool:
        """Insert one row in its own transaction; False when a key or constraint says it
        cannot be (already there, or what it belongs to is gone)."""
        try:
            async with self.write() as conn:
                await conn.execute(table.insert().values(**values))
        except IntegrityError:
            return False
        return True

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        await self.direct.close()
        await self.engine.dispose()


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: SyncConnection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("imgorigin_begin", "BEGIN IMMEDIATE"))
