"""Users and image rows for the store's tests (no upload, no object behind them)."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from origin.records import ImageRecord
from origin.store.database import Database
from origin.store.tables import images
from origin.store.users import Users

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


def new_id() -> str:
    return secrets.token_hex(16)


async def make_user(users: Users, email: str = "Ann@Example.com") -> str:
    user_id = new_id()
    await users.create(user_id, email, "hash", NOW)
    return user_id


def image_record(user_id: str, **changes: Any) -> ImageRecord:
    """A 40×30 JPEG row of ``user_id`` with a fresh id; ``changes`` replace fields."""
    image_id = secrets.token_hex(16)
    record = ImageRecord(
        id=image_id,
        user_id=user_id,
        original_filename="cat.jpg",
        mime_type="image/jpeg",
        format="jpeg",
        size_bytes=100,
        width=40,
        height=30,
        storage_key=f"{user_id}/{image_id}/original.jpg",
        content_hash="ab" * 32,
        created_at=NOW,
    )
    return replace(record, **changes)


def image_for(user_id: str, size: int = 100, at: datetime = NOW) -> ImageRecord:
    """``image_record`` of ``size`` bytes uploaded ``at``, with some metadata."""
    return image_record(user_id, size_bytes=size, created_at=at, metadata={"Make": "Test"})


async def image_columns(db: Database) -> set[str]:
    async with db.read() as conn:
        found = await conn.run_sync(lambda c: sa.inspect(c).get_columns("images"))
    return {c["name"] for c in found}


async def insert_old_row(conn: AsyncConnection, record: ImageRecord) -> None:
    """Insert ``record`` with the first schema's columns only, as the code before migration 2 did."""
    await conn.execute(
        images.insert().values(
            id=record.id,
            user_id=record.user_id,
            original_filename=record.original_filename,
            mime_type=record.mime_type,
            format=record.format,
            size_bytes=record.size_bytes,
            width=record.width,
            height=record.height,
            storage_key=record.storage_key,
            content_hash=record.content_hash,
            created_at=record.created_at,
        )
    )
