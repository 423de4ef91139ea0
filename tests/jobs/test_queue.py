"""The queue itself on SQLite and PostgreSQL: claims, leases, heartbeats, backoff and the
runner's outcomes, with a job kind of the test's own (the queue and runner are real)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from origin.background import run_until_stopped
from origin.jobs.runner import Failure, Permanent, Runner
from origin.metrics import Metrics
from origin.settings_groups import Background
from origin.store import queue
from origin.store.database import Database
from origin.store.queue import Job, JobQueue, LostClaim
from origin.store.tables import jobs


async def put(
    db: Database, n: int = 1, kind: str = "test", retries: int = 2, user_id: str | None = None
) -> list[str]:
    async with db.write() as conn:
        return [
            await queue.add(conn, kind, {"n": i}, retries=retries, user_id=user_id)
            for i in range(n)
        ]


async def state(db: Database, job_id: str) -> Any:
    async with db.read() as conn:
        return (await conn.execute(sa.select(jobs).where(jobs.c.id == job_id))).one()


async def test_a_claimed_job_is_not_claimed_again_while_its_lease_holds(database: Database) -> None:
    [job_id] = await put(database)
    q = JobQueue(database, job_lease_seconds=30)
    [job] = await q.claim(5, ("test",))
    assert job.id == job_id and job.attempts == 1 and job.payload == {"n": 0}
    assert await q.claim(5, ("test",)) == []
    assert await q.extend(job)
    async with database.write() as conn:
        await q.finish(conn, job)
    row = await state(database, job_id)
    assert row.state == "done" and row.claim is None


async def test_a_job_whose_lease_ran_out_is_taken_again_and_its_first_run_cannot_finish(
    database: Database,
) -> None:
    [job_id] = await put(database)
    q = JobQueue(database, job_lease_seconds=0.3)
    [first] = await q.claim(1, ("test",))
    await asyncio.sleep(0.5)  # no heartbeat: its process died
    [second] = await q.claim(1, ("test",))
    assert second.id == job_id and second.attempts == 2 and second.claim != first.claim
    assert not await q.extend(first)
    with pytest.raises(LostClaim):
        async with database.write() as conn:
            await q.finish(conn, first)
    async with database.write() as conn:
        await q.finish(conn, second)
    assert (await state(database, job_id)).state == "done"


async def test_a_released_job_is_due_at_once_and_its_try_not_counted(database: Database) -> None:
    [job_id] = await put(database)
    q = JobQueue(database, job_lease_seconds=30)
    [job] = await q.claim(1, ("test",))
    await q.release(job)
    [again] = await q.claim(1, ("test",))
    assert again.id == job_id and again.attempts == 1


async def test_claims_from_two_engines_at_once_never_share_a_job(
    database: Database, database_url: str
) -> None:
    """Two processes' engines on one database claim concurrently: every job once."""
    one, two = database, Database(database_url)
    try:
        ids = await put(one, 60)
        q1, q2 = JobQueue(one, 30), JobQueue(two, 30)
        taken: list[str] = []

        async def drain(q: JobQueue) -> None:
            while True:
                got = await q.claim(3, ("test",))
                if not got:
                    return
                taken.extend(j.id for j in got)

        await asyncio.gather(drain(q1), drain(q2), drain(q1), drain(q2))
        assert sorted(taken) == sorted(ids)
    finally:
        await two.close()


async def test_a_kind_bounded_per_account_runs_no_more_of_one_account_at_once(
    database: Database,
) -> None:
    """Webhook deliveries are bounded per account: one account's backlog (an endpoint that
    hangs) holds one slot, and the other accounts' jobs, and jobs of no account, are taken
    beside it. A finished job, or a lease that ran out (its process died), frees the slot."""
    ann, bob = "a" * 32, "b" * 32
    anns = await put(database, 3, user_id=ann)
    [bobs] = await put(database, user_id=bob)
    [nobody] = await put(database)
    q = JobQueue(database, job_lease_seconds=30)
    bound = {"test": 1}
    first = await q.claim(10, ("test",), bound)
    assert [j.id for j in first] == [anns[0], bobs, nobody]
    assert await q.claim(10, ("test",), bound) == []
    async with database.write() as conn:
        await q.finish(conn, first[0])
    [second] = await q.claim(10, ("test",), bound)
    assert second.id == anns[1]
    assert await q.claim(10, ("test",), bound) == []
    async with database.write() as conn:  # its process dies: the lease runs out
        await conn.execute(jobs.update().where(jobs.c.id == anns[1]).values(due_at=queue.now()))
    taken = await q.claim(10, ("test",), bound)
    assert len(taken) == 1 and taken[0].id in anns[1:]


async def test_a_bound_above_one_counts_what_the_account_already_runs(
    database: Database,
) -> None:
    """Bound 2, one of the account's jobs running: the next claim takes one more, not two
    (it took up to the bound again whatever ran: 3 running, found in review)."""
    ann = "a" * 32
    await put(database, 6, user_id=ann)
    q = JobQueue(database, job_lease_seconds=30)
    assert len(await q.claim(1, ("test",), {"test": 2})) == 1
    assert len(await q.claim(10, ("test",), {"test": 2})) == 1
    assert await q.claim(10, ("test",), {"test": 2}) == []


