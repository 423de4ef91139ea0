"""Memory soak: distinct heavy derivatives for a long time, every worker's RSS sampled.

    python -m benchmarks.soak [--requests 10500] [--connections 16] [--workers 2]
    make soak

One ``imgorigin serve --workers N`` with the *default* settings (the in-process caches on,
the default ``CONCURRENCY`` and ``CACHE_MAX_BYTES``; only the database, storage folder and
keys are set), seeded with the benchmark's W1 JPEG, W3 PNG and W5 GIF as an upload stores
them. The requests interleave W1, W3 and W5 and never repeat a URL (each a distinct
parameter set of ``benchmarks.workloads``), so every one is a render and every answer is a
new entry of the derivative caches. ``--connections`` clients send them back to back.

Every second the RSS of each worker process is recorded against the number of answers so
far. The run passes when:

- every answer is 200;
- no worker's RSS ever exceeds ``--max-rss-mb`` (300);
- no worker still grows over the last half: the largest RSS seen over the last quarter of
  the requests is at most ``--max-growth`` (3 %) above the largest seen over the quarter
  before it (the two halves of the last half; maxima over long windows, so one render's
  transient peak counts in both).

The samples and the verdict go to ``benchmarks/results/soak.json``; the exit status is 0
only when the run passes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import images as images_mod
from benchmarks.procs import Registry, process_rss, tree
from benchmarks.servers import PEERS, VENV_BIN, Imgorigin, free_port, wait_ready
from benchmarks.workloads import SEED, WORKLOADS

RESULTS = Path(__file__).resolve().parent / "results"
MIX = ("W1", "W3", "W5")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--requests", type=int, default=10_500)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-rss-mb", type=float, default=300.0)
    parser.add_argument("--max-growth", type=float, default=0.03)
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="extra setting"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    return parser.parse_args(argv)


def soak_env(data: Path, extra: list[str]) -> dict[str, str]:
    """The benchmark server's environment minus its tuning: the defaults a user gets."""
    env = Imgorigin().env(data, cache=True)
    for name in ("CONCURRENCY", "MALLOC_ARENA_MAX", "CACHE_MAX_BYTES"):
        env.pop(name, None)
    for item in extra:
        name, _, value = item.partition("=")
        env[name] = value
    return env


# W5's benchmark grid has 1,200 parameter sets; the soak needs more distinct GIF sizes.
W5_AXES = {"w": range(180, 280), "h": range(100, 160)}


def distinct_params(name: str) -> list[dict[str, Any]]:
    """Every distinct parameter set the soak may ask of workload ``name`` (W1 and W3: the
    benchmark's; W5: a wider grid of fit boxes around 240×135), in a fixed shuffled order."""
    workload = WORKLOADS[name]
    if name != "W5":
        return workload.params()
    grid = [{"w": w, "h": h} for w in W5_AXES["w"] for h in W5_AXES["h"]]
    random.Random(SEED).shuffle(grid)
    return grid


def mixed_paths(count: int) -> list[str]:
    """``count`` distinct signed paths, W1, W3 and W5 in turn."""
    server = Imgorigin()
    lists = [[server.path(WORKLOADS[name], p) for p in distinct_params(name)] for name in MIX]
    mixed = [path for group in zip(*lists, strict=False) for path in group]
    if len(mixed) < count:
        raise SystemExit(f"only {len(mixed)} distinct paths; ask for fewer requests")
    return mixed[:count]


@dataclass
class Progress:
    done: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, status: int) -> None:
        with self.lock:
            self.done += 1
            self.statuses[status] += 1


