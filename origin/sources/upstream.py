"""One read of a remote object, conditional when validators are known.

- ``http`` sources go through the guarded fetcher (origin.fetch): the source's host (or
  hosts) and port, its timeouts and byte limit; its headers go to its own origin only,
  never after a redirect to another host; ``If-None-Match`` / ``If-Modified-Since`` when
  the cache holds the object.
- ``s3`` sources are read with their own client (endpoint, region, credentials) and only
  ever read: ``GetObject`` with ``IfNoneMatch``.

The answer is ``Read``: new bytes with their validators, or "not modified". The errors are
the fetcher's: SourceMissing (the object does not exist), SourceUnavailable, SourceTimeout,
PayloadTooLarge.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from origin.errors import PayloadTooLarge, SourceMissing, SourceTimeout, SourceUnavailable
from origin.fetch.client import Limits, fetch
from origin.fetch.guard import Policy
from origin.settings import Settings
from origin.sources.config import Source
from origin.sources.paths import upstream_location
from origin.store.objects import S3Storage

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Read:
    body: bytes | None  # None: the kept bytes are current (a 304)
    etag: str | None
    last_modified: str | None


class Upstream:
    """Reads objects from the configured sources (S3 clients opened once, in ``open``)."""

    def __init__(self, settings: Settings, s3: Mapping[str, Any]) -> None:
        self.settings = settings
        self.s3 = s3  # source name → its aiobotocore client

    @classmethod
    async def open(cls, settings: Settings, stack: AsyncExitStack) -> Upstream:
        clients = {}
        for source in settings.sources.values():
            if source.type == "s3":
                storage = await S3Storage.open(
                    stack,
                    bucket=source.bucket or "",
                    endpoint_url=source.endpoint_url,
                    region=source.region,
                    access_key_id=source.access_key_id,
                    secret_access_key=source.secret_access_key,
                    timeout_seconds=source.timeout,
                )
                clients[source.name] = storage.client
        return cls(settings, clients)

    async def read(
        self, source: Source, key: str, etag: str | None, last_modified: str | None
    ) -> Read:
        location = upstream_location(source, key)
        if source.type == "s3":
            return await self._s3(source, location, etag)
        return await self._http(source, location, etag, last_modified)

    async def _http(
        self, source: Source, url: str, etag: str | None, last_modified: str | None
    ) -> Read:
        headers = dict(source.headers)
        if etag is not None:
            headers["If-None-Match"] = etag
        elif last_modified is not None:
            headers["If-Modified-Since"] = last_modified
        fetched = await fetch(url, self._policy(source, url), self._limits(source), headers=headers)
        if fetched.status == 304:
            return Read(None, fetched.etag or etag, fetched.last_modified or last_modified)
        return Read(fetched.body, fetched.etag, fetched.last_modified)

    def _policy(self, source: Source, url: str) -> Policy:
        """The source's own host(s) and port; a redirect may go to another public host on the
        usual ports (the source's headers are not sent there)."""
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        return Policy(
            ports=frozenset({80, 443, port}),
            private_hosts=self.settings.fetch_private_hosts,
            allow_loopback=self.settings.fetch_allow_loopback_for_tests,
        )

    @staticmethod
    def _limits(source: Source) -> Limits:
        return Limits(source.connect_timeout, source.timeout, source.max_bytes)

    async def _s3(self, source: Source, key: str, etag: str | None) -> Read:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.s3[source.name]
        extra = {} if etag is None else {"IfNoneMatch": etag}
        try:
            async with asyncio.timeout(source.timeout):
                response = await client.get_object(Bucket=source.bucket, Key=key, **extra)
                if int(response.get("ContentLength") or 0) > source.max_bytes:
                    response["Body"].close()
                    raise PayloadTooLarge(
                        f"the source is larger than the {source.max_bytes}-byte limit"
                    )
                async with response["Body"] as stream:
                    body: bytes = await stream.read()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("304", "NotModified"):
                return Read(None, etag, None)
            if code in ("NoSuchKey", "404", "NotFound"):
                raise SourceMissing("the bucket has no such object") from None
            raise SourceUnavailable("the source bucket refused the request") from None
        except TimeoutError:
            raise SourceTimeout(f"the source did not answer within {source.timeout:g} s") from None
        except (BotoCoreError, OSError):
            raise SourceUnavailable("the source bucket could not be reached") from None
        return Read(body, response.get("ETag"), None)
