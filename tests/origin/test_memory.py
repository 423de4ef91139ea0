"""origin.memory: the arena cap applies on glibc; a trim runs when the pool falls idle (at
most once a gap) and seldom while jobs keep running."""

from __future__ import annotations

import threading
import time

import pytest

from origin import memory


def test_arenas_are_capped_on_glibc() -> None:
    if memory._LIBC is None:
        pytest.skip("not glibc: the cap is a no-op here")
    assert memory.cap_arenas() is True


def _job(trimmer: memory.Trimmer) -> None:
    trimmer.job_started()
    trimmer.job_ended()


def test_a_pool_falling_idle_trims_at_most_once_per_idle_gap() -> None:
    if memory._LIBC is None:
        pytest.skip("not glibc: trimming is a no-op here")
    trimmer = memory.Trimmer(idle_gap=0.2, busy_interval=60)
    threads = [threading.Thread(target=_job, args=(trimmer,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _job(trimmer)
    assert trimmer.trims == 1
    time.sleep(0.25)
    _job(trimmer)
    assert trimmer.trims == 2
    assert trimmer.running == 0


def test_while_other_jobs_run_a_trim_waits_for_the_busy_interval() -> None:
    if memory._LIBC is None:
        pytest.skip("not glibc: trimming is a no-op here")
    trimmer = memory.Trimmer(idle_gap=0.0, busy_interval=0.3)
    trimmer.job_started()  # a job that keeps running throughout
    _job(trimmer)  # the first trim: none for longer than the busy interval
    assert trimmer.trims == 1
    time.sleep(0.1)
    _job(trimmer)  # another job still runs: past the idle gap, not past the busy interval
    assert trimmer.trims == 1
    time.sleep(0.25)
    _job(trimmer)
    assert trimmer.trims == 2
    trimmer.job_ended()  # the long job ends and the pool is idle: the idle gap (0) applies
    assert trimmer.trims == 3
    assert trimmer.running == 0


def test_a_job_waiting_to_start_counts_as_load() -> None:
    if memory._LIBC is None:
        pytest.skip("not glibc: trimming is a no-op here")
    waiting = [1]
    trimmer = memory.Trimmer(idle_gap=0.0, busy_interval=60, queued=lambda: waiting[0])
    _job(trimmer)  # the first trim: none for longer than the busy interval
    _job(trimmer)  # alone in its pool but another job waits: not idle
    assert trimmer.trims == 1
    waiting[0] = 0
    _job(trimmer)
    assert trimmer.trims == 2
