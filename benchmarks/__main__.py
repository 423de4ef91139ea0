"""``python -m benchmarks``: imgorigin, thumbor and IPX side by side, plus the in-process floor.

Workload by workload, each server in turn (one at a time, each with every core, so the rows a
ratio compares are measured minutes apart): start it (one process group, or several:
thumbor's instances and their nginx), probe the workload's nominal URL
(status, bytes, size, frames, and for a fit the SSIM against an ideal resize of the source:
``benchmarks/fidelity.py``), warm up, then ``--runs`` wrk runs of ``--duration`` seconds,
each with the CPU time of the server's process trees (from /proc, before/after) and their
peak RSS (sampled every 100 ms). Best run = highest req/s. Prints a markdown table and the
targets, and writes ``bench.json`` and ``bench.png`` under ``--out``, and a copy of both in
a folder named after the run's start (UTC), so every run's raw numbers are kept. Each cold
workload's floor on every core is measured right after imgorigin's runs of it
(``benchmarks/floor_runs.py``: the machine's speed drifts over a run), the one-process floor
at the end. Every process started is in its own process group and is stopped on exit, error
or Ctrl-C.

W6 (a remote source: ``--workloads W6`` runs its two rows alone) also starts the loopback
website its objects come from (``benchmarks/upstream.py``), once, before the servers, and
starts each server once per W6 row with that website as its remote source
(``Workload.server_mode``).

EAGER (``--workloads EAGER`` runs it alone) is a step of its own after the floor, imgorigin
only, no wrk (``benchmarks/eager.py``): uploads with eager derivatives against the same
derivatives asked from the origin cold. Its figures go into ``bench.json`` (``eager``) and
the printed report, and into ``eager.json`` beside the latest run's files. A run of EAGER
alone keeps its files in its own folder and writes ``eager.json`` only, so the latest full
run's ``bench.json``, ``bench.md`` and ``bench.png`` stay as they were.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import eager, fidelity, report, upstream, wrk
from benchmarks import images as images_mod
from benchmarks.floor_runs import adjacent_floor, floor
from benchmarks.procs import (
    Registry,
    RssSampler,
    children_cpu_seconds,
    cpu_seconds,
    machine_busy_seconds,
    rss_bytes,
    self_cpu_seconds,
)
from benchmarks.results_files import environment, write_results
from benchmarks.servers import PEERS, ROOT, THUMBOR_THREADPOOL, Server, all_servers, http_get
from benchmarks.workloads import WORKLOADS, Workload, select

STEPS = ("EAGER",)  # measured by a step of their own, not by wrk (benchmarks/eager.py)

SLOW_FACTOR = 10.0  # a run lasts at least this many single-request times …
MAX_RUN_SECONDS = 40.0  # … up to this
OTHER_LOAD_WARN = 0.15  # cores used by processes outside the harness, server and wrk


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument(
        "--only", default="", help="comma-separated servers (imgorigin,thumbor,thumbor-1p,ipx)"
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds per run (default 10)")
    p.add_argument("--runs", type=int, default=3, help="runs per workload, best kept (default 3)")
    p.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    p.add_argument(
        "--workloads",
        default=",".join([*WORKLOADS, *STEPS]),
        help="e.g. W1,W3; W6 = W6-cold,W6-warm; EAGER = eager derivatives (default: all)",
    )
    p.add_argument(
        "--eager-repetitions",
        type=int,
        default=eager.REPETITIONS,
        help=f"EAGER: uploads measured, after one warm-up (default {eager.REPETITIONS})",
    )
    p.add_argument(
        "--memory-connections",
        type=int,
        default=16,
        help="one more run per workload at this many connections, for peak RSS (0 = skip)",
    )
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds (default 3)")
    p.add_argument(
        "--floor-seconds",
        type=float,
        default=None,
        help="per workload and window (default: --duration, so the floor's best window and "
        "the servers' best run are as long; 0 = skip)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--keep-work", action="store_true", help="keep the temporary folder (logs)")
    p.add_argument(
        "--thumbor-threadpool",
        type=int,
        default=THUMBOR_THREADPOOL,
        help=f"ENGINE_THREADPOOL_SIZE of each instance of the strong thumbor "
        f"(default {THUMBOR_THREADPOOL})",
    )
    p.add_argument(
        "--no-working-copies",
        action="store_true",
        help="seed imgorigin's originals without their working copies (the pyramid's 'before')",
    )
    args = p.parse_args(argv)
    tokens = [t.strip() for t in args.workloads.split(",") if t.strip()]
    args.steps = [s for s in STEPS if s in {t.upper() for t in tokens}]
    try:
        args.workloads = select(",".join(t for t in tokens if t.upper() not in STEPS))
    except ValueError as exc:
        p.error(f"unknown workload {exc} (known: {', '.join(WORKLOADS)}, W6, {', '.join(STEPS)})")
    if args.eager_repetitions < 1:
        p.error("--eager-repetitions must be at least 1")
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def describe(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    import pyvips

    info: dict[str, Any] = {"bytes": len(body), "content_type": headers.get("content-type", "")}
    try:
        img = pyvips.Image.new_from_buffer(body, "", n=-1)
    except pyvips.Error:
        img = pyvips.Image.new_from_buffer(body, "")
    pages = img.get("n-pages") if img.get_typeof("n-pages") else 1
    info.update(width=img.width, height=img.height // max(1, pages), pages=pages)
    return info


def fit_fidelity(body: bytes, source: Path) -> dict[str, Any]:
    """The answer's SSIM against its source resized to the answer's size (every frame)."""
    import pyvips

    try:
        score = fidelity.fit_ssim(body, source)
    except (ValueError, pyvips.Error) as exc:
        return {"ssim_error": str(exc)[:200]}
    return {"ssim": score.ssim, "ssim_worst_frame": score.worst, "ssim_frames": score.frames}


def prime(server: Server, port: int, w: Workload) -> None:
    """W6-warm: bring each of its remote objects into the server's source cache (one render
    no measured request asks for), so that the runs measure renders of kept sources."""
    for p in w.primers():
        path = server.path(w, p)
        status, _, body = http_get(port, path, timeout=120)
        if status != 200:
            raise RuntimeError(f"priming {path[:80]} → {status} {body[:120]!r}")


def measure(
    registry: Registry,
    server: Server,
    port: int,
    roots: list[int],
    w: Workload,
    args: Any,
    work: Path,
    source: Path,
    upstream_roots: tuple[int, ...] = (),
) -> dict[str, Any]:
    """Probe, warm up and run ``w`` against ``server``. ``upstream_roots``: W6's upstream,
    whose CPU is recorded apart (``upstream_cores``), neither the server's nor other load."""
    paths = [server.path(w, p) for p in server.params(w)]
    paths_file = work / f"{server.name}-{w.name}.paths"
    paths_file.write_text("\n".join(paths) + "\n")
    prime(server, port, w)
    began = time.perf_counter()
    status, headers, body = http_get(port, paths[0], timeout=120)
    probe_seconds = time.perf_counter() - began
    if status != 200:
        return {"error": f"probe {paths[0][:80]} → {status} {body[:120]!r}"}
    probe = describe(body, headers)
    if w.kind == "fit":
        probe.update(fit_fidelity(body, source))
    offset = 0 if w.mode == "hot" else 1
    script = work / "paths.lua"

    load = [0.0, 0.0, 0.0]  # wrk's, other processes' and the upstream's cores in the last run

    def once(seconds: float, connections: int) -> tuple[wrk.WrkResult, float, RssSampler]:
        nonlocal offset
        cpu0, busy0 = cpu_seconds(*roots), machine_busy_seconds()
        wrk0, self0 = children_cpu_seconds(), self_cpu_seconds()
        upstream0 = cpu_seconds(*upstream_roots)
        with RssSampler(*roots) as rss:
            result = wrk.run(
                registry,
                port=port,
                script=script,
                paths_file=paths_file,
                offset=offset,
                duration=seconds,
                connections=connections,
            )
        cpu = cpu_seconds(*roots) - cpu0
        wrk_cpu = children_cpu_seconds() - wrk0
        harness_cpu = self_cpu_seconds() - self0
        upstream_cpu = cpu_seconds(*upstream_roots) - upstream0
        busy = machine_busy_seconds() - busy0
        others = max(0.0, busy - cpu - wrk_cpu - harness_cpu - upstream_cpu)
        span = result.seconds or 1.0
        load[:] = [wrk_cpu / span, others / span, upstream_cpu / span]
        if w.mode == "cold":  # never reuse a URL: skip what was sent, and what was in flight
            offset += result.requests + connections + 8
        return result, cpu, rss

    # A slow workload (seconds per answer) under N connections completes in cohorts: a run
    # shorter than a few answer times may end before the first cohort and count 0 req/s.
    duration = max(args.duration, min(MAX_RUN_SECONDS, SLOW_FACTOR * probe_seconds))
    if args.warmup > 0:
        once(max(args.warmup, min(MAX_RUN_SECONDS, 2 * probe_seconds)), args.connections)
    runs = []
    peak = peak_process = 0
    for _ in range(args.runs):
        r, cpu, sampled = once(duration, args.connections)
        rss = sampled.peak
        peak = max(peak, rss)
        peak_process = max(peak_process, sampled.peak_process)
        runs.append(
            {
                "rps": r.rps,
                "requests": r.requests,
                "seconds": r.seconds,
                "p50_ms": r.p50_ms,
                "p90_ms": r.p90_ms,
                "p99_ms": r.p99_ms,
                "max_ms": r.max_ms,
                "cpu_ms_per_req": cpu * 1000 / r.requests if r.requests else None,
                "cpu_seconds": cpu,
                "peak_rss_bytes": rss,
                "peak_process_rss_bytes": sampled.peak_process,
                "wire_bytes": r.bytes,
                "errors": r.errors,
                "wrk_cores": load[0],
                "other_cores": load[1],
            }
        )
        if upstream_roots:
            runs[-1]["upstream_cores"] = load[2]
        print(
            f"  {server.name} {w.name}: {r.rps:7.1f} req/s  p50 {r.p50_ms:7.1f} ms  "
            f"p99 {r.p99_ms:7.1f} ms  cpu {runs[-1]['cpu_ms_per_req'] or 0:6.1f} ms/req  "
            f"rss {rss / 1e6:5.0f} MB (max/process {sampled.peak_process / 1e6:.0f})  errors {sum(r.errors.values())}  "
            f"(wrk {load[0]:.2f} cores, others {load[1]:.2f}"
            + (f", upstream {load[2]:.2f}" if upstream_roots else "")
            + ")",
            flush=True,
        )
        if load[1] > OTHER_LOAD_WARN:
            print(f"  warning: other processes used {load[1]:.2f} cores in this run", flush=True)
    best = max(runs, key=lambda x: (x["rps"], -(x["p50_ms"] or 0)))
    memory = None
    if args.memory_connections:  # one more run, for peak memory under more connections
        r, cpu, sampled = once(duration, args.memory_connections)
        memory = {
            "connections": args.memory_connections,
            "rps": r.rps,
            "errors": r.errors,
            "peak_rss_bytes": sampled.peak,
            "peak_process_rss_bytes": sampled.peak_process,
        }
        print(
            f"  {server.name} {w.name} at {args.memory_connections} connections: "
            f"{r.rps:7.1f} req/s  rss {sampled.peak / 1e6:5.0f} MB "
            f"(max/process {sampled.peak_process / 1e6:.0f})",
            flush=True,
        )
    return {
        "memory_run": memory,
        "probe": probe,
        "probe_seconds": probe_seconds,
        "run_seconds": duration,
        "runs": runs,
        "best": best,
        "peak_rss_bytes": peak,
        "peak_process_rss_bytes": peak_process,
        "distinct_urls": len(paths),
        "urls_used": offset,
        "urls_repeated": w.mode == "cold" and offset > len(paths),
        "runs_with_no_request": sum(1 for x in runs if not x["requests"]),
        "nominal_path": paths[0],
    }


