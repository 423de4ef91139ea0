"""How the harness addresses the peers."""

from __future__ import annotations

import os

from benchmarks.servers import Thumbor, all_servers, thumbor_signature
from benchmarks.workloads import WORKLOADS


def test_thumbor_signature_is_libthumbor_s() -> None:
    """The harness signs thumbor's URLs itself (thumbor lives in its own venv); these are
    what libthumbor 2.0's ``CryptoURL(key=...).generate(...)`` returns for the same paths."""
    assert (
        thumbor_signature(
            "300x200/smart/thumbor.readthedocs.io/en/latest/_images/logo-thumbor.png",
            "MY_SECURE_KEY",
        )
        == "jPe8IWPYqZBtuGzITHK69QWbMhc="
    )
    assert (
        thumbor_signature("fit-in/300x200/filters:quality(80)/w1.jpg", "MY_SECURE_KEY")
        == "-mqrFvWJfqShIWov4uE-8c287SE="
    )


def test_every_server_walks_the_same_parameter_sets() -> None:
    """Like for like: each server gets the same distinct parameter sets of a cold workload,
    W5 included (thumbor's gifsicle engine takes every box of W5's grid), in the same order,
    and the strong thumbor signs each into a distinct URL."""
    servers = all_servers()
    assert [s.name for s in servers] == ["imgorigin", "thumbor", "thumbor-1p", "ipx"]
    for w in WORKLOADS.values():
        if w.mode != "cold":
            continue
        pool = w.params()
        for server in servers:
            assert server.params(w) == pool, (server.name, w.name)
    strong = next(s for s in servers if s.name == "thumbor")
    w5 = WORKLOADS["W5"]
    paths = [strong.path(w5, p) for p in w5.params()]
    assert len(set(paths)) == len(paths) == 40 * 30
    assert paths[0].endswith("/fit-in/240x135/w5.gif")


def test_strong_thumbor_is_one_instance_per_core() -> None:
    strong, single = (s for s in all_servers() if s.name.startswith("thumbor"))
    assert isinstance(strong, Thumbor) and isinstance(single, Thumbor)
    assert strong.instances == (os.cpu_count() or 1) and strong.threadpool == 1
    assert (single.instances, single.threadpool) == (1, 2)
    assert "behind nginx" in strong.note and single.note.startswith("1 process")
