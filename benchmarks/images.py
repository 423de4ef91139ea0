"""Workload sources, built deterministically from the photographs in scikit-image's wheel.

- ``w1.jpg``: a 2×2 mosaic of four photos, each scaled to 2000×1500 (4000×3000 in all),
  plus fixed-seed Gaussian noise (σ = NOISE_SIGMA) so it compresses like a camera photo;
  baseline JPEG q90, about 4 MB.
- ``w3.png``: the noise-free mosaic cut to 16:9 and scaled to 1920×1080, PNG (compression 6).
- ``w5.gif``: 24 frames of 480×270, each a window panning across the mosaic, 80 ms apart.
- ``w7.jpg``: the group photograph of eight faces (``benchmarks/people.py``), scaled to
  2400×1600, JPEG q90.

The same inputs give the same bytes (libvips and numpy versions permitting); a stamp file
records the recipe so a changed recipe rebuilds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")
NOISE_SIGMA = 5.5
SEED = 20240611
RECIPE = {"photos": PHOTOS, "noise": NOISE_SIGMA, "seed": SEED, "version": 3}
NAMES = ("w1.jpg", "w3.png", "w5.gif", "w7.jpg")


def skimage_data() -> Path:
    import skimage

    return Path(os.path.dirname(skimage.__file__)) / "data"


def _tile(path: Path, width: int, height: int):
    import pyvips

    img = pyvips.Image.new_from_file(str(path), access="sequential")
    if img.bands == 4:
        img = img.flatten(background=[255, 255, 255])
    if img.bands == 1:
        img = img.bandjoin([img, img])
    img = img.colourspace("srgb") if img.interpretation != "srgb" else img
    # Cover width×height, then cut the centre: no distortion.
    scale = max(width / img.width, height / img.height)
    img = img.resize(scale, kernel="lanczos3")
    left, top = (img.width - width) // 2, (img.height - height) // 2
    return img.extract_area(left, top, width, height)


def mosaic():
    import pyvips

    data = skimage_data()
    tiles = [_tile(data / name, 2000, 1500) for name in PHOTOS]
    img = pyvips.Image.arrayjoin(tiles, across=2)
    return img.copy_memory()


def gradient(width: int, height: int, frames: int, step: int):
    """A smooth three-colour gradient panned `step` px a frame: more shades than a GIF
    palette has (origin/gif.py's banding tests and benchmarks.gif_encoder). A list of
    (height, width, 3) uint8 arrays."""
    import numpy as np

    yy, xx = np.mgrid[0:height, 0:width].astype(float)
    out = []
    for i in range(frames):
        x = xx + step * i
        red = 30 + 180 * x / (width + step * frames)
        green = 40 + 150 * yy / height
        blue = 200 - 120 * (x + yy) / (width + height + step * frames)
        out.append(np.stack([red, green, blue], 2).round().astype(np.uint8))
    return out


def _noisy(img):
    import numpy as np
    import pyvips

    rng = np.random.default_rng(SEED)
    noise = rng.normal(0.0, NOISE_SIGMA, (img.height, img.width, img.bands)).astype(np.float32)
    out = (img.cast("float") + pyvips.Image.new_from_array(noise)).cast("uchar")
    return out.copy(interpretation="srgb")


def build(folder: Path) -> dict[str, Path]:
    """Write the three sources into ``folder`` (skipped when the stamp matches)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / name for name in NAMES}
    stamp = folder / "recipe.json"
    recipe = json.dumps(RECIPE, sort_keys=True)
    if stamp.exists() and stamp.read_text() == recipe and all(p.exists() for p in paths.values()):
        return paths
    base = mosaic()
    _noisy(base).jpegsave(str(paths["w1.jpg"]), Q=90, keep="none")
    wide = base.extract_area(0, (3000 - 2250) // 2, 4000, 2250).resize(1920 / 4000)
    wide.pngsave(str(paths["w3.png"]), compression=6, keep="none")
    _gif(base, paths["w5.gif"])
    _group(paths["w7.jpg"])
    stamp.write_text(recipe)
    return paths


def _group(path: Path) -> None:
    import pyvips

    from benchmarks.people import group

    img = pyvips.Image.new_from_buffer(group().png, "").resize(2.0, kernel="lanczos3")
    img.jpegsave(str(path), Q=90, keep="none")


def _gif(base, path: Path) -> None:
    import pyvips

    small = base.resize(960 / 4000)  # 960×720
    frames = []
    for i in range(24):
        left = round(i * (960 - 480) / 23)
        top = round(i * (720 - 270) / 23)
        frames.append(small.extract_area(left, top, 480, 270))
    strip = pyvips.Image.arrayjoin(frames, across=1).copy_memory()
    strip = strip.copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", 270)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [80] * 24)
    strip.set_type(pyvips.GValue.gint_type, "loop", 0)
    strip.gifsave(str(path), keep="none")


if __name__ == "__main__":
    import sys

    out = build(Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/.peers/images"))
    for name, p in out.items():
        print(name, p.stat().st_size)
