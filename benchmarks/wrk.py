"""Running wrk: a Lua script that walks a list of paths and prints a JSON summary.

``request()`` takes the next path from the file given as the first script argument, starting
at the offset given as the second (so consecutive runs never reuse a path when the list is
long enough). ``done()`` prints one line ``WRK_JSON {...}`` with requests, duration, bytes,
p50/p90/p99 latency and the error counts.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from benchmarks.procs import Registry

LUA = r"""
local paths = {}
local offset = 0
local n = 0

function init(args)
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  offset = tonumber(args[2]) or 0
end

function request()
  local path = paths[((offset + n) % #paths) + 1]
  n = n + 1
  return wrk.format("GET", path)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"max_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    bytes: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def write_script(folder: Path) -> Path:
    path = folder / "paths.lua"
    path.write_text(LUA)
    return path


def run(
    registry: Registry,
    *,
    port: int,
    script: Path,
    paths_file: Path,
    offset: int,
    duration: float,
    connections: int,
    threads: int = 1,
    timeout_s: int = 30,
) -> WrkResult:
    """One wrk run against 127.0.0.1:port; bounded by ``duration`` (+ the request timeout)."""
    binary = wrk_binary()
    if binary is None:
        raise RuntimeError("wrk is not installed")
    argv = [
        binary,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={timeout_s}s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}",
        "--",
        str(paths_file),
        str(offset),
    ]
    log = paths_file.with_suffix(".wrk.log")
    group = registry.start("wrk", argv, log=log)
    try:
        group.proc.wait(timeout=duration + timeout_s + 30)
    finally:
        registry.stop(group)
    text = log.read_text(errors="replace")
    log.unlink(missing_ok=True)
    for line in text.splitlines():
        if line.startswith("WRK_JSON "):
            data = json.loads(line[len("WRK_JSON ") :])
            return WrkResult(
                requests=data["requests"],
                seconds=data["duration_us"] / 1e6,
                bytes=data["bytes"],
                p50_ms=data["p50_us"] / 1000,
                p90_ms=data["p90_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                max_ms=data["max_us"] / 1000,
                errors={k: data[k] for k in ("connect", "read", "write", "status", "timeout")},
            )
    raise RuntimeError(f"wrk printed no summary:\n{text[-2000:]}")
