"""``imgorigin worker`` processes on one database: a worker killed with SIGKILL mid-job
loses nothing (another process completes the job once its lease runs out), and two workers
never run one job twice. The jobs are webhook deliveries to a real endpoint on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import sqlalchemy as sa
from aiohttp import web

from origin.records import new_id
from origin.settings import Settings
from origin.store.database import Database
from origin.store.migrations import migrate
from origin.store.tables import jobs, webhook_deliveries
from origin.store.users import Users
from origin.store.webhooks import Webhooks
from tests.conftest import IMGORIGIN, stop_group
from tests.jobs.conftest import Receiver, eventually, jobs_env


@contextmanager
def worker(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [IMGORIGIN, "worker"],
        env={"PATH": os.environ["PATH"], **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        stop_group(process)


async def setup(settings: Settings, url: str, pings: int) -> tuple[Database, str, list[str]]:
    db = Database(settings.database_url)
    await migrate(db)
    user_id = new_id()
    await Users(db).create(user_id, f"{user_id[:8]}@example.com", "x", datetime.now(UTC))
    hooks = Webhooks(db, settings.background)
    endpoint, _secret = await hooks.create(user_id, url, ("image.uploaded",))
    ids = [await hooks.test(user_id, endpoint.id) for _ in range(pings)]
    return db, endpoint.id, ids


async def states(db: Database) -> list[tuple[str, int]]:
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(webhook_deliveries.c.state, webhook_deliveries.c.attempts)
        )
        return [(r[0], r[1]) for r in rows]


def env_of(
    base_env: dict[str, str], database_url: str, receiver: Receiver, **more: str
) -> dict[str, str]:
    return {**base_env, "DATABASE_URL": database_url, **jobs_env(receiver), **more}


async def test_a_worker_killed_mid_job_loses_nothing(
    base_env: dict[str, str],
    database_url: str,
    receiver: Receiver,
    make_settings: Callable[..., Settings],
) -> None:
    env = env_of(
        base_env,
        database_url,
        receiver,
        JOB_LEASE_SECONDS="4",
        WEBHOOK_TIMEOUT_SECONDS="3",
        RENDER_TIMEOUT_SECONDS="2",
    )
    seen: list[tuple[float, str]] = []
    hang = asyncio.Event()

    async def endpoint(request: web.Request) -> web.StreamResponse:
        seen.append((time.monotonic(), request.headers["webhook-id"]))
        if len(seen) == 1:
            await hang.wait()  # the first try hangs until its process dies
        return web.Response(text="ok")

    receiver.server.routes["/slow"] = endpoint
    db, _, [delivery_id] = await setup(make_settings(**env), receiver.server.url("/slow"), 1)
    try:
        with worker(env) as first:

            async def started() -> bool:
                return len(seen) == 1

            await eventually(started)
            os.killpg(first.pid, signal.SIGKILL)  # not a clean stop: no release, no finish
            first.wait()
        killed = time.monotonic()
        assert await states(db) == [("pending", 0)]
        with worker(env):

            async def delivered() -> bool:
                return await states(db) == [("delivered", 1)]

            await eventually(delivered, timeout=30)
        hang.set()
        assert [i for _, i in seen] == [delivery_id, delivery_id]
        # the second try began once the first's lease (4 s from its claim) had run out
        assert seen[1][0] - seen[0][0] >= 3.5 and seen[1][0] >= killed
        async with db.read() as conn:
            job = (await conn.execute(sa.select(jobs.c.state, jobs.c.attempts))).one()
        assert tuple(job) == ("done", 2)
    finally:
        hang.set()
        await db.close()


async def test_two_workers_never_run_one_job_twice(
    base_env: dict[str, str],
    database_url: str,
    receiver: Receiver,
    make_settings: Callable[..., Settings],
) -> None:
    env = env_of(base_env, database_url, receiver, JOB_CONCURRENCY="8")
    got: list[str] = []

    async def endpoint(request: web.Request) -> web.StreamResponse:
        got.append(request.headers["webhook-id"])
        await asyncio.sleep(0.05)
        return web.Response(text="ok")

    receiver.server.routes["/count"] = endpoint
    db, _, ids = await setup(make_settings(**env), receiver.server.url("/count"), 60)
    try:
        with worker(env), worker(env):

            async def all_delivered() -> bool:
                found = await states(db)
                return all(s == "delivered" for s, _ in found)

            await eventually(all_delivered, timeout=60)
        assert sorted(got) == sorted(ids)  # every delivery once, none twice
        assert {a for _, a in await states(db)} == {1}
    finally:
        await db.close()
