"""Upload-time analysis through real HTTP: the upload stores blurhash, dominant colour and the
attention focal point; `.json` and `g_auto` read them (a tampered row proves it); rows without
them (from before migration 2) still answer, computing at request time."""

from __future__ import annotations

import json

import pyvips

from origin.analysis import source_summary
from origin.store.tables import images
from tests.admin_api.conftest import Api
from tests.origin.test_analysis import WIDTH, disc_jpeg, red_centre


async def upload(api: Api, headers: dict[str, str]) -> dict[str, object]:
    answer = await api.upload(headers, disc_jpeg(), "disc.jpg")
    assert answer.status_code == 201, answer.text
    image: dict[str, object] = answer.json()
    return image


async def set_row(api: Api, image_id: str, **values: object) -> None:
    async with api.services.db.write() as conn:
        await conn.execute(images.update().where(images.c.id == image_id).values(**values))


async def origin_get(api: Api, headers: dict[str, str], image_id: str, tail: str) -> bytes:
    answer = await api.http.get(f"/i/{image_id}/{tail}", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.content


async def test_upload_stores_the_analysis(api: Api) -> None:
    _, headers = await api.user()
    image = await upload(api, headers)
    record = await api.services.images.get(str(image["id"]))
    assert record is not None and record.analysis is not None
    analysis = record.analysis
    assert abs(analysis.focal_x * WIDTH - 480) <= 19 and abs(analysis.focal_y * 300 - 90) <= 10
    assert len(analysis.blurhash) == 28 and analysis.dominant_color.startswith("#")
    grey = int(analysis.dominant_color[1:3], 16)  # the field is grey around 110
    assert 80 <= grey <= 140 and analysis.dominant_color[1:3] == analysis.dominant_color[3:5]


async def test_json_answers_the_stored_summary(api: Api) -> None:
    _, headers = await api.user()
    image_id = str((await upload(api, headers))["id"])
    stored = await api.services.images.get(image_id)
    assert stored is not None and stored.analysis is not None
    facts = json.loads(await origin_get(api, headers, image_id, "w_100/a.json"))
    assert facts["blurhash"] == stored.analysis.blurhash
    assert facts["dominant_color"] == stored.analysis.dominant_color

    # a tampered row is what `.json` reports: nothing is recomputed (another image: the
    # first answer is cached by its URL)
    other = str((await upload(api, headers))["id"])
    await set_row(api, other, blurhash="L00000fQfQfQfQfQfQfQfQfQfQfQ", dominant_color="#123456")
    facts = json.loads(await origin_get(api, headers, other, "w_100/a.json"))
    assert (facts["blurhash"], facts["dominant_color"]) == (
        "L00000fQfQfQfQfQfQfQfQfQfQfQ",
        "#123456",
    )
    assert facts["width"] == 100


async def test_g_auto_crops_around_the_stored_point(api: Api) -> None:
    _, headers = await api.user()
    chain = "w_150,h_300,c_fill,g_auto"
    kept = str((await upload(api, headers))["id"])
    by_point = await origin_get(api, headers, kept, f"{chain}/a.png")
    x, _, count = red_centre(by_point)
    assert count > 2000 and abs(x - 75) <= 4  # the disc, centred

    moved = str((await upload(api, headers))["id"])  # same pixels, focal point tampered
    await set_row(api, moved, focal_x=0.0, focal_y=0.5)
    crop = await origin_get(api, headers, moved, f"{chain}/a.png")
    west = await origin_get(api, headers, moved, "w_150,h_300,c_fill,g_west/a.png")
    assert crop == west and red_centre(crop)[2] == 0


async def test_rows_without_analysis_compute_it_per_request(api: Api) -> None:
    """A row from before migration 2: `.json` summarises the source, `g_auto` runs attention."""
    _, headers = await api.user()
    image_id = str((await upload(api, headers))["id"])
    await set_row(api, image_id, blurhash=None, dominant_color=None, focal_x=None, focal_y=None)
    record = await api.services.images.get(image_id)
    assert record is not None and record.analysis is None
    facts = json.loads(await origin_get(api, headers, image_id, "a.json"))
    assert facts["blurhash"] == source_summary(disc_jpeg())["blurhash"]
    crop = await origin_get(api, headers, image_id, "w_150,h_300,c_fill,g_auto/a.png")
    x, _, count = red_centre(crop)
    assert count > 2000 and 0 < x < 150
    assert pyvips.Image.new_from_buffer(crop, "").width == 150
