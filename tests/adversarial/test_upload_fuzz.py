"""A fuzz target over the upload validator through HTTP: random bytes and mutated valid
images POSTed to /api/images give 201/400/413/415/422 — never 500 — and never leave a row
without its object (or an object without its row), whatever the outcome."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.admin_api.conftest import Api, make_image

SEEDS = {
    fmt: make_image(fmt, 48, 32)
    for fmt in ("jpeg", "png", "gif", "webp", "avif")  # avif: heif's parser is in the path
}
ALLOWED = {201, 400, 413, 415, 422}


@pytest.fixture
def api_env() -> dict[str, str]:
    return {"MAX_UPLOAD_SIZE": "65536", "RATE_LIMIT_PER_MINUTE": "100000"}


def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply (kind, position, value) edits: flip a byte, cut, duplicate a slice, insert."""
    out = bytearray(data)
    for kind, position, value in edits:
        if not out:
            break
        at = position % len(out)
        if kind == 0:
            out[at] ^= value or 1
        elif kind == 1:
            del out[at:]
        elif kind == 2:
            out[at:at] = out[at : at + value]
        else:
            out[at:at] = bytes([value]) * (value % 17 + 1)
    return bytes(out)


edits = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 1 << 16), st.integers(0, 255)),
    min_size=1,
    max_size=6,
)
bodies = st.one_of(
    st.binary(min_size=0, max_size=2048),
    st.builds(mutate, st.sampled_from(sorted(SEEDS.values(), key=len)), edits),
    st.builds(  # a valid magic number in front of random bytes
        lambda magic, rest: magic + rest,
        st.sampled_from(
            [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\0\0\0\0WEBPVP8 "]
        ),
        st.binary(max_size=512),
    ),
)


async def check_no_half_state(api: Api) -> None:
    objects = {info.key async for info in api.services.storage.objects()}
    rows = await api.services.images.referenced_keys()
    assert objects == rows, (sorted(objects - rows), sorted(rows - objects))


async def test_fuzzed_uploads_never_500(local_api: Api) -> None:
    api = local_api
    user_id, headers = await api.user()
    seen: dict[int, int] = {}
    stored = 0
    outcomes: list[Callable[[], Any]] = []

    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(body=bodies, filename=st.text(max_size=40))
    def example(body: bytes, filename: str) -> None:
        outcomes.append(lambda: (body, filename))

    example()  # collect the examples; the app is async, so they are sent below
    for make in outcomes:
        body, filename = make()
        answer = await api.upload(headers, body, filename=filename or "x")
        seen[answer.status_code] = seen.get(answer.status_code, 0) + 1
        assert answer.status_code in ALLOWED, (answer.status_code, answer.text[:300], body[:64])
        if answer.status_code == 201:
            stored += len(body)
        else:
            body_json = answer.json()
            assert set(body_json) == {"error"}, body_json
            assert answer.headers["cache-control"] == "no-store"
    print(f"\nfuzzed uploads: {len(outcomes)} examples, statuses {dict(sorted(seen.items()))}")
    await check_no_half_state(api)
    me = (await api.http.get("/api/me", headers=headers)).json()
    assert me["storage_used_bytes"] == stored
    assert me["image_count"] == seen.get(201, 0)
    assert user_id
