"""origin.pixels: an animation's frames resized together (`scale_frames`, two passes over all
the frames at once) are, pixel for pixel, the frames resized one by one (`scale_to`): no
frame reads its neighbour's rows or columns, and each samples where its own resize does."""

from __future__ import annotations

import numpy as np
import pytest
import pyvips
import skimage

from origin import deadline
from origin.pixels import Strip, scale_frames, scale_to, watched

Pixels = np.ndarray  # type: ignore[type-arg]


def as_array(img: pyvips.Image) -> Pixels:
    return np.ndarray(
        buffer=img.write_to_memory(), dtype=np.uint8, shape=(img.height, img.width, img.bands)
    )


def frames(alpha: bool) -> tuple[pyvips.Image, ...]:
    """Five 160x120 frames of a photograph, each from another place, cut from one strip (as
    origin.decode gives them); each frame's first and last rows and columns are a colour of
    their own, so a frame that read its neighbour would show it."""
    cat = skimage.data.chelsea()  # 300x451
    cut = []
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 0, 0)]):
        frame = cat[i * 30 : i * 30 + 120, i * 50 : i * 50 + 160].copy()
        frame[0], frame[-1], frame[:, 0], frame[:, -1] = colour, colour, colour, colour
        if alpha:
            a = np.full((120, 160, 1), 255, dtype=np.uint8)
            a[40:80, 60 + i * 5 : 100 + i * 5] = 0
            a[:, :30] = 128
            frame = np.concatenate([frame, a], axis=2)
        cut.append(frame)
    strip = pyvips.Image.new_from_array(np.concatenate(cut)).copy(interpretation="srgb")
    strip = strip.copy_memory()
    return tuple(strip.extract_area(0, i * 120, 160, 120) for i in range(5))


@pytest.mark.parametrize("alpha", [False, True])
@pytest.mark.parametrize(
    "size",
    [
        (80, 60),
        (111, 47),
        (37, 90),
        (13, 7),
        (160, 61),
        (75, 120),
        (159, 119),
        (1, 1),
        (240, 180),  # enlarging: frame by frame
        (401, 97),
    ],
)
def test_frames_resized_together_are_the_frames_resized_one_by_one(
    size: tuple[int, int], alpha: bool
) -> None:
    source = frames(alpha)
    together = scale_frames(source, size)
    assert len(together) == len(source)
    for mine, own in zip(together, (scale_to(f, size) for f in source), strict=True):
        assert (mine.width, mine.height, mine.bands) == (*size, 4 if alpha else 3)
        assert mine.format == "uchar" and mine.interpretation == "srgb"
        assert np.array_equal(as_array(mine), as_array(own))


def test_one_frame_or_no_change_is_left_to_scale_to() -> None:
    source = frames(False)
    assert as_array(scale_frames(source[:1], (80, 60))[0]).shape == (60, 80, 3)
    same = scale_frames(source, (160, 120))
    assert all(a is b for a, b in zip(same, source, strict=True))


def test_animations_too_large_to_batch_are_resized_frame_by_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above BATCH_BYTES the two passes would hold every frame at once (float with alpha):
    the frames are resized one by one instead, streaming, with the same pixels."""
    import origin.pixels

    source = frames(True)
    monkeypatch.setattr(origin.pixels, "BATCH_BYTES", 1)
    for mine, own in zip(
        scale_frames(source, (80, 60)), (scale_to(f, (80, 60)) for f in source), strict=True
    ):
        assert np.array_equal(as_array(mine), as_array(own))


def strip_of(source: tuple[pyvips.Image, ...], opaque_alpha: bool) -> Strip:
    """`source`'s frames as origin.decode gives an animation: the pages of one image in
    memory, with an alpha band of 255 that the frames leave out when `opaque_alpha`."""
    whole = pyvips.Image.arrayjoin(list(source), across=1)
    if opaque_alpha:
        whole = whole.bandjoin(255).cast("uchar").copy(interpretation="srgb")
    return Strip(whole.copy_memory(), source[0].height, source[0].bands)


@pytest.mark.parametrize(("alpha", "opaque_alpha"), [(False, False), (False, True), (True, False)])
@pytest.mark.parametrize("size", [(80, 60), (111, 47), (13, 7), (159, 119), (240, 180)])
def test_a_strip_is_resized_from_its_own_image_with_the_same_pixels(
    size: tuple[int, int], alpha: bool, opaque_alpha: bool
) -> None:
    """A Strip's passes read its whole image (no join), and an opaque alpha band the frames
    leave out is dropped after the resize: the pixels are still each frame's own resize."""
    source = frames(alpha)
    strip = strip_of(source, opaque_alpha)
    assert [f.bands for f in strip] == [f.bands for f in source]
    assert all(np.array_equal(as_array(a), as_array(b)) for a, b in zip(strip, source, strict=True))
    together = scale_frames(strip, size)
    for mine, own in zip(together, (scale_to(f, size) for f in source), strict=True):
        assert (mine.width, mine.height, mine.bands) == (*size, 4 if alpha else 3)
        assert mine.format == "uchar" and mine.interpretation == "srgb"
        assert np.array_equal(as_array(mine), as_array(own))


