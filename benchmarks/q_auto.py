"""``python -m benchmarks.q_auto``: bytes saved by ``q_auto`` against the per-format default.

Over the photographs that ship with scikit-image (never enlarged: ``w_1200,c_limit``, so
only retina.jpg is reduced, to 1200×1200, and is searched on a tile sample) and each lossy
output format, it renders the same chain through ``origin.render.render`` twice — at the
default quality and with ``q_auto`` at each ``--targets`` SSIM — and measures, for both, the
bytes and the SSIM of the whole served image against the unencoded render (a lossless PNG
of the same chain). CPU only, in process, one libvips thread (as in a worker):
about a minute on 2 cores for three targets. Prints a markdown table per target and writes
``q_auto.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyvips

from origin import quality
from origin.encode import ENCODERS
from origin.render import Rendered, render
from origin.transforms.parse import parse_path
from origin.vips import configure_libvips

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = (
    "astronaut.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "grass.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
)
FORMATS = {"jpg": "jpeg", "webp": "webp", "avif": "avif"}
CHAIN = "w_1200,c_limit"
IMAGE_ID = "0" * 32


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.q_auto", description=__doc__)
    p.add_argument("--targets", default="0.95,0.96,0.97", help="SSIM targets (comma-separated)")
    p.add_argument("--formats", default=",".join(FORMATS), help="jpg,webp,avif")
    p.add_argument("--photos", default=",".join(PHOTOS), help="files of skimage/data")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    args.targets = [float(t) for t in args.targets.split(",") if t.strip()]
    args.formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    args.photos = [n.strip() for n in args.photos.split(",") if n.strip()]
    return args


def photo(name: str) -> bytes:
    import skimage

    return (Path(skimage.__file__).parent / "data" / name).read_bytes()


def run(source: bytes, tokens: str, ext: str, auto: quality.AutoQuality) -> tuple[Rendered, float]:
    plan = parse_path(f"/i/{IMAGE_ID}/{tokens}/x.{ext}")
    began = time.perf_counter()
    made = render(source, plan, auto=auto)
    return made, (time.perf_counter() - began) * 1000


def measure(source: bytes, ext: str, targets: list[float]) -> dict[str, Any]:
    lossless, _ = run(source, CHAIN, "png", quality.SEARCH)
    reference = quality.luma(pyvips.Image.new_from_buffer(lossless.body, ""))

    def ssim(made: Rendered) -> float:
        return quality.ssim(reference, quality.luma(pyvips.Image.new_from_buffer(made.body, "")))

    default, default_ms = run(source, CHAIN, ext, quality.SEARCH)
    row: dict[str, Any] = {
        "size": [default.width, default.height],
        "default": {
            "quality": ENCODERS[FORMATS[ext]].default_quality,
            "bytes": len(default.body),
            "ssim": round(ssim(default), 5),
            "ms": round(default_ms, 1),
        },
        "auto": {},
    }
    for target in targets:
        made, ms = run(source, f"{CHAIN},q_auto", ext, quality.AutoQuality(target))
        assert made.choice is not None
        row["auto"][str(target)] = {
            "quality": made.choice.quality,
            "bytes": len(made.body),
            "ssim": round(ssim(made), 5),
            "search_ssim": round(made.choice.ssim or 0.0, 5),
            "encodes": made.choice.encodes,
            "ms": round(ms, 1),
        }
    return row


def table(results: dict[str, Any], target: float) -> str:
    key = str(target)
    lines = [
        f"SSIM target {target}:",
        "",
        "| photo | size | format | default q | bytes | SSIM | q_auto q | bytes | SSIM "
        "| saved | encodes | ms (default / q_auto) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    totals: dict[str, list[int]] = {}
    for name, per_format in results["photos"].items():
        for ext, row in per_format.items():
            d, a = row["default"], row["auto"][key]
            saved = 1 - a["bytes"] / d["bytes"]
            total = totals.setdefault(ext, [0, 0])
            total[0] += d["bytes"]
            total[1] += a["bytes"]
            lines.append(
                f"| {name} | {row['size'][0]}×{row['size'][1]} | {ext} | {d['quality']} "
                f"| {d['bytes']:,} | {d['ssim']:.3f} | {a['quality']} | {a['bytes']:,} "
                f"| {a['ssim']:.3f} | {saved:+.0%} | {a['encodes']} | {d['ms']:.0f} / {a['ms']:.0f} |"
            )
    for ext, (default_bytes, auto_bytes) in totals.items():
        lines.append(
            f"| **all** | | {ext} | | {default_bytes:,} | | | {auto_bytes:,} | "
            f"| {1 - auto_bytes / default_bytes:+.0%} | | |"
        )
    return "\n".join(lines)


def commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return "?"
    return done.stdout.strip() or "?"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_libvips()
    results: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "commit": commit(),
        "machine": platform.machine(),
        "libvips": f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}",
        "chain": CHAIN,
        "targets": args.targets,
        "ranges": {f: vars(r) for f, r in quality.RANGES.items()},
        "photos": {},
    }
    for name in args.photos:
        source = photo(name)
        results["photos"][name] = {ext: measure(source, ext, args.targets) for ext in args.formats}
        print(f"{name}: done", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "q_auto.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"\n{results['when']}, commit {results['commit']}, libvips {results['libvips']}\n")
    for target in args.targets:
        print(table(results, target) + "\n")


if __name__ == "__main__":
    main()
