"""The storage contract, run unchanged against a local folder and S3 (moto server over HTTP)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from origin.settings import Settings
from origin.store.objects import (
    InvalidKey,
    LocalStorage,
    ObjectMissing,
    Storage,
    open_storage,
    validate_key,
)


@pytest.fixture
async def storage(storage_env: dict[str, str], make_settings) -> AsyncIterator[Storage]:  # type: ignore[no-untyped-def]
    settings: Settings = make_settings(**storage_env)
    async with AsyncExitStack() as stack:
        yield await open_storage(stack, settings)


async def test_put_get_head_delete(storage: Storage) -> None:
    key = "u1/img1/original.jpg"
    assert await storage.head(key) is None
    await storage.put(key, b"hello bytes", content_type="image/jpeg")
    assert await storage.get(key) == b"hello bytes"
    info = await storage.head(key)
    assert info is not None and info.size == 11 and info.key == key
    assert info.modified == pytest.approx(time.time(), abs=120)
    await storage.delete(key)
    assert await storage.head(key) is None
    await storage.delete(key)  # idempotent


async def test_overwrite_replaces_whole_object(storage: Storage) -> None:
    await storage.put("u/i/derived/a.webp", b"x" * 1000)
    await storage.put("u/i/derived/a.webp", b"short")
    assert await storage.get("u/i/derived/a.webp") == b"short"


async def test_get_missing_raises(storage: Storage) -> None:
    with pytest.raises(ObjectMissing):
        await storage.get("nobody/none/original.png")


async def test_stream_in_chunks(storage: Storage) -> None:
    data = os.urandom(700_000)
    await storage.put("u/i/original.png", data)
    chunks = [chunk async for chunk in storage.stream("u/i/original.png")]
    assert b"".join(chunks) == data
    assert len(chunks) >= 2


async def test_stream_missing_raises(storage: Storage) -> None:
    with pytest.raises(ObjectMissing):
        async for _ in storage.stream("u/none/original.png"):
            pass


async def test_objects_and_delete_prefix(storage: Storage) -> None:
    for key in ["a/1/original.jpg", "a/1/derived/x.webp", "a/2/original.png", "b/1/original.gif"]:
        await storage.put(key, key.encode())
    listed = sorted([info.key async for info in storage.objects()])
    assert listed == [
        "a/1/derived/x.webp",
        "a/1/original.jpg",
        "a/2/original.png",
        "b/1/original.gif",
    ]
    assert [i.key async for i in storage.objects("a/1/")] == [
        "a/1/derived/x.webp",
        "a/1/original.jpg",
    ]
    assert await storage.delete_prefix("a/1/") == 2
    assert sorted([info.key async for info in storage.objects()]) == [
        "a/2/original.png",
        "b/1/original.gif",
    ]
    assert await storage.get("a/2/original.png") == b"a/2/original.png"


async def test_ping(storage: Storage) -> None:
    await storage.ping()


@pytest.mark.parametrize(
    "key",
    [
        "",
        "../etc/passwd",
        "/abs/key",
        "a/../../b",
        "a\\b",
        "a\x00b",
        "a//b",
        "./a",
        "a/./b",
        "a/..",
        "..",
        ".tmp/x.part",
        "sp ace/x",
        "a/b\n",
        "ü/x",
    ],
)
async def test_unsafe_keys_refused(storage: Storage, key: str) -> None:
    with pytest.raises(InvalidKey):
        await storage.put(key, b"x")
    with pytest.raises(InvalidKey):
        await storage.get(key)
    with pytest.raises(InvalidKey):
        await storage.delete(key)


def test_validate_key_accepts_ours() -> None:
    assert validate_key("0123abcd/89ef/derived/9f86d081.webp")
    assert validate_key("user/image/", prefix=True)


async def test_local_storage_stays_inside_root(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    root = tmp_path / "root"
    storage = LocalStorage(root)
    (root / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(InvalidKey):
        await storage.put("link/escape.jpg", b"x")
    assert not (tmp_path / "outside" / "escape.jpg").exists()


WRITER = """
import asyncio, sys
from pathlib import Path
from origin.store.objects import LocalStorage
asyncio.run(LocalStorage(Path(sys.argv[1])).put("u/i/original.png", b"x" * 400_000_000))
"""


def test_killed_writer_leaves_no_partial_object(tmp_path: Path) -> None:
    """SIGKILL in the middle of a write: no object under the final key, only a temp file."""
    root = tmp_path / "root"
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(root)])
    tmp_dir = root / ".tmp"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        parts = list(tmp_dir.glob("*.part")) if tmp_dir.exists() else []
        if parts and parts[0].stat().st_size > 0:
            break
        time.sleep(0.001)
    else:
        process.kill()
        pytest.fail("the writer never started writing")
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert process.returncode == -signal.SIGKILL
    assert not (root / "u" / "i" / "original.png").exists()
    leftovers = LocalStorage(root).temporary_files()
    assert leftovers and all(p.stat().st_size < 400_000_000 for p in leftovers)


class DirectoryOpens:
    """The kernel's own record (inotify ``IN_OPEN``) of which watched folders were opened,
    themselves or anything in them: what a directory walk cannot hide."""

    IN_OPEN, IN_NONBLOCK = 0x20, 0o4000

    def __init__(self, folders: list[Path]) -> None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(self.IN_NONBLOCK)
        assert self.fd >= 0
        self.names = {}
        for folder in folders:
            wd = libc.inotify_add_watch(self.fd, str(folder).encode(), self.IN_OPEN)
            assert wd >= 0
            self.names[wd] = folder.name

    def opened(self) -> list[str]:
        import struct

        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        seen, offset = [], 0
        while offset < len(data):
            wd, _mask, _cookie, length = struct.unpack_from("iIII", data, offset)
            seen.append(self.names[wd])
            offset += 16 + length
        return seen

    def close(self) -> None:
        os.close(self.fd)


async def test_local_delete_prefix_walks_only_the_prefix(tmp_path: Path) -> None:
    """Deleting one image must not read any other image's or user's folder (the old code
    walked the whole storage tree on every delete)."""
    storage = LocalStorage(tmp_path / "root")
    for key in ["a/1/original.jpg", "a/1/derived/x.webp", "a/2/original.png", "b/1/original.gif"]:
        await storage.put(key, key.encode())
    watch = DirectoryOpens([tmp_path / "root" / "a" / "2", tmp_path / "root" / "b"])
    try:
        assert watch.opened() == []
        assert await storage.delete_prefix("a/1/") == 2
        assert [i.key async for i in storage.objects("a/1/")] == []
        assert watch.opened() == []  # neither a/2 nor b/ (or anything in them) was opened
        assert [i.key async for i in storage.objects("a/")] == ["a/2/original.png"]
        assert "2" in watch.opened()  # the watch does see a walk that enters a/2
    finally:
        watch.close()
    assert await storage.get("b/1/original.gif") == b"b/1/original.gif"
    assert not (tmp_path / "root" / "a" / "1").exists()
