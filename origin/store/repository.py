"""Repositories: the only place with SQL. Same queries on SQLite and PostgreSQL.

Records are the frozen dataclasses of origin.records; every method runs in its own transaction unless it says
otherwise. Invariants that need two statements (quota and row, token rotation, delete and
usage) are kept inside one transaction, with conditional updates rather than read-then-write
so that concurrent requests cannot both pass a check.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from origin.records import (
    Analysis,
    AutoQualityRecord,
    DerivativeRecord,
    EmailTaken,
    ImageRecord,
    QuotaWouldBeExceeded,
    RefreshTokenRecord,
    Rotation,
    SigningKeyRecord,
    UserRecord,
    WorkingCopy,
)
from origin.store.database import Database
from origin.store.derivative_index import ADD_DERIVATIVE, FIND_DERIVATIVE
from origin.store.tables import (
    auto_qualities,
    images,
    refresh_tokens,
    signing_keys,
    transformed_images,
    users,
)


def _user(row: sa.Row[Any]) -> UserRecord:
    return UserRecord(
        id=row.id,
        email=row.email,
        password_hash=row.password_hash,
        storage_used_bytes=int(row.storage_used_bytes),
        image_count=int(row.image_count),
        created_at=row.created_at,
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
        analysis=_analysis(row),
        working_copies=_working_copies(row.working_copies),
    )


def _working_copies(text: str | None) -> tuple[WorkingCopy, ...]:
    copies = (WorkingCopy(int(w), int(h), str(key)) for w, h, key in json.loads(text or "[]"))
    return tuple(sorted(copies, key=lambda c: c.width * c.height))


def _working_copies_json(copies: tuple[WorkingCopy, ...]) -> str | None:
    if not copies:
        return None
    return json.dumps([[c.width, c.height, c.storage_key] for c in copies], separators=(",", ":"))


def _analysis(row: sa.Row[Any]) -> Analysis | None:
    values = (row.blurhash, row.dominant_color, row.focal_x, row.focal_y)
    if any(v is None for v in values):
        return None
    return Analysis(row.blurhash, row.dominant_color, float(row.focal_x), float(row.focal_y))


def _analysis_values(analysis: Analysis | None) -> dict[str, Any]:
    if analysis is None:
        return {}
    return {
        "blurhash": analysis.blurhash,
        "dominant_color": analysis.dominant_color,
        "focal_x": analysis.focal_x,
        "focal_y": analysis.focal_y,
    }


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


IMAGE_COLUMNS = [c for c in images.c if c.name != "seq"]


class Repository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ping(self) -> None:
        async with self.db.read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    # ---- users -------------------------------------------------------------------------

    async def create_user(
        self, user_id: str, email: str, password_hash: str, now: datetime
    ) -> UserRecord:
        values = {
            "id": user_id,
            "email": email,
            "email_key": email.lower(),
            "password_hash": password_hash,
            "storage_used_bytes": 0,
            "image_count": 0,
            "created_at": now,
        }
        try:
            async with self.db.write() as conn:
                await conn.execute(users.insert().values(**values))
        except IntegrityError:
            raise EmailTaken(email) from None
        return UserRecord(user_id, email, password_hash, 0, 0, now)

    async def user_by_email(self, email: str) -> UserRecord | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(users.select().where(users.c.email_key == email.lower()))
            ).first()
        return _user(row) if row else None

    async def user_by_id(self, user_id: str) -> UserRecord | None:
        async with self.db.read() as conn:
            row = (await conn.execute(users.select().where(users.c.id == user_id))).first()
        return _user(row) if row else None

    # ---- images ------------------------------------------------------------------------

    async def add_image(self, image: ImageRecord, quota_bytes: int) -> None:
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
                    **_analysis_values(image.analysis),
                    working_copies=_working_copies_json(image.working_copies),
                )
            )

    async def image(self, image_id: str, *, user_id: str | None = None) -> ImageRecord | None:
        """The image, or None when absent (or, given ``user_id``, not that user's)."""
        query = sa.select(*IMAGE_COLUMNS).where(images.c.id == image_id)
        if user_id is not None:
            query = query.where(images.c.user_id == user_id)
        async with self.db.read() as conn:
            row = (await conn.execute(query)).first()
        return _image(row) if row else None

    async def list_images(
        self, user_id: str, *, offset: int, limit: int
    ) -> tuple[list[ImageRecord], int]:
        """A page of the user's images, newest first (same-second uploads keep their order)."""
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

    async def delete_image(
        self, image_id: str, user_id: str
    ) -> tuple[ImageRecord, list[str]] | None:
        """Delete the row, its derivative rows and the usage; return what to remove from storage.

        The rows go first: a crash before the objects are removed leaves orphan objects for
        ``imgorigin gc``, never a row without its object.
        """
        async with self.db.write() as conn:
            row = (
                await conn.execute(
                    sa.select(*IMAGE_COLUMNS)
                    .where(images.c.id == image_id)
                    .where(images.c.user_id == user_id)
                )
            ).first()
            if row is None:
                return None
            image = _image(row)
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
                keys.update(c.storage_key for c in _working_copies(copies))
            derived = (await conn.execute(sa.select(transformed_images.c.storage_key))).scalars()
            keys.update(derived)
        return keys

    # ---- derivatives -------------------------------------------------------------------

    async def derivative(self, image_id: str, variant: str) -> DerivativeRecord | None:
        """One derivative's row (the request path: origin.store.derivative_index)."""
        row = await self.db.direct.first(
            FIND_DERIVATIVE, {"image_id": image_id, "variant": variant}
        )
        return None if row is None else DerivativeRecord(*row)

    async def derivatives(
        self, image_id: str, variants: Collection[str]
    ) -> dict[str, DerivativeRecord]:
        """The stored derivatives of ``image_id`` among ``variants``, by variant (one query)."""
        if not variants:
            return {}
        async with self.db.read() as conn:
            rows = await conn.execute(
                transformed_images.select()
                .where(transformed_images.c.image_id == image_id)
                .where(transformed_images.c.variant.in_(sorted(set(variants))))
            )
            return {row.variant: _derivative(row) for row in rows}

    async def add_derivative(self, record: DerivativeRecord) -> bool:
        """Record a stored derivative; False when the image is gone or it is already recorded
        (the request path: origin.store.derivative_index)."""
        return await self.db.direct.insert(ADD_DERIVATIVE, vars(record))

    async def _insert_new(self, table: sa.Table, values: dict[str, object]) -> bool:
        """Insert one row; False when a key or constraint says it cannot be (already there, or
        its image gone)."""
        try:
            async with self.db.write() as conn:
                await conn.execute(table.insert().values(**values))
        except IntegrityError:
            return False
        return True

    # ---- q_auto choices ----------------------------------------------------------------

    async def auto_quality(self, image_id: str, variant: str) -> AutoQualityRecord | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    auto_qualities.select()
                    .where(auto_qualities.c.image_id == image_id)
                    .where(auto_qualities.c.variant == variant)
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

    async def add_auto_quality(self, record: AutoQualityRecord) -> bool:
        """Remember a q_auto choice; False when the image is gone or a choice is recorded
        already (the first one stays: every process searching the same thing finds the same)."""
        return await self._insert_new(auto_qualities, vars(record))

    # ---- refresh tokens ----------------------------------------------------------------

    async def add_refresh_token(self, token: RefreshTokenRecord) -> None:
        async with self.db.write() as conn:
            await conn.execute(refresh_tokens.insert().values(**_token_values(token)))

    async def rotate_refresh_token(
        self, token_hash: str, successor: RefreshTokenRecord | None, now: datetime
    ) -> tuple[Rotation, RefreshTokenRecord | None]:
        """Spend ``token_hash`` and store its successor in one transaction.

        The successor's ``user_id`` and ``family_id`` are taken from the spent token (the
        caller does not know them yet). Returns the outcome and, when rotated, the stored
        successor. A spent token presented again revokes every token of its family.
        """
        async with self.db.write() as conn:
            row = (
                await conn.execute(
                    refresh_tokens.select().where(refresh_tokens.c.token_hash == token_hash)
                )
            ).first()
            if row is None or row.revoked_at is not None:
                return Rotation.INVALID, None
            if row.spent_at is not None:
                await conn.execute(
                    refresh_tokens.update()
                    .where(refresh_tokens.c.family_id == row.family_id)
                    .where(refresh_tokens.c.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                return Rotation.REUSED, None
            if row.expires_at <= now:
                return Rotation.INVALID, None
            spent = await conn.execute(
                refresh_tokens.update()
                .where(refresh_tokens.c.id == row.id)
                .where(refresh_tokens.c.spent_at.is_(None))
                .values(spent_at=now)
            )
            if spent.rowcount != 1 or successor is None:
                return Rotation.INVALID, None
            stored = RefreshTokenRecord(
                id=successor.id,
                user_id=row.user_id,
                family_id=row.family_id,
                token_hash=successor.token_hash,
                created_at=successor.created_at,
                expires_at=successor.expires_at,
            )
            await conn.execute(refresh_tokens.insert().values(**_token_values(stored)))
        return Rotation.ROTATED, stored

    async def revoke_refresh_token(self, token_hash: str, now: datetime) -> bool:
        async with self.db.write() as conn:
            result = await conn.execute(
                refresh_tokens.update()
                .where(refresh_tokens.c.token_hash == token_hash)
                .where(refresh_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return bool(result.rowcount == 1)

    # ---- signing keys ------------------------------------------------------------------

    async def add_signing_key(self, key: SigningKeyRecord) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                signing_keys.insert().values(
                    id=key.id, user_id=key.user_id, secret=key.secret, created_at=key.created_at
                )
            )

    async def signing_keys(self, user_id: str) -> list[SigningKeyRecord]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                signing_keys.select()
                .where(signing_keys.c.user_id == user_id)
                .order_by(signing_keys.c.created_at, signing_keys.c.id)
            )
            return [SigningKeyRecord(r.id, r.user_id, r.secret, r.created_at) for r in rows]

    async def delete_signing_key(self, key_id: str, user_id: str) -> bool:
        async with self.db.write() as conn:
            result = await conn.execute(
                signing_keys.delete()
                .where(signing_keys.c.id == key_id)
                .where(signing_keys.c.user_id == user_id)
            )
        return bool(result.rowcount == 1)


def _token_values(token: RefreshTokenRecord) -> dict[str, Any]:
    return {
        "id": token.id,
        "user_id": token.user_id,
        "family_id": token.family_id,
        "token_hash": token.token_hash,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "spent_at": token.spent_at,
        "revoked_at": token.revoked_at,
    }
