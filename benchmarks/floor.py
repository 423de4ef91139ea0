"""The floor: imgorigin's libvips pipeline in a loop, no HTTP, one thread.

Run as ``python -m benchmarks.floor IMAGES_DIR SECONDS W1,W2,... [--no-working-copies]
[--start-at UNIX_SECONDS]`` in its own process (so its peak RSS is its own and the harness's
libvips set-up is untouched); prints one JSON object.

It does what a server worker does for the workload's requests, minus HTTP, the stores and
the event loop: the same set-up (``configure_libvips()``: no operation cache;
``concurrency_set(1)``), the same distinct URLs the harness sends (the nominal request
first, then the first ``FLOOR_PATHS`` of the list, walked round and round) through
``parse_path`` (untimed) and ``render.render``, from the working copy ``origin.working_copies``
picks (levels built once, untimed, as at upload). The nominal request gives the output's
bytes and size, and is also timed from the original.

With ``--start-at`` (one workload), the process is one of several started at once by the
harness, one per core: each loops from that moment for SECONDS and prints how many renders
it completed — the floor measured on all the cores the servers get, not extrapolated from
one.
"""

from __future__ import annotations

import functools
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from origin.transforms.limits import DEFAULT_LIMITS

FLOOR_PATHS = 400  # distinct requests the floor walks (at most 500 renders per measurement)
ROUNDS = 3  # windows of the parallel floor; the best is kept, as for the servers' runs
ROUND_GAP = 1.0  # seconds between windows (a window's last render may overrun it)

if TYPE_CHECKING:
    from origin.render import Rendered
    from origin.transforms.plan import Plan


def timed(work: Callable[[], Rendered], seconds: float) -> tuple[float, int, Rendered]:
    """Median ms of ``work`` run for about ``seconds`` (at least 3 times), the count and the
    last output."""
    out = work()  # warm-up
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - began < seconds and len(times) < 500):
        start = time.perf_counter()
        out = work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, len(times), out


def renderers(
    source: bytes, paths: list[str], working_copies: bool = True
) -> tuple[list[Callable[[], Rendered]], Callable[[], Rendered] | None, str | None]:
    """What the server does for each of ``paths``: render from the working copy
    ``working_copies.choose`` picks (the levels made once here, untimed, as at upload), else from
    the original. Returns those renders, the nominal request's (the first path's) render
    from the original when a copy serves it (else None), and that copy's name."""
    from origin import working_copies as pyramid
    from origin.probe import probe_upload
    from origin.records import WorkingCopy
    from origin.render import StandIn, render
    from origin.transforms.parse import parse_path

    probe = probe_upload(source, max_source_pixels=10**9)
    levels = pyramid.build_for(source, probe, frames=True) if working_copies else []
    copies = [WorkingCopy(lv.width, lv.height, f"{i}.{lv.ext}") for i, lv in enumerate(levels)]
    stand_in = StandIn(probe.width, probe.height, probe.format)

    def served(plan: Plan) -> tuple[Callable[[], Rendered], str | None]:
        chosen = pyramid.choose(plan, probe.width, probe.height, copies, DEFAULT_LIMITS)
        if chosen is None:
            return functools.partial(render, source, plan), None
        level = levels[int(chosen.storage_key.split(".")[0])]
        name = f"{level.width}x{level.height}.{level.ext}"
        return functools.partial(render, level.body, plan, stand_in=stand_in), name

    nominal = parse_path(paths[0])
    copy = served(nominal)[1]
    works = [served(parse_path(path))[0] for path in paths]
    original = None if copy is None else functools.partial(render, source, nominal)
    return works, original, copy


def cycling(works: list[Callable[[], Rendered]]) -> Callable[[], Rendered]:
    """One render per call, walking ``works`` round and round (as the servers walk their
    never-repeating URLs)."""
    turn = itertools.cycle(works)
    return lambda: next(turn)()


def measure(
    source: bytes, paths: list[str], seconds: float, working_copies: bool = True
) -> dict[str, object]:
    """Median ms of the server's renders of ``paths`` in turn, one thread; the nominal
    request (the first) gives the bytes and size, and is measured from the original too
    when a working copy serves it (``original_ms_per_op``)."""
    works, original, copy = renderers(source, paths, working_copies)
    result: dict[str, object] = {"working_copy": copy, "distinct_requests": len(works)}
    if original is not None:
        result["original_ms_per_op"] = timed(original, seconds)[0]
    out = works[0]()
    ms, ops, _ = timed(cycling(works), seconds)
    result.update(
        ms_per_op=ms,
        ops=ops,
        bytes=len(out.body),
        width=out.width,
        height=out.height,
        ceiling_rps_2_cores=2000 / ms,
    )
    return result


def loop_from(
    source: bytes,
    paths: list[str],
    seconds: float,
    start_at: float,
    working_copies: bool = True,
    rounds: int = ROUNDS,
) -> dict[str, object]:
    """One of several copies of this process run at once (``--start-at``): the server's
    render of ``path`` in a loop for ``rounds`` windows of ``seconds``, the first from
    ``start_at`` (unix seconds), each ``ROUND_GAP`` after the last; per window, the renders
    completed, the seconds they took and this process's CPU seconds."""
    work = cycling(renderers(source, paths, working_copies)[0])
    work()  # warm-up, before the common start
    windows = []
    for window_start in round_starts(start_at, seconds, rounds):
        time.sleep(max(0.0, window_start - time.time()))
        began, cpu = time.perf_counter(), time.process_time()
        ops = 0
        while time.perf_counter() - began < seconds:
            work()
            ops += 1
        windows.append(
            {
                "ops": ops,
                "seconds": time.perf_counter() - began,
                "cpu_seconds": time.process_time() - cpu,
            }
        )
    return {"rounds": windows}


def round_starts(start_at: float, seconds: float, rounds: int) -> list[float]:
    return [start_at + k * (seconds + ROUND_GAP) for k in range(rounds)]


def main(argv: list[str]) -> None:
    import pyvips

    from benchmarks.seed import IMAGE_IDS
    from benchmarks.servers import Imgorigin
    from benchmarks.workloads import WORKLOADS
    from origin.vips import configure_libvips

    configure_libvips()
    pyvips.concurrency_set(1)
    images, seconds = Path(argv[0]), float(argv[1])
    working_copies = "--no-working-copies" not in argv[3:]
    start_at = float(argv[argv.index("--start-at") + 1]) if "--start-at" in argv else None
    server = Imgorigin()
    results: dict[str, object] = {}
    for name in argv[2].split(","):
        w = WORKLOADS[name]
        if not w.local_cold:
            continue
        # the servers' own URL list (the nominal request first), as far as a run can reach
        paths = [server.path(w, p).split("?", 1)[0] for p in w.params()[:FLOOR_PATHS]]
        assert IMAGE_IDS[w.source] in paths[0]
        source = (images / w.source).read_bytes()
        if start_at is not None:
            results[name] = loop_from(source, paths, seconds, start_at, working_copies)
        else:
            results[name] = measure(source, paths, seconds, working_copies)
    hwm = next(
        x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM")
    )
    print(json.dumps({"workloads": results, "peak_rss_bytes": int(hwm.split()[1]) * 1024}))


if __name__ == "__main__":
    main(sys.argv[1:])
