"""An upload's inspection (validation, working copies, analysis) runs in the render pool
within ``RENDER_TIMEOUT_SECONDS``, as a render does: a small file that takes long to decode
is refused (422) instead of holding a pool slot while renders wait (a hunt: a 194 KB PNG of
1×10⁸ pixels took 36 s, and renders queued behind two of them answered 503)."""

from __future__ import annotations

import struct
import time
import zlib

import pytest

from tests.admin_api.conftest import Api, assert_error, make_image

HEIGHT = 50_000_000  # rows of one grey pixel: ~20 s of decoding here, ~100 KB of file


def tall_png(height: int = HEIGHT) -> bytes:
    """A 1×``height`` 8-bit grey PNG, written row by row (each row: filter 0, one 0 byte)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    packer = zlib.compressobj(9)
    rows = b"\x00\x00" * 1_000_000
    data = b"".join(packer.compress(rows) for _ in range(height // 1_000_000)) + packer.flush()
    header = struct.pack(">IIBBBBB", 1, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


@pytest.fixture
def api_env() -> dict[str, str]:
    return {"RENDER_TIMEOUT_SECONDS": "1"}


async def test_a_file_slow_to_decode_is_refused_within_the_render_timeout(
    local_api: Api,
) -> None:
    _, headers = await local_api.user()
    began = time.monotonic()
    answer = await local_api.upload(headers, tall_png(), filename="tall.png")
    took = time.monotonic() - began
    assert_error(answer, 422, "invalid_image")
    assert "RENDER_TIMEOUT_SECONDS" in answer.json()["error"]["message"]
    assert took < 5, f"refused after {took:.1f} s"
    usage = (await local_api.http.get("/api/me", headers=headers)).json()
    assert usage["storage_used_bytes"] == 0
    # the pool is free again: a plain upload goes through
    fine = await local_api.upload(headers, make_image("png", 40, 30), filename="a.png")
    assert fine.status_code == 201, fine.text
