"""The floor, run by the harness: the pipeline in a loop without HTTP (``benchmarks.floor``),
once in one process and then in one process per core started together.

The floor on every core is what a cold workload's ratio divides by, and this machine's speed
drifts by 10-15 % over a run of the harness: so the harness measures each workload's floor on
every core right after imgorigin's runs of that workload (``adjacent_floor``, with
imgorigin's server idle), not half an hour later; the one-process run comes at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import floor as floor_mod
from benchmarks.procs import Registry, machine_busy_seconds
from benchmarks.servers import ROOT
from benchmarks.workloads import Workload

FLOOR_START_SECONDS = 8.0  # for every parallel floor process to load and warm up


def floor(
    registry: Registry,
    images_dir: Path,
    wanted: list[Workload],
    seconds: float,
    work: Path,
    working_copies: bool = True,
    measured: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The pipeline in a loop without HTTP: one process (ms per render), then one process
    per core at once (renders per second on the whole machine, what the servers get) for
    every workload not already in ``measured`` (the harness measures those right after
    imgorigin's runs of the workload: ``adjacent_floor``)."""
    # W6 has no floor of its own: its render is W1's from the original (W1's floor row).
    cold = [w.name for w in wanted if w.local_cold]
    if not cold or seconds <= 0:
        return {}
    done = subprocess.run(
        _argv(images_dir, seconds, ",".join(cold), working_copies),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode:
        return {"error": done.stderr[-500:]}
    results: dict[str, Any] = json.loads(done.stdout)
    for name in cold:
        results["workloads"][name]["parallel"] = (measured or {}).get(name) or adjacent_floor(
            registry, images_dir, name, seconds, work, working_copies, after="every server"
        )
    return results


def adjacent_floor(
    registry: Registry,
    images_dir: Path,
    name: str,
    seconds: float,
    work: Path,
    working_copies: bool,
    after: str,
) -> dict[str, Any]:
    """The floor of one workload on every core (``parallel_floor``), noting what it was
    measured right after (``after``)."""
    argv = _argv(images_dir, seconds, name, working_copies)
    return parallel_floor(registry, argv, name, seconds, work) | {"measured_after": after}


def _argv(images_dir: Path, seconds: float, names: str, working_copies: bool) -> list[str]:
    """``benchmarks.floor``'s command line for ``names`` (comma-separated workloads)."""
    argv = [sys.executable, "-m", "benchmarks.floor", str(images_dir), str(seconds), names]
    return argv if working_copies else [*argv, "--no-working-copies"]


def parallel_floor(
    registry: Registry, argv: list[str], name: str, seconds: float, work: Path
) -> dict[str, Any]:
    """One floor process per core, started together (``--start-at``): renders per second on
    the whole machine in each of their aligned windows (the best kept), and the load of
    anything else in each window."""
    cores = os.cpu_count() or 1
    start_at = time.time() + FLOOR_START_SECONDS
    logs = [work / f"floor-{name}-{i}.json" for i in range(cores)]
    children = [
        registry.start(f"floor-{name}", [*argv, "--start-at", str(start_at)], cwd=ROOT, log=log)
        for log in logs
    ]
    busy = []  # the machine's busy CPU seconds in each window, to tell other load apart
    try:
        for window in floor_mod.round_starts(start_at, seconds, floor_mod.ROUNDS):
            time.sleep(max(0.0, window - time.time()))
            before = machine_busy_seconds()
            time.sleep(seconds)
            busy.append(machine_busy_seconds() - before)
        for child in children:
            child.proc.wait(timeout=10 * seconds + 120)
    finally:
        for child in children:
            registry.stop(child)
    loops = [json.loads(log.read_text().splitlines()[-1])["workloads"][name] for log in logs]
    rounds = []
    for k, machine in enumerate(busy):
        windows = [loop["rounds"][k] for loop in loops]
        floor_cpu = sum(x["cpu_seconds"] for x in windows)
        rounds.append(
            {
                "rps": sum(x["ops"] / x["seconds"] for x in windows),
                "ms_per_op_each": [1000 * x["seconds"] / max(1, x["ops"]) for x in windows],
                "other_cores": max(0.0, machine - floor_cpu) / seconds,
            }
        )
    print(
        f"  floor {name} on {cores} cores: "
        + ", ".join(f"{r['rps']:.1f} (others {r['other_cores']:.2f})" for r in rounds)
        + " renders/s",
        flush=True,
    )
    return {"processes": cores, "rps": max(r["rps"] for r in rounds), "rounds": rounds}
