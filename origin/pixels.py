"""libvips helpers every step shares: alpha, sRGB, backgrounds, exact resizes.

The working image between steps is a sequence of frames (a tuple, or a `Strip`): one, or
every frame of an animation, all the same size, each 8-bit sRGB with 3 or 4 bands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

import pyvips

from origin import deadline

Frames = Sequence[pyvips.Image]  # a tuple, or a Strip


class Strip(Sequence[pyvips.Image]):
    """Frames that are the pages of one image in memory (``whole``, the pages stacked), as
    origin.decode loads an animation: a pass over every frame (`scale_frames`) reads
    ``whole`` itself instead of joining the frames again. ``whole`` may carry one band more
    than the frames: an alpha band in which every pixel is opaque, which the frames leave
    out (dropping it from every pixel of ``whole`` costs more than from the resized frames).
    A page is cut from ``whole`` when it is first asked for, and a render's deadline watches
    it from then on (`watched`): a resize of all the frames and the GIF encoder read
    ``whole`` and only the first page (W5: 46 libvips operations fewer a render). Anything
    that makes new frames makes a plain tuple."""

    def __init__(self, whole: pyvips.Image, page_height: int, bands: int) -> None:
        count = whole.height // page_height
        if whole.height != count * page_height:
            whole = whole.crop(0, 0, whole.width, count * page_height)
        self.whole = whole
        self._page_height = page_height
        self._bands = bands
        self._view: pyvips.Image | None = None  # ``whole`` less the opaque alpha band
        self._pages: list[pyvips.Image | None] = [None] * count

    def __len__(self) -> int:
        return len(self._pages)

    @overload
    def __getitem__(self, index: int) -> pyvips.Image: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[pyvips.Image, ...]: ...

    def __getitem__(self, index: int | slice) -> pyvips.Image | tuple[pyvips.Image, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(len(self))[index])
        i = range(len(self))[index]  # IndexError past the end, as a tuple's
        page = self._pages[i]
        if page is None:
            view, height = self.stacked(), self._page_height
            page = self._pages[i] = view.extract_area(0, i * height, view.width, height)
            deadline.watch((page,), replace=False)
        return page

    def cut(self) -> tuple[pyvips.Image, ...]:
        """The pages cut so far."""
        return tuple(page for page in self._pages if page is not None)

    def stacked(self) -> pyvips.Image:
        """The frames one above the other: ``whole``, less the alpha band the frames leave
        out when every pixel is opaque."""
        if self._view is None:
            whole, bands = self.whole, self._bands
            self._view = whole if whole.bands == bands else whole.extract_band(0, n=bands)
        return self._view


def watched(frames: Frames) -> Sequence[pyvips.Image]:
    """What a render's deadline watches for `frames` (origin.deadline): the frames; for a
    Strip, its whole image and the pages cut so far, without cutting the others (a page
    cut later is watched as it is cut)."""
    if isinstance(frames, Strip):
        return (frames.whole, *frames.cut())
    return frames


Colour = tuple[int, int, int, int]


def has_alpha(img: pyvips.Image) -> bool:
    return bool(img.bands in (2, 4))


UNTAGGED = ("multiband", "fourier", "histogram", "matrix")  # interpretations of no colour space


def to_srgb(img: pyvips.Image, keep_profile: bool = False) -> pyvips.Image:
    """Embedded ICC profile -> sRGB; any interpretation or depth -> 8-bit sRGB, 3 or 4 bands.
    Every source passes here first: a render's deadline watches it (origin.deadline).
    With ``keep_profile`` (``fl_keep_icc``), an 8-bit RGB source keeps its pixels and its
    embedded profile (the encoder embeds it); CMYK and grey are converted all the same.
    A CMYK source without a profile is converted through libvips' default CMYK profile."""
    deadline.watch((img,), replace=False)
    if keep_profile and is_rgb_with_profile(img):
        return img
    if img.get_typeof("icc-profile-data"):
        try:
            img = img.icc_transform("srgb", embedded=True, intent="perceptual")
        except pyvips.Error:
            img = img.copy()
            img.remove("icc-profile-data")  # a broken profile: fall back to plain conversion
    elif img.interpretation == "cmyk":  # no profile: libvips' default CMYK one, same intent
        img = img.icc_transform("srgb", input_profile="cmyk", intent="perceptual")
    if img.interpretation in UNTAGGED or (img.bands < 3 and img.interpretation in ("srgb", "rgb")):
        # no colour space, or colour claimed for grey (with alpha): the bands say which
        img = img.copy(interpretation="b-w" if img.bands < 3 else "srgb")
    if img.interpretation != "srgb" or img.format != "uchar":
        img = img.colourspace("srgb")
    if img.format != "uchar":
        img = img.cast("uchar")
    if img.bands > 4:
        img = img.extract_band(0, n=4)
    return img


