"""Derivatives: the index of rendered variants (``transformed_images``) and the qualities the
q_auto search chose (``auto_qualities``). Both rows belong to an image and go with it (the
foreign keys cascade); a row whose image is gone is refused."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from origin.records import AutoQualityRecord, DerivativeRecord
from origin.store import eager
from origin.store.database import Database
from origin.store.derivative_index import UPLOADS, Index


@dataclass(frozen=True)
class Derivatives:
    db: Database
    index: Index = UPLOADS  # or derivative_index.SOURCES: remote source objects' derivatives

    async def get(self, image_id: str, variant: str) -> DerivativeRecord | None:
        """One derivative's row (the request path: origin.store.derivative_index)."""
        found = await self.db.direct.first(
            self.index.find, {"image_id": image_id, "variant": variant}
        )
        return None if found is None else DerivativeRecord(*found)

    async def among(self, image_id: str, variants: Collection[str]) -> dict[str, DerivativeRecord]:
        """The stored derivatives of ``image_id`` among ``variants``, by variant (one query)."""
        if not variants:
            return {}
        table = self.index.rows
        async with self.db.read() as conn:
            rows = await conn.execute(
                table.select()
                .where(table.c.image_id == image_id)
                .where(table.c.variant.in_(sorted(set(variants))))
            )
            return {row.variant: _derivative(row) for row in rows}

    async def add(self, record: DerivativeRecord, content_hash: str) -> bool:
        """Record a stored derivative rendered from the pixels ``content_hash`` names; False
        when the image is gone, holds other pixels by now (replaced) or the derivative is
        already recorded (the request path: origin.store.derivative_index)."""
        return await self.db.direct.insert(
            self.index.add, {**vars(record), "content_hash": content_hash}
        )

    async def forget(self, record: DerivativeRecord) -> None:
        """Delete ``record``'s row while it still names ``record``'s object (gone or damaged:
        the next write records a new one); its ``done`` eager entry becomes ``evicted``."""
        table = self.index.rows
        async with self.db.write() as conn:
            removed = await conn.execute(
                table.delete()
                .where(table.c.image_id == record.image_id)
                .where(table.c.variant == record.variant)
                .where(table.c.storage_key == record.storage_key)
            )
            if removed.rowcount and self.index is UPLOADS:
                await eager.evicted(conn, [(record.image_id, record.variant)])

    async def remove_missing(self, present: Collection[str], listed_at: datetime) -> int:
        """Delete the rows recorded before ``listed_at`` whose object is not among
        ``present`` (every key in storage, listed from ``listed_at``); how many (``imgorigin
        gc``). Their ``done`` eager entries become ``evicted``."""
        table = self.index.rows
        async with self.db.write() as conn:
            rows = await conn.execute(
                sa.select(table.c.image_id, table.c.variant, table.c.storage_key).where(
                    table.c.created_at < listed_at
                )
            )
            gone = [(r.image_id, r.variant) for r in rows if r.storage_key not in present]
            for image_id, variant in gone:
                await conn.execute(
                    table.delete()
                    .where(table.c.image_id == image_id)
                    .where(table.c.variant == variant)
                )
            if self.index is UPLOADS:  # a source's derivatives have no eager entries
                await eager.evicted(conn, gone)
        return len(gone)

    # ---- q_auto choices ----------------------------------------------------------------

    async def auto_quality(self, image_id: str, variant: str) -> AutoQualityRecord | None:
        table = self.index.choices
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    table.select()
                    .where(table.c.image_id == image_id)
                    .where(table.c.variant == variant)
                )
            ).first()
        if row is None:
            return None
        return AutoQualityRecord(
            image_id=row.image_id,
            variant=row.variant,
            format=row.format,
            quality=int(row.quality),
            ssim=float(row.ssim),
            created_at=row.created_at,
        )

    async def add_auto_quality(self, record: AutoQualityRecord, content_hash: str) -> bool:
        """Remember a q_auto choice made on the pixels ``content_hash`` names; False when the
        image is gone, holds other pixels by now (replaced), or a choice is recorded already
        (the first one stays: every process searching the same thing finds the same)."""
        return await self.db.direct.insert(
            self.index.add_choice, {**vars(record), "content_hash": content_hash}
        )


def _derivative(row: sa.Row[Any]) -> DerivativeRecord:
    return DerivativeRecord(
        image_id=row.image_id,
        variant=row.variant,
        storage_key=row.storage_key,
        media_type=row.media_type,
        size_bytes=int(row.size_bytes),
        width=int(row.width),
        height=int(row.height),
        created_at=row.created_at,
    )
