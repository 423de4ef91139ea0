"""Shrink-on-load vs full decode: a 4000x3000 photographic JPEG to a 300x200 WebP.

Each variant runs in a fresh subprocess so peak RSS (VmHWM) is its own; "baseline" is the
interpreter with the same imports and no image work. `shrink_on_load` is the engine's path
(origin.render.render, thumbnail_buffer); `full_decode` decodes every pixel, then resizes.
Run: .venv/bin/python benchmarks/shrink_on_load.py [repeats]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys, time
import pyvips
sys.path.insert(0, sys.argv[3])
source = open(sys.argv[1], "rb").read()
variant, repeats = sys.argv[2], int(sys.argv[4])
pyvips.cache_set_max(0)

def engine():
    from origin.transforms.parse import parse_path
    from origin.render import render
    plan = parse_path("/i/" + "0" * 32 + "/w_300,h_200,c_fill/x.webp")
    return render(source, plan).body

def full_decode():
    img = pyvips.Image.new_from_buffer(source, "").autorot()
    scale = max(300 / img.width, 200 / img.height)
    img = img.resize(scale)
    left, top = (img.width - 300) // 2, (img.height - 200) // 2
    img = img.extract_area(left, top, 300, 200)
    return img.webpsave_buffer(Q=80, effort=4)

import origin.render  # same imports (numpy...) in every variant, so RSS compares fairly

def nothing():
    return b""

work = {"shrink_on_load": engine, "full_decode": full_decode, "baseline": nothing}[variant]
work()  # warm up
times = []
for _ in range(repeats):
    start = time.perf_counter()
    out = work()
    times.append(time.perf_counter() - start)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"variant": variant, "ms": sorted(times)[len(times) // 2] * 1000,
                  "peak_rss_mb": int(hwm) / 1024, "bytes": len(out)}))
"""


def make_source(path: str) -> None:
    import numpy as np
    import pyvips
    import skimage

    photo = os.path.join(os.path.dirname(skimage.__file__), "data", "astronaut.png")
    img = pyvips.Image.new_from_file(photo).resize(4000 / 512, vscale=3000 / 512)
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 8, (3000, 4000, 3)).astype(np.float32)
    noisy = (img.cast("float") + pyvips.Image.new_from_array(noise)).cast("uchar")
    noisy.copy(interpretation="srgb").jpegsave(path, Q=90)


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "big.jpg")
        make_source(source)
        print(f"source: 4000x3000 JPEG, {os.path.getsize(source) / 1e6:.1f} MB")
        for variant in ("baseline", "shrink_on_load", "full_decode"):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, source, variant, ROOT, str(repeats)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            result = json.loads(out)
            print(
                f"{result['variant']:>15}: {result['ms']:7.1f} ms median of {repeats}, "
                f"peak RSS {result['peak_rss_mb']:6.1f} MB, {result['bytes']} bytes"
            )


if __name__ == "__main__":
    main()
