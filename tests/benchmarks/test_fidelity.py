"""``benchmarks/fidelity.py``: the SSIM the report prints next to each fit's bytes, on real
GIF and PNG encodes of a generated animation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pyvips

from benchmarks import fidelity

FRAMES, WIDTH, HEIGHT = 4, 96, 54


def animation(path: Path) -> Path:
    """A 4-frame 96×54 GIF: smooth gradients plus a square that moves."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    pages = []
    for i in range(FRAMES):
        rgb = np.stack([x * 255 // WIDTH, y * 255 // HEIGHT, (x + y + 20 * i) % 256], axis=2)
        rgb[10:30, 10 + 15 * i : 30 + 15 * i] = (250, 30, 30)
        pages.append(rgb.astype(np.uint8))
    strip = pyvips.Image.new_from_array(np.concatenate(pages, axis=0), interpretation="srgb")
    strip = strip.copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", HEIGHT)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [80] * FRAMES)
    strip.gifsave(str(path))
    return path


def resized(source: Path, width: int, height: int) -> list[pyvips.Image]:
    frames = fidelity.frames(fidelity.decode(source.read_bytes()))
    return [fidelity.reference(f, width, height) for f in frames]


def as_gif(frames: list[pyvips.Image], **options: object) -> bytes:
    strip = pyvips.Image.arrayjoin(frames, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", frames[0].height)
    return bytes(strip.gifsave_buffer(**options))


def test_the_ideal_resize_scores_one_and_worse_answers_less(tmp_path: Path) -> None:
    source = animation(tmp_path / "a.gif")
    ideal = resized(source, 48, 27)
    # A still: the reference itself, encoded losslessly, is the reference.
    still = tmp_path / "still.png"
    fidelity.frames(fidelity.decode(source.read_bytes()))[0].pngsave(str(still))
    exact = fidelity.fit_ssim(resized(still, 48, 27)[0].pngsave_buffer(), still)
    assert exact.frames == 1 and exact.ssim == pytest.approx(1.0, abs=1e-9)

    good = fidelity.fit_ssim(as_gif(ideal), source)
    assert good.frames == FRAMES
    assert 0.9 < good.ssim < 1.0 and good.worst <= good.ssim

    blurred = fidelity.fit_ssim(as_gif([f.gaussblur(1.5) for f in ideal]), source)
    poor = fidelity.fit_ssim(as_gif(ideal, bitdepth=2, dither=0), source)
    assert blurred.ssim < good.ssim and poor.ssim < good.ssim


def test_frame_counts_must_match(tmp_path: Path) -> None:
    source = animation(tmp_path / "a.gif")
    ideal = resized(source, 48, 27)
    with pytest.raises(ValueError, match="2 frames, the source 4"):
        fidelity.fit_ssim(as_gif(ideal[:2]), source)
