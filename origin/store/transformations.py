"""Users' named transformations (``/api/transformations``; the origin reads them through
origin.lookup and uses them as origin.named says)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from origin.records import TransformationRecord
from origin.store.database import Database, count_of_user, lock_row
from origin.store.tables import transformations, users


class TooMany(Exception):
    """Adding the transformation would pass the per-user bound."""


@dataclass(frozen=True)
class Transformations:
    db: Database

    async def put(self, record: TransformationRecord, max_per_user: int) -> TransformationRecord:
        """Create or replace ``record`` (a replacement keeps its ``created_at``); the row as
        stored. ``TooMany`` (nothing written) when a new one would pass ``max_per_user``."""
        where = (transformations.c.user_id == record.user_id) & (
            transformations.c.name == record.name
        )
        async with self.db.write() as conn:
            await lock_row(conn, users, record.user_id)  # the bound and the name: one at a time
            found = (await conn.execute(transformations.select().where(where))).first()
            if found is not None:
                stored = _values(record) | {"created_at": found.created_at}
                await conn.execute(transformations.update().where(where).values(**stored))
                return record_of(stored)
            if await count_of_user(conn, transformations, record.user_id) >= max_per_user:
                raise TooMany(record.user_id)
            await conn.execute(transformations.insert().values(**_values(record)))
        return record

    async def get(self, user_id: str, name: str) -> TransformationRecord | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    transformations.select()
                    .where(transformations.c.user_id == user_id)
                    .where(transformations.c.name == name)
                )
            ).first()
        return record_of(row._mapping) if row else None

    async def of_user(self, user_id: str) -> list[TransformationRecord]:
        """The user's transformations by name."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                transformations.select()
                .where(transformations.c.user_id == user_id)
                .order_by(transformations.c.name)
            )
            return [record_of(r._mapping) for r in rows]

    async def delete(self, user_id: str, name: str) -> bool:
        """False when the user has no transformation of that name."""
        async with self.db.write() as conn:
            result = await conn.execute(
                transformations.delete()
                .where(transformations.c.user_id == user_id)
                .where(transformations.c.name == name)
            )
        return bool(result.rowcount == 1)


def _values(record: TransformationRecord) -> dict[str, Any]:
    return {
        "user_id": record.user_id,
        "name": record.name,
        "chain": record.chain,
        "unsigned": record.unsigned,
        "formats": ",".join(record.formats),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def record_of(row: Any) -> TransformationRecord:
    created: datetime = row["created_at"]
    return TransformationRecord(
        user_id=row["user_id"],
        name=row["name"],
        chain=row["chain"],
        unsigned=bool(row["unsigned"]),
        formats=tuple(f for f in str(row["formats"]).split(",") if f),
        created_at=created,
        updated_at=row["updated_at"],
    )
