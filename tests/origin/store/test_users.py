"""Accounts and refresh tokens (origin.store.users), on an SQLite file and on PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import pytest

from origin.records import EmailTaken, RefreshTokenRecord, Rotation
from origin.store.users import Users
from tests.origin.store.records import NOW, make_user, new_id


async def test_users_unique_regardless_of_case(users: Users) -> None:
    user_id = await make_user(users, "Ann@Example.com")
    with pytest.raises(EmailTaken):
        await users.create(new_id(), "ann@EXAMPLE.com", "hash", NOW)
    found = await users.by_email("ANN@example.COM")
    assert found is not None and found.id == user_id and found.email == "Ann@Example.com"
    assert found.created_at == NOW
    assert await users.by_id(user_id) == found
    assert await users.by_email("nobody@example.com") is None


def token(user_id: str, family: str, minutes: int = 60) -> RefreshTokenRecord:
    return RefreshTokenRecord(
        new_id(), user_id, family, secrets.token_hex(32), NOW, NOW + timedelta(minutes=minutes)
    )


async def test_refresh_rotation_and_reuse(users: Users) -> None:
    user_id = await make_user(users)
    first = token(user_id, new_id())
    await users.add_refresh_token(first)
    outcome, second = await users.rotate_refresh_token(first.token_hash, token("x", "y"), NOW)
    assert outcome is Rotation.ROTATED and second is not None
    assert (second.user_id, second.family_id) == (user_id, first.family_id)
    # The spent token comes back: the whole family is revoked, the successor too.
    outcome, _ = await users.rotate_refresh_token(first.token_hash, token("x", "y"), NOW)
    assert outcome is Rotation.REUSED
    outcome, _ = await users.rotate_refresh_token(second.token_hash, token("x", "y"), NOW)
    assert outcome is Rotation.INVALID


async def test_refresh_expiry_and_revoke(users: Users) -> None:
    user_id = await make_user(users)
    old = token(user_id, new_id(), minutes=-1)
    await users.add_refresh_token(old)
    assert (await users.rotate_refresh_token(old.token_hash, token("x", "y"), NOW))[
        0
    ] is Rotation.INVALID
    live = token(user_id, new_id())
    await users.add_refresh_token(live)
    assert await users.revoke_refresh_token(live.token_hash, NOW)
    assert not await users.revoke_refresh_token(live.token_hash, NOW)
    assert (await users.rotate_refresh_token(live.token_hash, token("x", "y"), NOW))[
        0
    ] is Rotation.INVALID
    assert (await users.rotate_refresh_token("0" * 64, token("x", "y"), NOW))[0] is Rotation.INVALID


async def test_concurrent_rotation_succeeds_once(users: Users) -> None:
    user_id = await make_user(users)
    first = token(user_id, new_id())
    await users.add_refresh_token(first)
    outcomes = await asyncio.gather(
        *(users.rotate_refresh_token(first.token_hash, token("x", "y"), NOW) for _ in range(5))
    )
    assert [o for o, _ in outcomes].count(Rotation.ROTATED) == 1


async def test_a_token_presented_twice_at_once_revokes_its_family(users: Users) -> None:
    """Two parties present one token at the same moment: one rotates it, the other has
    presented a spent token — the family is revoked, the winner's successor with it, as when
    the token comes back later (on PostgreSQL the loser used to be INVALID only, and the
    successor lived on). Ten rounds: the race is not the same each time."""
    user_id = await make_user(users)
    for _ in range(10):
        first = token(user_id, new_id())
        await users.add_refresh_token(first)
        outcomes = await asyncio.gather(
            *(users.rotate_refresh_token(first.token_hash, token("x", "y"), NOW) for _ in "ab")
        )
        assert sorted(o.value for o, _ in outcomes) == ["reused", "rotated"]
        (successor,) = (s for _, s in outcomes if s is not None)
        outcome, _ = await users.rotate_refresh_token(successor.token_hash, token("x", "y"), NOW)
        assert outcome is Rotation.INVALID


async def test_a_replay_racing_the_successors_rotation_revokes_the_newest_too(
    users: Users,
) -> None:
    """t1 was rotated to t2. A thief replays t1 while the owner rotates t2 to t3: whatever
    the order, t3 ends revoked with its family (on PostgreSQL the revocation could miss t3,
    committed while it waited). Ten rounds."""
    user_id = await make_user(users)
    for _ in range(10):
        first = token(user_id, new_id())
        await users.add_refresh_token(first)
        _, second = await users.rotate_refresh_token(first.token_hash, token("x", "y"), NOW)
        assert second is not None
        (_, third), (replayed, _) = await asyncio.gather(
            users.rotate_refresh_token(second.token_hash, token("x", "y"), NOW),
            users.rotate_refresh_token(first.token_hash, token("x", "y"), NOW),
        )
        assert replayed is Rotation.REUSED
        if third is not None:
            outcome, _ = await users.rotate_refresh_token(third.token_hash, token("x", "y"), NOW)
            assert outcome is Rotation.INVALID
