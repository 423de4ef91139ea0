"""The metadata store's contract, run unchanged on an SQLite file and on PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from origin.records import (
    DerivativeRecord,
    EmailTaken,
    ImageRecord,
    QuotaWouldBeExceeded,
    RefreshTokenRecord,
    Rotation,
    SigningKeyRecord,
)
from origin.store.database import Database
from origin.store.migrations import LATEST, MIGRATIONS, current_version, migrate
from origin.store.repository import Repository
from origin.store.tables import transformed_images

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


def new_id() -> str:
    return secrets.token_hex(16)


def image_for(user_id: str, size: int = 100, at: datetime = NOW) -> ImageRecord:
    image_id = new_id()
    return ImageRecord(
        id=image_id,
        user_id=user_id,
        original_filename="cat.jpg",
        mime_type="image/jpeg",
        format="jpeg",
        size_bytes=size,
        width=40,
        height=30,
        storage_key=f"{user_id}/{image_id}/original.jpg",
        content_hash="ab" * 32,
        created_at=at,
        metadata={"Make": "Test"},
    )


@pytest.fixture
async def repo(database: Database) -> Repository:
    return Repository(database)


async def make_user(repo: Repository, email: str = "Ann@Example.com") -> str:
    user_id = new_id()
    await repo.create_user(user_id, email, "hash", NOW)
    return user_id


async def test_migrations_are_idempotent(database: Database) -> None:
    assert await current_version(database) == LATEST
    assert await migrate(database) == []
    async with database.read() as conn:
        tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        indexes = await conn.run_sync(lambda c: sa.inspect(c).get_indexes("images"))
    assert {
        "users",
        "images",
        "transformed_images",
        "refresh_tokens",
        "signing_keys",
        "schema_version",
    } <= tables
    assert any(ix["column_names"] == ["user_id", "created_at"] for ix in indexes)


async def test_users_unique_regardless_of_case(repo: Repository) -> None:
    user_id = await make_user(repo, "Ann@Example.com")
    with pytest.raises(EmailTaken):
        await repo.create_user(new_id(), "ann@EXAMPLE.com", "hash", NOW)
    found = await repo.user_by_email("ANN@example.COM")
    assert found is not None and found.id == user_id and found.email == "Ann@Example.com"
    assert found.created_at == NOW
    assert await repo.user_by_id(user_id) == found
    assert await repo.user_by_email("nobody@example.com") is None


async def test_image_row_and_usage_in_one_transaction(repo: Repository) -> None:
    user_id = await make_user(repo)
    image = image_for(user_id, size=600)
    await repo.add_image(image, quota_bytes=1000)
    user = await repo.user_by_id(user_id)
    assert user is not None and (user.storage_used_bytes, user.image_count) == (600, 1)
    assert await repo.image(image.id) == image
    assert (await repo.image(image.id)).metadata == {"Make": "Test"}  # type: ignore[union-attr]
    assert await repo.image(image.id, user_id=new_id()) is None
    with pytest.raises(QuotaWouldBeExceeded):
        await repo.add_image(image_for(user_id, size=401), quota_bytes=1000)
    user = await repo.user_by_id(user_id)
    assert user is not None and (user.storage_used_bytes, user.image_count) == (600, 1)
    _, total = await repo.list_images(user_id, offset=0, limit=10)
    assert total == 1


async def test_concurrent_adds_never_exceed_quota(repo: Repository) -> None:
    user_id = await make_user(repo)
    results = await asyncio.gather(
        *(repo.add_image(image_for(user_id, size=300), quota_bytes=1000) for _ in range(8)),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 3
    assert all(r is None or isinstance(r, QuotaWouldBeExceeded) for r in results)
    user = await repo.user_by_id(user_id)
    assert user is not None and (user.storage_used_bytes, user.image_count) == (900, 3)


async def test_listing_newest_first_and_paged(repo: Repository) -> None:
    user_id = await make_user(repo)
    other = await make_user(repo, "other@example.com")
    added = []
    for i in range(5):  # three in the same second keep their upload order
        at = NOW + timedelta(seconds=min(i, 2))
        image = image_for(user_id, at=at)
        await repo.add_image(image, quota_bytes=10**9)
        added.append(image.id)
    await repo.add_image(image_for(other), quota_bytes=10**9)
    page1, total = await repo.list_images(user_id, offset=0, limit=2)
    page2, _ = await repo.list_images(user_id, offset=2, limit=2)
    page3, _ = await repo.list_images(user_id, offset=4, limit=2)
    assert total == 5
    assert [i.id for i in page1 + page2 + page3] == list(reversed(added))


async def test_delete_removes_rows_and_usage(repo: Repository) -> None:
    user_id = await make_user(repo)
    image = image_for(user_id, size=250)
    await repo.add_image(image, quota_bytes=10**9)
    derivative = DerivativeRecord(
        image.id, "v1", f"{user_id}/{image.id}/derived/v1.webp", "image/webp", 10, 3, 2, NOW
    )
    assert await repo.add_derivative(derivative)
    assert not await repo.add_derivative(derivative)  # recorded once
    assert await repo.derivative(image.id, "v1") == derivative
    assert await repo.referenced_keys() == {image.storage_key, derivative.storage_key}
    assert await repo.delete_image(image.id, new_id()) is None  # not the owner
    removed = await repo.delete_image(image.id, user_id)
    assert removed == (image, [derivative.storage_key])
    assert await repo.image(image.id) is None
    assert await repo.derivative(image.id, "v1") is None
    assert await repo.delete_image(image.id, user_id) is None
    user = await repo.user_by_id(user_id)
    assert user is not None and (user.storage_used_bytes, user.image_count) == (0, 0)
    assert await repo.referenced_keys() == set()


async def test_derivative_of_deleted_image_is_not_recorded(repo: Repository) -> None:
    gone = DerivativeRecord(new_id(), "v", "u/i/derived/v.png", "image/png", 1, 1, 1, NOW)
    assert not await repo.add_derivative(gone)


def token(user_id: str, family: str, minutes: int = 60) -> RefreshTokenRecord:
    return RefreshTokenRecord(
        new_id(), user_id, family, secrets.token_hex(32), NOW, NOW + timedelta(minutes=minutes)
    )


async def test_refresh_rotation_and_reuse(repo: Repository) -> None:
    user_id = await make_user(repo)
    first = token(user_id, new_id())
    await repo.add_refresh_token(first)
    outcome, second = await repo.rotate_refresh_token(first.token_hash, token("x", "y"), NOW)
    assert outcome is Rotation.ROTATED and second is not None
    assert (second.user_id, second.family_id) == (user_id, first.family_id)
    # The spent token comes back: the whole family is revoked, the successor too.
    outcome, _ = await repo.rotate_refresh_token(first.token_hash, token("x", "y"), NOW)
    assert outcome is Rotation.REUSED
    outcome, _ = await repo.rotate_refresh_token(second.token_hash, token("x", "y"), NOW)
    assert outcome is Rotation.INVALID


async def test_refresh_expiry_and_revoke(repo: Repository) -> None:
    user_id = await make_user(repo)
    old = token(user_id, new_id(), minutes=-1)
    await repo.add_refresh_token(old)
    assert (await repo.rotate_refresh_token(old.token_hash, token("x", "y"), NOW))[
        0
    ] is Rotation.INVALID
    live = token(user_id, new_id())
    await repo.add_refresh_token(live)
    assert await repo.revoke_refresh_token(live.token_hash, NOW)
    assert not await repo.revoke_refresh_token(live.token_hash, NOW)
    assert (await repo.rotate_refresh_token(live.token_hash, token("x", "y"), NOW))[
        0
    ] is Rotation.INVALID
    assert (await repo.rotate_refresh_token("0" * 64, token("x", "y"), NOW))[0] is Rotation.INVALID


async def test_concurrent_rotation_succeeds_once(repo: Repository) -> None:
    user_id = await make_user(repo)
    first = token(user_id, new_id())
    await repo.add_refresh_token(first)
    outcomes = await asyncio.gather(
        *(repo.rotate_refresh_token(first.token_hash, token("x", "y"), NOW) for _ in range(5))
    )
    assert [o for o, _ in outcomes].count(Rotation.ROTATED) == 1


async def test_signing_keys(repo: Repository) -> None:
    user_id = await make_user(repo)
    key = SigningKeyRecord(new_id(), user_id, "s3cret", NOW)
    await repo.add_signing_key(key)
    assert await repo.signing_keys(user_id) == [key]
    assert not await repo.delete_signing_key(key.id, new_id())
    assert await repo.delete_signing_key(key.id, user_id)
    assert await repo.signing_keys(user_id) == []


MIGRATE = "import os, sys; from imgorigin.cli import main; sys.exit(main(['migrate']))"


def test_two_processes_migrate_at_once(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": database_url,
        "SECRETS_FILE": str(tmp_path / "s.json"),
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=60) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], outputs
    said = sorted(out.strip() for out, _ in outputs)
    every = ", ".join(str(version) for version in sorted(v for v, _, _ in MIGRATIONS))
    assert said == [f"migrations applied: {every}", "schema is up to date", "schema is up to date"]


# ---- the derivative index (origin.store.derivative_index): one statement, straight to the driver


async def test_direct_rows_are_the_engines_rows(repo: Repository) -> None:
    """A row written straight to the driver reads back equal through SQLAlchemy and the
    other way round, times included (an aware time in another zone is stored as UTC)."""
    user_id = await make_user(repo)
    image = image_for(user_id)
    await repo.add_image(image, quota_bytes=10**9)
    at = datetime(2026, 11, 29, 14, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    direct = DerivativeRecord(image.id, "direct", "u/i/derived/d.jpg", "image/jpeg", 9, 4, 3, at)
    assert await repo.add_derivative(direct)
    read = (await repo.derivatives(image.id, ["direct"]))["direct"]  # SQLAlchemy's read
    assert read == direct and read.created_at.tzinfo == UTC
    by_core = DerivativeRecord(image.id, "core", "u/i/derived/core.png", "image/png", 7, 2, 1, NOW)
    assert await repo._insert_new(transformed_images, vars(by_core))  # SQLAlchemy's write
    assert await repo.derivative(image.id, "core") == by_core


async def test_direct_sees_what_transactions_commit(repo: Repository) -> None:
    """The direct path has its own connection(s): a delete committed through the engine shows at
    once, and a row it wrote is gone with its image (the foreign key cascades)."""
    user_id = await make_user(repo)
    image = image_for(user_id)
    await repo.add_image(image, quota_bytes=10**9)
    record = DerivativeRecord(image.id, "v", "u/i/derived/v.gif", "image/gif", 5, 2, 2, NOW)
    assert await repo.add_derivative(record)
    assert await repo.delete_image(image.id, user_id) == (image, [record.storage_key])
    assert await repo.derivative(image.id, "v") is None
    assert not await repo.add_derivative(record)  # its image is gone: refused, nothing left
    async with repo.db.read() as conn:
        count = await conn.scalar(sa.select(sa.func.count()).select_from(transformed_images))
    assert count == 0


async def test_direct_records_a_derivative_once_under_concurrency(repo: Repository) -> None:
    user_id = await make_user(repo)
    image = image_for(user_id)
    await repo.add_image(image, quota_bytes=10**9)
    record = DerivativeRecord(image.id, "same", "u/i/derived/s.jpg", "image/jpeg", 5, 2, 2, NOW)
    outcomes = await asyncio.gather(*(repo.add_derivative(record) for _ in range(12)))
    assert outcomes.count(True) == 1
    assert await repo.derivative(image.id, "same") == record
