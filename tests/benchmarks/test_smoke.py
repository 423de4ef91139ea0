"""The benchmark harness runs end to end against imgorigin alone, so it cannot rot: marked
``bench``, these run first in ``make bench`` (about two minutes), not in ``make test``.

``python -m benchmarks --only imgorigin`` with 2-second runs of W1 (cold render) and W4
(cache hit): no network (no peers), every server it started is gone afterwards, and the
JSON and chart are written (the latest, and a copy kept under the run's start). Without
``wrk`` the test is skipped with a visible reason, unless ``REQUIRE_ALL_BACKENDS=1`` makes
that a failure. The strong thumbor layout runs too when thumbor is already installed in
``benchmarks/.peers`` (never fetched by a test).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from benchmarks import nginx
from benchmarks.procs import group_alive

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.bench
def test_harness_runs_against_imgorigin(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        if os.environ.get("REQUIRE_ALL_BACKENDS") == "1":
            pytest.fail("REQUIRE_ALL_BACKENDS=1 but wrk is not installed")
        pytest.skip("wrk is not installed (apt-get install wrk)")
    out = tmp_path / "results"
    argv = [
        sys.executable,
        "-m",
        "benchmarks",
        "--only",
        "imgorigin",
        "--workloads",
        "W1,W4",
        "--duration",
        "2",
        "--runs",
        "1",
        "--warmup",
        "1",
        "--floor-seconds",
        "1",
        "--memory-connections",
        "4",
        "--out",
        str(out),
    ]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| W1 | imgorigin |" in done.stdout

    results = json.loads((out / "bench.json").read_text())
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The run's raw numbers are also kept in a folder named after its start (UTC).
    kept = [p for p in out.iterdir() if p.is_dir()]
    started = datetime.strptime(results["started_utc"], "%Y-%m-%dT%H:%M:%SZ")
    assert [p.name for p in kept] == [started.strftime("%Y-%m-%dT%H%MZ")]
    assert json.loads((kept[0] / "bench.json").read_text()) == results
    assert (kept[0] / "bench.png").read_bytes() == (out / "bench.png").read_bytes()
    assert "| W1 | imgorigin |" in (kept[0] / "bench.md").read_text()
    measured = results["servers"]["imgorigin"]["workloads"]
    for name in ("W1", "W4"):
        m = measured[name]
        assert "error" not in m, m
        run = m["runs"][0]
        assert run["requests"] > 0 and run["rps"] > 0
        assert sum(run["errors"].values()) == 0, run["errors"]
        assert run["p50_ms"] > 0 and run["p99_ms"] >= run["p50_ms"]
        assert run["cpu_ms_per_req"] is not None and run["peak_rss_bytes"] > 0
        assert (m["probe"]["width"], m["probe"]["height"]) == (267, 200)  # 4:3 into 300×200
        assert m["probe"]["content_type"] == "image/jpeg"
        assert 0.9 < m["probe"]["ssim"] < 1.0  # against the source resized with lanczos3
    assert not measured["W1"]["urls_repeated"]
    assert measured["W1"]["urls_used"] > measured["W1"]["runs"][0]["requests"]
    memory = measured["W1"]["memory_run"]
    assert memory["connections"] == 4 and memory["rps"] > 0
    assert memory["peak_process_rss_bytes"] > 0
    floor = results["floor"]["workloads"]["W1"]
    assert floor["ms_per_op"] > 0
    assert floor["parallel"]["processes"] == os.cpu_count() and floor["parallel"]["rps"] > 0
    # W1's floor on every core is measured right after imgorigin's W1 runs, before W4's.
    assert floor["parallel"]["measured_after"] == "imgorigin's runs"
    out_lines = done.stdout.splitlines()
    assert out_lines.index("floor W1 on every core, right after imgorigin's runs…") < next(
        i for i, line in enumerate(out_lines) if line.startswith("imgorigin · W4")
    )
    assert "| W1 ≥ 0.9× the floor |" in done.stdout
    assert "measured after imgorigin's runs) = " in done.stdout
    assert "| W1 RSS ≤ 300 MB per process at 4 connections |" in done.stdout
    # Nothing the harness started is left: no process remains in any server's group (the
    # two servers: imgorigin cold for W1 and hot for W4; then the floor's processes).
    groups = results["server_process_groups"]
    assert len(groups) == 2 + (os.cpu_count() or 1)
    assert not [g for g in groups if group_alive(g)], "a benchmark server outlived the harness"


THUMBOR = ROOT / "benchmarks" / ".peers" / "thumbor" / "bin" / "thumbor"


@pytest.mark.bench
@pytest.mark.slow
def test_harness_runs_against_strong_thumbor(tmp_path: Path) -> None:
    """The strong peer layout end to end: one thumbor instance per core behind the nginx the
    harness starts, signed distinct URLs for W1 and W5 (W5's whole grid, through the
    gifsicle engine), SSIM beside the bytes, imgorigin and thumbor measured in turn workload
    by workload, every process group gone afterwards. Needs
    thumbor already installed in benchmarks/.peers (the harness would fetch it from PyPI):
    skipped otherwise, with or without REQUIRE_ALL_BACKENDS (thumbor is not a CI backend)."""
    missing = [
        what
        for what, ok in (
            ("wrk", shutil.which("wrk")),
            ("gifsicle", shutil.which("gifsicle")),
            ("nginx", nginx.binary()),
            (f"thumbor ({THUMBOR.relative_to(ROOT)})", THUMBOR.exists()),
        )
        if not ok
    ]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    out = tmp_path / "results"
    argv = [sys.executable, "-m", "benchmarks", "--only", "imgorigin,thumbor"]
    argv += ["--workloads", "W1,W5"]
    argv += ["--duration", "2", "--runs", "1", "--warmup", "1", "--floor-seconds", "0"]
    argv += ["--memory-connections", "0", "--out", str(out)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| W1 | thumbor |" in done.stdout and "| W5 | thumbor |" in done.stdout

    results = json.loads((out / "bench.json").read_text())
    thumbor = results["servers"]["thumbor"]
    cores = os.cpu_count() or 1
    assert f"{cores} processes behind nginx" in thumbor["note"] or cores == 1
    assert thumbor["process_groups"]["cold"] == cores + (1 if cores > 1 else 0)
    for name, size in (("W1", (267, 200, 1)), ("W5", (240, 135, 24))):
        m = thumbor["workloads"][name]
        assert "error" not in m, m
        probe = m["probe"]
        assert (probe["width"], probe["height"], probe["pages"]) == size
        assert 0.9 < probe["ssim"] < 1.0
        run = m["runs"][0]
        assert run["requests"] > 0 and sum(run["errors"].values()) == 0, run
        assert not m["urls_repeated"] and m["distinct_urls"] > 1000
    assert thumbor["workloads"]["W5"]["probe"]["ssim_frames"] == 24
    # Workload by workload, every server in turn, each started once per workload.
    headers = [line.split(" (")[0] for line in done.stdout.splitlines() if " · W" in line]
    assert headers == ["imgorigin · W1", "thumbor · W1", "imgorigin · W5", "thumbor · W5"]
    groups = results["server_process_groups"]
    assert len(groups) == 2 * (1 + cores + (1 if cores > 1 else 0))
    assert not [g for g in groups if group_alive(g)], "a thumbor or nginx outlived the harness"


def per_kind(stdout: str, marker: str) -> dict[str, float]:
    """``{kind: figure}`` from the threads tool's lines ``  <kind> <figure><marker>…``."""
    found = {}
    for line in stdout.splitlines():
        if marker in line:
            kind, value = line.split(marker)[0].rsplit(None, 1)
            found[kind.strip()] = float(value)
    return found


