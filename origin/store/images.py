"""Images: the row of each original with its analysis and working copies, charged to its
owner's usage (``users.storage_used_bytes``, ``users.image_count``) in the same transaction;
listing, delete, and the storage keys rows refer to (for ``imgorigin gc``)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from origin.records import (
    Analysis,
    ImageRecord,
    QuotaWouldBeExceeded,
    ReplacedMeanwhile,
    WorkingCopy,
)
from origin.store.database import Database
from origin.store.tables import auto_qualities, images, transformed_images, users

IMAGE_COLUMNS = [c for c in images.c if c.name != "seq"]
# What a caller adds to an upload's transaction (its eager jobs, its events).
Also = Callable[[AsyncConnection], Awaitable[None]]


@dataclass(frozen=True)
class Images:
    db: Database

    async def add(self, image: ImageRecord, quota_bytes: int, also: Also | None = None) -> None:
        """Insert the row and charge the owner's usage in one transaction.

        Raises ``QuotaWouldBeExceeded`` (nothing written) when the quota does not allow it.
        The conditional UPDATE makes concurrent uploads by one user queue on the row lock
        (PostgreSQL) or the write lock (SQLite), so two cannot both slip under the quota.
        """
        async with self.db.write() as conn:
            charged = await conn.execute(
                users.update()
                .where(users.c.id == image.user_id)
                .where(users.c.storage_used_bytes + image.size_bytes <= quota_bytes)
                .values(
                    storage_used_bytes=users.c.storage_used_bytes + image.size_bytes,
                    image_count=users.c.image_count + 1,
                )
            )
            if charged.rowcount != 1:
                raise QuotaWouldBeExceeded(image.user_id)
            await conn.execute(
                images.insert().values(
                    id=image.id,
                    user_id=image.user_id,
                    original_filename=image.original_filename,
                    mime_type=image.mime_type,
                    format=image.format,
                    size_bytes=image.size_bytes,
                    width=image.width,
                    height=image.height,
                    storage_key=image.storage_key,
                    content_hash=image.content_hash,
                    metadata_json=json.dumps(image.metadata, separators=(",", ":")),
                    created_at=image.created_at,
                    **analysis_values(image.analysis),
                    working_copies=working_copies_json(image.working_copies),
                    public=image.public,
                    version=image.version,
                )
            )
            if also is not None:  # the jobs and events of the upload, committed with it
                await also(conn)

    async def get(self, image_id: str, *, user_id: str | None = None) -> ImageRecord | None:
        """The image, or None when absent (or, given ``user_id``, not that user's)."""
        query = sa.select(*IMAGE_COLUMNS).where(images.c.id == image_id)
        if user_id is not None:
            query = query.where(images.c.user_id == user_id)
        async with self.db.read() as conn:
            row = (await conn.execute(query)).first()
        return _image(row) if row else None

    async def set_public(
        self, image_id: str, user_id: str, public: bool, also: Also | None = None
    ) -> ImageRecord | None:
        """Set the image's ``public``; the row as it now is, or None when not the user's.
        ``also`` (its purge) runs in the same transaction when the image is the user's."""
        async with self.db.write() as conn:
            await conn.execute(
                images.update()
                .where(images.c.id == image_id)
                .where(images.c.user_id == user_id)
                .values(public=public)
            )
            row = (await conn.execute(_owned(image_id, user_id))).first()
            if row is not None and also is not None:
                await also(conn)
        return _image(row) if row else None

    async def replace(
        self, old: ImageRecord, new: ImageRecord, quota_bytes: int, also: Also | None = None
    ) -> list[str]:
        """Move the row from ``old`` to ``new`` (its next version), charge the owner the
        difference and drop what the old pixels made — derivative rows, q_auto choices — in
        one transaction; the derivatives' storage keys, to remove once committed.

        ``QuotaWouldBeExceeded`` when a larger file does not fit; ``ReplacedMeanwhile`` when
        the row is no longer at ``old.version`` (a concurrent replace or delete won).
        Nothing is written in either case.
        """
        grows = new.size_bytes - old.size_bytes
        charge = users.update().where(users.c.id == old.user_id)
        if grows > 0:
            charge = charge.where(users.c.storage_used_bytes + grows <= quota_bytes)
        async with self.db.write() as conn:
            moved = await conn.execute(
                images.update()
                .where(images.c.id == old.id)
                .where(images.c.version == old.version)
                .values(
                    mime_type=new.mime_type,
                    format=new.format,
                    size_bytes=new.size_bytes,
                    width=new.width,
                    height=new.height,
                    storage_key=new.storage_key,
                    content_hash=new.content_hash,
                    metadata_json=json.dumps(new.metadata, separators=(",", ":")),
                    **analysis_values(new.analysis),
                    working_copies=working_copies_json(new.working_copies),
                    version=new.version,
                )
            )
            if moved.rowcount != 1:
                raise ReplacedMeanwhile(old.id)
            charged = await conn.execute(
                charge.values(storage_used_bytes=users.c.storage_used_bytes + grows)
            )
            if charged.rowcount != 1:
                raise QuotaWouldBeExceeded(old.user_id)
            derived = transformed_images.c.image_id == old.id
            keys = list(
                (
                    await conn.execute(sa.select(transformed_images.c.storage_key).where(derived))
                ).scalars()
            )
            await conn.execute(transformed_images.delete().where(derived))
            await conn.execute(auto_qualities.delete().where(auto_qualities.c.image_id == old.id))
            if also is not None:  # the eager jobs and events of the replace, committed with it
                await also(conn)
        return keys

    async def page(self, user_id: str, *, offset: int, limit: int) -> tuple[list[ImageRecord], int]:
        """A page of the user's images, newest first (same-second uploads keep their order),
        and how many they have."""
        async with self.db.read() as conn:
            total = await conn.scalar(
                sa.select(sa.func.count()).select_from(images).where(images.c.user_id == user_id)
            )
            rows = await conn.execute(
                sa.select(*IMAGE_COLUMNS)
                .where(images.c.user_id == user_id)
                .order_by(images.c.created_at.desc(), images.c.seq.desc())
                .offset(offset)
                .limit(limit)
            )
            return [_image(r) for r in rows], int(total or 0)

    async def delete(
        self,
        image_id: str,
        user_id: str,
        also: Callable[[AsyncConnection, ImageRecord], Awaitable[None]] | None = None,
    ) -> tuple[ImageRecord, list[str]] | None:
        """Delete the row, its derivative rows and the usage; return what to remove from storage.

        The rows go first: a crash before the objects are removed leaves orphan objects for
        ``imgorigin gc``, never a row without its object. The row is read locked (PostgreSQL;
        SQLite's write transaction holds the database): of deletes racing, one removes it and
        subtracts the size it has then, and the others find nothing.
        """
        async with self.db.write() as conn:
            row = (await conn.execute(_owned(image_id, user_id).with_for_update())).first()
            if row is None:
                return None
            image = _image(row)
            if also is not None:  # its events and purge, committed with it (before the
                await also(conn, image)  # cascade removes what the purge must name)
            derived = list(
                (
                    await conn.execute(
                        sa.select(transformed_images.c.storage_key).where(
                            transformed_images.c.image_id == image_id
                        )
                    )
                ).scalars()
            )
            await conn.execute(
                transformed_images.delete().where(transformed_images.c.image_id == image_id)
            )
            await conn.execute(images.delete().where(images.c.id == image_id))
            await conn.execute(
                users.update()
                .where(users.c.id == user_id)
                .values(
                    storage_used_bytes=users.c.storage_used_bytes - image.size_bytes,
                    image_count=users.c.image_count - 1,
                )
            )
        return image, derived

    async def referenced_keys(self) -> set[str]:
        """Every storage key a row refers to (originals, their working copies and
        derivatives), for ``gc``."""
        async with self.db.read() as conn:
            rows = await conn.execute(sa.select(images.c.storage_key, images.c.working_copies))
            keys = set()
            for original, copies in rows:
                keys.add(original)
                keys.update(c.storage_key for c in working_copies_of(copies))
            derived = (await conn.execute(sa.select(transformed_images.c.storage_key))).scalars()
            keys.update(derived)
        return keys


def _owned(image_id: str, user_id: str) -> sa.Select[Any]:
    return (
        sa.select(*IMAGE_COLUMNS).where(images.c.id == image_id).where(images.c.user_id == user_id)
    )


def _image(row: sa.Row[Any]) -> ImageRecord:
    return ImageRecord(
        id=row.id,
        user_id=row.user_id,
        original_filename=row.original_filename,
        mime_type=row.mime_type,
        format=row.format,
        size_bytes=int(row.size_bytes),
        width=int(row.width),
        height=int(row.height),
        storage_key=row.storage_key,
        content_hash=row.content_hash,
        created_at=row.created_at,
        metadata=json.loads(row.metadata_json or "{}"),
        analysis=analysis_of(row),
        working_copies=working_copies_of(row.working_copies),
        public=bool(row.public),
        version=int(row.version),
    )


def working_copies_of(text: str | None) -> tuple[WorkingCopy, ...]:
    copies = (WorkingCopy(int(w), int(h), str(key)) for w, h, key in json.loads(text or "[]"))
    return tuple(sorted(copies, key=lambda c: c.width * c.height))


def working_copies_json(copies: tuple[WorkingCopy, ...]) -> str | None:
    if not copies:
        return None
    return json.dumps([[c.width, c.height, c.storage_key] for c in copies], separators=(",", ":"))


def analysis_of(row: sa.Row[Any]) -> Analysis | None:
    """The analysis columns of a row (an image's or a source object's), None if not all set."""
    values = (row.blurhash, row.dominant_color, row.focal_x, row.focal_y)
    if any(v is None for v in values):
        return None
    faces = None if row.faces is None else tuple(tuple(box) for box in json.loads(row.faces))
    return Analysis(row.blurhash, row.dominant_color, float(row.focal_x), float(row.focal_y), faces)


def analysis_values(analysis: Analysis | None) -> dict[str, Any]:
    if analysis is None:
        return {}
    return {
        "blurhash": analysis.blurhash,
        "dominant_color": analysis.dominant_color,
        "focal_x": analysis.focal_x,
        "focal_y": analysis.focal_y,
        "faces": None if analysis.faces is None else json.dumps(analysis.faces),
    }
