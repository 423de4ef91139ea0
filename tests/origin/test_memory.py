"""origin.memory: the arena cap applies on glibc, and a trim runs at most once an interval."""

from __future__ import annotations

import threading
import time

import pytest

from origin import memory


def test_arenas_are_capped_on_glibc() -> None:
    if memory._LIBC is None:
        pytest.skip("not glibc: the cap is a no-op here")
    assert memory.cap_arenas() is True


def test_a_trim_runs_at_most_once_per_interval() -> None:
    if memory._LIBC is None:
        pytest.skip("not glibc: trimming is a no-op here")
    trimmer = memory.Trimmer(interval=0.2)
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
