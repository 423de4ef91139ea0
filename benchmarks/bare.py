"""The thinnest origin this stack makes: what an HTTP server in Python costs beside the floor.

``python -m benchmarks.bare [W1] [--seconds 10] [--rounds 2] [--connections 8]`` serves the
workload's never-repeating URLs with uvicorn (uvloop, httptools, one worker per core) and a
raw ASGI app that does nothing but the floor's render (``benchmarks.floor.renderers``: the
same working copy, ``parse_path`` and ``render.render``) in a pool of ``CONCURRENCY`` threads
— no Starlette, signature, store, metrics or log. Each round drives it with wrk as the
harness drives the servers, then measures the floor on every core
(``benchmarks.floor_runs``), and prints both and their ratio: the share of the floor any
origin on this stack can reach, before it does anything an origin must do
(docs/performance.md, "The thinnest origin").

``app`` is the ASGI application each uvicorn worker loads (``BARE_WORKLOAD`` and
``BARE_IMAGES`` tell it what to serve).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROUND_GAP_SECONDS = 2.0
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


# ---- the app (in each uvicorn worker) --------------------------------------------------------


class Bare:
    """Every path of the workload rendered as the floor renders it; ``/healthz`` answers 200."""

    def __init__(self) -> None:
        self.works: dict[str, Callable[[], Any]] = {}
        self.pool = ThreadPoolExecutor(int(os.environ.get("CONCURRENCY", os.cpu_count() or 1)))

    def start(self) -> None:
        import pyvips

        from benchmarks.floor import renderers
        from benchmarks.servers import Imgorigin
        from benchmarks.workloads import WORKLOADS
        from origin.vips import configure_libvips

        configure_libvips()
        pyvips.concurrency_set(1)
        w = WORKLOADS[os.environ["BARE_WORKLOAD"]]
        paths = [Imgorigin().path(w, p).split("?", 1)[0] for p in w.params()]
        source = (Path(os.environ["BARE_IMAGES"]) / w.source).read_bytes()
        self.works = dict(zip(paths, renderers(source, paths)[0], strict=True))

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[..., Any]
    ) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    self.start()
                    await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        work = self.works.get(scope["path"])
        if work is None:
            status, body = (200 if scope["path"] == "/healthz" else 404), b""
        else:
            loop = asyncio.get_running_loop()
            status, body = 200, (await loop.run_in_executor(self.pool, work)).body
        headers = [(b"content-type", b"image/jpeg"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


app = Bare()


# ---- the driver -------------------------------------------------------------------------------


def main(argv: list[str]) -> None:
    from benchmarks import wrk
    from benchmarks.floor_runs import adjacent_floor
    from benchmarks.images import build
    from benchmarks.procs import Registry, cpu_seconds
    from benchmarks.servers import CORES, ROOT, VENV_BIN, Imgorigin, free_port, wait_ready
    from benchmarks.workloads import WORKLOADS

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bare")
    parser.add_argument("workload", nargs="?", default="W1")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    w = WORKLOADS[args.workload]
    registry = Registry()
    with tempfile.TemporaryDirectory(prefix="bare-") as folder:
        work = Path(folder)
        images = build(work / "images")
        paths_file = work / f"{w.name}.paths"
        paths_file.write_text("".join(Imgorigin().path(w, p) + "\n" for p in w.params()))
        script = wrk.write_script(work)
        port = free_port()
        argv_ = [str(VENV_BIN / "uvicorn"), "benchmarks.bare:app", "--port", str(port)]
        argv_ += ["--workers", str(CORES), "--loop", "uvloop", "--http", "httptools"]
        env = dict(os.environ, BARE_WORKLOAD=w.name, BARE_IMAGES=str(images[w.source].parent))
        env.setdefault("MALLOC_ARENA_MAX", "2")  # as the harness runs imgorigin
        try:
            group = registry.start("bare", [*argv_, "--no-access-log"], env=env, cwd=ROOT)
            wait_ready(group, port, "/healthz")
            drive = dict(port=port, script=script, paths_file=paths_file)
            wrk.run(registry, **drive, offset=0, duration=3, connections=args.connections)
            offset = len(w.params()) // 2
            for n in range(args.rounds):
                cpu0 = cpu_seconds(group.pid)
                result = wrk.run(
                    registry,
                    **drive,
                    offset=offset,
                    duration=args.seconds,
                    connections=args.connections,
                )
                cpu = cpu_seconds(group.pid) - cpu0
                offset += result.requests
                errors = sum(result.errors.values())
                print(
                    f"round {n + 1}: bare {w.name} {result.rps:.1f} req/s, "
                    f"{1000 * cpu / max(1, result.requests):.2f} ms CPU/req, "
                    f"p99 {result.p99_ms:.1f} ms, errors {errors}",
                    flush=True,
                )
                time.sleep(ROUND_GAP_SECONDS)
                floor = adjacent_floor(
                    registry, images[w.source].parent, w.name, args.seconds, work, True, "bare"
                )
                print(f"round {n + 1}: bare / floor = {result.rps / floor['rps']:.2f}", flush=True)
        finally:
            registry.stop_all()


if __name__ == "__main__":
    main(sys.argv[1:])
