"""How close a server's answer to a fit workload is to an ideal resize of its source.

For each frame (one for a still image, every frame of an animation: libvips loads all of
them, ``n=-1``, each composed in full as a viewer shows it), the reference is the source's
frame resized to the answer's exact size with libvips' lanczos3 and left unquantised (no
palette, no lossy encode); the score is the luma SSIM of ``origin.quality`` (Rec. 601 luma,
11×11 Gaussian window, σ 1.5; alpha flattened onto white) between that reference and the
answer's frame, averaged over the frames. Both sides are decoded by the same libvips, so
the figure compares what each server's encoder kept, not how a decoder renders it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyvips

from origin import quality


@dataclass(frozen=True)
class Fidelity:
    ssim: float  # mean over the frames
    worst: float  # the lowest frame's
    frames: int


def frames(img: pyvips.Image) -> list[pyvips.Image]:
    """The frames of an image loaded with ``n=-1`` (a vertical strip of pages)."""
    height = img.get("page-height") if img.get_typeof("page-height") else img.height
    pages = max(1, img.height // height)
    return [img.crop(0, i * height, img.width, height) for i in range(pages)]


def reference(frame: pyvips.Image, width: int, height: int) -> pyvips.Image:
    """``frame`` (alpha flattened onto white) resized to exactly width × height, lanczos3."""
    if frame.hasalpha():
        frame = frame.flatten(background=[255] * (frame.bands - 1))
    out = frame.resize(width / frame.width, vscale=height / frame.height, kernel="lanczos3")
    if (out.width, out.height) != (width, height):  # rounding: pad or cut the last row
        out = out.gravity("north-west", width, height, extend="copy")
    return out


def fit_ssim(answer: bytes, source: Path) -> Fidelity:
    """SSIM of ``answer`` (a fit of ``source``: scaled, not cut) against ``source`` resized
    to the answer's size, frame by frame."""
    got = frames(decode(answer))
    want = frames(decode(source.read_bytes()))
    if len(got) != len(want):
        raise ValueError(f"the answer has {len(got)} frames, the source {len(want)}")
    scores = []
    for mine, theirs in zip(got, want, strict=True):
        ideal = reference(theirs, mine.width, mine.height)
        scores.append(quality.ssim(quality.luma(ideal), quality.luma(mine)))
    return Fidelity(ssim=sum(scores) / len(scores), worst=min(scores), frames=len(scores))


def block_rms(want: np.ndarray, got: np.ndarray, k: int = 8) -> float:  # type: ignore[type-arg]
    """RMS over k×k blocks of the difference between the blocks' mean colours of two
    (h, w, 3) frames: a false contour shifts whole blocks, dithering averages out inside one."""
    h, w = want.shape[0] // k * k, want.shape[1] // k * k
    diff = want[:h, :w].astype(float) - got[:h, :w]
    means = diff.reshape(h // k, k, w // k, k, 3).mean(axis=(1, 3))
    return float(np.sqrt((means**2).mean()))


def decode(body: bytes) -> pyvips.Image:
    """Every frame of an animation (``n=-1``), or the one image of a still format."""
    try:
        return pyvips.Image.new_from_buffer(body, "", n=-1)
    except pyvips.Error:
        return pyvips.Image.new_from_buffer(body, "")
