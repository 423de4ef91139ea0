"""``q_auto``: the lowest encoder quality whose result still looks like the unencoded render.

Pure and synchronous (libvips only); the pipeline calls it inside the render job.

The measure is SSIM (Wang, Bovik, Sheikh and Simoncelli, 2004) on luma: Rec. 601 weights of
the 8-bit sRGB pixels (alpha flattened onto the background first), an 11×11 Gaussian window
with σ = 1.5, C1 = (0.01·255)², C2 = (0.03·255)², averaged over the windows that fit inside the
image. That is the number scikit-image's ``structural_similarity(gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=255)`` gives (a test holds them equal). It is
computed with libvips (separable convolution in float), about 0.1 s per megapixel on one
thread. Chroma is not measured: JPEG's 4:2:0 subsampling and colour quantisation are seen
only through their effect on luma.

The search is a bounded binary search over a per-format grid of qualities (``RANGES``:
5 apart, from a floor up to the format's default quality), for the lowest quality whose SSIM
reaches the target. It tests at most 4 qualities (one more encode when every tested one
missed and the top of the range, the default, is taken), and
what it returns always satisfies: the chosen quality reaches the target, or is the top of the
range; the quality one step below it was tested and missed, or the choice is the bottom of
the range. SSIM is not strictly monotonic in the quality (JPEG on large flat areas can dip a
little), so "lowest" means the lowest on that boundary.

Outputs above ``SAMPLE_PIXELS`` are searched on a sample: a grid of ``TILE``-pixel tiles cut
from the output at full resolution (a downscale would hide the very artefacts SSIM looks
for), joined into one image; then the whole output is encoded once at the chosen quality.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import pyvips

from origin.settings import DEFAULT_AUTO_QUALITY_SSIM

SIGMA = 1.5
RADIUS = 5  # scikit-image's: int(3.5 * sigma + 0.5)
WINDOW = 2 * RADIUS + 1  # an image narrower or shorter than this takes the default quality
C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2
LUMA = (0.299, 0.587, 0.114)  # Rec. 601
TILE = 256  # side of a sample tile (a multiple of the codecs' 16-pixel blocks)
SAMPLE_PIXELS = 9 * TILE * TILE  # outputs up to this many pixels are searched whole

Encode = Callable[[pyvips.Image, int], bytes]  # (image, quality) -> encoded bytes


@dataclass(frozen=True)
class QualityRange:
    low: int
    high: int
    step: int

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(range(self.low, self.high + 1, self.step))


# Lossy formats only: PNG and GIF are lossless (or palette) and keep their defaults. Each
# range tops out at the format's default quality (a test holds them equal): q_auto never
# spends more bytes than no q_ at all; where even the default misses the target, it is used.
RANGES: Mapping[str, QualityRange] = MappingProxyType(
    {
        "jpeg": QualityRange(40, 80, 5),
        "webp": QualityRange(40, 80, 5),
        "avif": QualityRange(30, 60, 5),
    }
)


@dataclass(frozen=True)
class AutoQuality:
    """How a render resolves ``q_auto``: the SSIM target, and a quality chosen before (which
    is then used as it is: one encode, no search)."""

    target: float = DEFAULT_AUTO_QUALITY_SSIM
    chosen: int | None = None


SEARCH = AutoQuality()  # search at the default target


@dataclass(frozen=True)
class Choice:
    """The quality ``q_auto`` used. ``ssim`` is None where none was measured: a quality
    chosen before, or an image too small for one SSIM window (the range's top)."""

    quality: int
    ssim: float | None
    searched: bool
    encodes: int


# ---------------------------------------------------------------- SSIM


def _window() -> pyvips.Image:
    weights = [math.exp(-(i * i) / (2 * SIGMA * SIGMA)) for i in range(-RADIUS, RADIUS + 1)]
    total = sum(weights)
    return pyvips.Image.new_from_list([[w / total for w in weights]])


def luma(img: pyvips.Image, background: tuple[int, int, int] = (255, 255, 255)) -> pyvips.Image:
    """One float band: the Rec. 601 luma of 8-bit pixels, alpha flattened onto ``background``."""
    if img.format != "uchar":
        img = img.cast("uchar")
    if img.bands in (2, 4):
        fill = [sum(LUMA[i] * background[i] for i in range(3))] if img.bands == 2 else background
        img = img.flatten(background=list(fill))
    if img.bands >= 3:
        return img.extract_band(0, n=3).recomb([list(LUMA)])
    return img.extract_band(0).cast("float")


def ssim(reference: pyvips.Image, candidate: pyvips.Image) -> float:
    """Mean SSIM of two luma images (``luma()``) of the same size."""
    window = _window()

    def blur(img: pyvips.Image) -> pyvips.Image:
        return img.convsep(window, precision="float")

    x, y = reference, candidate
    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cov = blur(x * y) - mx * my
    index = ((mx * my * 2 + C1) * (cov * 2 + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2))
    inner = index.crop(RADIUS, RADIUS, index.width - 2 * RADIUS, index.height - 2 * RADIUS)
    return float(inner.avg())


# ---------------------------------------------------------------- sample


def _starts(length: int, tile: int, count: int) -> list[int]:
    """Origins of ``count`` tiles centred on ``count`` equal cells of ``length`` (so the middle
    is sampled, not only the edges), on 16-pixel block boundaries."""
    centres = ((2 * i + 1) * length // (2 * count) for i in range(count))
    return [min(max(0, c - tile // 2) // 16 * 16, length - tile) for c in centres]


def sample(img: pyvips.Image, budget: int = SAMPLE_PIXELS) -> pyvips.Image:
    """The image itself when it has at most ``budget`` pixels; else a grid of full-resolution
    tiles, one centred in each cell of a grid over the image (3 × 3 for a square one), joined
    into one image of at most ``budget`` pixels."""
    if img.width * img.height <= budget:
        return img
    tw, th = min(TILE, img.width), min(TILE, img.height)
    tiles = max(1, budget // (tw * th))
    columns = max(1, min(round(math.sqrt(tiles * img.width / img.height)), tiles, img.width // tw))
    rows = max(1, min(tiles // columns, img.height // th))
    cut = [
        img.crop(x, y, tw, th)
        for y in _starts(img.height, th, rows)
        for x in _starts(img.width, tw, columns)
    ]
    return pyvips.Image.arrayjoin(cut, across=columns).copy_memory()


# ---------------------------------------------------------------- search


def choose(
    img: pyvips.Image,
    encode: Encode,
    qualities: QualityRange,
    target: float,
    background: tuple[int, int, int] = (255, 255, 255),
    budget: int = SAMPLE_PIXELS,
) -> tuple[bytes, Choice]:
    """Encode ``img`` at the lowest quality of the range whose SSIM reaches ``target``
    (searched on ``sample(img, budget)``); at the top of the range, unsearched, when a side
    is shorter than the ``WINDOW`` SSIM needs."""
    grid = qualities.grid
    if min(img.width, img.height) < WINDOW:  # no window fits: nothing to measure
        return encode(img, grid[-1]), Choice(grid[-1], None, searched=False, encodes=1)
    probe = sample(img, budget)
    reference = luma(probe, background).copy_memory()
    tried: dict[int, tuple[bytes, float]] = {}

    def score(quality: int) -> float:
        body = encode(probe, quality)
        decoded = pyvips.Image.new_from_buffer(body, "")
        tried[quality] = (body, ssim(reference, luma(decoded, background)))
        return tried[quality][1]

    low, high = 0, len(grid) - 1  # the answer is an index; the top one needs no test
    while low < high:
        middle = (low + high) // 2
        if score(grid[middle]) >= target:
            high = middle
        else:
            low = middle + 1
    quality = grid[low]
    if quality not in tried:
        score(quality)
    body, achieved = tried[quality]
    encodes = len(tried)
    if probe is not img:
        body = encode(img, quality)
        encodes += 1
    return body, Choice(quality, achieved, searched=True, encodes=encodes)
