"""What imgorigin writes is readable by its own user only: files 0600, folders 0700.

Checked by stat() after real writes, under a umask of 0 so that nothing relies on the
umask being strict (a service manager or container may run with any).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from origin.settings import Settings
from origin.store.database import Database
from origin.store.migrations import migrate
from origin.store.objects import LocalStorage
from origin.store.users import Users


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("permissive_umask")
async def test_stored_objects_and_their_folders(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "data" / "storage")
    await storage.put("u1/img1/original.jpg", b"original")
    await storage.put("u1/img1/derived/a.webp", b"derived", durable=False)
    storage.blocking.put_blocking("u1/img1/work/1024.jpg", b"work")  # type: ignore[union-attr]
    await storage.put("u1/img1/original.jpg", b"replaced")  # a replaced object too
    root = tmp_path / "data" / "storage"
    files = [p for p in root.rglob("*") if p.is_file()]
    folders = [tmp_path / "data", root, *(p for p in root.rglob("*") if p.is_dir())]
    assert len(files) == 3 and len(folders) == 7  # data, storage, .tmp, u1, img1, derived, work
    assert {str(p.relative_to(tmp_path)): mode(p) for p in files} == {
        str(p.relative_to(tmp_path)): 0o600 for p in files
    }
    assert {str(p.relative_to(tmp_path)): mode(p) for p in folders} == {
        str(p.relative_to(tmp_path)): 0o700 for p in folders
    }


@pytest.mark.usefixtures("permissive_umask")
async def test_sqlite_database_with_its_wal_and_shm(tmp_path: Path) -> None:
    path = tmp_path / "data" / "imgorigin.db"
    db = Database(f"sqlite:///{path}")
    try:
        await migrate(db)
        await Users(db).create("u1", "me@example.com", "hash", datetime.now(UTC))
        names = sorted(p.name for p in path.parent.iterdir())
        assert names == ["imgorigin.db", "imgorigin.db-shm", "imgorigin.db-wal"]
        assert {name: mode(path.parent / name) for name in names} == dict.fromkeys(names, 0o600)
        assert mode(path.parent) == 0o700
    finally:
        await db.close()


@pytest.mark.usefixtures("permissive_umask")
def test_development_secrets_and_their_folder(tmp_path: Path) -> None:
    secrets_file = tmp_path / "data" / "secrets.json"
    Settings.from_environ({"SECRETS_FILE": str(secrets_file)}, announce=lambda _: None)
    assert mode(secrets_file) == 0o600 and mode(secrets_file.parent) == 0o700


async def test_existing_folders_keep_their_mode(tmp_path: Path) -> None:
    """An operator's own folder (a mounted volume, say) is used as it is, never chmod-ed."""
    root = tmp_path / "volume"
    root.mkdir()
    root.chmod(0o750)
    storage = LocalStorage(root)
    await storage.put("u/i/original.png", b"x")
    assert mode(root) == 0o750 and mode(root / "u") == 0o700
    assert mode(root / "u" / "i" / "original.png") == 0o600
