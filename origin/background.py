"""Background work in a process: the job queue's handle for ``/metrics`` and the admin API,
and — in ``imgorigin serve`` unless ``JOBS_IN_SERVE=0``, and in ``imgorigin worker`` — the
runner with its two kinds of jobs, eager derivatives and webhook deliveries
(docs/background.md), and the derivative store's sweep (origin.jobs.sweep); in every
serving process, the writer of derivatives' last uses (origin.derivative_use)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Mapping
from contextlib import AsyncExitStack
from typing import Any

from origin import purge
from origin.delivery import Origin
from origin.jobs import eager
from origin.jobs.runner import Handler, Runner
from origin.jobs.sweep import run_sweeps
from origin.store.eager import KIND as EAGER
from origin.store.queue import JobQueue
from origin.webhooks import events
from origin.webhooks.delivery import WebhookDeliveries, webhook_policy


def runner_for(origin: Origin) -> Runner:
    services = origin.services
    settings = services.settings
    background = settings.background
    handlers: dict[str, Handler] = {
        EAGER: eager.EagerJobs(origin, background),
        events.KIND: WebhookDeliveries(services.db, settings, webhook_policy(settings)),
        purge.KIND: purge.PurgeJobs(settings, origin.metrics),
    }
    per_user = {events.KIND: background.webhooks_per_user}
    return Runner(services.db, handlers, background, origin.metrics, per_user)


def run_task(work: Coroutine[Any, Any, None], stack: AsyncExitStack) -> None:
    """Run ``work`` until the stack's exit cancels it."""
    task = asyncio.create_task(work)

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(stop)


async def run_until_stopped(runner: Runner, stack: AsyncExitStack) -> None:
    """Start ``runner``; the stack's exit stops it cleanly (running jobs given back)."""
    task = asyncio.create_task(runner.run())

    async def stop() -> None:
        runner.stopping = True  # its loop ends at the next turn, should the cancel be lost
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.stop()

    stack.push_async_callback(stop)


async def start_background(
    origin: Origin, stack: AsyncExitStack, *, run_jobs: bool
) -> Mapping[str, Any]:
    """The lifespan state: ``job_queue`` (always), ``job_runner`` when this process runs jobs."""
    services = origin.services
    state: dict[str, Any] = {
        "job_queue": JobQueue(services.db, services.settings.background.job_lease_seconds)
    }
    run_task(origin.derivatives.uses.run(), stack)
    run_task(origin.edge_keys.run(), stack)
    if run_jobs:
        runner = runner_for(origin)
        await run_until_stopped(runner, stack)
        state["job_runner"] = runner
        run_task(run_sweeps(services, origin.metrics), stack)
    return state