def test_a_strip_drops_a_partial_last_page_and_slices_to_plain_frames() -> None:
    whole = pyvips.Image.black(20, 35, bands=3).copy(interpretation="srgb").copy_memory()
    strip = Strip(whole, 10, 3)
    assert len(strip) == 3 and strip.whole.height == 30
    assert type(strip[:2]) is tuple


def test_a_strip_cuts_a_page_when_asked_and_indexes_as_a_tuple() -> None:
    """Pages are cut from the whole image on first use, once: a resize and the encoder read
    only the first; indexing, negative indices and IndexError behave as a tuple's."""
    source = frames(False)
    strip = strip_of(source, opaque_alpha=True)
    assert strip._pages == [None] * 5
    first = strip[0]
    assert strip[0] is first and strip._pages[1:] == [None] * 4
    assert np.array_equal(as_array(strip[-1]), as_array(source[-1]))
    assert strip[-1] is strip[4] and strip[-1].bands == 3
    with pytest.raises(IndexError):
        strip[5]
    assert [f.height for f in strip] == [120] * 5 and len(strip[1:3]) == 2
    untouched = strip_of(source, opaque_alpha=True)
    assert len(scale_frames(untouched, (80, 60))) == 5 and untouched._pages[1:] == [None] * 4


def test_a_page_cut_during_a_render_is_watched_by_its_deadline() -> None:
    """A render's deadline watches a Strip's whole image and the pages cut so far without
    cutting the rest; a page cut later is watched from then on, killed if the render has
    been stopped (origin.deadline)."""
    strip = strip_of(frames(False), opaque_alpha=True)
    with deadline.Deadline(60).running() as running:
        deadline.watch(watched(strip))
        assert running._images == [strip.whole] and strip.cut() == ()
        page = strip[2]
        assert running._images == [strip.whole, page]
        running.stop(deadline.CANCELLED)
        late = strip[3]
        for img in (page, late):
            with pytest.raises(pyvips.Error, match="killed"):
                img.copy_memory()
    assert np.array_equal(as_array(late), as_array(frames(False)[3]))  # revived at the end


@pytest.mark.parametrize("opaque_alpha", [False, True])
def test_a_stopped_render_stops_the_passes_over_a_strip(opaque_alpha: bool) -> None:
    """The passes of `scale_frames` read a Strip's whole image directly, not its pages: the
    deadline watches that image, so a render stopped before them (or during) fails there."""
    strip = strip_of(frames(False), opaque_alpha)
    with deadline.Deadline(60).running() as running:
        deadline.watch(watched(strip))
        running.stop(deadline.CANCELLED)
        with pytest.raises(pyvips.Error, match="killed"):
            scale_frames(strip, (80, 60))


@pytest.mark.parametrize("opaque_alpha", [False, True])
def test_resized_frames_are_a_strip_the_encoder_writes_without_a_join(opaque_alpha: bool) -> None:
    """The frames come out of the two passes as a Strip of the second pass's image: the
    encoder writes that image (origin.encode.stacked), which is the frames one above the
    other; a Strip with an extra band is joined as any frames are."""
    from origin.encode import stacked

    source = strip_of(frames(False), opaque_alpha)
    together = scale_frames(source, (80, 60))
    assert isinstance(together, Strip) and stacked(together) is together.whole
    joined = pyvips.Image.arrayjoin(list(together), across=1)
    assert np.array_equal(as_array(together.whole), as_array(joined))
    assert (stacked(source) is source.whole) is not opaque_alpha
    source_joined = pyvips.Image.arrayjoin(list(source), across=1)
    assert np.array_equal(as_array(stacked(source)), as_array(source_joined))
