"""A row whose object is gone (a DELETE racing a download, a restored bucket, a restarted S3):
the admin API must answer the error contract (404 ``not_found``, as the origin does), never
500. The object is removed through the real storage, the row stays."""

from __future__ import annotations

import pytest

from origin.signing import sign_url
from tests.admin_api.conftest import Api, assert_error, make_image
from tests.conftest import OPERATOR_SECRET


async def _image_without_object(api: Api) -> tuple[str, dict[str, str]]:
    _, headers = await api.user()
    answer = await api.upload(headers, make_image("png", 80, 60), filename="a.png")
    assert answer.status_code == 201, answer.text
    image_id = answer.json()["id"]
    record = await api.services.images.get(image_id)
    assert record is not None
    await api.services.storage.delete(record.storage_key)
    return image_id, headers


@pytest.mark.parametrize("route", ["download", "transform?resize=20x20"])
async def test_admin_routes_on_a_lost_object_answer_404(api: Api, route: str) -> None:
    image_id, headers = await _image_without_object(api)
    answer = await api.http.get(f"/api/images/{image_id}/{route}", headers=headers)
    assert_error(answer, 404, "not_found")


async def test_origin_on_a_lost_object_answers_404(api: Api) -> None:
    image_id, _ = await _image_without_object(api)
    answer = await api.http.get(sign_url(f"/i/{image_id}/w_20/a.png", OPERATOR_SECRET))
    assert_error(answer, 404, "not_found")