async def test_two_processes_never_run_more_of_one_account_than_its_bound(
    database: Database, database_url: str
) -> None:
    """Two engines claim one account's jobs at the same moment, over and over: one of its
    jobs runs at a time in all (PostgreSQL: the claims of a bounded kind take an advisory
    lock, so neither counts the account's running jobs before the other has taken one)."""
    one, two = database, Database(database_url)
    ann = "a" * 32
    try:
        await put(one, 40, user_id=ann)
        queues = [JobQueue(db, 30) for db in (one, two, one, two)]
        for _ in range(10):
            got = await asyncio.gather(*(q.claim(5, ("test",), {"test": 1}) for q in queues))
            taken = [job for jobs_ in got for job in jobs_]
            assert len(taken) == 1
            async with one.write() as conn:
                await queues[0].finish(conn, taken[0])
    finally:
        await two.close()


class Recorder:
    """A job kind of the test's own: fails ``fail`` times, or sleeps, then succeeds."""

    def __init__(self, fail: int = 0, sleep: float = 0.0, permanent: bool = False) -> None:
        self.schedule = (0.1, 0.2, 0.4)
        self.fail = fail
        self.sleep = sleep
        self.permanent = permanent
        self.runs: list[tuple[str, int]] = []
        self.outcomes: list[str] = []

    async def run(self, job: Job) -> str:
        self.runs.append((job.id, job.attempts))
        await asyncio.sleep(self.sleep)
        if self.permanent:
            raise Permanent("bad_job", "never works")
        if job.attempts <= self.fail:
            raise RuntimeError("not yet")
        return "ok"

    async def done(self, conn: AsyncConnection, job: Job, result: str) -> None:
        self.outcomes.append("done")

    async def retrying(
        self, conn: AsyncConnection, job: Job, failure: Failure, due: datetime
    ) -> None:
        self.outcomes.append("retrying")

    async def failed(self, conn: AsyncConnection, job: Job, failure: Failure) -> None:
        self.outcomes.append(f"failed:{failure.code}")


def settings(lease: float = 5.0, poll: float = 0.05) -> Background:
    return Background(job_lease_seconds=lease, job_poll_seconds=poll, job_concurrency=4)


async def run_for(runner: Runner, seconds: float) -> None:
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await runner.stop()


async def test_a_failing_job_backs_off_and_ends_failed_after_its_tries(database: Database) -> None:
    handler = Recorder(fail=10)
    [job_id] = await put(database, retries=3)
    metrics = Metrics()
    runner = Runner(database, {"test": handler}, settings(), metrics)
    await run_for(runner, 2.0)
    assert [a for _, a in handler.runs] == [1, 2, 3, 4]
    assert handler.outcomes == ["retrying", "retrying", "retrying", "failed:internal_error"]
    row = await state(database, job_id)
    assert row.state == "failed" and row.attempts == 4
    assert metrics.jobs["test", "retried"] == 3 and metrics.jobs["test", "failed"] == 1


async def test_a_job_that_fails_twice_then_works_is_done(database: Database) -> None:
    handler = Recorder(fail=2)
    [job_id] = await put(database, retries=3)
    await run_for(Runner(database, {"test": handler}, settings(), Metrics()), 1.5)
    assert handler.outcomes == ["retrying", "retrying", "done"]
    assert (await state(database, job_id)).state == "done"


async def test_a_permanent_error_is_not_retried(database: Database) -> None:
    handler = Recorder(permanent=True)
    [job_id] = await put(database, retries=3)
    await run_for(Runner(database, {"test": handler}, settings(), Metrics()), 0.8)
    assert handler.outcomes == ["failed:bad_job"]
    assert (await state(database, job_id)).last_error == "bad_job"


async def test_a_live_run_keeps_its_job_past_the_lease_by_heartbeats(database: Database) -> None:
    """A job running three leases long, with another runner polling all the while: it runs
    once (the heartbeats keep its lease), never a second time beside the first."""
    slow, other = Recorder(sleep=1.6), Recorder()
    [job_id] = await put(database)
    first = Runner(database, {"test": slow}, settings(lease=0.5), Metrics())
    second = Runner(database, {"test": other}, settings(lease=0.5), Metrics())
    running = asyncio.create_task(run_for(first, 2.2))
    for _ in range(100):  # the first runner claims before the second starts polling
        if slow.runs:
            break
        await asyncio.sleep(0.01)
    await asyncio.gather(running, run_for(second, 2.0))
    assert slow.runs == [(job_id, 1)] and other.runs == []
    assert slow.outcomes == ["done"]


