"""One read of a remote object, conditional when validators are known.

- ``http`` sources go through the guarded fetcher (origin.fetch): the source's host (or
  hosts) and port, its timeouts and byte limit; its headers go to its own origin only,
  never after a redirect to another host; ``If-None-Match`` / ``If-Modified-Since`` when
  the cache holds the object.
- ``s3`` sources are read through their own ``S3Storage`` (endpoint, region, credentials),
  only ever read: ``get_if_changed`` (``GetObject`` with ``IfNoneMatch``); its errors are
  the storage layer's, answered here as the fetcher's.

The answer is ``Read``: new bytes with their validators, or "not modified". The errors are
the fetcher's: SourceMissing (the object does not exist), SourceUnavailable, SourceTimeout,
PayloadTooLarge.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from urllib.parse import urlsplit

from origin.errors import PayloadTooLarge, SourceMissing, SourceTimeout, SourceUnavailable
from origin.fetch.client import Limits, fetch
from origin.fetch.guard import Policy
from origin.settings import Settings
from origin.sources.config import Source
from origin.sources.paths import upstream_location
from origin.store.objects import (
    NotModified,
    ObjectMissing,
    S3Storage,
    StorageTimeout,
    StorageUnavailable,
    TooLarge,
)

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Read:
    body: bytes | None  # None: the kept bytes are current (a 304)
    etag: str | None
    last_modified: str | None


class Upstream:
    """Reads objects from the configured sources (S3 clients opened once, in ``open``)."""

    def __init__(self, settings: Settings, s3: Mapping[str, S3Storage]) -> None:
        self.s3 = s3  # source name → its bucket, read only
        # the deployment's FETCH_PRIVATE_HOSTS and test switch; each read adds its port
        self.policy = Policy.configured(
            ports=(80, 443),
            private_hosts=settings.fetch_private_hosts,
            allow_loopback=settings.fetch_allow_loopback_for_tests,
        )

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
                clients[source.name] = storage
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
        fetched = await fetch(url, self._policy(url), self._limits(source), headers=headers)
        if fetched.status == 304:
            return Read(None, fetched.etag or etag, fetched.last_modified or last_modified)
        return Read(fetched.body, fetched.etag, fetched.last_modified)

    def _policy(self, url: str) -> Policy:
        """The source's port besides 80 and 443; a redirect may go to another public host on
        those ports (the source's headers are not sent there)."""
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        return dataclasses.replace(self.policy, ports=self.policy.ports | {port})

    @staticmethod
    def _limits(source: Source) -> Limits:
        return Limits(source.connect_timeout, source.timeout, source.max_bytes)

    async def _s3(self, source: Source, key: str, etag: str | None) -> Read:
        try:
            body, tag = await self.s3[source.name].get_if_changed(key, etag, source.max_bytes)
        except NotModified:
            return Read(None, etag, None)
        except TooLarge:
            raise PayloadTooLarge(
                f"the source is larger than the {source.max_bytes}-byte limit"
            ) from None
        except ObjectMissing:
            raise SourceMissing("the bucket has no such object") from None
        except StorageTimeout:
            raise SourceTimeout(f"the source did not answer within {source.timeout:g} s") from None
        except StorageUnavailable:
            raise SourceUnavailable("the source bucket could not be read") from None
        return Read(body, tag, None)
