"""The source cache stays under ``SOURCE_CACHE_MAX_BYTES``: the objects read or revalidated
longest ago go, rows first, then their bytes and derivatives."""

from __future__ import annotations

import pytest
import pyvips

from tests.origin.delivery.conftest import quadrants
from tests.origin.sources.conftest import Remote


@pytest.fixture
def sources_env() -> dict[str, str]:
    return {"SOURCE_CACHE_MAX_BYTES": "1500000"}


async def test_the_cache_is_bounded_in_bytes(remote: Remote) -> None:
    noise = pyvips.Image.gaussnoise(600, 450, sigma=60)
    big = (quadrants(600, 450) + noise).cast("uchar").write_to_buffer(".png")  # ~500 kB
    assert 300_000 < len(big) < 700_000
    for n in range(6):
        remote.web.conditional(f"/media/n{n}.png", big)
        answer = await remote.get(f"/r/web/w_20/-/n{n}.png")
        assert answer.status_code == 200, answer.text
        await remote.service.origin.derivatives.drain()
    services = remote.service.services
    kept = await services.sources.oldest(100)
    assert 0 < len(kept) < 6
    assert await services.sources.total_bytes() <= 1_500_000
    assert kept[-1].object_key == "n5.png"  # the newest stays
    keys = {info.key async for info in services.storage.objects("sources/web/")}
    assert keys <= {r.storage_key for r in kept} | {
        k for k in keys if any(k.startswith(f"sources/web/{r.id}/derived/") for r in kept)
    }
