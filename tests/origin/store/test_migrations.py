"""Migrations (origin.store.migrations), on an SQLite file and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys

import sqlalchemy as sa

from origin.store.database import Database
from origin.store.migrations import LATEST, MIGRATIONS, current_version, migrate


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
