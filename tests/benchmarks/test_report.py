"""The targets the report computes from a run ("Performance II"), on a run's JSON as the
harness writes it: against the strong thumbor (one instance per core behind nginx), never
the one-process row; bytes and SSIM where a target reads them; p99 on every cold workload."""

from __future__ import annotations

from typing import Any

from benchmarks import report


def measured(rps: float, p99: float, size: int, ssim: float | None = None) -> dict[str, Any]:
    probe: dict[str, Any] = {"bytes": size, "width": 240, "height": 135, "pages": 1}
    if ssim is not None:
        probe["ssim"], probe["ssim_frames"], probe["ssim_worst_frame"] = ssim, 24, ssim - 0.01
    best = {"rps": rps, "p50_ms": p99 / 2, "p99_ms": p99, "cpu_ms_per_req": 10.0}
    run = dict(best, errors={"status": 0}, other_cores=0.0)
    return {"best": best, "runs": [run], "probe": probe, "peak_rss_bytes": 1, "distinct_urls": 9}


def run_of(servers: dict[str, dict[str, Any]], connections: int = 8) -> dict[str, Any]:
    workloads = sorted({w for s in servers.values() for w in s})
    return {
        "config": {"connections": connections, "runs": 1},
        "workloads": workloads,
        "servers": {name: {"workloads": w} for name, w in servers.items()},
    }


def rows(text: str) -> dict[str, tuple[str, str]]:
    found = {}
    for line in text.splitlines()[2:]:
        name, figures, verdict = (cell.strip() for cell in line.strip("|").split("|"))
        found[name] = (figures, verdict)
    return found


def test_targets_read_the_strong_thumbor() -> None:
    results = run_of(
        {
            "imgorigin": {
                "W1": measured(160.0, 70.0, 13_725),
                "W2": measured(100.0, 90.0, 11_370),
                "W3": measured(24.0, 600.0, 791_982),
                "W5": measured(20.0, 900.0, 530_000, ssim=0.980),
            },
            "thumbor": {
                "W1": measured(40.0, 80.0, 13_699),
                "W2": measured(30.0, 100.0, 11_396),
                "W3": measured(8.0, 500.0, 766_415),
                "W5": measured(9.0, 1400.0, 517_622, ssim=0.986),
            },
            # The one-process row would meet every ratio: it must not be what is read.
            "thumbor-1p": {w: measured(1.0, 10_000.0, 1) for w in ("W1", "W2", "W3", "W5")},
        }
    )
    found = rows(report.targets(results))
    assert found["W1 ≥ 4× thumbor, bytes ±5 %"] == (
        "160.0 / 40.0 = **4.00×**; bytes 13,725 / 13,699 = 1.002",
        "met",
    )
    assert found["W2 ≥ 3.5× thumbor, bytes ±5 %"][1] == "**missed**"  # 3.33×
    assert found["W3 ≥ 3× thumbor, bytes ≤ 1.2×"][1] == "met"  # 3.00×, 1.03×
    # W5: 2.22× but its SSIM is below thumbor's: missed, with both figures.
    figures, verdict = found["W5 ≥ 2× thumbor, SSIM ≥ thumbor's"]
    assert "SSIM 0.9800 vs 0.9860" in figures and verdict == "**missed**"
    # p99 at 8 connections, every cold workload: W3's 600 ms against 500 ms misses.
    assert found["W1 p99 ≤ thumbor's at 8 connections"] == ("70.0 ms vs 80.0 ms", "met")
    assert found["W3 p99 ≤ thumbor's at 8 connections"] == ("600.0 ms vs 500.0 ms", "**missed**")
    assert found["W5 p99 ≤ thumbor's at 8 connections"][1] == "met"


def test_w4_target_is_ten_times_the_result_storage_and_has_no_p99_row() -> None:
    results = run_of(
        {
            "imgorigin": {"W4": measured(20_000.0, 2.0, 1)},
            "thumbor": {"W4": measured(1_500.0, 9.0, 1)},
        }
    )
    found = rows(report.targets(results))
    assert found == {"W4 ≥ 10× thumbor": ("20000.0 / 1500.0 = **13.33×**", "met")}


def test_p99_at_another_connection_count_is_not_the_target() -> None:
    results = run_of(
        {"imgorigin": {"W1": measured(1.0, 1.0, 100)}, "thumbor": {"W1": measured(1.0, 2.0, 100)}},
        connections=16,
    )
    figures, verdict = rows(report.targets(results))["W1 p99 ≤ thumbor's at 8 connections"]
    assert figures == "1.0 ms vs 2.0 ms (this run: 16 connections)" and verdict == "**missed**"


def test_without_the_strong_thumbor_the_target_says_so() -> None:
    results = run_of(
        {
            "imgorigin": {"W1": measured(100.0, 1.0, 100)},
            "thumbor-1p": {"W1": measured(1.0, 2.0, 100)},
        }
    )
    assert rows(report.targets(results)) == {"W1 against thumbor": ("thumbor not measured", "—")}


def test_table_shows_ssim_beside_bytes() -> None:
    results = run_of(
        {
            "imgorigin": {"W5": measured(9.0, 1.0, 530_000, ssim=0.97512)},
            "thumbor": {"W5": measured(9.0, 1.0, 517_622)},
        }
    )
    lines = report.table(results).splitlines()
    assert "| out bytes | SSIM | out size |" in lines[0]
    assert "| 530,000 | 0.9751 (worst frame 0.9651) | 240×135 |" in lines[2]
    assert "| 517,622 | — | 240×135 |" in lines[3]


def test_w6_targets_are_twice_thumbor_cold_and_three_times_warm() -> None:
    """W6's issue: cold (fetch + render) ≥ 2×, warm (source kept) ≥ 3× the strong thumbor;
    it sets no bytes or p99 target, so neither is checked."""
    results = run_of(
        {
            "imgorigin": {
                "W6-cold": measured(50.0, 900.0, 13_833),
                "W6-warm": measured(90.0, 900.0, 13_833),
            },
            "thumbor": {
                "W6-cold": measured(25.0, 100.0, 13_699),
                "W6-warm": measured(31.0, 100.0, 9_000),
            },
        }
    )
    assert rows(report.targets(results)) == {
        "W6-cold ≥ 2× thumbor": ("50.0 / 25.0 = **2.00×**", "met"),
        "W6-warm ≥ 3× thumbor": ("90.0 / 31.0 = **2.90×**", "**missed**"),
    }


def test_floor_row_says_when_the_floor_was_measured() -> None:
    results = run_of({"imgorigin": {"W1": measured(300.0, 40.0, 13_935)}})
    parallel = {"processes": 2, "rps": 400.0, "measured_after": "imgorigin's runs"}
    results["floor"] = {
        "workloads": {"W1": {"parallel": parallel, "ceiling_rps_2_cores": 380.0}},
    }
    figures, verdict = rows(report.targets(results))["W1 ≥ 0.9× the floor"]
    assert figures.startswith(
        "300.0 / 400.0 (floor on 2 cores, measured after imgorigin's runs) = **0.75×**"
    )
    assert verdict == "**missed**"
    del parallel["measured_after"]  # a run from before the floor moved beside imgorigin's
    figures, _ = rows(report.targets(results))["W1 ≥ 0.9× the floor"]
    assert figures.startswith("300.0 / 400.0 (floor on 2 cores) = **0.75×**")
