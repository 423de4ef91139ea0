"""W6 (a remote source) for real: the upstream the harness starts (nginx answering one photo
under every ``/photos/<object>/<name>.jpg``), each server started in W6's modes as the
harness starts it and asked for W6's URLs, and the harness running both W6 rows against
imgorigin. imgorigin's tests need nginx (the upstream) and, for the harness run, wrk: they
are skipped without them with a visible reason, unless ``REQUIRE_ALL_BACKENDS=1`` makes
that a failure. thumbor and IPX run when they are already installed in ``benchmarks/.peers``
(never fetched by a test) and are skipped otherwise.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvips

from benchmarks import nginx, upstream
from benchmarks.procs import Registry, group_alive
from benchmarks.servers import (
    CORES,
    PEERS,
    Imgorigin,
    Ipx,
    Server,
    Thumbor,
    all_servers,
    http_get,
)
from benchmarks.workloads import WARM_OBJECTS, WORKLOADS, select
from tests.conftest import missing_backend

ROOT = Path(__file__).resolve().parents[2]
THUMBOR = PEERS / "thumbor" / "bin" / "thumbor"
IPX = PEERS / "ipx" / "node_modules" / "ipx" / "package.json"
COLD, WARM = WORKLOADS["W6-cold"], WORKLOADS["W6-warm"]


def require(*tools: tuple[str, object]) -> None:
    """Skip (or, with REQUIRE_ALL_BACKENDS=1, fail) when a tool imgorigin's tests need is
    missing."""
    missing = [name for name, found in tools if not found]
    if missing:
        missing_backend(f"not installed: {', '.join(missing)} (apt-get install nginx wrk)")


@pytest.fixture
def photo() -> Iterator[Path]:
    """A 1200×900 JPEG (4:3, as W1's photo: 267×200 in a 300×200 box) in a folder nginx's
    unprivileged workers can read (pytest's tmp_path is private to its user)."""
    folder = Path(tempfile.mkdtemp(prefix="imgorigin-w6-"))
    try:
        folder.chmod(0o755)
        path = folder / "w1.jpg"
        image = pyvips.Image.black(1200, 900, bands=3).draw_circle(
            [200, 90, 40], 600, 450, 300, fill=True
        )
        image.jpegsave(str(path), Q=90)
        path.chmod(0o644)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def registry() -> Iterator[Registry]:
    """The harness's registry; every process group it started is gone afterwards."""
    started = Registry()
    try:
        yield started
    finally:
        started.stop_all()
        assert not [g for g in started.started if group_alive(g)], "a process outlived the test"


def get_image(port: int, path: str) -> tuple[int, str, int, int, int]:
    """Status, media type, bytes, width and height of one answer."""
    status, headers, body = http_get(port, path, timeout=60)
    assert status == 200, (path, status, body[:300])
    image = pyvips.Image.new_from_buffer(body, "")
    return status, headers.get("content-type", ""), len(body), image.width, image.height


def answers_w6(server: Server, port: int) -> None:
    """W6-cold's nominal URL (267×200) and a further object, W6-warm's primers (one per
    object) and its nominal URL: each a JPEG fit into its box, touching it."""
    cold, warm = server.params(COLD), server.params(WARM)
    asked = [(COLD, cold[0]), (COLD, cold[1]), *((WARM, p) for p in WARM.primers())]
    for w, p in [*asked, (WARM, warm[0])]:
        _, media, size, width, height = get_image(port, server.path(w, p))
        assert media == "image/jpeg" and size > 1000, (w.name, p)
        assert width <= p["w"] and height <= p["h"], (w.name, p, width, height)
        assert max(width - p["w"], height - p["h"]) >= -1, (w.name, p, width, height)
        if p is cold[0] or p is warm[0]:
            assert (width, height) == (267, 200)


def test_w6_walks_new_objects_cold_and_a_few_kept_ones_warm() -> None:
    """Like W1's grid of renders, and: W6-cold names a new object on every request, W6-warm
    one of WARM_OBJECTS, primed by renders no measured request asks for; every server sends
    a distinct URL per request."""
    assert select("w6") == ["W6-cold", "W6-warm"]
    assert select("W1,w6-warm,W1") == ["W1", "W6-warm"]
    with pytest.raises(ValueError):
        select("W8")
    grid = [{k: v for k, v in p.items() if k != "object"} for p in COLD.params()]
    assert grid == WORKLOADS["W1"].params()
    assert [{k: v for k, v in p.items() if k != "object"} for p in WARM.params()] == grid
    cold = [p["object"] for p in COLD.params()]
    assert len(set(cold)) == len(cold)
    warm = [p["object"] for p in WARM.params()]
    assert sorted(set(warm)) == sorted({p["object"] for p in WARM.primers()})
    assert len(set(warm)) == WARM_OBJECTS
    assert not COLD.primers()
    for server in all_servers():
        server.upstream = "127.0.0.1:8081"
        for w in (COLD, WARM):
            urls = [server.path(w, p) for p in w.params()]
            assert len(set(urls)) == len(urls), (server.name, w.name)
            assert not {server.path(w, p) for p in w.primers()} & set(urls)
    imgorigin, thumbor, _, ipx = all_servers()
    for server in (imgorigin, thumbor, ipx):
        server.upstream = "127.0.0.1:8081"
    nominal = COLD.params()[0]
    assert imgorigin.path(COLD, nominal).startswith(
        "/r/bench/w_300,h_200,c_fit,q_80/-/c0/w1.jpg@jpg?s="
    )
    assert thumbor.path(COLD, nominal).endswith(
        "/fit-in/300x200/filters:quality(80)/127.0.0.1:8081/photos/c0/w1.jpg"
    )
    assert ipx.path(COLD, nominal) == (
        "/s_300x200,fit_inside,q_80,f_jpeg/http://127.0.0.1:8081/photos/c0/w1.jpg"
    )


def test_upstream_serves_the_photo_under_every_object_path(
    registry: Registry, photo: Path, tmp_path: Path
) -> None:
    require(("nginx", nginx.binary()))
    site = upstream.start(registry, tmp_path, photo)
    expected = photo.read_bytes()
    for name in ("c0", "c1", "c15128", "w3"):
        status, headers, body = http_get(site.port, f"/photos/{name}/w1.jpg")
        assert (status, headers["content-type"], body) == (200, "image/jpeg", expected)
    for path in ("/photos/w1.jpg", "/photos/a/b/w1.jpg", "/photos/c0/w1.png", "/w1.jpg"):
        assert http_get(site.port, path)[0] == 404, path
    registry.stop(site.group)
    assert not group_alive(site.group.pid)


def test_w6_urls_answer_on_imgorigin(registry: Registry, photo: Path, tmp_path: Path) -> None:
    """imgorigin as the harness starts it for W6 (development mode, loopback allowed, the
    upstream its ``bench`` source, caches off): every W6 URL is a 267×200 JPEG, and each
    object is kept in its source cache (one copy per object in its storage)."""
    require(("nginx", nginx.binary()))
    site = upstream.start(registry, tmp_path, photo)
    server = Imgorigin()
    server.upstream = site.host
    port = server.start(registry, tmp_path, {"w1.jpg": photo}, COLD.server_mode)
    answers_w6(server, port)
    kept = tmp_path / "imgorigin-remote-cold" / "storage" / "sources" / upstream.SOURCE
    assert len(list(kept.iterdir())) == 2 + WARM_OBJECTS  # c0, c1, w0…w3


@pytest.mark.parametrize("mode", ["remote-cold", "remote-warm"])
def test_w6_urls_answer_on_strong_thumbor(
    registry: Registry, photo: Path, tmp_path: Path, mode: str
) -> None:
    """The strong thumbor (one instance per core behind nginx) with its HTTP loader and the
    row's source storage: every W6 URL is a 267×200 JPEG; in W6-warm's mode each object is
    kept in its file storage, in W6-cold's nothing is."""
    missing = [
        what
        for what, ok in (
            ("nginx", nginx.binary()),
            (f"thumbor ({THUMBOR.relative_to(ROOT)})", THUMBOR.exists()),
        )
        if not ok
    ]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    site = upstream.start(registry, tmp_path, photo)
    server = Thumbor("thumbor", instances=CORES, threadpool=1)
    server.upstream = site.host
    port = server.start(registry, tmp_path, {"w1.jpg": photo}, mode)
    answers_w6(server, port)
    originals = tmp_path / f"thumbor-originals-{mode}"
    kept = [p for p in originals.rglob("*") if p.is_file()] if originals.exists() else []
    assert len(kept) == (0 if mode == "remote-cold" else 2 + WARM_OBJECTS)


def test_w6_urls_answer_on_ipx(registry: Registry, photo: Path, tmp_path: Path) -> None:
    """IPX with its http storage, the upstream's host its one allowed domain: every W6 URL
    is a 267×200 JPEG; another host is refused."""
    missing = [
        what
        for what, ok in (
            ("nginx", nginx.binary()),
            ("node", shutil.which("node")),
            (f"ipx ({IPX.parent.relative_to(ROOT)})", IPX.exists()),
        )
        if not ok
    ]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    site = upstream.start(registry, tmp_path, photo)
    server = Ipx()
    assert server.install(tmp_path / "ipx-install.log") is None  # copies server.mjs
    server.upstream = site.host
    port = server.start(registry, tmp_path, {"w1.jpg": photo}, WARM.server_mode)
    answers_w6(server, port)
    elsewhere = server.path(COLD, COLD.params()[0]).replace("127.0.0.1", "localhost")
    assert http_get(port, elsewhere)[0] == 403


@pytest.mark.bench
def test_harness_runs_w6_against_imgorigin(tmp_path: Path) -> None:
    """``python -m benchmarks --only imgorigin --workloads W6`` with 1-second runs: the
    upstream started and recorded, both rows measured without errors or repeated URLs, the
    upstream's CPU kept apart, the targets printed (thumbor not measured), no floor for W6,
    and every process gone afterwards."""
    require(("nginx", nginx.binary()), ("wrk", shutil.which("wrk")))
    out = tmp_path / "results"
    argv = [sys.executable, "-m", "benchmarks", "--only", "imgorigin", "--workloads", "W6"]
    argv += ["--duration", "1", "--runs", "1", "--warmup", "0", "--floor-seconds", "1"]
    argv += ["--memory-connections", "0", "--out", str(out)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| W6-cold | imgorigin |" in done.stdout and "| W6-warm | imgorigin |" in done.stdout
    assert "| W6-warm against thumbor | thumbor not measured | — |" in done.stdout

    results = json.loads((out / "bench.json").read_text())
    assert results["workloads"] == ["W6-cold", "W6-warm"]
    assert results["upstream"]["paths"] == "/photos/<object>/w1.jpg"
    imgorigin = results["servers"]["imgorigin"]
    assert set(imgorigin["process_groups"]) == {"remote-cold", "remote-warm"}
    for name in ("W6-cold", "W6-warm"):
        m = imgorigin["workloads"][name]
        assert "error" not in m, m
        assert (m["probe"]["width"], m["probe"]["height"]) == (267, 200)
        assert m["probe"]["content_type"] == "image/jpeg"
        run = m["runs"][0]
        assert run["requests"] > 0 and sum(run["errors"].values()) == 0, run
        assert 0 <= run["upstream_cores"] < 1
        assert not m["urls_repeated"]
    assert "floor" not in results or not results["floor"]
    groups = results["server_process_groups"]
    assert len(groups) == 3  # the upstream, imgorigin for each row
    assert not [g for g in groups if group_alive(g)], "a server outlived the harness"
