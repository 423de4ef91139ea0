"""The loop that runs jobs in a process: inside ``imgorigin serve`` (``JOBS_IN_SERVE``) and
as ``imgorigin worker``.

It claims due jobs (origin.jobs.queue) up to ``JOB_CONCURRENCY`` at once, renews the lease
of each running one every quarter lease (a heartbeat), and hands each to the handler of its
kind. A handler's ``run`` does the work; the runner then records the outcome in one
transaction with the handler's own writes (``done``, ``retrying``, ``failed``), by the run
holding the claim only. A ``Permanent`` error (a bad chain, a deleted image) fails the job
at once; any other error is retried after the kind's schedule's next delay, and after the
last try the job fails. At a clean stop the jobs still running are cancelled and given
back (due again at once); after a SIGKILL their leases run out and another process takes
them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from origin.errors import OriginError
from origin.metrics import Metrics
from origin.settings_groups import Background
from origin.store.database import Database, Transaction, failure_line
from origin.store.queue import Job, JobQueue, LostClaim

FAILING_SAID_SECONDS = 60.0  # a claim that keeps failing is said once per this
log = logging.getLogger("imgorigin.jobs")

STOP_SECONDS = 10.0  # at a clean stop, running jobs get this long before they are given back
PRUNE_SECONDS = 3600.0


class Permanent(Exception):
    """A job that no retry can mend: ``code`` and ``message`` are shown to its owner."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Retry(Exception):
    """A try that failed in a way a later try may not: ``code`` is recorded."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Failure:
    """Why a try failed: a code and a message safe to show, and whether to retry."""

    code: str
    message: str
    permanent: bool


class Handler(Protocol):
    """What runs the jobs of one kind."""

    schedule: tuple[float, ...]  # the delays before each retry

    async def run(self, job: Job) -> Any: ...

    async def done(self, conn: Transaction, job: Job, result: Any) -> None: ...

    async def retrying(
        self, conn: Transaction, job: Job, failure: Failure, due: datetime
    ) -> None: ...

    async def failed(self, conn: Transaction, job: Job, failure: Failure) -> None: ...


def failure_of(exc: BaseException) -> Failure:
    if isinstance(exc, Permanent):
        return Failure(exc.code, exc.message, True)
    if isinstance(exc, Retry):
        return Failure(exc.code, exc.message, False)
    if isinstance(exc, OriginError):
        # a client error (bad chain, over budget, gone) is the job's own; 429/5xx may pass
        permanent = 400 <= exc.status < 500 and exc.status != 429
        return Failure(exc.code, exc.message, permanent)
    return Failure("internal_error", "internal error", False)


class Runner:
    def __init__(
        self,
        db: Database,
        handlers: Mapping[str, Handler],
        settings: Background,
        metrics: Metrics,
        per_user: Mapping[str, int] | None = None,
    ) -> None:
        """``per_user``: the kinds whose running jobs are bounded per account, service-wide
        (origin.store.queue), with their bounds."""
        self.db = db
        self.per_user = dict(per_user or {})
        self.queue = JobQueue(db, settings.job_lease_seconds)
        self.handlers = dict(handlers)
        self.kinds = tuple(self.handlers)
        self.settings = settings
        self.metrics = metrics
        self.running: dict[str, tuple[Job, asyncio.Task[None]]] = {}
        self.wake = asyncio.Event()
        self.stopping = False
        self.failing_since: float | None = None  # monotonic: claims failing since then
        self.failing_said = 0.0

    def nudge(self) -> None:
        """Look for due jobs now (after this process queued some)."""
        self.wake.set()

    async def run(self) -> None:
        """Claim and start jobs until stopped (cancel this task, then ``stop``)."""
        beats = asyncio.create_task(self._heartbeats())
        last_prune = 0.0
        try:
            while not self.stopping:
                free, kinds = self._open_slots()
                claimed: list[Job] = []
                if free > 0 and kinds:
                    try:
                        claimed = await self.queue.claim(free, kinds, self.per_user)
                    except Exception as exc:
                        self._claim_failed(exc)
                    else:
                        self._claim_worked()
                for job in claimed:
                    task = asyncio.create_task(self._one(job))
                    self.running[job.id] = (job, task)
                    task.add_done_callback(functools.partial(self._ended, job.id))
                if time.monotonic() - last_prune > PRUNE_SECONDS:
                    last_prune = time.monotonic()
                    with contextlib.suppress(Exception):
                        await self.queue.prune()
                if claimed and len(self.running) < self.settings.job_concurrency:
                    continue  # there may be more due
                self.wake.clear()
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel
                # that comes in the loop turn the wake-up does, and the runner looped on
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.job_poll_seconds):
                        await self.wake.wait()
        finally:
            beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beats

    def _claim_failed(self, exc: Exception) -> None:
        """The first failure in one line when the database's driver or the network says
        what (``failure_line``), else with its traceback (a bug); then, while claims keep
        failing (the database down), one line per ``FAILING_SAID_SECONDS``."""
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = self.failing_said = now
            said = failure_line(exc)
            if said is None:
                log.exception("could not claim jobs; trying again")
            else:
                log.warning("could not claim jobs (%s); trying again", said)
        elif now - self.failing_said >= FAILING_SAID_SECONDS:
            self.failing_said = now
            said = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            log.warning(
                "still cannot claim jobs after %.0f s (%s: %s); trying again",
                now - self.failing_since,
                type(exc).__name__,
                said,
            )

    def _claim_worked(self) -> None:
        if self.failing_since is not None:
            log.warning("claiming jobs again after %.0f s", time.monotonic() - self.failing_since)
            self.failing_since = None

    def _open_slots(self) -> tuple[int, tuple[str, ...]]:
        """How many jobs to claim now, and of which kinds: one kind holds at most half of
        ``JOB_CONCURRENCY``'s slots (at least one), so deliveries to an endpoint that hangs
        cannot keep eager renders and purges waiting behind their backlog. The claim takes
        no more than the kind nearest its share may still start (the loop claims again)."""
        share = max(1, self.settings.job_concurrency // 2)
        held = collections.Counter(job.kind for job, _ in self.running.values())
        room = {kind: share - held[kind] for kind in self.kinds if held[kind] < share}
        if not room:
            return 0, ()
        free = min(self.settings.job_concurrency - len(self.running), *room.values())
        return free, tuple(room)

    def _ended(self, job_id: str, _task: object) -> None:
        self.running.pop(job_id, None)
        self.wake.set()  # a slot is free

    async def stop(self) -> None:
        """A clean stop: running jobs get ``STOP_SECONDS``, then are cancelled and given back."""
        self.stopping = True
        self.wake.set()
        tasks = [task for _, task in self.running.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_SECONDS)
        for job, task in list(self.running.values()):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            with contextlib.suppress(Exception):
                await self.queue.release(job)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            for job, _task in list(self.running.values()):
                try:
                    if not await self.queue.extend(job):
                        log.warning("job %s lost its lease", job.id)
                except Exception:
                    log.exception("heartbeat of job %s failed", job.id)

    async def _one(self, job: Job) -> None:
        handler = self.handlers[job.kind]
        began = time.perf_counter()
        try:
            if job.attempts > job.max_attempts:  # its last try died with its process
                raise Permanent("crashed", "the job's process died during its last try")
            result = await handler.run(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure = failure_of(exc)
            log.info("job %s (%s) try %d failed: %r", job.id, job.kind, job.attempts, exc)
            await self._failed(job, handler, failure)
        else:
            await self._record(job, "done", lambda conn: self._done(conn, job, handler, result))
            self.metrics.job_seconds.labels(job.kind).observe(time.perf_counter() - began)

    async def _done(self, conn: Transaction, job: Job, handler: Handler, result: Any) -> None:
        await handler.done(conn, job, result)
        await self.queue.finish(conn, job)

    async def _failed(self, job: Job, handler: Handler, failure: Failure) -> None:
        if failure.permanent or job.last_try:

            async def fail(conn: Transaction) -> None:
                await handler.failed(conn, job, failure)
                await self.queue.fail(conn, job, failure.code)

            await self._record(job, "failed", fail)
            return
        delay = handler.schedule[min(job.attempts - 1, len(handler.schedule) - 1)]

        async def retry(conn: Transaction) -> None:
            due = await self.queue.retry(conn, job, delay, failure.code)
            await handler.retrying(conn, job, failure, due)

        await self._record(job, "retried", retry)

    async def _record(self, job: Job, outcome: str, write: Any) -> None:
        """One transaction: the handler's writes and the job's new state; nothing when this
        run no longer holds the job (its lease ran out and another run took it)."""
        try:
            async with self.db.write() as conn:
                await write(conn)
        except LostClaim:
            log.warning("job %s was taken by another run; this run's outcome is dropped", job.id)
            return
        except Exception:
            log.exception(
                "could not record job %s; its lease will run out and it runs again", job.id
            )
            return
        self.metrics.jobs[job.kind, outcome] += 1
