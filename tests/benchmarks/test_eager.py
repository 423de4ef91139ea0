"""The eager-derivatives step of the harness (``benchmarks/eager.py``) runs end to end.

``python -m benchmarks --workloads EAGER --eager-repetitions 1``: imgorigin alone on a
fresh database and storage folder, one warm-up round and one measured round; its figures in
the run's folder (``bench.json``, ``bench.md``, ``eager.json``) and ``eager.json`` beside
the latest run's files, which an EAGER-only run leaves as they were. No wrk, no peers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import eager
from benchmarks.__main__ import parse_args
from benchmarks.procs import group_alive
from benchmarks.workloads import WORKLOADS

ROOT = Path(__file__).resolve().parents[2]


def test_eager_is_a_default_step_selectable_by_name() -> None:
    default = parse_args([])
    assert default.steps == ["EAGER"] and default.workloads == list(WORKLOADS)
    alone = parse_args(["--workloads", "eager"])
    assert alone.steps == ["EAGER"] and alone.workloads == []
    assert parse_args(["--workloads", "W1,W4"]).steps == []


def test_eager_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 11)]  # 1 … 10
    assert eager.percentile(values, 0.5) == 5.5
    assert eager.percentile(values, 0.9) == 9.1
    assert eager.percentile([0.25], 0.9) == 0.25


@pytest.mark.bench
def test_eager_step_runs_against_imgorigin(tmp_path: Path) -> None:
    out = tmp_path / "results"
    out.mkdir()
    (out / "bench.json").write_text('{"latest": "full run"}\n')  # an earlier full run's
    argv = [sys.executable, "-m", "benchmarks", "--workloads", "EAGER"]
    argv += ["--eager-repetitions", "1", "--out", str(out)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| upload with eager → 201 |" in done.stdout
    assert "| W1 | imgorigin |" not in done.stdout  # no wrk workload ran

    # The latest full run's files are untouched; the step's own figures sit beside them.
    assert json.loads((out / "bench.json").read_text()) == {"latest": "full run"}
    assert not (out / "bench.png").exists()
    measured = json.loads((out / "eager.json").read_text())
    (kept,) = [p for p in out.iterdir() if p.is_dir()]
    results = json.loads((kept / "bench.json").read_text())
    assert results["workloads"] == [] and results["eager"] == measured
    assert json.loads((kept / "eager.json").read_text()) == measured
    assert "| upload with eager → all 5 done |" in (kept / "bench.md").read_text()

    assert "error" not in measured, measured
    assert measured["repetitions"] == 1 and measured["settings"]["JOB_POLL_SECONDS"] == "0.05"
    assert len(measured["rounds"]) == 2 and measured["rounds"][0]["warmup"]
    s = measured["summary"]
    answered = s["eager_upload_201"]["median_ms"]
    all_done = s["eager_all_done"]["median_ms"]
    assert 0 < answered < all_done < eager.DONE_TIMEOUT_SECONDS * 1000
    assert s["plain_upload_201"]["median_ms"] > 0 and s["cold_origin_total"]["median_ms"] > 0
    # Every per-chain done time lies between the 201 and the last one done.
    for name in eager.LABELS:
        assert answered <= s["eager_done_by_chain"][name]["median_ms"] <= all_done
    (measured_round,) = [r for r in measured["rounds"] if not r["warmup"]]
    assert set(measured_round["states_at_201"].values()) <= {"queued", "running", "done"}
    # The first origin GET of each eager derivative is a store hit, counted both ways; the
    # baseline's five are renders.
    store = measured["store_check"]
    assert store["gets"] == 5 and store["ok"], store
    assert store["metrics"]["store"] == 5 and store["metrics"]["render"] == 0
    assert store["access_log"] == {"store": 5}
    cold = measured["cold_check"]
    assert cold["ok"] and cold["metrics"]["render"] == 5, cold
    assert all(size > 0 for size in measured["bytes_by_chain"].values())
    # The server the step started is gone.
    groups = results["server_process_groups"]
    assert len(groups) == 1 and not group_alive(groups[0])
