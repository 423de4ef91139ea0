"""What a run records about itself and where it keeps it: the environment (commit, versions),
and the folder named after its start under ``benchmarks/results/``."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import nginx, report, wrk
from benchmarks.servers import ROOT


def environment(args: Any, servers: dict[str, Any]) -> dict[str, Any]:
    import pyvips

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    binary = wrk.wrk_binary()  # an EAGER-only run needs no wrk
    wrk_version = (
        subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
        if binary
        else subprocess.CompletedProcess([], 0, "not installed", "")
    )
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": commit,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "libvips": f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}",
        "wrk": (wrk_version.stdout + wrk_version.stderr).split("\n")[0].strip(),
        "gifsicle": _first_line(["gifsicle", "--version"]) if shutil.which("gifsicle") else None,
        "nginx": nginx.version() or None,
        "servers": servers,
    }


def _first_line(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return (done.stdout + done.stderr).split("\n")[0].strip()


def run_folder(out: Path, started: float) -> Path:
    """``out``/``2026-12-03T1700Z``, the run's start in UTC (to the second if a run that
    started in the same minute is already kept)."""
    folder = out / time.strftime("%Y-%m-%dT%H%MZ", time.gmtime(started))
    if folder.exists():
        folder = out / time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime(started))
    return folder


def write_results(results: dict[str, Any], text: str, out: Path, started: float) -> list[Path]:
    """The JSON, the printed tables (``bench.md``) and the chart of this run in its own
    folder under ``out`` (kept), and the same files in ``out`` (the latest run). The eager
    step's figures (``results["eager"]``) also go to ``eager.json`` in both. A run without
    wrk workloads (``--workloads EAGER``) has no chart and leaves the latest run's
    ``bench.*`` in ``out`` as they were: it writes ``out/eager.json`` only."""
    written = []
    kept = run_folder(out, started)
    full = bool(results["workloads"])
    for folder in (kept, out) if full else (kept,):
        folder.mkdir(parents=True, exist_ok=True)
        report.write_json(results, folder / "bench.json")
        (folder / "bench.md").write_text(text)
        written += [folder / "bench.json", folder / "bench.md"]
        if not full:
            continue
        try:
            report.write_chart(results, folder / "bench.png")
            written.append(folder / "bench.png")
        except Exception as exc:
            print(f"chart not drawn: {exc}", file=sys.stderr)
    if "eager" in results:
        for folder in (kept, out):
            report.write_json(results["eager"], folder / "eager.json")
            written.append(folder / "eager.json")
    return written
