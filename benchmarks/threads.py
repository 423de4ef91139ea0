"""Where a cold request's CPU goes, thread by thread, in one imgorigin worker.

``python -m benchmarks.threads [W1] [--seconds 10] [--connections 2]``: seeds a fresh
folder and database as the harness does (benchmarks.servers), runs one worker in this
process (uvicorn, uvloop, httptools, ``CONCURRENCY`` as the harness sets it — its default —
and derivative caches off), drives it
with wrk over the workload's never-repeating URLs (a 3 s warm-up first), and prints the CPU
each thread spent per answered request, read from ``/proc/self/task/*/stat`` before and
after the run:

- ``event loop``: HTTP, the handler, the derivative-index lookups, scheduling;
- ``pool threads``: the render job running ``pipeline.render`` (with local storage it also
  reads the source and writes the derivative), and any file I/O; ``libvips``: its worker
  threads (the two together are the render);
- ``aiosqlite``: the database threads; ``other``: anything else;

and, per kind, the context switches per request (``/proc/self/task/*/status``): the waits
(voluntary: a lock, the GIL, a queue, I/O) and the preemptions (involuntary). The floor's
own thread makes about 20 waits a W1 render; every further hand-off between threads shows
here.

py-spy counts uvloop's and aiosqlite's waits as busy time; these per-thread figures do not.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import wrk
from benchmarks.images import build
from benchmarks.procs import CLK_TCK, Registry, context_switches, stat_fields
from benchmarks.servers import PEERS, Imgorigin, free_port
from benchmarks.workloads import WORKLOADS

WARMUP_SECONDS = 3.0


@dataclass(frozen=True)
class ThreadUse:
    ticks: int  # CPU clock ticks, user + system
    waits: int  # voluntary context switches
    preempted: int  # involuntary context switches


def thread_use() -> dict[int, ThreadUse]:
    """CPU and context switches of every thread of this process (a thread that ends while
    it is read is left out)."""
    use = {}
    for tid in os.listdir("/proc/self/task"):
        fields = stat_fields(f"/proc/self/task/{tid}/stat")
        switches = context_switches(f"/proc/self/task/{tid}/status")
        if fields is not None and switches is not None:
            use[int(tid)] = ThreadUse(int(fields[11]) + int(fields[12]), *switches)
    return use


def kind_of(tid: int, names: dict[int, str]) -> str:
    name = names.get(tid)
    if tid == threading.main_thread().native_id:
        return "event loop"
    if name is None:
        return "libvips"  # threads Python did not start
    if name.startswith("AnyIO worker"):
        return "pool threads"
    if "_connection_worker_thread" in name:
        return "aiosqlite"
    return "other"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.threads", description=__doc__)
    p.add_argument("workload", nargs="?", default="W1")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=2)
    args = p.parse_args(argv)
    if wrk.wrk_binary() is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    w = WORKLOADS[args.workload]
    if w.remote:  # the profile runs one worker in process, without W6's upstream
        print(
            f"{w.name} is not profiled here: python -m benchmarks --workloads W6", file=sys.stderr
        )
        return 2
    images = build(PEERS / "images")
    work = Path(tempfile.mkdtemp(prefix="imgorigin-threads-"))
    try:
        return run(w, images, work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(w: Any, images: dict[str, Path], work: Path, args: argparse.Namespace) -> int:
    import uvicorn

    server = Imgorigin()
    os.environ.update(server.prepare(work / "data", images, cache=False))
    paths = work / "paths.txt"
    urls = [server.path(w, p) for p in w.params()]
    paths.write_text("\n".join(urls) + "\n")
    # The warm-up walks the second half of the list and the measured run the first: wrk's
    # script wraps round the list, so a warm-up near its end would reach the paths the run
    # then asks for, and those answers would come from the store, not from a render.
    warmup_offset = len(urls) // 2
    script = wrk.write_script(work)
    port = free_port()
    config = uvicorn.Config(
        "imgorigin.app:app_from_environ",
        factory=True,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
    uvicorn_server = uvicorn.Server(config)
    found: dict[str, Any] = {}

    def drive() -> None:
        while not uvicorn_server.started:
            time.sleep(0.1)
        registry = Registry()
        try:
            load = functools.partial(
                wrk.run,
                registry,
                port=port,
                script=script,
                paths_file=paths,
                connections=args.connections,
            )
            load(offset=warmup_offset, duration=WARMUP_SECONDS)
            before = thread_use()
            found["wrk"] = load(offset=0, duration=args.seconds)
            found["fresh"] = found["wrk"].requests + args.connections <= warmup_offset
            found.update(before=before, after=thread_use())
            found["names"] = {t.native_id: t.name for t in threading.enumerate()}
        finally:
            registry.stop_all()
            uvicorn_server.should_exit = True

    threading.Thread(target=drive, daemon=True).start()
    uvicorn_server.run()
    if "after" not in found:
        print("the load did not finish (wrk failed): nothing measured", file=sys.stderr)
        return 1
    report(found)
    return 0


def report(found: dict[str, Any]) -> None:
    result: wrk.WrkResult = found["wrk"]
    requests, seconds = result.requests, result.seconds
    per = 1 / max(1, requests)
    by_kind: dict[str, list[float]] = {}  # kind -> [ms CPU, waits, preemptions] per request
    for tid, now in found["after"].items():
        was = found["before"].get(tid, ThreadUse(0, 0, 0))
        row = by_kind.setdefault(kind_of(tid, found["names"]), [0.0, 0.0, 0.0])
        row[0] += (now.ticks - was.ticks) * 1000 / CLK_TCK * per
        row[1] += (now.waits - was.waits) * per
        row[2] += (now.preempted - was.preempted) * per
    print(f"{requests} requests in {seconds:.1f} s ({requests / seconds:.1f} req/s)")
    if not found.get("fresh", True):
        print("  warning: the run reached the warm-up's paths: some answers were store hits")
    ranked = sorted(by_kind.items(), key=lambda x: -x[1][0])
    for kind, (ms, _, _) in ranked:
        print(f"  {kind:12s} {ms:6.2f} ms CPU per request")
    print(f"  {'total':12s} {sum(r[0] for r in by_kind.values()):6.2f} ms CPU per request")
    for kind, (_, waits, preempted) in ranked:
        print(f"  {kind:12s} {waits:6.1f} waits, {preempted:5.1f} preemptions per request")
    waits = sum(r[1] for r in by_kind.values())
    preempted = sum(r[2] for r in by_kind.values())
    print(f"  {'total':12s} {waits:6.1f} waits, {preempted:5.1f} preemptions per request")


if __name__ == "__main__":
    sys.exit(main())