@pytest.mark.bench
def test_thread_profile_runs(tmp_path: Path) -> None:
    """``python -m benchmarks.threads`` (docs/performance.md, "where the time goes") answers
    with a CPU figure and the context switches per kind of thread; the render's threads do
    most of the work, and the hand-offs between the loop and the render's thread are waits."""
    if shutil.which("wrk") is None:
        if os.environ.get("REQUIRE_ALL_BACKENDS") == "1":
            pytest.fail("REQUIRE_ALL_BACKENDS=1 but wrk is not installed")
        pytest.skip("wrk is not installed (apt-get install wrk)")
    argv = [sys.executable, "-m", "benchmarks.threads", "W1", "--seconds", "1"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = per_kind(done.stdout, " ms CPU per request")
    assert {"event loop", "libvips", "total"} <= set(figures), done.stdout
    render = figures["libvips"] + figures.get("pool threads", 0.0)
    assert 0 < figures["event loop"] < render < figures["total"]
    waits = per_kind(done.stdout, " waits, ")
    assert {"event loop", "pool threads", "total"} <= set(waits), done.stdout
    assert waits["event loop"] >= 1 and waits["pool threads"] >= 1  # each answer's hand-offs
    assert waits["total"] == pytest.approx(
        sum(v for k, v in waits.items() if k != "total"), abs=0.5
    )


@pytest.mark.bench
def test_bare_origin_runs(tmp_path: Path) -> None:
    """``python -m benchmarks.bare`` (docs/performance.md, "The thinnest origin"): the bare
    app answers every one of wrk's requests with a render (no error status) and the round
    ends with the ratio to the floor measured on every core right after."""
    if shutil.which("wrk") is None:
        if os.environ.get("REQUIRE_ALL_BACKENDS") == "1":
            pytest.fail("REQUIRE_ALL_BACKENDS=1 but wrk is not installed")
        pytest.skip("wrk is not installed (apt-get install wrk)")
    argv = [sys.executable, "-m", "benchmarks.bare", "W1", "--seconds", "1", "--rounds", "1"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    served = next(line for line in done.stdout.splitlines() if "bare W1" in line)
    assert served.endswith("errors 0") and float(served.split()[4]) > 0, done.stdout
    ratio = next(line for line in done.stdout.splitlines() if "bare / floor" in line)
    assert 0 < float(ratio.rsplit("=", 1)[1]) < 5, done.stdout


@pytest.mark.bench
def test_memory_soak_runs(tmp_path: Path) -> None:
    """``python -m benchmarks.soak`` (``make soak``; docs/deploy.md, *Memory*) on a few
    requests: every answer 200, each worker's RSS recorded by decile, the verdict written."""
    out = tmp_path / "soak.json"
    argv = [sys.executable, "-m", "benchmarks.soak", "--requests", "90", "--connections", "4"]
    argv += ["--max-rss-mb", "2000", "--max-growth", "10", "--out", str(out)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["statuses"] == {"200": 90}
    workers = result["per_worker"]
    assert len(workers) == 2
    for worker in workers.values():
        assert len(worker["by_decile_mb"]) == 10
        assert 50 < worker["peak_mb"] < 2000
    assert result["failures"] == []
