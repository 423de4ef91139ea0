"""Object storage: one small protocol, a local folder and S3, chosen by ``STORAGE_TYPE``.

Keys are relative, slash-separated paths made by the service (``{user}/{image}/original.jpg``),
never from a client's filename; ``validate_key`` refuses anything that could escape the root.
``LocalStorage`` writes to a temporary file, fsyncs and renames, so a crash never leaves a
partial object under its final key. ``S3Storage`` makes one aiobotocore client in the
lifespan and bounds every call with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

import anyio.to_thread

from origin.errors import Unavailable
from origin.permissions import PRIVATE_FILE, make_private_dirs

T = TypeVar("T")

CHUNK_SIZE = 256 * 1024
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
TMP_DIR = ".tmp"


class ObjectMissing(LookupError):
    """No object is stored under the key."""


class StorageUnavailable(Unavailable):
    """The storage backend failed or did not answer in time (HTTP 503)."""


class StorageTimeout(StorageUnavailable):
    """The storage backend did not answer within its timeout."""


class NotModified(Exception):
    """A conditional read: the object still has the ETag asked with."""


class TooLarge(Exception):
    """An object larger than the reader's limit (its body is not read)."""


class InvalidKey(ValueError):
    """A key that could escape the storage root or is not one of ours."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: float  # unix seconds


class Blocking(Protocol):
    """Blocking reads and writes for code already running in a worker thread (a render
    job), so a cold request does not hop to another thread and back for each object."""

    def get_blocking(self, key: str) -> bytes: ...
    def put_blocking(self, key: str, data: bytes, *, durable: bool = True) -> None: ...


class Storage(Protocol):
    # Set for local files; None when every access must go through the event loop (S3).
    blocking: Blocking | None

    async def put(
        self, key: str, data: bytes, *, content_type: str | None = None, durable: bool = True
    ) -> None: ...
    async def get(self, key: str) -> bytes: ...
    def stream(self, key: str) -> AsyncIterator[bytes]: ...
    async def head(self, key: str) -> ObjectInfo | None: ...
    async def delete(self, key: str) -> None: ...
    async def delete_prefix(self, prefix: str) -> int: ...
    def objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


def validate_key(key: str, *, prefix: bool = False) -> str:
    """Return ``key`` if it is a safe relative key, else raise ``InvalidKey``.

    Refused: empty keys, a leading ``/``, backslashes, NUL and control characters, empty,
    ``.`` or ``..`` segments, and any character outside ``[A-Za-z0-9._-]`` in a segment.
    With ``prefix=True`` one trailing ``/`` is allowed (``user/image/``).
    """
    body = key[:-1] if prefix and key.endswith("/") else key
    if not body or len(key) > 512:
        raise InvalidKey("empty or too long key")
    for segment in body.split("/"):
        if segment in ("", ".", "..") or not _SEGMENT.fullmatch(segment) or segment == TMP_DIR:
            raise InvalidKey(f"unsafe key segment in {key!r}")
    return key


async def _in_thread(function: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(function, *args)


class LocalStorage:
    """Objects as files under ``root``; temporary files live in ``root/.tmp``. Files are
    created 0600 and folders 0700 (origin.permissions): only this user reads them."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.tmp = self.root / TMP_DIR
        make_private_dirs(self.tmp)
        self.blocking: Blocking | None = self
        self._inside = f"{self.root}{os.sep}"

    def path(self, key: str, *, prefix: bool = False) -> Path:
        validate_key(key, prefix=prefix)
        # os.path, not Path.resolve: the same lstat walk at half the cost (on the request path)
        real = os.path.realpath(os.path.join(self.root, key))
        if not real.startswith(self._inside) and real != str(self.root):
            raise InvalidKey(f"key {key!r} escapes the storage root")
        return Path(real)

    async def put(
        self, key: str, data: bytes, *, content_type: str | None = None, durable: bool = True
    ) -> None:
        await _in_thread(functools.partial(self.put_blocking, key, data, durable=durable))

    def put_blocking(self, key: str, data: bytes, *, durable: bool = True) -> None:
        final = self.path(key)
        tmp = self.tmp / f"{secrets.token_hex(8)}.part"
        try:
            make_private_dirs(final.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
            with open(fd, "wb") as file:
                file.write(data)
                file.flush()
                if durable:
                    os.fsync(file.fileno())
            os.replace(tmp, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StorageUnavailable("object storage could not write the object") from exc
        if durable:
            _fsync_dir(final.parent)

    async def get(self, key: str) -> bytes:
        return await _in_thread(self.get_blocking, key)

    def get_blocking(self, key: str) -> bytes:
        path = self.path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        except OSError as exc:
            raise StorageUnavailable("object storage could not read the object") from exc

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        path = self.path(key)
        try:
            file = await _in_thread(_open_binary, path)
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        try:
            while chunk := await _in_thread(file.read, CHUNK_SIZE):
                yield chunk
        finally:
            file.close()

    async def head(self, key: str) -> ObjectInfo | None:
        path = self.path(key)
        try:
            stat = await _in_thread(path.stat)
        except FileNotFoundError:
            return None
        return ObjectInfo(key, stat.st_size, stat.st_mtime)

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await _in_thread(self.path(key).unlink)

    async def delete_prefix(self, prefix: str) -> int:
        path = self.path(prefix, prefix=True)
        keys = [info.key async for info in self.objects(prefix)]
        if prefix.endswith("/") and path.is_dir():
            await _in_thread(lambda: shutil.rmtree(path, ignore_errors=True))
        else:
            for key in keys:
                await self.delete(key)
        return len(keys)

    async def objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        if prefix:
            validate_key(prefix, prefix=True)
        for info in await _in_thread(self._walk, prefix):
            yield info

    def _walk(self, prefix: str) -> list[ObjectInfo]:
        """The objects whose key starts with ``prefix``, walking only the folder that holds
        them (``a/b/`` and ``a/b`` walk ``a/b`` and ``a``), never the rest of the tree."""
        folder = prefix.rpartition("/")[0]
        top = self.path(folder) if folder else self.root
        found = []
        for directory, subdirs, files in os.walk(top):
            if Path(directory) == self.root and TMP_DIR in subdirs:
                subdirs.remove(TMP_DIR)
            for name in files:
                path = Path(directory, name)
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    with contextlib.suppress(FileNotFoundError):
                        stat = path.stat()
                        found.append(ObjectInfo(key, stat.st_size, stat.st_mtime))
        return sorted(found, key=lambda info: info.key)

    def temporary_files(self) -> list[Path]:
        """Leftovers of interrupted writes (removed by ``imgorigin gc``)."""
        return sorted(self.tmp.glob("*.part"))

    async def ping(self) -> None:
        if not await _in_thread(os.access, self.root, os.W_OK):
            raise StorageUnavailable("storage root is not writable")

    async def close(self) -> None:
        return None


def _open_binary(path: Path) -> BinaryIO:
    return path.open("rb")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3Storage:
    """Objects in an S3-compatible bucket through one aiobotocore client."""

    def __init__(self, client: Any, bucket: str, timeout: float) -> None:
        self.blocking: Blocking | None = None  # every call goes through the event loop
        self.client = client
        self.bucket = bucket
        self.timeout = timeout

    @classmethod
    async def open(
        cls,
        stack: AsyncExitStack,
        *,
        bucket: str,
        endpoint_url: str | None,
        region: str | None,
        access_key_id: str | None,
        secret_access_key: str | None,
        timeout_seconds: float,
    ) -> S3Storage:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        config = AioConfig(
            connect_timeout=timeout_seconds,
            read_timeout=timeout_seconds,
            retries={"max_attempts": 2, "mode": "standard"},
            max_pool_connections=50,
        )
        client = await stack.enter_async_context(
            get_session().create_client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region or "us-east-1",
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                config=config,
            )
        )
        return cls(client, bucket, timeout_seconds)

    async def _call(self, operation: Awaitable[T]) -> T:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            async with asyncio.timeout(self.timeout):
                return await operation
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise ObjectMissing(code) from None
            if code in ("304", "NotModified"):
                raise NotModified(code) from None
            raise StorageUnavailable("object storage refused the request") from exc
        except TimeoutError as exc:
            raise StorageTimeout("object storage did not answer in time") from exc
        except (BotoCoreError, OSError) as exc:
            raise StorageUnavailable("object storage did not answer in time") from exc

    async def put(
        self, key: str, data: bytes, *, content_type: str | None = None, durable: bool = True
    ) -> None:
        del durable  # an acknowledged S3 PUT is durable anyway
        validate_key(key)
        extra = {"ContentType": content_type} if content_type else {}
        await self._call(self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **extra))

    async def get(self, key: str) -> bytes:
        validate_key(key)

        async def read() -> bytes:
            response = await self.client.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as body:
                data: bytes = await body.read()
                return data

        return await self._call(read())

    async def get_if_changed(
        self, key: str, etag: str | None, max_bytes: int
    ) -> tuple[bytes, str | None]:
        """The object's bytes and ETag (``key`` as the bucket names it: a remote source's
        own keys). NotModified when it still has ``etag``, TooLarge past ``max_bytes``;
        ObjectMissing, StorageUnavailable (StorageTimeout) as ``get``."""
        extra = {} if etag is None else {"IfNoneMatch": etag}

        async def read() -> tuple[bytes, str | None]:
            response = await self.client.get_object(Bucket=self.bucket, Key=key, **extra)
            async with response["Body"] as body:
                if int(response.get("ContentLength") or 0) > max_bytes:
                    raise TooLarge(key)
                data: bytes = await body.read()
                return data, response.get("ETag")

        return await self._call(read())

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        validate_key(key)
        response = await self._call(self.client.get_object(Bucket=self.bucket, Key=key))
        async with response["Body"] as body:
            while True:
                chunk = await self._call(body.read(CHUNK_SIZE))
                if not chunk:
                    break
                yield chunk

    async def head(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        try:
            response = await self._call(self.client.head_object(Bucket=self.bucket, Key=key))
        except ObjectMissing:
            return None
        return ObjectInfo(key, int(response["ContentLength"]), response["LastModified"].timestamp())

    async def delete(self, key: str) -> None:
        validate_key(key)
        await self._call(self.client.delete_object(Bucket=self.bucket, Key=key))

    async def delete_prefix(self, prefix: str) -> int:
        validate_key(prefix, prefix=True)
        batch: list[str] = []
        count = 0
        async for info in self.objects(prefix):
            batch.append(info.key)
            if len(batch) == 1000:
                count += await self._delete_batch(batch)
                batch = []
        if batch:
            count += await self._delete_batch(batch)
        return count

    async def _delete_batch(self, keys: list[str]) -> int:
        await self._call(
            self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
            )
        )
        return len(keys)

    async def objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = await self._call(
                self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, **extra)
            )
            for item in page.get("Contents", []):
                yield ObjectInfo(item["Key"], int(item["Size"]), item["LastModified"].timestamp())
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    async def ping(self) -> None:
        await self._call(self.client.head_bucket(Bucket=self.bucket))

    async def close(self) -> None:
        return None  # the client is closed by the exit stack that opened it


async def open_storage(stack: AsyncExitStack, settings: Any) -> Storage:
    """The storage ``settings.storage_type`` names, with its clients tied to ``stack``."""
    if settings.storage_type == "s3":
        return await S3Storage.open(
            stack,
            bucket=settings.storage_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.aws_access_key_id,
            secret_access_key=settings.aws_secret_access_key,
            timeout_seconds=settings.storage_timeout_seconds,
        )
    return LocalStorage(settings.storage_path)
