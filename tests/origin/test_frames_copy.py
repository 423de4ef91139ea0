"""An animated GIF's frames copy (origin.frames_copy): every animated derivative rendered from
it is byte for byte the one from the GIF (opaque and transparent, fit, fill, crop, rotate,
GIF and WebP out), it keeps the delays and the loop, it is made only for an animated GIF
whose copy stays within MAX_RATIO of its bytes, `choose` gives it only to an animated
output, and a damaged copy is refused with a clear error."""

from __future__ import annotations

import numpy as np
import pytest
import pyvips
import skimage

from origin import frames_copy, working_copies
from origin.decode import Header, read_header
from origin.errors import InvalidImage, UnsupportedMediaType
from origin.probe import probe_upload
from origin.records import WorkingCopy
from origin.render import StandIn, render
from origin.transforms.limits import DEFAULT_LIMITS
from origin.transforms.parse import parse_path
from origin.transforms.plan import Plan
from tests.origin.conftest import IMAGE_ID, decode
from tests.origin.test_gif import pan, strip_of

MAX = DEFAULT_LIMITS.max_source_pixels


def plan(chain: str, ext: str = "gif") -> Plan:
    return parse_path(f"/i/{IMAGE_ID}/{chain}/x.{ext}")


def transparent() -> bytes:
    """Six frames of a photograph seen through a disc that moves over a transparent
    background."""
    cat = skimage.data.chelsea()[::3, ::3][:90, :120]
    yy, xx = np.mgrid[0:90, 0:120]
    frames = []
    for i in range(6):
        frame = np.zeros((90, 120, 4), np.uint8)
        disc = (xx - 50 - 4 * i) ** 2 + (yy - 45) ** 2 < 44**2
        frame[disc, :3] = cat[disc]
        frame[disc, 3] = 255
        frames.append(frame)
    return bytes(strip_of(frames, delay=120, loop=3).gifsave_buffer())


def copy_of(data: bytes) -> tuple[bytes, StandIn]:
    body = frames_copy.build(data, MAX)
    assert body is not None
    probe = probe_upload(data, max_source_pixels=MAX)
    return body, StandIn(probe.width, probe.height, probe.format)


CHAINS = [
    ("w_100,h_75,c_fit", "gif"),
    ("w_120,h_80,c_fill", "gif"),
    ("w_90,h_90,c_pad,b_102030", "gif"),
    ("x_20,y_10,w_60,h_40,c_crop", "gif"),
    ("r_90/w_60,c_fit", "gif"),
    ("w_300,c_fit", "gif"),  # enlarged
    ("w_100,h_75,c_fit", "webp"),
]


@pytest.mark.parametrize(("chain", "ext"), CHAINS)
@pytest.mark.parametrize("source", [pan, transparent], ids=["opaque", "transparent"])
def test_an_animated_derivative_from_the_copy_is_the_one_from_the_gif(
    source: object, chain: str, ext: str
) -> None:
    data = source()  # type: ignore[operator]
    body, stand_in = copy_of(data)
    wanted = render(data, plan(chain, ext))
    got = render(body, plan(chain, ext), stand_in=stand_in)
    assert (got.width, got.height, got.format) == (wanted.width, wanted.height, wanted.format)
    assert got.body == wanted.body
    assert int(decode(got.body, n=-1).get("n-pages")) == int(decode(data, n=-1).get("n-pages"))


def test_the_copy_holds_the_decoded_frames_delays_and_loop() -> None:
    opaque, _ = copy_of(pan())
    strip, meta = frames_copy.load(opaque)
    assert (strip.whole.width, len(strip), strip.whole.bands) == (200, 12, 3)  # no alpha kept
    gif = decode(pan(), n=-1)
    page = np.ndarray(buffer=strip[5].write_to_memory(), dtype=np.uint8, shape=(150, 200, 3))
    truth = np.ndarray(buffer=gif.write_to_memory(), dtype=np.uint8, shape=(150 * 12, 200, 4))
    assert np.array_equal(page, truth[5 * 150 : 6 * 150, :, :3])
    assert meta == {"delay": [80] * 12, "loop": 0}
    assert frames_copy.header(opaque, MAX) == Header("gif", 200, 150, 12, 1, copied=True)
    with pytest.raises(InvalidImage, match="more than 359999 pixels"):  # as the GIF would be
        frames_copy.header(opaque, 200 * 150 * 12 - 1)
    with pytest.raises(InvalidImage, match="more than 359999 pixels"):
        read_header(pan(), 200 * 150 * 12 - 1)
    clear, _ = copy_of(transparent())
    strip, meta = frames_copy.load(clear)
    assert (strip.whole.bands, len(strip), meta) == (4, 6, {"delay": [120] * 6, "loop": 3})


