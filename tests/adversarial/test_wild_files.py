"""The corpus of files from the wild (tests/adversarial/wild_files.py) through the real upload
route, then every way the image is served: whatever is accepted renders — a derivative with
the right size and pixels, its `.json`, the image's own `url` and `thumbnail_url`, a
`/srcset` variant — and whatever is refused leaves nothing behind."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import pyvips

from origin.probe import probe_upload
from tests.admin_api.conftest import Api, assert_error
from tests.admin_api.test_images import object_keys, usage
from tests.adversarial.wild_files import CORPUS, HEIGHT, WIDTH, Wild, avif_sequence
from tests.origin.conftest import FRAME_COLOURS
from tests.origin.delivery.conftest import signed

ACCEPTED = [name for name, wild in CORPUS.items() if wild.status == 201]
REFUSED = [name for name, wild in CORPUS.items() if wild.status != 201]
TOLERANCE = 48  # per channel: JPEG/WebP/AVIF sources, a resize, colour conversions


def test_the_corpus_is_a_few_dozen_files_of_each_answer() -> None:
    assert len(ACCEPTED) >= 40 and len(REFUSED) >= 15
    assert {wild.status for wild in CORPUS.values()} == {201, 415, 422}


async def get_image(http: httpx.AsyncClient, url: str) -> tuple[str, pyvips.Image, int]:
    """The media type, the first frame and the number of frames of the image at ``url``."""
    answer = await http.get(url)
    assert answer.status_code == 200, (url, answer.text)
    media_type = answer.headers["content-type"]
    pages = {"n": -1} if media_type in ("image/gif", "image/webp") else {}
    strip = pyvips.Image.new_from_buffer(answer.content, "", **pages)
    page_height = strip.get("page-height") if strip.get_typeof("page-height") else strip.height
    first = strip.crop(0, 0, strip.width, page_height)
    return media_type, first, strip.height // page_height


def near(img: pyvips.Image, x: int, y: int, colour: list[float]) -> bool:
    return all(abs(a - b) <= TOLERANCE for a, b in zip(img(x, y)[:3], colour[:3], strict=True))


def assert_looks(derivative: pyvips.Image, wild: Wild) -> None:
    """A 48×32 `c_fill` derivative of a 96×64 picture shows what ``wild.looks``, halved."""
    if wild.looks is None:
        return
    expected = wild.looks().colourspace("srgb")
    for x, y in ((8, 5), (40, 5), (8, 27), (40, 27), (30, 20)):
        assert near(derivative, x, y, expected(2 * x, 2 * y)), ((x, y), derivative(x, y))


@pytest.mark.parametrize("name", ACCEPTED)
async def test_what_is_accepted_is_served_every_way(local_api: Api, name: str) -> None:
    wild = CORPUS[name]
    _, headers = await local_api.user()
    answer = await local_api.upload(headers, wild.make(), filename="wild.bin")
    assert answer.status_code == 201, answer.text
    image: dict[str, Any] = answer.json()
    assert (image["width"], image["height"]) == wild.size
    http, chain = local_api.http, f"/i/{image['id']}/w_48,h_32,c_fill/wild"

    media_type, derivative, _ = await get_image(http, signed(f"{chain}.png"))
    assert media_type == "image/png" and (derivative.width, derivative.height) == (48, 32)
    assert_looks(derivative, wild)

    facts = await http.get(signed(f"{chain}.json"))
    assert facts.status_code == 200, facts.text
    assert {k: facts.json()[k] for k in ("width", "height", "format")} == {
        "width": 48,
        "height": 32,
        "format": image["format"],  # without f_, the source's format
    }
    assert facts.json()["blurhash"] and facts.json()["dominant_color"].startswith("#")

    media_type, whole, frames = await get_image(http, image["url"])
    assert media_type == image["mime_type"] and (whole.width, whole.height) == wild.size
    assert frames == (wild.frames if image["format"] in ("gif", "webp") else 1)

    media_type, thumbnail, frames = await get_image(http, image["thumbnail_url"])
    assert media_type == "image/webp" and frames == wild.frames
    assert abs(thumbnail.width / thumbnail.height - wild.size[0] / wild.size[1]) < 0.05

    variants = await http.get(
        f"/api/images/{image['id']}/srcset", headers=headers, params={"widths": "40"}
    )
    assert variants.status_code == 200, variants.text
    for variant in variants.json()["variants"]:
        _, img, _ = await get_image(http, variant["url"])
        assert (img.width, img.height) == (variant["width"], variant["height"])
        assert img.width == 40


@pytest.mark.parametrize("name", REFUSED)
async def test_what_cannot_be_served_is_refused_and_leaves_nothing(
    local_api: Api, name: str
) -> None:
    wild = CORPUS[name]
    _, headers = await local_api.user()
    answer = await local_api.upload(headers, wild.make(), filename="wild.jpg")
    assert_error(answer, wild.status, wild.code)
    assert await object_keys(local_api) == []
    assert await usage(local_api, headers) == (0, 0)


# ---------------------------------------------------------------- AVIF sequences


async def test_an_avif_sequence_is_its_first_frame_everywhere(local_api: Api) -> None:
    """Working copies of a large sequence, a derivative decoded from one, and the sequence as
    an overlay: every render decodes the bytes with the loader the upload check used."""
    _, headers = await local_api.user()
    data = avif_sequence(1800, 1200)
    assert probe_upload(data).frames == 1
    answer = await local_api.upload(headers, data, filename="animated.avif")
    assert answer.status_code == 201, answer.text
    image = answer.json()
    record = await local_api.services.images.get(image["id"])
    assert record is not None and record.analysis is not None
    assert [(c.width, c.height) for c in record.working_copies] == [(450, 300), (900, 600)]
    assert await usage(local_api, headers) == (1, len(data))

    _, small, _ = await get_image(local_api.http, signed(f"/i/{image['id']}/w_300/a.jpg"))
    assert (small.width, small.height) == (300, 200)
    assert near(small, 150, 100, list(FRAME_COLOURS[0]))

    base = await local_api.upload(headers, encode_grey(), filename="base.png")
    overlaid = f"/i/{base.json()['id']}/l_{image['id']},w_40,g_north_west/o.png"
    _, img, _ = await get_image(local_api.http, signed(overlaid))
    assert (img.width, img.height) == (WIDTH, HEIGHT)
    assert near(img, 10, 5, list(FRAME_COLOURS[0])) and near(img, 80, 50, [128, 128, 128])


def encode_grey() -> bytes:
    grey = (pyvips.Image.black(WIDTH, HEIGHT, bands=3) + 128).cast("uchar")
    return bytes(grey.copy(interpretation="srgb").pngsave_buffer())
