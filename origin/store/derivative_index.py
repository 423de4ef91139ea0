"""The derivative index on the request path: its two statements, straight to the driver.

Every cold ``/i/`` request reads the derivative index and, after rendering, writes one row to
it (while the image still holds the pixels it was rendered from: ``index_of``). Through SQLAlchemy's asyncio layer each of those costs 0.5–0.8 ms of event-loop CPU
(greenlet switches, a pool check-out and reset, ``BEGIN``/``ROLLBACK``, and — with aiosqlite
— a thread round trip for each of cursor, execute, fetch and close); straight to the driver
it is one round trip, 0.04 ms on SQLite and 0.2 ms on PostgreSQL (docs/performance.md). A
single statement needs no explicit transaction: it is atomic on its own.

The statements (``Index.find``, ``Index.add``, for uploads and for remote sources) are still SQLAlchemy Core, compiled
once per dialect from the tables of ``origin.store.tables``, and values go through the
columns' own bind and result processors: a row written here is the row the engine would
write, and reads back equal. ``Direct`` runs them (``Database.direct``):

- SQLite: one aiosqlite connection in autocommit mode, with the engine's pragmas
  (``database.SQLITE_PRAGMAS``); aiosqlite runs its statements one after another on its own
  thread.
- PostgreSQL: a small asyncpg pool of its own (``DIRECT_POOL_SIZE`` connections).
"""

from __future__ import annotations

import asyncio
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Generic, Protocol, TypeVar

import aiosqlite
import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from origin.records import DerivativeRecord
from origin.store.tables import (
    auto_qualities,
    images,
    source_auto_qualities,
    source_derivatives,
    source_objects,
    transformed_images,
)

DIRECT_POOL_SIZE = 4
Processor = Callable[[Any], Any] | None
Core = sa.Select[Any] | sa.Insert


class Closable(Protocol):
    async def close(self) -> None: ...


H = TypeVar("H", bound=Closable)


@dataclass(frozen=True)
class Index:
    """One derivative index: its rows' table, its q_auto choices' table, the two
    request-path statements on it (module constants: ``Direct`` compiles each once) and the
    one that keeps a q_auto choice."""

    rows: sa.Table
    choices: sa.Table
    find: sa.Select[Any]  # one derivative's row by (image, variant), in DerivativeRecord's order
    add: sa.Insert
    add_choice: sa.Insert


def index_of(rows: sa.Table, choices: sa.Table, owners: sa.Table) -> Index:
    """``owners``: the table of what the derivatives are made from (its ``id`` and
    ``content_hash``). A row or a q_auto choice is added only while its owner still holds
    the pixels it was made from (``content_hash``): a render that finishes after a replace
    (or a source object's new version) records nothing, and its object is removed by the
    caller."""
    names = [f.name for f in fields(DerivativeRecord)]
    find = sa.select(*(rows.c[name] for name in names)).where(
        rows.c.image_id == sa.bindparam("image_id"),
        rows.c.variant == sa.bindparam("variant"),
    )
    return Index(
        rows,
        choices,
        find,
        _insert_held(rows, names, owners),
        _insert_held(choices, [c.key for c in choices.columns], owners),
    )


def _insert_held(table: sa.Table, names: list[str], owners: sa.Table) -> sa.Insert:
    """Insert one row of ``names`` (bound by name) while its owner (``image_id``) holds the
    pixels ``content_hash`` names; it returns the row's variant (none: nothing inserted)."""
    # FOR SHARE (PostgreSQL; SQLite's write holds the database): a replace that has moved
    # the owner's row but not committed makes this wait and then find the new hash, and one
    # that comes after waits for this row, which its own delete then sees
    held = (
        sa.select(owners.c.id)
        .where(
            owners.c.id == sa.bindparam("image_id"),
            owners.c.content_hash == sa.bindparam("content_hash"),
        )
        .with_for_update(read=True)
    )
    values = sa.select(*(sa.bindparam(name, type_=table.c[name].type) for name in names)).where(
        held.exists()
    )
    return (
        table.insert()
        .from_select([table.c[name] for name in names], values)
        .returning(table.c.variant)
    )


