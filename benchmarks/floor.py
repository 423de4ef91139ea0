"""The floor: imgorigin's libvips pipeline in a loop, no HTTP, one thread.

Run as ``python -m benchmarks.floor IMAGES_DIR SECONDS W1,W2,... [--no-working-copies]`` in its
own process (so its peak RSS is its own and the harness's libvips set-up is untouched); prints
one JSON object. Like the server, it renders from a working copy when one serves the request
(``origin.pyramid``; built once, untimed, as at upload) and then also times the original.
Same set-up as a server worker: ``configure_libvips()`` (no operation cache) and
``concurrency_set(1)``; the nominal plan of each workload through ``parse_path`` and
``pipeline.render``.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from origin.path import DEFAULT_LIMITS

if TYPE_CHECKING:
    from origin.pipeline import Rendered


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


def measure(
    source: bytes, path: str, seconds: float, working_copies: bool = True
) -> dict[str, object]:
    """What the server does for ``path``: render from the working copy ``pyramid.choose``
    picks (made once here, as at upload), else from the original. A request served from a
    working copy is measured from the original too (``original_ms_per_op``)."""
    from origin import pyramid
    from origin.metadata.repository import WorkingCopy
    from origin.path import parse_path
    from origin.pipeline import StandIn, render
    from origin.probe import probe_upload

    plan = parse_path(path)
    probe = probe_upload(source, max_source_pixels=10**9)
    levels = pyramid.build_for(source, probe) if working_copies else []
    copies = [WorkingCopy(lv.width, lv.height, str(i)) for i, lv in enumerate(levels)]
    chosen = pyramid.choose(plan, probe.width, probe.height, copies, DEFAULT_LIMITS)
    result: dict[str, object] = {"working_copy": None}
    if chosen is not None:
        level = levels[int(chosen.storage_key)]
        stand_in = StandIn(probe.width, probe.height, probe.format)
        result["working_copy"] = f"{level.width}x{level.height}.{level.ext}"
        result["original_ms_per_op"] = timed(lambda: render(source, plan), seconds)[0]
        ms, ops, out = timed(lambda: render(level.body, plan, stand_in=stand_in), seconds)
    else:
        ms, ops, out = timed(lambda: render(source, plan), seconds)
    result.update(
        ms_per_op=ms,
        ops=ops,
        bytes=len(out.body),
        width=out.width,
        height=out.height,
        ceiling_rps_2_cores=2000 / ms,
    )
    return result


def main(argv: list[str]) -> None:
    import pyvips

    from benchmarks.servers import IMAGE_IDS, Imgorigin
    from benchmarks.workloads import WORKLOADS
    from origin.vips import configure_libvips

    configure_libvips()
    pyvips.concurrency_set(1)
    images, seconds = Path(argv[0]), float(argv[1])
    working_copies = "--no-working-copies" not in argv[3:]
    server = Imgorigin()
    results = {}
    for name in argv[2].split(","):
        w = WORKLOADS[name]
        if w.mode != "cold":
            continue
        path = server.path(w, w.nominal).split("?", 1)[0]
        assert IMAGE_IDS[w.source] in path
        results[name] = measure((images / w.source).read_bytes(), path, seconds, working_copies)
    hwm = next(
        x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM")
    )
    print(json.dumps({"workloads": results, "peak_rss_bytes": int(hwm.split()[1]) * 1024}))


if __name__ == "__main__":
    main(sys.argv[1:])
