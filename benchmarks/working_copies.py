"""Working copies (origin.working_copies): render cost from the original vs from the level the server
picks, for a few chains on the W1 source (4000×3000 photographic JPEG), plus what the levels
cost at upload and in storage.

The levels are made once, as at upload (CPU time and bytes reported). Each (chain, source)
then runs in a fresh subprocess (its own peak RSS): one warm-up, then N renders; median wall
and CPU (process) ms per render, VmHWM, output bytes, and the SSIM (scikit-image, RGB) of the
chain's lossless (PNG) render from the level against the same from the original.
Run: .venv/bin/python -m benchmarks.working_copies [repeats]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import images

ROOT = Path(__file__).resolve().parent.parent
CHAINS = (
    "w_300,h_200,c_fit,q_80/x.jpg",  # W1
    "w_300,h_200,c_fit,q_80/x.webp",  # W2
    "w_256,h_256,c_fit/x.webp",  # the admin API's thumbnail
    "w_400,h_400,c_fill,g_auto/x.jpg",
    "w_800,c_fit/x.jpg",
    "w_1200,c_fit/x.jpg",  # more than half the largest level: the original
)

CHILD = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
from origin.vips import configure_libvips
configure_libvips()
from origin import working_copies
from origin.records import WorkingCopy
from origin.transforms.limits import DEFAULT_LIMITS
from origin.transforms.parse import parse_path
from origin.render import StandIn, render
from origin.probe import probe_upload

source = open(sys.argv[2], "rb").read()
chain, variant, repeats, out_path = sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
levels = json.loads(sys.argv[7])  # [[w, h, file], ...] written by the upload step
plan = parse_path("/i/" + "0" * 32 + "/" + chain)
probe = probe_upload(source, max_source_pixels=10**9)
data, stand_in, used = source, None, "original"
if variant == "level":
    copies = [WorkingCopy(w, h, path) for w, h, path in levels]
    chosen = working_copies.choose(plan, probe.width, probe.height, copies, DEFAULT_LIMITS)
    if chosen is not None:
        data, used = open(chosen.storage_key, "rb").read(), f"{chosen.width}x{chosen.height}"
        stand_in = StandIn(probe.width, probe.height, probe.format)
out = render(data, plan, stand_in=stand_in)  # warm-up
walls, cpus = [], []
for _ in range(repeats):
    w0, c0 = time.perf_counter(), time.process_time()
    out = render(data, plan, stand_in=stand_in)
    walls.append(time.perf_counter() - w0)
    cpus.append(time.process_time() - c0)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
open(out_path, "wb").write(out.body)
stages = chain.rsplit(".", 1)[0].replace(",q_80", "")  # q_ on PNG would mean a palette
lossless = parse_path("/i/" + "0" * 32 + "/" + stages + ".png")
open(out_path + ".png", "wb").write(render(data, lossless, stand_in=stand_in).body)
print(json.dumps({"used": used, "wall_ms": statistics.median(walls) * 1000,
                  "cpu_ms": statistics.median(cpus) * 1000, "peak_rss_mb": int(hwm) / 1024,
                  "bytes": len(out.body)}))
"""

UPLOAD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from origin.vips import configure_libvips
configure_libvips()
from origin import working_copies
from origin.probe import probe_upload
source = open(sys.argv[2], "rb").read()
probe = probe_upload(source, max_source_pixels=10**9)
working_copies.build_for(source, probe)
times = []
for _ in range(3):
    c0 = time.process_time()
    levels = working_copies.build_for(source, probe)
    times.append(time.process_time() - c0)
written = []
for lv in levels:
    path = f"{sys.argv[3]}/{lv.width}x{lv.height}.{lv.ext}"
    open(path, "wb").write(lv.body)
    written.append([lv.width, lv.height, path, len(lv.body)])
print(json.dumps({"cpu_ms": sorted(times)[1] * 1000, "levels": written}))
"""


def child(code: str, *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", code, str(ROOT), *args], capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def similarity(a: Path, b: Path) -> float:
    import numpy as np
    import pyvips
    from skimage.metrics import structural_similarity

    def pixels(path: Path) -> np.ndarray:  # type: ignore[type-arg]
        img = pyvips.Image.new_from_file(str(path))
        shape = (img.height, img.width, img.bands)
        return np.ndarray(buffer=img.write_to_memory(), dtype=np.uint8, shape=shape)[:, :, :3]

    return float(structural_similarity(pixels(a), pixels(b), channel_axis=2, data_range=255))


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = images.build(work / "images")["w1.jpg"]
        upload = child(UPLOAD, str(source), str(work))
        levels = upload["levels"]
        assert isinstance(levels, list)
        stored = sum(int(lv[3]) for lv in levels)
        print(
            f"source: 4000x3000 JPEG, {source.stat().st_size:,} bytes; levels "
            + ", ".join(f"{w}x{h} ({b:,} bytes)" for w, h, _, b in levels)
            + f"; +{100 * stored / source.stat().st_size:.0f} % storage; "
            f"{upload['cpu_ms']:.0f} ms CPU to make them at upload"
        )
        print(
            "| chain | from | ms/render (wall) | CPU ms | peak RSS MB | bytes "
            "| SSIM vs original (lossless) |"
        )
        print("|---|---|---:|---:|---:|---:|---:|")
        copies = json.dumps([lv[:3] for lv in levels])
        for i, chain in enumerate(CHAINS):
            outs = {}
            for variant in ("original", "level"):
                out = work / f"{i}-{variant}.{chain.rsplit('.', 1)[1]}"
                r = child(CHILD, str(source), chain, variant, str(repeats), str(out), copies)
                outs[variant] = Path(f"{out}.png")
                same = (
                    ""
                    if variant == "original"
                    else f"{similarity(outs['original'], outs['level']):.4f}"
                )
                print(
                    f"| `{chain}` | {r['used']} | {r['wall_ms']:.1f} | {r['cpu_ms']:.1f} "
                    f"| {r['peak_rss_mb']:.0f} | {r['bytes']:,} | {same} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
