"""The job queue: rows of ``jobs`` in the metadata database, shared by every process.

- **enqueue** inside the caller's transaction (``add``), so a job exists exactly when what
  it works for does (an image and its eager jobs commit together: no job lost, none for a
  row that never was);
- **claim** (``claim``): the due jobs — queued ones whose time has come, and running ones
  whose lease ran out (their process died) — taken in one transaction: ``SELECT … FOR
  UPDATE SKIP LOCKED`` on PostgreSQL (two processes never take one job), SQLite's write
  lock (``BEGIN IMMEDIATE``) on SQLite. A claim sets a new ``claim`` token and the lease.
  A kind may be bounded per account (``per_user``: webhook deliveries), counted over the
  whole service: such claims take a transaction-scoped advisory lock on PostgreSQL, so two
  processes cannot both count an account's running jobs before either takes one;
- **heartbeat** (``extend``): a running job's lease moves on while its run is alive, so it
  is never taken from a live run;
- **finish** (``finish`` / ``retry`` / ``fail``), each only by the run holding the claim
  (``LostClaim`` otherwise: the caller's transaction rolls back). A failed try is retried
  after the kind's schedule's next delay; after the last it ends ``failed``.

At-least-once: a job's work must be idempotent (eager renders and webhook deliveries are).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from origin.records import new_id
from origin.store.database import Database
from origin.store.tables import jobs

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
JITTER = 0.1  # a retry waits up to 10 % longer than its schedule says (no thundering herd)
KEEP_FINISHED = timedelta(days=7)  # done and failed jobs are pruned after this
CLAIM_LOCK = 0x696D676F  # PostgreSQL advisory lock of the claims that count per account


class LostClaim(Exception):
    """The job's lease ran out and another run took it: this run's outcome does not count."""


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    payload: dict[str, Any]
    user_id: str | None
    attempts: int  # tries started, this one included
    max_attempts: int
    claim: str
    created_at: datetime

    @property
    def last_try(self) -> bool:
        return self.attempts >= self.max_attempts


def now() -> datetime:
    return datetime.now(UTC)


async def add(
    conn: AsyncConnection,
    kind: str,
    payload: dict[str, Any],
    *,
    retries: int,
    user_id: str | None = None,
    job_id: str | None = None,
) -> str:
    """Queue a job in the caller's transaction; it may run at once. ``retries`` after the
    first try (the length of the kind's schedule)."""
    job_id = job_id or new_id()
    at = now()
    await conn.execute(
        jobs.insert().values(
            id=job_id,
            kind=kind,
            payload=json.dumps(payload, separators=(",", ":")),
            user_id=user_id,
            state=QUEUED,
            attempts=0,
            max_attempts=retries + 1,
            due_at=at,
            created_at=at,
        )
    )
    return job_id


def _running(kind: str, at: datetime) -> sa.Select[Any]:
    """The accounts running jobs of ``kind`` (leases held), each with how many."""
    running = jobs.alias("running")
    return (
        sa.select(running.c.user_id, sa.func.count().label("n"))
        .where(running.c.kind == kind)
        .where(running.c.state == RUNNING)
        .where(running.c.due_at > at)
        .where(running.c.user_id.is_not(None))
        .group_by(running.c.user_id)
    )


def _at_bound(kind: str, bound: int, at: datetime) -> sa.ColumnElement[bool]:
    """A job of ``kind`` whose account already runs ``bound`` of that kind."""
    counts = _running(kind, at).subquery()
    full = sa.select(counts.c.user_id).where(counts.c.n >= bound)
    return sa.and_(jobs.c.kind == kind, jobs.c.user_id.is_not(None), jobs.c.user_id.in_(full))


def _within_bounds(
    rows: list[Any], bounded: Mapping[str, int], running: Counter[tuple[str, str]]
) -> list[str]:
    """The due rows this claim may take: of a bounded kind, no more of one account than its
    bound less what the account runs already (``running``, by kind and account)."""
    held = Counter(running)
    ids = []
    for row in rows:
        bound = bounded.get(row.kind)
        if bound is not None and row.user_id is not None:
            if held[(row.kind, row.user_id)] >= bound:
                continue
            held[(row.kind, row.user_id)] += 1
        ids.append(row.id)
    return ids


class JobQueue:
    def __init__(self, db: Database, job_lease_seconds: float) -> None:
        self.db = db
        self.lease = timedelta(seconds=job_lease_seconds)

    async def claim(
        self, limit: int, kinds: tuple[str, ...], per_user: Mapping[str, int] | None = None
    ) -> list[Job]:
        """Take up to ``limit`` due jobs of ``kinds`` for this process; of a kind in
        ``per_user``, no more than its bound running for one account at once (jobs without
        an account are not bounded)."""
        at = now()
        bounded = {kind: n for kind, n in (per_user or {}).items() if kind in kinds}
        due = (
            sa.select(jobs.c.id, jobs.c.kind, jobs.c.user_id)
            .where(jobs.c.state.in_((QUEUED, RUNNING)))
            .where(jobs.c.due_at <= at)
            .where(jobs.c.kind.in_(kinds))
            .order_by(jobs.c.due_at)
            .limit(limit)
        )
        for kind, bound in bounded.items():
            due = due.where(sa.not_(_at_bound(kind, bound, at)))
        taken: list[Job] = []
        async with self.db.read() as conn:  # most polls find nothing: no write lock for them
            if await conn.scalar(due.limit(1)) is None:
                return taken
        if not self.db.is_sqlite:
            due = due.with_for_update(skip_locked=True)
        async with self.db.write() as conn:
            if bounded and not self.db.is_sqlite:
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(CLAIM_LOCK)))
            rows = list(await conn.execute(due))
            running: Counter[tuple[str, str]] = Counter()
            for kind in bounded:
                for user_id, n in await conn.execute(_running(kind, at)):
                    running[(kind, user_id)] = n
            ids = _within_bounds(rows, bounded, running)
            for job_id in ids:
                claim = new_id()
                row = (
                    await conn.execute(
                        jobs.update()
                        .where(jobs.c.id == job_id)
                        .values(
                            state=RUNNING,
                            claim=claim,
                            attempts=jobs.c.attempts + 1,
                            due_at=at + self.lease,
                            started_at=at,
                        )
                        .returning(
                            jobs.c.kind,
                            jobs.c.payload,
                            jobs.c.user_id,
                            jobs.c.attempts,
                            jobs.c.max_attempts,
                            jobs.c.created_at,
                        )
                    )
                ).one()
                taken.append(
                    Job(
                        id=job_id,
                        kind=row.kind,
                        payload=json.loads(row.payload),
                        user_id=row.user_id,
                        attempts=row.attempts,
                        max_attempts=row.max_attempts,
                        claim=claim,
                        created_at=row.created_at,
                    )
                )
        return taken

    async def extend(self, job: Job) -> bool:
        """Renew the lease of a job this run holds; False when it no longer holds it."""
        async with self.db.write() as conn:
            result = await conn.execute(self._held(job).values(due_at=now() + self.lease))
        return result.rowcount == 1

    async def release(self, job: Job) -> None:
        """Give a claimed job back at a clean stop: due again at once, this try not counted."""
        async with self.db.write() as conn:
            await conn.execute(
                self._held(job).values(
                    state=QUEUED, claim=None, due_at=now(), attempts=jobs.c.attempts - 1
                )
            )

    async def finish(self, conn: AsyncConnection, job: Job) -> None:
        """Mark the job done in the caller's transaction (with what the job wrote)."""
        await self._end(conn, job, state=DONE, finished_at=now(), claim=None)

    async def retry(self, conn: AsyncConnection, job: Job, delay: float, error: str) -> datetime:
        """Queue the job again after ``delay`` seconds (plus jitter); when it is due."""
        due = now() + timedelta(seconds=delay * (1 + random.uniform(0, JITTER)))
        await self._end(conn, job, state=QUEUED, due_at=due, claim=None, last_error=error[:200])
        return due

    async def fail(self, conn: AsyncConnection, job: Job, error: str) -> None:
        """The job failed for good (its last try, or an error no retry can mend)."""
        await self._end(
            conn, job, state=FAILED, finished_at=now(), claim=None, last_error=error[:200]
        )

    async def _end(self, conn: AsyncConnection, job: Job, **values: Any) -> None:
        result = await conn.execute(self._held(job).values(**values))
        if result.rowcount != 1:
            raise LostClaim(job.id)

    def _held(self, job: Job) -> sa.Update:
        return (
            jobs.update()
            .where(jobs.c.id == job.id)
            .where(jobs.c.claim == job.claim)
            .where(jobs.c.state == RUNNING)
        )

    async def counts(self) -> dict[tuple[str, str], int]:
        """Jobs by (kind, state), for /metrics."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                sa.select(jobs.c.kind, jobs.c.state, sa.func.count()).group_by(
                    jobs.c.kind, jobs.c.state
                )
            )
            return {(r[0], r[1]): int(r[2]) for r in rows}

    async def oldest_due(self) -> float | None:
        """Seconds the longest-waiting queued job has been due, None when none is."""
        async with self.db.read() as conn:
            due = await conn.scalar(
                sa.select(sa.func.min(jobs.c.due_at))
                .where(jobs.c.state == QUEUED)
                .where(jobs.c.due_at <= now())
            )
        if due is None:
            return None
        if due.tzinfo is None:  # an aggregate is not typed as the column: naive UTC
            due = due.replace(tzinfo=UTC)
        return float(max(0.0, (now() - due).total_seconds()))

    async def prune(self) -> int:
        """Remove done and failed jobs finished more than ``KEEP_FINISHED`` ago."""
        async with self.db.write() as conn:
            result = await conn.execute(
                jobs.delete()
                .where(jobs.c.state.in_((DONE, FAILED)))
                .where(jobs.c.finished_at < now() - KEEP_FINISHED)
            )
        return int(result.rowcount or 0)

    async def get(self, job_id: str) -> dict[str, Any] | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(jobs).where(jobs.c.id == job_id))).first()
        return None if row is None else dict(row._mapping)