def is_rgb_with_profile(img: pyvips.Image) -> bool:
    return bool(
        img.get_typeof("icc-profile-data")
        and img.interpretation in ("srgb", "rgb")
        and img.format == "uchar"
        and img.bands in (3, 4)
    )


def background_for(img: pyvips.Image, colour: Colour | None) -> tuple[pyvips.Image, list[float]]:
    """The background to fill with: `colour`, else white (transparent if the image has alpha).
    Adds an alpha band when the colour is not opaque."""
    if colour is None:
        colour = (0, 0, 0, 0) if has_alpha(img) else (255, 255, 255, 255)
    if colour[3] != 255 and not has_alpha(img):
        img = img.bandjoin(255)
    values = [float(v) for v in colour]
    return img, values if has_alpha(img) else values[:3]


def split_alpha(img: pyvips.Image) -> tuple[pyvips.Image, pyvips.Image | None]:
    if has_alpha(img):
        return img.extract_band(0, n=img.bands - 1), img.extract_band(img.bands - 1)
    return img, None


def join_alpha(rgb: pyvips.Image, alpha: pyvips.Image | None) -> pyvips.Image:
    rgb = rgb.cast("uchar").copy(interpretation="srgb")
    return rgb if alpha is None else rgb.bandjoin(alpha)


def scale_to(img: pyvips.Image, size: tuple[int, int]) -> pyvips.Image:
    """Resize to exactly `size` (premultiplied when there is alpha)."""
    if (img.width, img.height) == size:
        return img
    alpha = has_alpha(img)
    work = img.premultiply() if alpha else img
    work = work.resize(size[0] / img.width, vscale=size[1] / img.height)
    # resize can be one pixel off through rounding; pin the exact size
    if (work.width, work.height) != size:
        work = work.embed(0, 0, size[0], size[1], extend="copy")
    if alpha:
        work = work.unpremultiply()
    return work.cast("uchar").copy(interpretation="srgb")


# What the two passes of `scale_frames` may hold at once (W5: 9 MB).
BATCH_BYTES = 64 * 1024 * 1024


def scale_frames(frames: Frames, size: tuple[int, int]) -> Frames:
    """Every frame of an animation resized to exactly `size`: pixel for pixel what `scale_to`
    gives each frame, in one vertical and one horizontal pass over all the frames at once
    (libvips' set-up for one resize costs about as much as resizing a small frame). The
    vertical pass sees the frames side by side and the horizontal one sees them stacked, so
    the kernel never reads across two frames; each pass runs on an image as tall (or as
    wide) as one frame, so it samples exactly where a frame's own resize does. Enlarging
    (another path inside libvips) and animations whose first pass would hold more than
    ``BATCH_BYTES`` (premultiplied alpha is float: 4 bytes a band) are left to `scale_to`,
    frame by frame, which streams."""
    first = frames[0]
    width, height, count = first.width, first.height, len(frames)
    alpha = has_alpha(first)
    enlarges = size[0] > width or size[1] > height  # libvips' affine path
    # the frames stacked: a Strip's own image (no join: ~26 ms less a W5 render)
    work = frames.whole if isinstance(frames, Strip) else None
    bands = first.bands if work is None else work.bands
    held = count * width * height * bands * (4 if alpha else 1)
    if count == 1 or (width, height) == size or enlarges or held > BATCH_BYTES:
        return tuple(scale_to(f, size) for f in frames)
    if work is None:
        work = pyvips.Image.arrayjoin(list(frames), across=1)
    if alpha:
        work = work.premultiply()
    # libvips' resize does the vertical pass first: so do we
    # each pass is held in memory: the next reads it in slices, which would recompute it
    wide = work.grid(height, count, 1).resize(1.0, vscale=size[1] / height).copy_memory()
    deadline.watch((wide,), replace=False)  # the second pass reads this copy, not the frames
    rows = wide.height
    tall = pyvips.Image.arrayjoin(
        [wide.crop(i * width, 0, width, rows) for i in range(count)], across=1
    ).resize(size[0] / width, vscale=1.0)
    columns = tall.width
    if alpha:
        tall = tall.unpremultiply()
    if tall.bands != first.bands:  # a Strip's opaque alpha band, resized: 255 everywhere
        tall = tall.extract_band(0, n=first.bands)
    tall = tall.cast("uchar").copy(interpretation="srgb").copy_memory()
    if (columns, rows) != size:  # resize can be one pixel off through rounding, as scale_to
        pages = (tall.crop(0, i * rows, columns, rows) for i in range(count))
        return tuple(f.embed(0, 0, size[0], size[1], extend="copy") for f in pages)
    return Strip(tall, rows, tall.bands)  # the encoder writes `tall` as it is
