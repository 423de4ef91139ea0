"""Source objects: the rows of the source cache (``source_objects``; origin.sources.cache).

Their derivatives and q_auto choices are ``origin.store.derivatives.Derivatives`` over the
``SOURCES`` index; they cascade with their object. No row here counts against any user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from origin.records import Analysis, SourceObjectRecord, WorkingCopy
from origin.store.database import Database
from origin.store.images import (
    analysis_of,
    analysis_values,
    working_copies_json,
    working_copies_of,
)
from origin.store.tables import source_derivatives, source_objects


@dataclass(frozen=True)
class SourceObjects:
    db: Database

    async def get(self, object_id: str) -> SourceObjectRecord | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(source_objects.select().where(source_objects.c.id == object_id))
            ).first()
        return None if row is None else _record(row)

    async def put(self, record: SourceObjectRecord) -> None:
        """Keep ``record`` (a new object, or a new version of one, without working copies yet):
        its earlier derivatives' rows go in the same transaction (their objects, and the
        earlier version's working copies, are the caller's to delete)."""
        values = _values(record)
        async with self.db.write() as conn:
            await conn.execute(
                source_derivatives.delete().where(source_derivatives.c.image_id == record.id)
            )
            found = await conn.execute(
                source_objects.update().where(source_objects.c.id == record.id).values(**values)
            )
            if found.rowcount == 0:
                await conn.execute(source_objects.insert().values(id=record.id, **values))

    async def checked(
        self, object_id: str, at: datetime, etag: str | None, last_modified: str | None
    ) -> None:
        """The upstream said the kept bytes are current (a 304, or the same bytes)."""
        async with self.db.write() as conn:
            await conn.execute(
                source_objects.update()
                .where(source_objects.c.id == object_id)
                .values(checked_at=at, etag=etag, last_modified=last_modified)
            )

    async def improved(
        self,
        object_id: str,
        content_hash: str,
        copies: tuple[WorkingCopy, ...],
        copies_bytes: int,
        analysis: Analysis | None,
    ) -> bool:
        """Record the working copies and analysis made for this version of the object; False
        when the row is gone or holds another version by now (the copies are then junk)."""
        values = {
            "working_copies": working_copies_json(copies),
            "copies_bytes": copies_bytes,
            **analysis_values(analysis),
        }
        async with self.db.write() as conn:
            done = await conn.execute(
                source_objects.update()
                .where(source_objects.c.id == object_id)
                .where(source_objects.c.content_hash == content_hash)
                .values(**values)
            )
        return bool(done.rowcount)

    async def total_bytes(self) -> int:
        """The bytes the source cache holds: objects and their derivatives."""
        async with self.db.read() as conn:
            kept = source_objects.c.size_bytes + source_objects.c.copies_bytes
            objects = await conn.scalar(sa.select(sa.func.sum(kept)))
            derived = await conn.scalar(sa.select(sa.func.sum(source_derivatives.c.size_bytes)))
        return int(objects or 0) + int(derived or 0)

    async def oldest(self, limit: int) -> list[SourceObjectRecord]:
        """The objects read or revalidated longest ago (the first to go past the bound)."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                source_objects.select().order_by(source_objects.c.checked_at).limit(limit)
            )
            return [_record(row) for row in rows]

    async def delete(self, object_id: str) -> bool:
        """Remove an object's row and its derivatives' rows (their objects are the caller's)."""
        async with self.db.write() as conn:
            await conn.execute(
                source_derivatives.delete().where(source_derivatives.c.image_id == object_id)
            )
            done = await conn.execute(
                source_objects.delete().where(source_objects.c.id == object_id)
            )
        return bool(done.rowcount)

    async def referenced_keys(self) -> set[str]:
        """Every storage key a source row refers to, for ``gc``."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                sa.select(source_objects.c.storage_key, source_objects.c.working_copies)
            )
            keys = set()
            for original, copies in rows:
                keys.add(original)
                keys.update(c.storage_key for c in working_copies_of(copies))
            derived = await conn.execute(sa.select(source_derivatives.c.storage_key))
            keys.update(derived.scalars())
        return keys


def _values(record: SourceObjectRecord) -> dict[str, Any]:
    values = dict(
        source=record.source,
        object_key=record.object_key,
        storage_key=record.storage_key,
        content_hash=record.content_hash,
        format=record.format,
        size_bytes=record.size_bytes,
        width=record.width,
        height=record.height,
        etag=record.etag,
        last_modified=record.last_modified,
        fetched_at=record.fetched_at,
        checked_at=record.checked_at,
        blurhash=None,
        dominant_color=None,
        focal_x=None,
        focal_y=None,
        faces=None,
        working_copies=working_copies_json(record.working_copies),
        copies_bytes=0,
    )
    return {**values, **analysis_values(record.analysis)}


def _record(row: sa.Row[Any]) -> SourceObjectRecord:
    return SourceObjectRecord(
        id=row.id,
        source=row.source,
        object_key=row.object_key,
        storage_key=row.storage_key,
        content_hash=row.content_hash,
        format=row.format,
        size_bytes=int(row.size_bytes),
        width=int(row.width),
        height=int(row.height),
        etag=row.etag,
        last_modified=row.last_modified,
        fetched_at=row.fetched_at,
        checked_at=row.checked_at,
        analysis=analysis_of(row),
        working_copies=working_copies_of(row.working_copies),
    )
