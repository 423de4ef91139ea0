"""imgorigin serve --workers N (imgorigin.supervisor): every worker on its own SO_REUSEPORT
socket, a dead worker started again, /metrics summed over the workers, a clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from imgorigin.supervisor import Listen, cpu_plan, reuse_port_socket
from origin.signing import sign_url
from tests.adversarial.live import live_env, new_user, photo, upload
from tests.conftest import OPERATOR_SECRET, free_port, serve

pytestmark = pytest.mark.slow


def workers_of(supervisor: int) -> list[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [int(pid) for pid in children if "spawn_main" in cmdline(int(pid))]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def listening_sockets(pid: int, port: int) -> int:
    """How many sockets of ``pid`` listen on ``port`` (from /proc: inode of each fd)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port and inode in inodes:
                found += 1
    return found


def wait_for(condition, seconds: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def metric(text: str, line_start: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)
    )


def test_workers_listen_on_their_own_sockets_and_a_dead_one_comes_back(tmp_path: Path) -> None:
    env = live_env(tmp_path)
    with serve(env, workers=2) as server:
        assert wait_for(lambda: len(workers_of(server.pid)) == 2)
        first = workers_of(server.pid)
        for pid in first:
            assert wait_for(lambda pid=pid: listening_sockets(pid, server.port) == 1)
        # under load, kill one worker: the service keeps answering and the worker comes back
        statuses: Counter[object] = Counter()
        failed_at: list[float] = []  # when each failed request was sent
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=server.url, timeout=5) as http:
                while not stop.is_set():
                    sent = time.monotonic()
                    try:
                        statuses[http.get("/healthz").status_code] += 1
                    except httpx.HTTPError as exc:
                        statuses[type(exc).__name__] += 1
                        failed_at.append(sent)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        os.kill(first[0], signal.SIGKILL)
        assert wait_for(lambda: len(set(workers_of(server.pid)) - {first[0]}) == 2)
        restarted = time.monotonic()  # the killed worker is reaped: its sockets are closed
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join()
        replacement = (set(workers_of(server.pid)) - set(first)).pop()
        # a new process imports the app before it listens: a second or more on a busy machine
        assert wait_for(lambda: listening_sockets(replacement, server.port) == 1)
        # Only the killed worker's connections fail: the requests in flight on them, and new
        # connections the kernel queued on its socket while it was being torn down (with
        # net.ipv4.tcp_migrate_req=0 those are reset, not handed on: docs/deploy.md). No
        # answer is an error status, and nothing sent after it was gone fails.
        assert statuses[200] > 100, statuses
        assert set(statuses) <= {200, "ReadError", "RemoteProtocolError"}, statuses
        assert all(sent < restarted for sent in failed_at), (statuses, failed_at, restarted)
        with httpx.Client(base_url=server.url, timeout=5) as http:
            assert all(http.get("/healthz").status_code == 200 for _ in range(50))


def test_metrics_are_the_sum_over_the_workers(tmp_path: Path) -> None:
    env = live_env(tmp_path)
    with serve(env, workers=2) as server:
        assert wait_for(lambda: len(workers_of(server.pid)) == 2)
        with httpx.Client(base_url=server.url, timeout=5) as http:
            for _ in range(60):  # new connections: the kernel spreads them over both sockets
                with httpx.Client(base_url=server.url, timeout=5) as once:
                    assert once.get("/healthz").status_code == 200
            time.sleep(1.5)  # each worker writes its counts once a second
            scrapes = [http.get("/metrics").text for _ in range(6)]
        healthz = 'imgorigin_requests_total{method="GET",route="/healthz",status="200"}'
        assert {metric(text, healthz) for text in scrapes} == {60.0}


