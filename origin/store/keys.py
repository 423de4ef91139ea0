"""Users' URL signing keys (the admin API's ``/api/keys``; the origin reads them through
origin.lookup)."""

from __future__ import annotations

from dataclasses import dataclass

from origin.records import SigningKeyRecord
from origin.store.database import Database, count_of_user, lock_row
from origin.store.tables import signing_keys, users

# Keys one user may hold: a URL signed by none of them is checked against each (enough for a
# rotation's overlap and a key per app; more would multiply the work of every bad URL).
MAX_PER_USER = 10


class TooManyKeys(Exception):
    """Adding the key would pass ``MAX_PER_USER``."""


@dataclass(frozen=True)
class SigningKeys:
    db: Database

    async def add(self, key: SigningKeyRecord) -> None:
        """``TooManyKeys`` (nothing written) when the user holds ``MAX_PER_USER`` already."""
        async with self.db.write() as conn:
            await lock_row(conn, users, key.user_id)  # the bound: one add at a time
            if await count_of_user(conn, signing_keys, key.user_id) >= MAX_PER_USER:
                raise TooManyKeys(key.user_id)
            await conn.execute(
                signing_keys.insert().values(
                    id=key.id, user_id=key.user_id, secret=key.secret, created_at=key.created_at
                )
            )

    async def of_user(self, user_id: str) -> list[SigningKeyRecord]:
        """The user's keys, oldest first."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                signing_keys.select()
                .where(signing_keys.c.user_id == user_id)
                .order_by(signing_keys.c.created_at, signing_keys.c.id)
            )
            return [SigningKeyRecord(r.id, r.user_id, r.secret, r.created_at) for r in rows]

    async def delete(self, key_id: str, user_id: str) -> bool:
        """False when the user has no such key."""
        async with self.db.write() as conn:
            result = await conn.execute(
                signing_keys.delete()
                .where(signing_keys.c.id == key_id)
                .where(signing_keys.c.user_id == user_id)
            )
        return bool(result.rowcount == 1)
