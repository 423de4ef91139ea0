"""``imgorigin serve --workers N``: N worker processes, each with its own listening socket.

uvicorn's own supervisor gives its workers one shared listening socket, and a worker whose
event loop wakes first takes a burst of new connections while another idles (measured:
docs/performance.md). Here every worker binds its own socket to the same address with
``SO_REUSEPORT``, and the kernel spreads new connections across them; the supervisor keeps
what uvicorn's gives:

- a worker that dies (a crash, the OOM killer, ``kill -9``) is started again at once, or
  after a back-off of up to ``MAX_BACKOFF_SECONDS`` if it keeps dying within a second;
- SIGTERM or SIGINT stop every worker gracefully: each stops accepting, finishes its
  requests in flight (up to ``GRACEFUL_SECONDS``) and drains what it writes after an answer;
  a worker still running after that is killed;
- the supervisor itself holds one more ``SO_REUSEPORT`` socket on the address, bound but
  never listening, from before the first worker starts until the last one has stopped: the
  address is checked once (a clear error when it is taken) and no other program can take it
  while a worker restarts.

With ``--cpu-affinity auto`` and one worker per CPU the process may run on (``cpu_plan``),
worker k and every thread it starts run on the k-th of those CPUs only, and a worker started
again takes its slot's CPU. A request hands off between a worker's threads several times
(event loop, render thread, libvips' threads, the database's); on one core each hand-off
stays in that core's caches: on two cores W1 answered 5-27 % more requests, W2 8-19 %, W3
7 %, W4 and W5 the same within the noise. But a pinned worker cannot lend its core: when the
kernel gives one worker all of a client's connections, the other core idles for as long as
they last (two of 24 ``make bench`` runs at half speed). So it is off by default
(docs/performance.md, "One worker per core").

Counters are per process; ``METRICS_DIR`` (a private folder the supervisor makes, mode
0700, and removes on exit) lets every worker's ``/metrics`` answer the sum of all workers
(origin.metrics.Shared). Connections a dying worker had accepted, or still held in its own
accept queue, are lost with it (its clients see the connection closed); the others never
notice.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

GRACEFUL_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 5.0
BACKLOG = 2048
METRICS_DIR = "IMGORIGIN_METRICS_DIR"  # the environment variable workers read
AFFINITIES = ("auto", "off")  # --cpu-affinity, WORKER_CPU_AFFINITY


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET


def reuse_port_socket(address: Listen) -> socket.socket:
    """A TCP socket bound to ``address`` with ``SO_REUSEPORT`` (not yet listening)."""
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((address.host, address.port))
    return sock


def cpu_plan(workers: int, affinity: str, allowed: set[int]) -> list[int] | None:
    """The CPU of each worker slot: with ``affinity`` "auto" and one worker per CPU of
    ``allowed`` (this process's, e.g. a container's cpuset), slot k gets the k-th; else None
    (the scheduler places every worker's threads)."""
    if affinity != "auto" or workers < 2 or workers != len(allowed):
        return None
    return sorted(allowed)


def worker(address: Listen, serve: Callable[[socket.socket], None], cpu: int | None) -> None:
    """A worker process: on ``cpu`` alone, its own listening socket, then ``serve`` (uvicorn)
    on it."""
    if cpu is not None:
        pin(cpu)
    sock = reuse_port_socket(address)
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    serve(sock)


def pin(cpu: int) -> None:
    """This process on ``cpu`` alone: every thread it has (the imports that unpickled this
    worker's target started some: numpy's, libvips') and so every thread they start.

    A thread not yet pinned may start another while the threads are being pinned, and the new
    one is not in the listing: so list again until a listing finds every thread on ``cpu``."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        os.sched_setaffinity(0, {cpu})
        return
    while True:
        listed = [int(task.name) for task in tasks.iterdir()]
        loose = [tid for tid in listed if _cpus(tid) not in ({cpu}, None)]
        if not loose:
            return
        for tid in loose:
            with contextlib.suppress(ProcessLookupError):  # a thread that has just ended
                os.sched_setaffinity(tid, {cpu})


def _cpus(tid: int) -> set[int] | None:
    """The CPUs thread ``tid`` may run on (None: it has ended)."""
    try:
        return os.sched_getaffinity(tid)
    except ProcessLookupError:
        return None


@dataclass
class Slot:
    """One worker's place: its process, and when it last started."""

    cpu: int | None = None  # the one CPU its worker runs on (None: any)
    process: BaseProcess | None = None
    started: float = 0.0
    failures: int = 0


class Supervisor:
    """Starts ``workers`` processes running ``serve`` on their own sockets, restarts the ones
    that die, and stops them all on SIGTERM/SIGINT."""

    def __init__(
        self,
        address: Listen,
        workers: int,
        serve: Callable[[socket.socket], None],
        *,
        graceful_seconds: float = GRACEFUL_SECONDS,
        say: Callable[[str], None] | None = None,
        affinity: str = "off",
    ) -> None:
        self.address = address
        self.cpus = cpu_plan(workers, affinity, os.sched_getaffinity(0))
        self.slots = [Slot(None if self.cpus is None else self.cpus[k]) for k in range(workers)]
        self.serve = serve
        self.graceful_seconds = graceful_seconds
        self.say = say or (lambda line: print(f"imgorigin: {line}", file=sys.stderr, flush=True))
        self.stopping = threading.Event()
        self.context = multiprocessing.get_context("spawn")

    def run(self) -> int:
        try:
            holder = reuse_port_socket(self.address)  # checks and keeps the address
        except OSError as exc:
            self.say(f"cannot listen on {self.address.host}:{self.address.port}: {exc}")
            return 1
        folder = tempfile.mkdtemp(prefix="imgorigin-metrics-")  # mode 0700
        os.environ[METRICS_DIR] = folder
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in self.slots:
                self._start(slot)
            where = "" if self.cpus is None else f", one per CPU ({', '.join(map(str, self.cpus))})"
            self.say(f"{len(self.slots)} workers on {self.address.host}:{self.address.port}{where}")
            while not self.stopping.wait(0.2):
                for slot in self.slots:
                    if slot.process is not None and not slot.process.is_alive():
                        self._restart(slot)
            self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            holder.close()
            os.environ.pop(METRICS_DIR, None)
            shutil.rmtree(folder, ignore_errors=True)
        return 0

    def pids(self) -> list[int]:
        return [s.process.pid for s in self.slots if s.process is not None and s.process.pid]

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()

    def _start(self, slot: Slot) -> None:
        process = self.context.Process(
            target=worker, args=(self.address, self.serve, slot.cpu), name="imgorigin-worker"
        )
        process.start()
        slot.process = process
        slot.started = time.monotonic()

    def _restart(self, slot: Slot) -> None:
        assert slot.process is not None
        code = slot.process.exitcode
        lived = time.monotonic() - slot.started
        slot.failures = slot.failures + 1 if lived < 1.0 else 0
        wait = min(MAX_BACKOFF_SECONDS, 0.1 * 2**slot.failures) if slot.failures else 0.0
        self.say(
            f"worker {slot.process.pid} exited ({code}) after {lived:.1f} s; "
            f"starting another{f' in {wait:.1f} s' if wait else ''}"
        )
        slot.process.close()
        slot.process = None
        if not self.stopping.wait(wait):
            self._start(slot)

    def _stop_all(self) -> None:
        running = [s.process for s in self.slots if s.process is not None]
        for process in running:
            if process.is_alive() and process.pid:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.graceful_seconds + 5
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                self.say(f"worker {process.pid} did not stop in time; killing it")
                process.kill()
                process.join(5)