def client(port: int, paths: Any, progress: Progress) -> None:
    """One keep-alive connection sending the next path until there are none."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for path in paths:
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            status = 0
        progress.record(status)
    conn.close()


def workers_of(supervisor: int) -> list[int]:
    """The worker processes: the supervisor's descendants started by multiprocessing's
    spawn (not the supervisor itself, nor multiprocessing's resource tracker)."""
    found = []
    for pid in tree(supervisor):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if pid != supervisor and any(b"spawn_main" in a for a in argv):
            found.append(pid)
    return found


def sample(supervisor: int, progress: Progress, stop: threading.Event, out: list[Any]) -> None:
    while not stop.is_set():
        rss = {}
        for pid in workers_of(supervisor):
            sizes = process_rss(pid)
            if sizes:
                rss[pid] = sizes[0]
        out.append({"t": time.monotonic(), "done": progress.done, "rss": rss})
        stop.wait(1.0)


def window_peak(samples: list[Any], pid: int, low: int, high: int) -> int:
    return max(
        (s["rss"].get(pid, 0) for s in samples if low <= s["done"] <= high),
        default=0,
    )


def verdict(samples: list[Any], total: int, args: argparse.Namespace) -> dict[str, Any]:
    pids = sorted({pid for s in samples for pid in s["rss"]})
    tenth, quarter = total // 10, total // 4
    workers = {}
    for pid in pids:
        peak = max(s["rss"].get(pid, 0) for s in samples)
        middle = window_peak(samples, pid, total // 2, total - quarter)
        last = window_peak(samples, pid, total - quarter, total)
        growth = (last - middle) / middle if middle else 0.0
        workers[str(pid)] = {
            "peak_mb": round(peak / 2**20, 1),
            "third_quarter_mb": round(middle / 2**20, 1),
            "last_quarter_mb": round(last / 2**20, 1),
            "growth": round(growth, 4),
            "by_decile_mb": [
                round(window_peak(samples, pid, d * tenth, (d + 1) * tenth) / 2**20, 1)
                for d in range(10)
            ],
        }
    return workers


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    images = images_mod.build(PEERS / "images")
    work = Path(tempfile.mkdtemp(prefix="imgorigin-soak-"))
    registry = Registry()
    server = Imgorigin()
    try:
        data = work / "data"
        server.prepare(data, images, cache=True)  # migrated and seeded
        env = soak_env(data, args.env)
        port = free_port()
        argv_ = [str(VENV_BIN / "imgorigin"), "serve", "--port", str(port)]
        argv_ += ["--workers", str(args.workers)]
        group = registry.start("imgorigin-soak", argv_, env=env, log=work / "server.log")
        wait_ready(group, port, "/healthz")
        paths = mixed_paths(args.requests)
        print(f"soak: {len(paths)} distinct W1/W3/W5 requests, {args.connections} connections")
        progress = Progress()
        feed = iter(paths)
        lock = threading.Lock()

        def next_paths() -> Any:
            while True:
                with lock:
                    path = next(feed, None)
                if path is None:
                    return
                yield path

        samples: list[Any] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample, args=(group.pid, progress, stop, samples))
        sampler.start()
        began = time.monotonic()
        clients = [
            threading.Thread(target=client, args=(port, next_paths(), progress))
            for _ in range(args.connections)
        ]
        for c in clients:
            c.start()
        last_report = began
        while any(c.is_alive() for c in clients):
            time.sleep(0.5)
            if time.monotonic() - last_report >= 30:
                last_report = time.monotonic()
                sizes = [round(s / 2**20) for s in process_rss(group.pid)[1:]]
                print(f"  {progress.done:6d} answers, worker RSS {sizes} MB", flush=True)
        elapsed = time.monotonic() - began
        stop.set()
        sampler.join()
        workers = verdict(samples, len(paths), args)
    finally:
        registry.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    failures = []
    if set(progress.statuses) != {200}:
        failures.append(f"answers other than 200: {dict(progress.statuses)}")
    for pid, w in workers.items():
        if w["peak_mb"] > args.max_rss_mb:
            failures.append(f"worker {pid} peaked at {w['peak_mb']} MB > {args.max_rss_mb}")
        if w["growth"] > args.max_growth:
            failures.append(
                f"worker {pid} grew {w['growth']:.1%} over the last half "
                f"({w['third_quarter_mb']} -> {w['last_quarter_mb']} MB)"
            )
    result = {
        "requests": len(paths),
        "connections": args.connections,
        "workers": args.workers,
        "seconds": round(elapsed, 1),
        "statuses": {str(k): v for k, v in progress.statuses.items()},
        "extra_settings": args.env,
        "per_worker": workers,
        "failures": failures,
        "samples": [
            {
                "t": round(s["t"] - began, 1),
                "done": s["done"],
                "rss_mb": {str(p): round(v / 2**20, 1) for p, v in s["rss"].items()},
            }
            for s in samples
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"{len(paths)} requests in {elapsed:.0f} s ({len(paths) / elapsed:.1f}/s)")
    for pid, w in workers.items():
        print(
            f"  worker {pid}: peak {w['peak_mb']} MB, quarters 3 -> 4: {w['third_quarter_mb']}"
            f" -> {w['last_quarter_mb']} MB"
            f" ({w['growth']:+.1%}); by decile {w['by_decile_mb']}"
        )
    for f in failures:
        print(f"FAIL: {f}")
    print(f"wrote {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
