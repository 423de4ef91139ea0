"""The floor: imgorigin's libvips pipeline in a loop, no HTTP, one thread.

Run as ``python -m benchmarks.floor IMAGES_DIR SECONDS W1,W2,...`` in its own process (so its
peak RSS is its own and the harness's libvips set-up is untouched); prints one JSON object.
Same set-up as a server worker: ``configure_libvips()`` (no operation cache) and
``concurrency_set(1)``; the nominal plan of each workload through ``parse_path`` and
``pipeline.render``.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path


def measure(source: bytes, path: str, seconds: float) -> dict[str, float | int]:
    from origin.path import parse_path
    from origin.pipeline import render

    plan = parse_path(path)
    out = render(source, plan)  # warm-up
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - began < seconds and len(times) < 500):
        start = time.perf_counter()
        out = render(source, plan)
        times.append(time.perf_counter() - start)
    ms = statistics.median(times) * 1000
    return {
        "ms_per_op": ms,
        "ops": len(times),
        "bytes": len(out.body),
        "width": out.width,
        "height": out.height,
        "ceiling_rps_2_cores": 2000 / ms,
    }


def main(argv: list[str]) -> None:
    import pyvips

    from benchmarks.servers import IMAGE_IDS, Imgorigin
    from benchmarks.workloads import WORKLOADS
    from origin.vips import configure_libvips

    configure_libvips()
    pyvips.concurrency_set(1)
    images, seconds = Path(argv[0]), float(argv[1])
    server = Imgorigin()
    results = {}
    for name in argv[2].split(","):
        w = WORKLOADS[name]
        if w.mode != "cold":
            continue
        path = server.path(w, w.nominal).split("?", 1)[0]
        assert IMAGE_IDS[w.source] in path
        results[name] = measure((images / w.source).read_bytes(), path, seconds)
    hwm = next(
        x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM")
    )
    print(json.dumps({"workloads": results, "peak_rss_bytes": int(hwm.split()[1]) * 1024}))


if __name__ == "__main__":
    main(sys.argv[1:])
