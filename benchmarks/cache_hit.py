"""The cache-hit path against a bare Starlette app returning the same bytes.

Three live servers, one worker each, uvloop and httptools, in this one run; the same load
generator hits each in turn, ``ROUNDS`` times (best round counts). The generator is ``wrk``
when installed, else a small asyncio httpx loop.

- ``bare``: ``Starlette(routes=[Route("/b", …)])`` under uvicorn, answering the derivative's
  bytes with the same media type.
- ``asgi``: the origin app (``IMGORIGIN_APP=origin``) under plain uvicorn, on SQLite and local
  storage, the signed URL warmed once so every measured request is a cache hit through the
  ASGI path: the hot tier (``origin/recent_answers.py``: the exact path, query and ``Accept``
  → the answer with its headers, refreshed through the whole path — query check, id lookup,
  HMAC verification, plan, ETag, memory LRU — once a second), the request id, the
  contract's seven headers, the metrics and one ``imgorigin.access`` log line (to a file)
  per request.
- ``hit``: the same app as ``imgorigin serve`` runs it (its protocol, imgorigin/protocol.py),
  which answers such a repeat itself (``AtOnce``): the same answer, counters and line.

Besides req/s it prints each server's CPU time per request and how busy its core was (from
``/proc``): with every server at ~1.0 the req/s ratio is the servers' ratio, not the load
generator's.

Run: ``.venv/bin/python benchmarks/cache_hit.py [seconds] [connections]``. Needs ~90 s.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port, wait_for_port  # noqa: E402 (needs the path above)

ROUNDS = 5
# On a machine with two or more cores the servers run on core 0 and the generator on core 1,
# so they do not steal each other's time slices (``taskset`` from util-linux, when present).
SERVER_CPU, LOAD_CPU = "0", "1"
OPERATOR_SECRET = "bench-operator-secret"


def bare_app() -> object:
    """uvicorn factory: the same bytes from a bare Starlette route."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    body = Path(os.environ["BENCH_BODY"]).read_bytes()
    media_type = os.environ["BENCH_MEDIA_TYPE"]

    async def serve(request: Request) -> Response:
        return Response(body, media_type=media_type)

    return Starlette(routes=[Route("/b", serve)])


def uvicorn(app: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [
        *pinned(SERVER_CPU),
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--factory",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    wait_for_port(port, timeout=30)
    return process


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``). A server whose busy
    share is below ~0.95 was waiting for the load generator: its req/s is not its limit."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pinned(cpu: str) -> list[str]:
    taskset = shutil.which("taskset")
    return [taskset, "-c", cpu] if taskset and (os.cpu_count() or 1) >= 2 else []


def load_wrk(url: str, seconds: int, connections: int) -> float:
    wrk = shutil.which("wrk")
    assert wrk is not None
    done = subprocess.run(
        [*pinned(LOAD_CPU), wrk, "-t1", f"-c{connections}", f"-d{seconds}s", url],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Requests/sec:\s*([\d.]+)", done.stdout)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if found is None or non2xx is not None:
        raise RuntimeError(done.stdout)
    return float(found.group(1))


def load_httpx(url: str, seconds: int, connections: int) -> float:
    import httpx

    async def main() -> float:
        count = 0
        deadline = time.monotonic() + seconds
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(limits=limits) as http:

            async def worker() -> None:
                nonlocal count
                while time.monotonic() < deadline:
                    answer = await http.get(url)
                    assert answer.status_code == 200
                    count += 1

            began = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(connections)))
            return count / (time.monotonic() - began)

    return asyncio.run(main())


async def prepare(env: dict[str, str]) -> str:
    """Migrate, add one user and one image; return the signed derivative path."""
    from origin.services import open_services
    from origin.settings import Settings
    from origin.signing import sign_url
    from origin.store.migrations import migrate
    from tests.origin.delivery.conftest import add_image

    settings = Settings.from_environ(env)
    async with open_services(settings) as services:
        await migrate(services.db)
        user_id = secrets.token_hex(16)
        await services.users.create(user_id, "bench@example.com", "x", datetime.now(UTC))
        image_id, _ = await add_image(services, user_id, "jpeg", 1200, 900)
    return sign_url(f"/i/{image_id}/w_300,h_200,c_fill/bench.webp", OPERATOR_SECRET)


