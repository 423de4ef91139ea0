"""``imgorigin worker``: background jobs in a process of their own, no HTTP.

For deployments that want render capacity apart from request serving: it runs the same
runner ``imgorigin serve`` runs (origin.background) with the whole render pool for jobs
(``JOB_RENDER_SHARE`` is for processes that also answer requests), until SIGTERM or SIGINT;
then the jobs still running get their time and the rest are given back to the queue.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
from contextlib import AsyncExitStack

from origin.background import run_task, run_until_stopped, runner_for
from origin.delivery import start_origin
from origin.jobs.sweep import run_sweeps
from origin.memory import cap_arenas
from origin.metrics import Metrics
from origin.services import open_services
from origin.settings import Settings
from origin.vips import configure_libvips

log = logging.getLogger("imgorigin.worker")


async def run_worker(settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cap_arenas()
    configure_libvips()
    background = dataclasses.replace(settings.background, job_render_share=1.0)
    settings = dataclasses.replace(settings, background=background)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    async with open_services(settings) as services, AsyncExitStack() as stack:
        origin = start_origin(services, Metrics())
        stack.push_async_callback(origin.derivatives.drain)
        await run_until_stopped(runner_for(origin), stack)
        run_task(run_sweeps(services, origin.metrics), stack)
        run_task(origin.derivatives.uses.run(), stack)
        log.info("imgorigin worker: running background jobs (pid %d)", os.getpid())
        await stopped.wait()
        log.info("imgorigin worker: stopping")
