"""origin.memory: the arena cap applies on glibc; a trim runs when the pool falls idle (at
most once a gap) and seldom while jobs keep running."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from origin import memory
from origin.render_pool import RenderPool


def test_arenas_are_capped_on_glibc() -> None:
    if memory._LIBC is None:
        pytest.skip("not glibc: the cap is a no-op here")
    assert memory.cap_arenas() is True


def test_a_pool_falling_idle_trims_at_most_once_per_idle_gap() -> None:
    if memory._LIBC is None:
        pytest.skip("not glibc: trimming is a no-op here")
    trimmer = memory.Trimmer(idle_gap=0.2, busy_interval=60)
    threads = [threading.Thread(target=trimmer.after_job) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    trimmer.after_job()
    assert trimmer.trims == 1
    time.sleep(0.25)
    trimmer.after_job()
    assert trimmer.trims == 2


def test_while_other_jobs_run_a_trim_waits_for_the_busy_interval() -> None:
    if memory._LIBC is None:
        pytest.skip("not glibc: trimming is a no-op here")
    others = [1]  # a job that keeps running throughout
    trimmer = memory.Trimmer(idle_gap=0.0, busy_interval=0.3, others=lambda: others[0])
    trimmer.after_job()  # the first trim: none for longer than the busy interval
    assert trimmer.trims == 1
    time.sleep(0.1)
    trimmer.after_job()  # another job still runs: past the idle gap, not past the busy interval
    assert trimmer.trims == 1
    time.sleep(0.25)
    trimmer.after_job()
    assert trimmer.trims == 2
    others[0] = 0
    trimmer.after_job()  # the long job ends and the pool is idle: the idle gap (0) applies
    assert trimmer.trims == 3


async def test_the_pool_counts_a_job_waiting_to_start_as_load() -> None:
    if memory._LIBC is None:
        pytest.skip("not glibc: trimming is a no-op here")
    pool = RenderPool(1, queue_max=10, queue_timeout=10)
    pool.trimmer.idle_gap, pool.trimmer.busy_interval = 0.0, 60
    seen: list[int] = []
    gate = threading.Event()

    def first() -> None:
        gate.wait(5)  # until the second job waits for the slot
        seen.append(pool.trimmer.others())

    running = asyncio.ensure_future(pool.run(first))
    second = asyncio.ensure_future(pool.run(lambda: seen.append(pool.trimmer.others())))
    while pool.waiting == 0:
        await asyncio.sleep(0.01)
    gate.set()
    await asyncio.gather(running, second)
    assert seen == [1, 0]  # alone in its pool but another job waits: not idle; then idle
    assert pool.trimmer.trims == 2  # the first trim ever, then the idle one (none between)