def imgorigin_serve(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``imgorigin serve`` (one worker), as a deployment runs it."""
    command = [*pinned(SERVER_CPU), str(Path(sys.executable).parent / "imgorigin"), "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    wait_for_port(port, timeout=30)
    return process


def main() -> None:
    import httpx

    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    connections = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    generator, load = ("wrk", load_wrk) if shutil.which("wrk") else ("httpx", load_httpx)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        env = {
            "DATABASE_URL": f"sqlite:///{tmp / 'meta.db'}",
            "STORAGE_PATH": str(tmp / "storage"),
            "SECRETS_FILE": str(tmp / "secrets.json"),
            "JWT_SECRET": "bench-jwt-secret-" + "x" * 24,
            "URL_SIGNING_KEYS": f"op1:{OPERATOR_SECRET}",
            "IMGORIGIN_APP": "origin",
        }
        url_path = asyncio.run(prepare(env))
        ports = {name: free_port() for name in ("bare", "asgi", "hit")}
        servers: dict[str, subprocess.Popen[bytes]] = {}
        try:
            servers["asgi"] = uvicorn(
                "imgorigin.app:app_from_environ", ports["asgi"], env, tmp / "asgi.log"
            )
            servers["hit"] = imgorigin_serve(ports["hit"], env, tmp / "hit.log")
            urls = {name: f"http://127.0.0.1:{ports[name]}{url_path}" for name in ("asgi", "hit")}
            warm = httpx.get(urls["asgi"])
            assert warm.status_code == 200, warm.text
            assert httpx.get(urls["hit"]).content == warm.content
            (tmp / "body").write_bytes(warm.content)
            bare_env = {"BENCH_BODY": str(tmp / "body"), "BENCH_MEDIA_TYPE": "image/webp"}
            servers["bare"] = uvicorn(
                "benchmarks.cache_hit:bare_app", ports["bare"], bare_env, tmp / "b.log"
            )
            urls["bare"] = f"http://127.0.0.1:{ports['bare']}/b"
            names = ("bare", "asgi", "hit")
            results: dict[str, list[float]] = {name: [] for name in names}
            busy: dict[str, list[float]] = {name: [] for name in names}  # server CPU share
            cpu_us: dict[str, list[float]] = {name: [] for name in names}  # per request
            for _ in range(ROUNDS):
                for name in names:
                    pid = servers[name].pid
                    cpu0, began = cpu_seconds(pid), time.monotonic()
                    rate = load(urls[name], seconds, connections)
                    used, took = cpu_seconds(pid) - cpu0, time.monotonic() - began
                    results[name].append(rate)
                    busy[name].append(used / took)
                    cpu_us[name].append(used / (rate * took) * 1e6)
            renders = [
                httpx.get(f"http://127.0.0.1:{ports[name]}/metrics").text
                for name in ("asgi", "hit")
            ]
        finally:
            for server in servers.values():
                server.terminate()
                server.wait(10)
    rendered = [
        re.search(r'imgorigin_cache_hits_total\{tier="render"\} ([\d.e+]+)', r) for r in renders
    ]
    print(f"generator: {generator}, {connections} connections, {seconds} s x {ROUNDS} rounds")
    print(
        f"body: {len(warm.content)} bytes image/webp; renders during the run (asgi, hit): ", end=""
    )
    print(", ".join(found.group(1) if found else "?" for found in rendered))
    for name, values in results.items():
        print(f"{name:5} req/s: " + ", ".join(f"{v:,.0f}" for v in values))
        print(f"{name:5} server CPU µs per request: " + ", ".join(f"{v:.1f}" for v in cpu_us[name]))
        print(
            f"{name:5} server busy (share of a core): " + ", ".join(f"{v:.2f}" for v in busy[name])
        )
    bare_best = max(results["bare"])
    for name in ("asgi", "hit"):
        paired = sorted(h / b for b, h in zip(results["bare"], results[name], strict=True))
        print(f"{name}: best {max(results[name]):,.0f} req/s, ratio to bare ", end="")
        print(f"{max(results[name]) / bare_best:.2f}, median of paired ratios ", end="")
        print(f"{paired[len(paired) // 2]:.2f}")


if __name__ == "__main__":
    main()