async def test_metrics_never_go_backwards_from_one_worker_to_the_other(tmp_path: Path) -> None:
    """Under load, scrapes that land on either worker: a counter never decreases (each
    worker summed its live values with the other's second-old file: 54-136 decreases in
    12 s in a hunt), and a ``_created`` time is the first worker's, not a sum of them."""
    env = live_env(tmp_path)
    healthz = 'imgorigin_requests_total{method="GET",route="/healthz",status="200"}'
    _, headers = await new_user(env)
    with serve(env, workers=2) as server:
        assert wait_for(lambda: len(workers_of(server.pid)) == 2)
        image_id = upload(server.url, headers, photo(400, 300))
        for width in range(20, 30):  # renders on both workers: their histograms' _created
            with httpx.Client(base_url=server.url, timeout=30) as once:
                url = sign_url(f"/i/{image_id}/w_{width}/a.jpg", OPERATOR_SECRET)
                assert once.get(url).status_code == 200
        time.sleep(1.2)  # each worker's file holds its renders
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=server.url, timeout=5) as http:
                while not stop.is_set():
                    http.get("/healthz")

        loaders = [threading.Thread(target=load) for _ in range(4)]
        for thread in loaders:
            thread.start()
        try:
            seen = []
            for _ in range(60):  # a new connection each: the kernel spreads them
                with httpx.Client(base_url=server.url, timeout=5) as once:
                    text = once.get("/metrics").text
                seen.append(metric(text, healthz))
                created = [
                    float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines()
                    if line.split("{")[0].split(" ")[0].endswith("_created")
                ]
                assert created and max(created) <= time.time() + 1
                time.sleep(0.05)
        finally:
            stop.set()
            for thread in loaders:
                thread.join()
        assert seen == sorted(seen) and seen[-1] > seen[0]


def test_a_clean_stop_removes_the_metrics_folder(tmp_path: Path) -> None:
    env = live_env(tmp_path)
    with serve(env, workers=2) as server:
        assert wait_for(lambda: len(workers_of(server.pid)) == 2)
        workers = workers_of(server.pid)
        environ = Path(f"/proc/{workers[0]}/environ").read_bytes().split(b"\0")
        folder = Path(
            next(
                v.split(b"=", 1)[1] for v in environ if v.startswith(b"IMGORIGIN_METRICS_DIR=")
            ).decode()
        )
        assert folder.is_dir() and folder.stat().st_mode & 0o777 == 0o700
        os.kill(server.pid, signal.SIGTERM)
        assert server.process.wait(40) == 0
        assert not folder.exists()
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_a_taken_address_is_refused_with_one_line(tmp_path: Path) -> None:
    env = live_env(tmp_path)
    port = free_port()
    taken = socket.socket()
    taken.bind(("127.0.0.1", port))
    taken.listen()
    try:
        with serve(env, workers=2, port=port, wait=False) as server:
            assert server.process.wait(20) == 1
    finally:
        taken.close()


def threads_cpus(pid: int) -> set[str]:
    """The CPUs each thread of ``pid`` may run on, as /proc lists them ("1", "0-1")."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:  # a thread that ended since the listing
            continue
        for line in status.splitlines():
            if line.startswith("Cpus_allowed_list:"):
                found.add(line.split()[1])
    return found


TWO_CPUS = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2 or not {0, 1} <= os.sched_getaffinity(0),
    reason="needs CPUs 0 and 1",
)


@TWO_CPUS
def test_one_worker_per_cpu_runs_on_its_own_and_a_new_one_takes_its_slot_s(
    tmp_path: Path,
) -> None:
    """``auto``, two workers on a process allowed CPUs 0 and 1: each worker, every thread of it (the
    event loop's, the render pool's, libvips', the database's), on one CPU of its own; a
    worker killed and started again runs on the CPU the dead one had."""
    env = dict(live_env(tmp_path), WORKER_CPU_AFFINITY="auto")
    with serve(env, workers=2, cpus={0, 1}) as server:
        assert wait_for(lambda: len(workers_of(server.pid)) == 2)
        first = workers_of(server.pid)
        for pid in first:  # a worker pins itself before it listens
            assert wait_for(lambda pid=pid: listening_sockets(pid, server.port) == 1)
        with httpx.Client(base_url=server.url, timeout=5) as http:  # the app's threads start
            assert all(http.get("/healthz").status_code == 200 for _ in range(20))
        placed = {pid: threads_cpus(pid) for pid in first}
        assert sorted(map(sorted, placed.values())) == [["0"], ["1"]], placed
        assert all(len(list(Path(f"/proc/{pid}/task").iterdir())) > 1 for pid in first)
        assert threads_cpus(server.pid) == {"0-1"}  # the supervisor itself is not pinned
        os.kill(first[1], signal.SIGKILL)
        assert wait_for(lambda: len(set(workers_of(server.pid)) - {first[1]}) == 2)
        replacement = (set(workers_of(server.pid)) - set(first)).pop()
        assert wait_for(lambda: listening_sockets(replacement, server.port) == 1)
        assert threads_cpus(replacement) == placed[first[1]]


PIN_RACE = """
import os, sys, threading
from pathlib import Path
from imgorigin.supervisor import pin