async def test_a_cancel_that_meets_a_wake_up_still_stops_the_runner(database: Database) -> None:
    """The lifespan cancels the runner in the same loop turn as a finished job or a nudge
    wakes it: the cancel is not lost. (``asyncio.wait_for`` on Python 3.11 swallows a
    cancel when its inner wait completes at that moment: the runner looped on, and the
    app's shutdown waited for it forever — a CI run hung so in test_purge's teardown.)"""
    runner = Runner(database, {"test": Recorder()}, settings(poll=30.0), Metrics())
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.sleep(0.5)  # past its first claim: idle, waiting to be woken
        runner.nudge()
        task.cancel()
        await asyncio.wait({task}, timeout=3)
        assert task.done() and task.cancelled()
    finally:
        runner.stopping = True
        runner.nudge()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.stop()


async def test_the_lifespan_stops_a_runner_woken_as_it_stops(database: Database) -> None:
    """The app's shutdown (origin.background.run_until_stopped) ends a runner that a nudge
    wakes in the same loop turn: within seconds, its jobs given back."""
    runner = Runner(database, {"test": Recorder()}, settings(poll=30.0), Metrics())
    async with asyncio.timeout(10):  # a lost cancel: stopped only by this
        async with contextlib.AsyncExitStack() as stack:
            await run_until_stopped(runner, stack)
            await asyncio.sleep(0.5)
            runner.nudge()
            began = time.monotonic()
    assert time.monotonic() - began < 3
    assert runner.stopping and not runner.running


async def test_one_kind_holds_at_most_half_the_slots(database: Database) -> None:
    """Ten deliveries to an endpoint that hangs, then one eager render: the render runs at
    once beside them (before, the hanging kind took all four slots and the render waited
    for its whole backlog: 14.8 s behind 40 test deliveries in a hunt)."""
    hanging = Recorder(sleep=3.0)  # past the 0.6 s watched: as good as hanging
    quick = Recorder()
    await put(database, 10, kind="slow")
    [quick_id] = await put(database, kind="quick")
    runner = Runner(database, {"slow": hanging, "quick": quick}, settings(), Metrics())
    await run_for(runner, 0.6)
    assert quick.outcomes == ["done"]
    assert (await state(database, quick_id)).state == "done"
    assert len(hanging.runs) == 2  # half of JOB_CONCURRENCY 4


async def test_one_accounts_hanging_deliveries_leave_slots_to_the_others(
    database: Database,
) -> None:
    """Ten deliveries of one account hang, then another account's comes: it runs at once
    (before, the first account's backlog held every delivery slot of the kind until
    WEBHOOK_TIMEOUT_SECONDS, and every other account's webhooks waited behind it)."""
    hanging = Recorder(sleep=3.0)  # past the 0.6 s watched: as good as hanging
    await put(database, 10, kind="slow", user_id="a" * 32)
    runner = Runner(database, {"slow": hanging}, settings(), Metrics(), {"slow": 1})
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.sleep(0.3)
        [other] = await put(database, kind="slow", user_id="b" * 32)
        runner.nudge()
        await asyncio.sleep(0.3)
        assert other in {job_id for job_id, _ in hanging.runs}
        assert len(hanging.runs) == 2  # one of the first account's, the other's
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.stop()


async def test_a_job_whose_last_try_died_with_its_process_fails_saying_so(
    database: Database,
) -> None:
    """Two tries, the second killed with its process (its lease ran out): taken a third time,
    the job is failed as crashed without running, and its message names the last try (it
    said "died on every try", whatever the earlier tries did: a hunt's first try had failed
    normally)."""
    [job_id] = await put(database, retries=1)
    q = JobQueue(database, job_lease_seconds=0.2)
    for _ in range(2):
        await q.claim(1, ("test",))  # a try whose process then dies
        await asyncio.sleep(0.3)
    messages: list[str] = []

    class Watching(Recorder):
        async def failed(self, conn: AsyncConnection, job: Job, failure: Failure) -> None:
            messages.append(failure.message)
            await super().failed(conn, job, failure)

    handler = Watching()
    await run_for(Runner(database, {"test": handler}, settings(), Metrics()), 0.5)
    assert handler.runs == [] and handler.outcomes == ["failed:crashed"]
    assert messages == ["the job's process died during its last try"]
    row = await state(database, job_id)
    assert (row.state, row.last_error, row.attempts) == ("failed", "crashed", 3)


async def test_claims_failing_for_a_while_are_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The database unreachable: one line saying why, not a traceback per poll (~100 lines a
    second), nor one traceback (~60 lines) for a driver's error."""
    down = Database("postgresql://nobody:x@127.0.0.1:1/none")
    try:
        runner = Runner(down, {"test": Recorder()}, settings(poll=0.02), Metrics())
        with caplog.at_level("WARNING", logger="imgorigin.jobs"):
            await run_for(runner, 0.6)
    finally:
        await down.close()
    said = [r for r in caplog.records if r.name == "imgorigin.jobs"]
    assert len(said) == 1 and said[0].exc_info is None, [r.message for r in said]
    assert said[0].getMessage().startswith("could not claim jobs (Connect call failed")
