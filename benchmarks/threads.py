"""Where a cold request's CPU goes, thread by thread, in one imgorigin worker.

``python -m benchmarks.threads [W1] [--seconds 10] [--connections 2]``: seeds a fresh
folder and database as the harness does (benchmarks.servers), runs one worker in this
process (uvicorn, uvloop, httptools, ``CONCURRENCY=1``, derivative caches off), drives it
with wrk over the workload's never-repeating URLs (a 3 s warm-up first), and prints the CPU
each thread spent per answered request, read from ``/proc/self/task/*/stat`` before and
after the run:

- ``event loop``: HTTP, the handler, the derivative-index lookups, scheduling;
- ``pool threads``: the render job running ``pipeline.render`` (with local storage it also
  reads the source and writes the derivative), and any file I/O; ``libvips``: its worker
  threads (the two together are the render);
- ``aiosqlite``: the database threads; ``other``: anything else.

py-spy counts uvloop's and aiosqlite's waits as busy time; these per-thread figures do not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import wrk
from benchmarks.images import build
from benchmarks.servers import PEERS, Imgorigin, free_port, seed
from benchmarks.workloads import WORKLOADS


def thread_ticks() -> dict[int, int]:
    """CPU clock ticks (user + system) of every thread of this process."""
    ticks = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[int(tid)] = int(fields[11]) + int(fields[12])
    return ticks


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
    images = build(PEERS / "images")
    work = Path(tempfile.mkdtemp(prefix="imgorigin-threads-"))
    try:
        return run(w, images, work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(w: Any, images: dict[str, Path], work: Path, args: argparse.Namespace) -> int:
    import uvicorn

    server = Imgorigin()
    env = server.env(work, cache=False)
    subprocess.run(
        [sys.executable, "-m", "imgorigin.cli", "migrate"], env=env, check=True, capture_output=True
    )
    seed(env, images)
    os.environ.update(env)
    paths = work / "paths.txt"
    paths.write_text("\n".join(server.path(w, p) for p in w.params()) + "\n")
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
        base = ["wrk", "-t1", f"-c{args.connections}", "-s", str(script)]
        url = f"http://127.0.0.1:{port}"
        subprocess.run([*base, "-d3s", url, "--", str(paths), "15000"], capture_output=True)
        before = thread_ticks()
        done = subprocess.run(
            [*base, f"-d{round(args.seconds)}s", url, "--", str(paths), "0"],
            capture_output=True,
            text=True,
        )
        found.update(before=before, after=thread_ticks(), output=done.stdout)
        found["names"] = {t.native_id: t.name for t in threading.enumerate()}
        uvicorn_server.should_exit = True

    threading.Thread(target=drive, daemon=True).start()
    uvicorn_server.run()
    report(found)
    return 0


def report(found: dict[str, Any]) -> None:
    import json

    line = next(x for x in found["output"].splitlines() if x.startswith("WRK_JSON "))
    summary = json.loads(line[len("WRK_JSON ") :])
    requests, seconds = summary["requests"], summary["duration_us"] / 1e6
    hz = os.sysconf("SC_CLK_TCK")
    by_kind: dict[str, float] = {}
    for tid, ticks in found["after"].items():
        spent = ticks - found["before"].get(tid, 0)
        kind = kind_of(tid, found["names"])
        by_kind[kind] = by_kind.get(kind, 0.0) + spent * 1000 / hz / max(1, requests)
    print(f"{requests} requests in {seconds:.1f} s ({requests / seconds:.1f} req/s)")
    for kind, ms in sorted(by_kind.items(), key=lambda x: -x[1]):
        print(f"  {kind:12s} {ms:6.2f} ms CPU per request")
    print(f"  {'total':12s} {sum(by_kind.values()):6.2f} ms CPU per request")


if __name__ == "__main__":
    sys.exit(main())