stop = threading.Event()

def spawner():  # starts threads all the time, as libvips' or numpy's pools may while pinned
    while not stop.is_set():
        if threading.active_count() < 300:
            threading.Thread(target=stop.wait, daemon=True).start()

for _ in range(4):
    threading.Thread(target=spawner, daemon=True).start()
loose = 0
for attempt in range(12):
    cpu = attempt % 2
    sys.setswitchinterval(1e-6)  # let the spawners run between two threads' pinning
    pin(cpu)
    sys.setswitchinterval(0.005)
    for task in Path("/proc/self/task").iterdir():
        try:
            loose += os.sched_getaffinity(int(task.name)) != {cpu}
        except ProcessLookupError:
            pass
stop.set()
print(loose)
"""


@TWO_CPUS
def test_pin_leaves_no_thread_behind_that_another_started_meanwhile() -> None:
    """A thread started by one not yet pinned, after the threads were listed, is pinned too
    (without listing again, 2-15 of them stayed on both CPUs in most runs)."""
    done = subprocess.run(
        [sys.executable, "-c", PIN_RACE], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["0"], done.stderr


@TWO_CPUS
@pytest.mark.parametrize(("workers", "affinity"), [(2, None), (2, "off"), (3, "auto")])
def test_workers_are_left_to_the_scheduler_by_default_when_off_or_not_one_per_cpu(
    tmp_path: Path, workers: int, affinity: str | None
) -> None:
    env = live_env(tmp_path) | ({} if affinity is None else {"WORKER_CPU_AFFINITY": affinity})
    with serve(env, workers=workers, cpus={0, 1}) as server:
        assert wait_for(lambda: len(workers_of(server.pid)) == workers)
        for pid in workers_of(server.pid):
            assert wait_for(lambda pid=pid: listening_sockets(pid, server.port) == 1)
            assert threads_cpus(pid) == {"0-1"}


def test_an_unknown_cpu_affinity_is_refused(tmp_path: Path) -> None:
    env = dict(live_env(tmp_path), WORKER_CPU_AFFINITY="always")
    with serve(env, workers=2, wait=False) as server:
        assert server.process.wait(20) == 2


def test_the_cpu_plan_pins_only_one_worker_per_allowed_cpu() -> None:
    assert cpu_plan(2, "auto", {0, 1}) == [0, 1]
    assert cpu_plan(3, "auto", {5, 2, 9}) == [2, 5, 9]  # a cpuset: its own CPUs, in order
    assert cpu_plan(2, "off", {0, 1}) is None
    assert cpu_plan(2, "auto", {0, 1, 2, 3}) is None  # fewer workers than CPUs
    assert cpu_plan(3, "auto", {0, 1}) is None  # more
    assert cpu_plan(1, "auto", {0}) is None  # one worker: no supervisor, nothing to place


def test_reuse_port_sockets_share_an_address() -> None:
    address = Listen("127.0.0.1", free_port())
    first, second = reuse_port_socket(address), reuse_port_socket(address)
    try:
        first.listen()
        second.listen()
    finally:
        first.close()
        second.close()