# Uploads' derivatives, and the derivatives of remote source objects (origin.sources).
UPLOADS = index_of(transformed_images, auto_qualities, images)
SOURCES = index_of(source_derivatives, source_auto_qualities, source_objects)


class Statement:
    """One Core statement compiled for one dialect: SQL text, parameter order, processors."""

    def __init__(self, statement: Core, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        names = compiled.positiontup or []
        self.binds: list[tuple[str, Processor]] = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in names
        ]
        columns = statement.selected_columns if isinstance(statement, sa.Select) else ()
        self.results: list[Processor] = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
        ]

    def params(self, values: Mapping[str, Any]) -> list[Any]:
        return [values[n] if p is None else p(values[n]) for n, p in self.binds]

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(v if p is None else p(v) for v, p in zip(raw, self.results, strict=True))


class Direct(ABC, Generic[H]):
    """``first`` (a select's first row) and ``insert`` (False when a constraint refuses it),
    over a driver handle (a connection or a pool) opened at first use."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._compiled: dict[int, Statement] = {}
        self._opening = asyncio.Lock()
        self._handle: H | None = None

    # The driver's exception for a row a key or constraint refuses.
    integrity_error: type[Exception] = Exception

    def _statement(self, statement: Core) -> Statement:
        found = self._compiled.get(id(statement))
        if found is None:  # the statements are module constants: their ids never change
            found = Statement(statement, self.dialect)
            self._compiled[id(statement)] = found
        return found

    async def first(
        self, statement: sa.Select[Any], values: Mapping[str, Any]
    ) -> tuple[Any, ...] | None:
        compiled = self._statement(statement)
        raw = await self._fetch_first(await self._ready(), compiled.sql, compiled.params(values))
        return None if raw is None else compiled.row(raw)

    async def insert(self, statement: sa.Insert, values: Mapping[str, Any]) -> bool:
        """Run an insert that returns what it inserted: False when it inserted nothing (its
        condition did not hold) or a key or constraint refused it."""
        compiled = self._statement(statement)
        try:
            raw = await self._fetch_first(
                await self._ready(), compiled.sql, compiled.params(values)
            )
        except self.integrity_error:
            return False
        return raw is not None

    async def _ready(self) -> H:
        if self._handle is None:
            async with self._opening:
                if self._handle is None:
                    self._handle = await self._open()
        return self._handle

    async def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            await handle.close()

    @abstractmethod
    async def _open(self) -> H: ...

    @abstractmethod
    async def _fetch_first(
        self, handle: H, sql: str, params: list[Any]
    ) -> Sequence[Any] | None: ...


class SqliteDirect(Direct[aiosqlite.Connection]):
    integrity_error = sqlite3.IntegrityError

    def __init__(self, dialect: Dialect, path: str, timeout: float, pragmas: Sequence[str]) -> None:
        super().__init__(dialect)
        self.path = path
        self.timeout = timeout
        self.pragmas = pragmas

    async def _open(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, timeout=self.timeout, isolation_level=None)
        for pragma in self.pragmas:
            await conn.execute(pragma)
        return conn

    async def _fetch_first(
        self, handle: aiosqlite.Connection, sql: str, params: list[Any]
    ) -> Sequence[Any] | None:
        return next(iter(await handle.execute_fetchall(sql, params)), None)


class PostgresDirect(Direct[asyncpg.Pool]):
    integrity_error = asyncpg.IntegrityConstraintViolationError

    def __init__(self, dialect: Dialect, dsn: str, timeout: float) -> None:
        super().__init__(dialect)
        self.dsn = dsn
        self.timeout = timeout

    async def _open(self) -> asyncpg.Pool:
        return await asyncpg.create_pool(
            self.dsn,
            min_size=1,
            max_size=DIRECT_POOL_SIZE,
            timeout=self.timeout,
            command_timeout=self.timeout,
        )

    async def _fetch_first(
        self, handle: asyncpg.Pool, sql: str, params: list[Any]
    ) -> Sequence[Any] | None:
        row: Sequence[Any] | None = await handle.fetchrow(sql, *params, timeout=self.timeout)
        return row
