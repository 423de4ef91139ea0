"""Remote sources over real parts: an HTTP server on 127.0.0.1 (tests.sources) as the
website, moto's S3 server as an existing bucket, the whole app through HTTP."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from origin.settings import Settings
from origin.signing import sign_url
from tests.asgi import raw_request
from tests.conftest import OPERATOR_SECRET, _boto_credentials, create_bucket
from tests.origin.delivery.conftest import Service, encoded, start_service
from tests.sources import SourceServer, source_server

AUTH = "Bearer upstream-secret"


@dataclass
class Remote:
    """The service with its sources: ``web`` (a website under /media/, with an auth header),
    ``live`` (the same website, revalidated on every request), ``hosts`` (any path on the loopback host), ``fallback`` (a website with a fallback
    image) and ``bucket`` (moto S3, prefix ``catalogue/``)."""

    service: Service
    web: SourceServer
    s3: Any  # a boto3 client of the bucket's endpoint
    bucket: str

    def signed(self, path: str, key: str = OPERATOR_SECRET, **kw: Any) -> str:
        return sign_url(path, key, **kw)

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.service.http.get(self.signed(path), **kw)

    async def raw(self, path: str) -> tuple[int, str]:
        """A signed ``GET`` whose path is sent exactly as written: (status, error code)."""
        status, body = await raw_request(self.service.http, self.signed(path))
        return status, json.loads(body)["error"]["code"] if status >= 400 else ""

    def put_object(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)


def sources_file(tmp_path: Path, web: SourceServer, s3_endpoint: str, bucket: str) -> Path:
    fallback = tmp_path / "fallback.png"
    fallback.write_bytes(encoded("png", 64, 64))
    config = {
        "web": {
            "type": "http",
            "base_url": web.url("/media/"),
            "headers": {"Authorization": AUTH},
            "max_age": 600,
            "max_bytes": 3_000_000,
            "timeout": 2,
        },
        "live": {"type": "http", "base_url": web.url("/media/"), "ttl": 0, "missing_ttl": 0},
        "hosts": {"type": "http", "hosts": [f"127.0.0.1:{web.port}"], "scheme": "http"},
        "fallback": {"type": "http", "base_url": web.url("/gone/"), "fallback": str(fallback)},
        "bucket": {
            "type": "s3",
            "bucket": bucket,
            "prefix": "catalogue/",
            "ttl": 0,  # revalidated on every request
            "endpoint_url": s3_endpoint,
            "region": "us-east-1",
            "access_key_id": _boto_credentials()["aws_access_key_id"],
            "secret_access_key": _boto_credentials()["aws_secret_access_key"],
        },
    }
    path = tmp_path / "sources.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def sources_env() -> dict[str, str]:
    """More settings for the service (tests replace it)."""
    return {}


@asynccontextmanager
async def remote_service(
    tmp_path: Path, s3_server: str, settings: Callable[..., Settings], env: dict[str, str]
) -> AsyncIterator[Remote]:
    bucket = f"catalogue-{secrets.token_hex(4)}"
    create_bucket(s3_server, bucket)
    s3 = boto3.client("s3", endpoint_url=s3_server, **_boto_credentials())
    async with source_server() as web:
        ready = settings(
            SOURCES_FILE=str(sources_file(tmp_path, web, s3_server, bucket)),
            FETCH_ALLOW_LOOPBACK_FOR_TESTS="1",
            **env,
        )
        async for service in start_service(ready):
            yield Remote(service, web, s3, bucket)


@pytest.fixture
async def remote(
    tmp_path: Path,
    s3_server: str,
    make_settings: Callable[..., Settings],
    sources_env: dict[str, str],
) -> AsyncIterator[Remote]:
    """On SQLite and local storage."""
    async with remote_service(tmp_path, s3_server, make_settings, sources_env) as ready:
        yield ready


@pytest.fixture
async def backed_remote(
    tmp_path: Path,
    s3_server: str,
    make_settings: Callable[..., Settings],
    database_url: str,
    storage_env: dict[str, str],
) -> AsyncIterator[Remote]:
    """On every (database × storage) pair."""
    env = {"DATABASE_URL": database_url, **storage_env}
    async with remote_service(tmp_path, s3_server, make_settings, env) as ready:
        yield ready