def test_only_an_animated_gif_within_the_ratio_gets_one() -> None:
    still = bytes(pyvips.Image.black(64, 48, bands=3).gifsave_buffer())
    assert frames_copy.build(still, MAX) is None
    webp = bytes(
        strip_of([np.full((40, 40, 3), i * 40, np.uint8) for i in range(4)]).webpsave_buffer()
    )
    assert frames_copy.build(webp, MAX) is None
    # flat frames compress far more than MAX_RATIO: their copy would not pay for its bytes
    flat = bytes(
        strip_of([np.full((200, 200, 3), i * 40, np.uint8) for i in range(4)]).gifsave_buffer()
    )
    assert frames_copy.MAX_RATIO * len(flat) < 200 * 200 * 4 * 3
    assert frames_copy.build(flat, MAX) is None
    probe = probe_upload(pan(), max_source_pixels=MAX)
    assert working_copies.build_for(pan(), probe) == []  # not asked for: not local storage
    [level] = working_copies.build_for(pan(), probe, frames=True)
    assert (level.width, level.height, level.ext) == (200, 150, "frames")
    assert level.body == frames_copy.build(pan(), MAX)


@pytest.mark.parametrize(
    ("chain", "ext", "chosen"),
    [
        ("w_100,h_75,c_fit", "gif", True),
        ("w_100,h_75,c_fit", "webp", True),
        ("r_90", "gif", True),
        ("x_1,y_1,w_9,h_9,c_crop", "gif", True),
        ("w_100,h_75,c_fit", "jpg", False),  # one frame: the GIF's first is decoded alone
        ("w_100,h_75,c_fit", "png", False),
        ("w_100,h_75,c_fit,f_gif", "json", False),
        ("w_100,h_75,c_fit,fl_keep_copyright", "gif", False),
    ],
)
def test_choose_gives_the_copy_to_an_animated_output_only(
    chain: str, ext: str, chosen: bool
) -> None:
    copy = WorkingCopy(200, 150, f"u/{IMAGE_ID}/work/200x150.frames")
    got = working_copies.choose(plan(chain, ext), 200, 150, [copy], DEFAULT_LIMITS)
    assert got == (copy if chosen else None)


def test_a_damaged_copy_is_refused() -> None:
    body, stand_in = copy_of(pan())
    head_end = body.index(b"\n", len(frames_copy.MAGIC)) + 1
    for damaged in (
        body[:-1],  # truncated
        body + b"\0",
        body[:head_end] + body[head_end:][:100],
        frames_copy.MAGIC + b"{}\n",
        frames_copy.MAGIC + b'{"width":-1,"page_height":1,"pages":1,"bands":3}\n',
        frames_copy.MAGIC + b"not json\n" + b"\0" * 90,
        body.replace(b'"bands":3', b'"bands":2'),
    ):
        with pytest.raises(InvalidImage, match="frames copy is damaged"):
            render(damaged, plan("w_100,h_75,c_fit"), stand_in=stand_in)


def test_a_copy_is_never_an_upload_and_never_stands_in_for_a_still() -> None:
    body, stand_in = copy_of(pan())
    with pytest.raises(UnsupportedMediaType):
        probe_upload(body, max_source_pixels=MAX)
    with pytest.raises(InvalidImage):
        render(body, plan("w_100,h_75,c_fit"))  # not given as a working copy: not read as one
    with pytest.raises(Exception, match="could not be rendered"):  # a ValueError, logged
        render(body, plan("w_100,h_75,c_fit", "png"), stand_in=stand_in)
