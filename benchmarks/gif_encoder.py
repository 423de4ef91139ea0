"""The animated-GIF encoder (origin/gif.py) on five animations, in its settings and in others.

    .venv/bin/python -m benchmarks.gif_encoder [--runs 5]

Each animation is rendered through `origin.render` as a fit (the W5 URL's path) and judged
as `make bench` judges W5 (`benchmarks.fidelity`: luma SSIM against the source's frames
resized by lanczos3, mean and worst frame). "8×8 block error" is the RMS difference of 8×8
block means against that ideal frame (0-255), mean over the frames: what a false contour
costs (dithering averages out inside a block; SSIM punishes dither grain instead). CPU ms
is the process time of one whole render, one thread, the least of `--runs`. A variant sets
the encoder's constants (and, for "before", its frame check) for its run: "before" is the
encoder of the 2026-12-03 runs (groups of 6, 5,400 sampled pixels, every frame dithered,
the drift read on the dithered map), "now" is the module as it is.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyvips
import skimage
from PIL import Image

from benchmarks import fidelity, images
from benchmarks.servers import PEERS
from origin import gif, render
from origin.transforms.parse import parse_path

IMAGE_ID = "0" * 32


def _before(frame: np.ndarray, palette: np.ndarray, onto: Image.Image) -> Image.Image:  # type: ignore[type-arg]
    """The frame check of the 2026-12-03 runs: every frame dithered, the drift read on the
    dithered map, a palette of its own when it drifts."""
    mapped = gif.remap(frame, onto, dither=True)
    if gif.drift(frame, gif._colours(palette, mapped)) > gif.MAX_BLOCK_ERROR:
        own = gif.target(gif.quantise(np.ascontiguousarray(frame)))
        mapped = gif.remap(frame, own, dither=True)
    return mapped


VARIANTS: dict[str, dict[str, object]] = {
    "before": {"GROUP": 6, "SAMPLE_PIXELS": 5400, "_remap_checked": _before},
    "now": {},
    "now, every frame dithered": {"SMOOTH": 0.0, "BANDING_SHARE": -1.0},
    "now, no frame dithered": {"BANDING_SHARE": 2.0},
    "now, groups of 24": {"GROUP": 24},
}


def _gif(frames: list[np.ndarray]) -> bytes:  # type: ignore[type-arg]
    strip = pyvips.Image.new_from_array(np.concatenate(frames)).copy(interpretation="srgb")
    strip = strip.copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", frames[0].shape[0])
    strip.set_type(pyvips.GValue.array_int_type, "delay", [80] * len(frames))
    strip.set_type(pyvips.GValue.gint_type, "loop", 0)
    return bytes(strip.gifsave_buffer(effort=7, keep="none"))


def _pan(photo: np.ndarray, width: int, height: int, n: int = 24) -> list[np.ndarray]:  # type: ignore[type-arg]
    h, w = photo.shape[:2]
    return [
        np.ascontiguousarray(
            photo[
                round(i * (h - height) / (n - 1)) :,
                round(i * (w - width) / (n - 1)) :,
            ][:height, :width]
        )
        for i in range(n)
    ]


def _zoom(photo: np.ndarray, width: int, height: int, n: int = 24) -> list[np.ndarray]:  # type: ignore[type-arg]
    img = pyvips.Image.new_from_array(photo)
    out = []
    for i in range(n):
        scale = 1.0 + 0.5 * i / (n - 1)
        big = img.resize(scale * width / img.width, kernel="lanczos3")
        left, top = (big.width - width) // 2, (big.height - height) // 2
        out.append(
            np.ndarray(
                buffer=big.extract_area(left, top, width, height).write_to_memory(),
                dtype=np.uint8,
                shape=(height, width, 3),
            )
        )
    return out


def _with_lines(frames: list[np.ndarray]) -> list[np.ndarray]:  # type: ignore[type-arg]
    out = []
    for f in frames:
        f = f.copy()
        f[80, 20:380] = (255, 0, 255)
        f[120:280, 240:242] = (0, 255, 255)
        out.append(f)
    return out


def animations() -> Iterator[tuple[str, bytes, str]]:
    """(name, GIF source, the fit chain) for each animation."""
    w5 = images.build(PEERS / "images")["w5.gif"].read_bytes()
    yield "W5, mosaic pan → 240×135", w5, "w_240,h_135,c_fit"
    coffee = skimage.data.coffee()  # 400x600
    yield "coffee, zoom 480×320 → 240×160", _gif(_zoom(coffee, 480, 320)), "w_240,h_160,c_fit"
    cat = _pan(np.kron(skimage.data.chelsea(), np.ones((2, 2, 1), np.uint8)), 400, 300)
    fit = "w_200,h_150,c_fit"
    yield "cat pan 400×300 → 200×150", _gif(cat), fit
    yield "cat pan with 1–2 px lines → 200×150", _gif(_with_lines(cat)), fit
    yield "cat pan under a smooth sky (top third) → 200×150", _gif(_with_sky(cat)), fit
    yield "smooth 2-D gradient pan → 200×150", _gif(images.gradient(400, 300, 24, step=8)), fit


def _with_sky(frames: list[np.ndarray]) -> list[np.ndarray]:  # type: ignore[type-arg]
    sky = images.gradient(400, 300, len(frames), step=8)
    out = []
    for f, top in zip(frames, sky, strict=True):
        f = f.copy()
        f[:100] = top[:100]
        out.append(f)
    return out


@contextmanager
def settings(values: dict[str, object]) -> Iterator[None]:
    saved = {name: getattr(gif, name) for name in values}
    for name, value in values.items():
        setattr(gif, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(gif, name, value)


def measure(source: bytes, chain: str, runs: int) -> tuple[float, bytes]:
    plan = parse_path(f"/i/{IMAGE_ID}/{chain}/x.gif")
    best, body = float("inf"), b""
    for _ in range(runs):
        start = time.process_time()
        body = render.render(source, plan).body
        best = min(best, time.process_time() - start)
    return best * 1000, body


def block_error(answer: bytes, source: Path, k: int = 8) -> float:
    """RMS over kxk blocks of the difference between the mean colours of each answer frame
    and of its ideal (fidelity.reference), mean over the frames: dithering averages out
    inside a block, a false contour shifts whole blocks."""
    got = fidelity.frames(fidelity.decode(answer))
    want = fidelity.frames(fidelity.decode(source.read_bytes()))
    errors = [
        fidelity.block_rms(
            _array(fidelity.reference(theirs, mine.width, mine.height)), _array(mine), k
        )
        for mine, theirs in zip(got, want, strict=True)
    ]
    return sum(errors) / len(errors)


def _array(img: pyvips.Image) -> np.ndarray:  # type: ignore[type-arg]
    img = img[:3].cast("uchar")
    return np.ndarray(
        buffer=img.write_to_memory(), dtype=np.uint8, shape=(img.height, img.width, 3)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    pyvips.cache_set_max(0)
    pyvips.concurrency_set(1)
    with tempfile.TemporaryDirectory() as tmp:
        print("| animation | variant | CPU ms | bytes | SSIM (worst frame) | 8×8 block error |")
        print("|---|---|---:|---:|---:|---:|")
        for name, source, chain in animations():
            path = Path(tmp) / "source.gif"
            path.write_bytes(source)
            for variant, values in VARIANTS.items():
                with settings(values):
                    ms, body = measure(source, chain, args.runs)
                score = fidelity.fit_ssim(body, path)
                blocks = block_error(body, path)
                print(
                    f"| {name} | {variant} | {ms:.1f} | {len(body):,} | "
                    f"{score.ssim:.4f} ({score.worst:.4f}) | {blocks:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
