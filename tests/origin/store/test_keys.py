"""Signing keys (origin.store.keys), on an SQLite file and on PostgreSQL."""

from __future__ import annotations

from origin.records import SigningKeyRecord
from origin.store.keys import SigningKeys
from origin.store.users import Users
from tests.origin.store.records import NOW, make_user, new_id


async def test_signing_keys(users: Users, keys: SigningKeys) -> None:
    user_id = await make_user(users)
    key = SigningKeyRecord(new_id(), user_id, "s3cret", NOW)
    await keys.add(key)
    assert await keys.of_user(user_id) == [key]
    assert not await keys.delete(key.id, new_id())
    assert await keys.delete(key.id, user_id)
    assert await keys.of_user(user_id) == []