def server_results(server: Server) -> dict[str, Any]:
    """What ``bench_server`` fills for one server."""
    return {
        "note": server.note,
        "version": getattr(server, "version", ""),
        "workloads": {},
        "idle_rss_bytes": {},
        "process_groups": {},
    }


def bench_server(
    registry: Registry,
    server: Server,
    wanted: list[Workload],
    args: Any,
    images: dict[str, Path],
    work: Path,
    upstream_roots: tuple[int, ...],
    out: dict[str, Any],
    after: Callable[[Workload], None] | None = None,
) -> None:
    """Every workload of ``wanted`` that ``server`` supports, one server start per mode, into
    ``out`` (``server_results``); ``after(w)`` runs once each workload's measurement is done,
    while the server is still up and idle."""
    for mode in ("cold", "remote-cold", "remote-warm", "hot"):
        todo = [w for w in wanted if w.server_mode == mode and server.supports(w)]
        if not todo:
            continue
        before = set(registry.groups)
        try:
            port = server.start(registry, work, images, mode)
            groups = [g for g in registry.groups if g not in before]
            roots = [g.pid for g in groups]
            out["process_groups"][mode] = len(groups)
            time.sleep(0.5)
            out["idle_rss_bytes"][mode] = rss_bytes(*roots)
            for w in todo:
                print(f"{server.name} · {w.name} ({w.title})", flush=True)
                try:
                    out["workloads"][w.name] = measure(
                        registry,
                        server,
                        port,
                        roots,
                        w,
                        args,
                        work,
                        images[w.source],
                        upstream_roots if w.remote else (),
                    )
                except RuntimeError as exc:
                    out["workloads"][w.name] = {"error": str(exc)[:500]}
                if "error" in out["workloads"][w.name]:
                    print(f"  error: {out['workloads'][w.name]['error']}", flush=True)
                    for group in groups:
                        print(group.tail(10), flush=True)
                elif after is not None:
                    after(w)
        except RuntimeError as exc:
            for w in todo:
                out["workloads"][w.name] = {"error": str(exc)[:500]}
            print(f"{server.name}: {exc}", flush=True)
        finally:
            for g in [g for g in registry.groups if g not in before]:
                registry.stop(g)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workloads and wrk.wrk_binary() is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.time()
    servers = [
        s
        for s in all_servers(
            working_copies=not args.no_working_copies,
            thumbor_threadpool=args.thumbor_threadpool,
        )
        if not args.only or s.name in args.only
    ]
    wanted = [WORKLOADS[w] for w in args.workloads]
    print("building workload images…", flush=True)
    images = images_mod.build(PEERS / "images")
    for name, path in images.items():
        print(f"  {name}: {path.stat().st_size / 1e6:.2f} MB", flush=True)
    registry = Registry()
    work = Path(tempfile.mkdtemp(prefix="imgorigin-bench-"))
    wrk.write_script(work)
    results: dict[str, Any] = {
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "config": {
            "duration": args.duration,
            "runs": args.runs,
            "connections": args.connections,
            "warmup": args.warmup,
            "wrk_threads": 1,
        },
        "workloads": [w.name for w in wanted],
        "titles": {w.name: w.title for w in wanted},
        "servers": {},
        "skipped": {},
    }
    floor_seconds = args.duration if args.floor_seconds is None else args.floor_seconds
    measured: dict[str, dict[str, Any]] = {}  # each cold workload's floor on every core

    def adjacent(w: Workload) -> None:
        if w.local_cold and floor_seconds > 0:
            print(f"floor {w.name} on every core, right after imgorigin's runs…", flush=True)
            measured[w.name] = adjacent_floor(
                registry,
                images["w1.jpg"].parent,
                w.name,
                floor_seconds,
                work,
                working_copies=not args.no_working_copies,
                after="imgorigin's runs",
            )

    try:
        PEERS.mkdir(parents=True, exist_ok=True)
        upstream_roots: tuple[int, ...] = ()
        if any(w.remote for w in wanted):
            print("starting W6's upstream (nginx, one photo under every object path)…", flush=True)
            site = upstream.start(registry, work, images["w1.jpg"])
            upstream_roots = (site.group.pid,)
            results["upstream"] = upstream.describe(site, images["w1.jpg"])
            for server in servers:
                server.upstream = site.host
        usable = []
        for server in servers if wanted else []:
            print(f"preparing {server.name}…", flush=True)
            reason = server.install(PEERS / f"{server.name}-install.log")
            if reason:
                print(f"  skipped: {reason}", flush=True)
                results["skipped"][server.name] = reason
            else:
                usable.append(server)
        # Workload by workload, every server in turn: the rows a ratio compares are measured
        # minutes apart, not half an hour (this machine's speed drifts by 10-15 % in that).
        for w in wanted:
            for server in usable:
                bench_server(
                    registry,
                    server,
                    [w],
                    args,
                    images,
                    work,
                    upstream_roots,
                    results["servers"].setdefault(server.name, server_results(server)),
                    after=adjacent if server.name == "imgorigin" else None,
                )
        registry.stop_all()
        if any(w.local_cold for w in wanted):
            print("floor (in-process pipeline)…", flush=True)
        results["floor"] = floor(
            registry,
            images["w1.jpg"].parent,
            wanted,
            floor_seconds,
            work,
            working_copies=not args.no_working_copies,
            measured=measured,
        )
        if "EAGER" in args.steps and (not args.only or "imgorigin" in args.only):
            print("eager derivatives (imgorigin)…", flush=True)
            try:
                results["eager"] = eager.run(
                    registry, work, images["w1.jpg"], args.eager_repetitions
                )
            except RuntimeError as exc:
                results["eager"] = {"error": str(exc)[:500]}
                print(f"  error: {exc}", flush=True)
        results["environment"] = environment(
            args,
            {
                n: {"version": r["version"], "note": r["note"]}
                for n, r in results["servers"].items()
            },
        )
    except KeyboardInterrupt:
        print("interrupted: stopping servers", file=sys.stderr)
        return 130
    finally:
        registry.stop_all()
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work folder kept: {work}")
    results["server_process_groups"] = registry.started
    text = (report.table(results) + "\n" + report.targets(results)) if wanted else ""
    if "eager" in results:
        text += ("\n" if text else "") + eager.table(results["eager"])
    print()
    print(text)
    written = write_results(results, text, args.out, started)
    print("wrote " + ", ".join(str(p) for p in written))
    failed = [
        f"{s} {w}"
        for s, r in results["servers"].items()
        for w, m in r["workloads"].items()
        if "error" in m
    ]
    if "error" in results.get("eager", {}):
        return 1
    return 1 if failed and any(s == "imgorigin" for s in (f.split()[0] for f in failed)) else 0


if __name__ == "__main__":
    sys.exit(main())
