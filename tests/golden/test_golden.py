"""Every recorded golden vector still holds byte for byte: the same URL gives the same
canonical string, storage key and ETag (tests/golden/vectors.py says why)."""

from __future__ import annotations

from tests.golden.origin import record
from tests.golden.vectors import load, request_id, requests


async def test_every_request_has_a_vector() -> None:
    recorded = load()
    missing = [r for r in requests() if request_id(r) not in recorded]
    assert not missing, f"record them: python -m tests.golden.vectors ({missing[:3]})"


async def test_the_vectors_hold() -> None:
    vectors = list(load().values())
    assert len(vectors) >= 400
    answers = await record([v["request"] for v in vectors])
    changed = [
        (v["request"], {k: (v[k], a[k]) for k in a if a[k] != v[k]})
        for v, a in zip(vectors, answers, strict=True)
        if any(a[k] != v[k] for k in a)
    ]
    assert not changed, f"{len(changed)} vector(s) changed, e.g. {changed[:3]}"
