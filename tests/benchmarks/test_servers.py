"""How the harness addresses the peers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import pyvips

from benchmarks import images
from benchmarks.procs import Registry
from benchmarks.servers import (
    SIGNING_SECRET,
    Imgorigin,
    Thumbor,
    all_servers,
    http_get,
    thumbor_signature,
)
from benchmarks.workloads import WORKLOADS
from origin.signing import sign_url


def test_thumbor_signature_is_libthumbor_s() -> None:
    """The harness signs thumbor's URLs itself (thumbor lives in its own venv); these are
    what libthumbor 2.0's ``CryptoURL(key=...).generate(...)`` returns for the same paths."""
    assert (
        thumbor_signature(
            "300x200/smart/thumbor.readthedocs.io/en/latest/_images/logo-thumbor.png",
            "MY_SECURE_KEY",
        )
        == "jPe8IWPYqZBtuGzITHK69QWbMhc="
    )
    assert (
        thumbor_signature("fit-in/300x200/filters:quality(80)/w1.jpg", "MY_SECURE_KEY")
        == "-mqrFvWJfqShIWov4uE-8c287SE="
    )


def test_every_server_walks_the_same_parameter_sets() -> None:
    """Like for like: each server gets the same distinct parameter sets of a cold workload,
    W5 included (thumbor's gifsicle engine takes every box of W5's grid), in the same order,
    and the strong thumbor signs each into a distinct URL."""
    servers = all_servers()
    assert [s.name for s in servers] == ["imgorigin", "thumbor", "thumbor-1p", "ipx"]
    for w in WORKLOADS.values():
        if w.mode != "cold":
            continue
        pool = w.params()
        for server in servers:
            assert server.params(w) == pool, (server.name, w.name)
    strong = next(s for s in servers if s.name == "thumbor")
    w5 = WORKLOADS["W5"]
    paths = [strong.path(w5, p) for p in w5.params()]
    assert len(set(paths)) == len(paths) == 40 * 30
    assert paths[0].endswith("/fit-in/240x135/w5.gif")


def test_strong_thumbor_is_one_instance_per_core() -> None:
    strong, single = (s for s in all_servers() if s.name.startswith("thumbor"))
    assert isinstance(strong, Thumbor) and isinstance(single, Thumbor)
    assert strong.instances == (os.cpu_count() or 1) and strong.threadpool == 1
    assert (single.instances, single.threadpool) == (1, 2)
    assert "behind nginx" in strong.note and single.note.startswith("1 process")


@pytest.mark.bench  # starts the server as the harness does: make bench runs it first
def test_w7_is_ours_alone_and_blurs_the_faces_it_cuts_around(tmp_path: Path) -> None:
    """W7 (faces) runs on imgorigin only — no peer finds faces out of the box — and is not a
    floor or p99 row; as the harness starts imgorigin (the upload's analysis stored by the
    seed), its nominal URL is a 200×300 fill whose faces are blurred: where the same cut
    without ``e_blur_faces`` has a face's detail, the answer has a fraction of it."""
    w7 = WORKLOADS["W7"]
    assert not w7.local_cold and w7.kind == "face"
    assert [s.name for s in all_servers() if s.supports(w7)] == ["imgorigin"]

    photo = tmp_path / "w7.jpg"
    images._group(photo)
    registry = Registry()
    try:
        server = Imgorigin()
        port = server.start(registry, tmp_path, {"w7.jpg": photo}, w7.server_mode)
        nominal = w7.params()[0]
        path = server.path(w7, nominal)
        assert ",g_face,e_blur_faces," in path
        status, headers, body = http_get(port, path, timeout=60)
        assert status == 200 and headers["content-type"] == "image/jpeg", body[:300]
        blurred = pyvips.Image.new_from_buffer(body, "")
        assert (blurred.width, blurred.height) == (nominal["w"], nominal["h"])
        plain_path = sign_url(path.split("?")[0].replace(",e_blur_faces", ""), SIGNING_SECRET)
        status, _, plain_body = http_get(port, plain_path, timeout=60)
        assert status == 200
        plain = pyvips.Image.new_from_buffer(plain_body, "")
    finally:
        registry.stop_all()

    def detail(img: pyvips.Image) -> float:  # mean gradient magnitude
        grey = img.colourspace("b-w")[0].cast("float")
        return float((grey - grey.gaussblur(1.0)).abs().avg())

    assert detail(blurred) < 0.7 * detail(plain), (detail(blurred), detail(plain))
