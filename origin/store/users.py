"""Accounts and their refresh tokens: the login aggregate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from origin.records import EmailTaken, RefreshTokenRecord, Rotation, UserRecord
from origin.store.database import Database, lock_row
from origin.store.tables import refresh_tokens, users


@dataclass(frozen=True)
class Users:
    db: Database

    async def create(
        self, user_id: str, email: str, password_hash: str, now: datetime
    ) -> UserRecord:
        """A new account; ``EmailTaken`` when one with this email (without case) exists."""
        values = {
            "id": user_id,
            "email": email,
            "email_key": email.lower(),
            "password_hash": password_hash,
            "storage_used_bytes": 0,
            "image_count": 0,
            "created_at": now,
        }
        if not await self.db.insert_new(users, values):
            raise EmailTaken(email)
        return UserRecord(user_id, email, password_hash, 0, 0, now)

    async def by_email(self, email: str) -> UserRecord | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(users.select().where(users.c.email_key == email.lower()))
            ).first()
        return _user(row) if row else None

    async def by_id(self, user_id: str) -> UserRecord | None:
        async with self.db.read() as conn:
            row = (await conn.execute(users.select().where(users.c.id == user_id))).first()
        return _user(row) if row else None

    async def set_public(self, user_id: str, public: bool) -> UserRecord | None:
        """Set the account's default for new uploads; the account as it now is."""
        async with self.db.write() as conn:
            await conn.execute(users.update().where(users.c.id == user_id).values(public=public))
            row = (await conn.execute(users.select().where(users.c.id == user_id))).first()
        return _user(row) if row else None

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
        successor. A spent token presented again revokes every token of its family, also
        when presentations race: the owner's row is locked first (PostgreSQL; SQLite's write
        transaction holds the database), so the rotations of one user's tokens run one at a
        time, each seeing what the one before committed — a second presentation of a token
        finds it spent, and a revocation finds the successor a racing rotation stored.
        """
        where = refresh_tokens.c.token_hash == token_hash
        async with self.db.write() as conn:
            owner = await conn.scalar(sa.select(refresh_tokens.c.user_id).where(where))
            if owner is None:
                return Rotation.INVALID, None
            await lock_row(conn, users, owner)
            row = (await conn.execute(refresh_tokens.select().where(where))).first()
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


def _user(row: sa.Row[Any]) -> UserRecord:
    return UserRecord(
        id=row.id,
        email=row.email,
        password_hash=row.password_hash,
        storage_used_bytes=int(row.storage_used_bytes),
        image_count=int(row.image_count),
        created_at=row.created_at,
        public=bool(row.public),
    )


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
