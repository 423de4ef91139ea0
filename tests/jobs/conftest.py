"""Background work over real parts: the app with its job runner (polling fast, short retry
schedules), a real webhook receiver on 127.0.0.1 (allowed only through the test switch)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from origin.settings import Settings
from tests.admin_api.conftest import Api as ApiType
from tests.admin_api.conftest import fetch_env as fetch_env_of
from tests.admin_api.conftest import password_hash, sources  # noqa: F401 (fixtures)
from tests.admin_api.conftest import start_api as start
from tests.sources import SourceServer, source_server


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    method: str = "POST"

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Webhook endpoints on a real server: each path answers its statuses in turn (the last
    one again and again), or waits on a gate; every request is kept."""

    server: SourceServer
    got: list[Delivery] = field(default_factory=list)

    def endpoint(
        self, path: str, statuses: tuple[int, ...] = (200,), gate: asyncio.Event | None = None
    ) -> str:
        answers = list(statuses)

        async def answer(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            self.got.append(
                Delivery(
                    path,
                    {k.lower(): v for k, v in request.headers.items()},
                    body,
                    request.method,
                )
            )
            if gate is not None:
                await gate.wait()
            status = answers.pop(0) if len(answers) > 1 else answers[0]
            if status in (301, 302, 307, 308):
                return web.Response(
                    status=status, headers={"Location": self.server.url("/elsewhere")}
                )
            return web.Response(status=status, text="ok")

        self.server.routes[path] = answer
        return self.server.url(path)

    def at(self, path: str) -> list[Delivery]:
        return [d for d in self.got if d.path == path]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with source_server() as server:
        yield Receiver(server)


def jobs_env(receiver: Receiver) -> dict[str, str]:
    return {
        "FETCH_ALLOW_LOOPBACK_FOR_TESTS": "1",
        "WEBHOOK_PORTS": str(receiver.server.port),
        "JOB_POLL_SECONDS": "0.05",
        "RATE_LIMIT_PER_MINUTE": "100000",
        "JOB_RETRY_SCHEDULE": "0.1,0.2",
        "WEBHOOK_RETRY_SCHEDULE": "0.1,0.2,0.3",
        "WEBHOOK_TIMEOUT_SECONDS": "2",
        "JOB_LEASE_SECONDS": "5",
        "RENDER_TIMEOUT_SECONDS": "4",
    }


@pytest.fixture
def extra_env() -> dict[str, str]:
    return {}


@pytest.fixture
async def app(
    database_url: str,
    make_settings: Callable[..., Settings],
    password_hash: str,  # noqa: F811 (the imported fixture)
    sources: SourceServer,  # noqa: F811
    receiver: Receiver,
    extra_env: dict[str, str],
) -> AsyncIterator[ApiType]:
    """The whole app with its runner, on both databases, local storage."""
    env = {**fetch_env_of(sources), **jobs_env(receiver), **extra_env}
    settings = make_settings(DATABASE_URL=database_url, **env)
    async for ready in start(settings, password_hash, sources):
        yield ready


async def eventually(check: Callable[[], Any], timeout: float = 20.0, every: float = 0.05) -> Any:
    """Poll the async ``check`` until it answers something true."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s (last: {value!r})")
        await asyncio.sleep(every)
