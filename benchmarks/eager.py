"""EAGER: derivatives made by background jobs at upload time, against asking the origin for
the same derivatives cold.

imgorigin alone, started as the harness starts it (``imgorigin serve --workers N``, N =
cores, ``CONCURRENCY`` at its default) on a fresh database and storage folder with nothing
stored (mode "empty"), the memory cache off (``CACHE_MAX_BYTES=0``, as every cold workload:
a first request is answered by the persistent store or by a render, never by a process's
memory), and ``SETTINGS``: ``JOB_POLL_SECONDS=0.05`` (a runner that was not nudged by the
upload looks for jobs every 50 ms instead of every second), ``EAGER_THUMBNAIL=0`` (exactly
the five derivatives asked for, not the console's thumbnail as well) and a per-user rate
limit no run reaches (the poll below asks 50 times a second). Jobs run in the serving
processes (``JOBS_IN_SERVE`` at its default), each process's background renders capped at
``JOB_RENDER_SHARE`` (default 0.5) of its render slots.

The harness signs up and logs in through the API (``POST /api/auth/signup``, ``/login``)
and sends everything over one keep-alive connection. The photo is W1's (4000×3000 JPEG,
about 4 MB); ``CHAINS`` are five derivatives a site typically wants of it. After one
repetition that is not counted (warm-up), each of ``repetitions``:

1. **baseline**: a plain upload (``POST /api/images``, the file alone: its time to the 201
   is the "without eager" figure), five signed URLs minted through ``POST
   /api/images/{id}/url``, then the five asked from the origin one after another: a render
   each (a fresh image, so no tier holds them); the total from the first request sent to the
   last body read;
2. **eager**: the same photo uploaded with ``eager`` listing the five: the time to its 201
   (rendering must not be in it), then ``GET /api/images/{id}`` every 20 ms until the five are
   ``done``: the time from sending the upload to the answer that showed them all done (so it
   includes up to one poll interval and one poll's answer);
3. **store check**: each eager derivative's signed ``url`` asked once from the origin: every
   one must be a store hit, not a render. Counted twice: by ``/metrics``
   (``imgorigin_cache_hits_total`` by tier, before and after; a worker publishes its counters
   once a second, so each reading waits ``SETTLE_SECONDS`` after the last request it must
   include) and by the access log's ``tier=`` of each request (sent with its own
   ``X-Request-ID``). The baseline's GETs are counted the same way (five renders).
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

from benchmarks.procs import Group, Registry, cpu_seconds, machine_busy_seconds, self_cpu_seconds
from benchmarks.servers import CORES, Imgorigin

CHAINS: tuple[tuple[str, str], ...] = (
    ("w_300,h_200,c_fill", "jpg"),  # a card in a listing
    ("w_600", "webp"),  # the article column
    ("w_1200", "webp"),  # the column at 2× (or a full-width hero)
    ("w_150,h_150,c_fill,g_auto", "jpg"),  # a square thumbnail, cut around the subject
    ("w_800,h_600,c_fit", "avif"),  # a lightbox
)
SETTINGS = {
    "JOB_POLL_SECONDS": "0.05",
    "EAGER_THUMBNAIL": "0",
    "RATE_LIMIT_PER_MINUTE": "1000000",
}
REPETITIONS = 10
WARMUP = 1
POLL_SECONDS = 0.02
DONE_TIMEOUT_SECONDS = 120.0
OTHER_LOAD_WARN = 0.15  # cores used by processes outside the harness and the server
SETTLE_SECONDS = 1.5  # > the second after which every worker has published its counters
EMAIL = "eager-bench@example.com"
PASSWORD = "eager-bench-password"
HITS = re.compile(r'^imgorigin_cache_hits_total\{tier="(\w+)"\} (\S+)$', re.MULTILINE)
ACCESS = re.compile(r"request_id=(\S+) .*? tier=(\S+)")


def label(transform: str, fmt: str) -> str:
    return f"{transform} {fmt}"


LABELS = [label(t, f) for t, f in CHAINS]


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0–1), linear between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    at = (len(ordered) - 1) * q
    low, high = math.floor(at), math.ceil(at)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def summary(seconds: list[float]) -> dict[str, Any]:
    """Median, p90, min and max in milliseconds, and every value."""
    ms = [s * 1000 for s in seconds]
    return {
        "median_ms": percentile(ms, 0.5),
        "p90_ms": percentile(ms, 0.9),
        "min_ms": min(ms),
        "max_ms": max(ms),
        "values_ms": [round(v, 2) for v in ms],
    }


class Session:
    """One keep-alive connection to the server, signed in."""

    def __init__(self, port: int) -> None:
        import httpx

        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120.0)
        self.auth: dict[str, str] = {}

    def close(self) -> None:
        self.http.close()

    def sign_in(self) -> None:
        credentials = {"email": EMAIL, "password": PASSWORD}
        made = self.http.post("/api/auth/signup", json=credentials)
        expect(made, 201, "signup")
        answer = self.http.post("/api/auth/login", json=credentials)
        expect(answer, 200, "login")
        self.auth = {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def upload(self, data: bytes, eager: bool) -> tuple[float, dict[str, Any]]:
        """The seconds from sending the upload to its 201 read, and its image JSON."""
        fields = {"eager": json.dumps([{"transform": t, "format": f} for t, f in CHAINS])}
        request = self.http.build_request(
            "POST",
            "/api/images",
            headers=self.auth,
            files={"file": ("w1.jpg", data, "image/jpeg")},
            data=fields if eager else None,
        )
        began = time.perf_counter()
        answer = self.http.send(request)
        took = time.perf_counter() - began
        expect(answer, 201, "upload" + (" with eager" if eager else ""))
        return took, answer.json()

    def image(self, image_id: str) -> dict[str, Any]:
        answer = self.http.get(f"/api/images/{image_id}", headers=self.auth)
        expect(answer, 200, "GET /api/images/{id}")
        found: dict[str, Any] = answer.json()
        return found

    def mint(self, image_id: str, transform: str, fmt: str) -> str:
        body = {"transform": transform, "format": fmt}
        answer = self.http.post(f"/api/images/{image_id}/url", headers=self.auth, json=body)
        expect(answer, 200, "POST /api/images/{id}/url")
        url: str = answer.json()["url"]
        return url

    def fetch(self, url: str, request_id: str) -> tuple[float, int]:
        """One origin GET: its seconds (to the last byte) and its body's length."""
        began = time.perf_counter()
        answer = self.http.get(url, headers={"X-Request-ID": request_id})
        took = time.perf_counter() - began
        expect(answer, 200, f"GET {url[:80]}")
        return took, len(answer.content)

    def tiers(self) -> dict[str, float]:
        """``imgorigin_cache_hits_total`` by tier, summed over the workers."""
        answer = self.http.get("/metrics")
        expect(answer, 200, "/metrics")
        return {tier: float(value) for tier, value in HITS.findall(answer.text)}


def expect(answer: Any, status: int, what: str) -> None:
    if answer.status_code != status:
        raise RuntimeError(f"{what} → {answer.status_code} {answer.text[:200]!r}")


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    return {tier: round(after.get(tier, 0.0) - before.get(tier, 0.0)) for tier in after}


def baseline(session: Session, data: bytes, index: int) -> dict[str, Any]:
    """A plain upload, then the five from the origin, cold, one after another."""
    plain, image = session.upload(data, eager=False)
    urls = [session.mint(image["id"], t, f) for t, f in CHAINS]
    before = session.tiers()  # nothing touched a tier since the last settled reading
    seconds, sizes = {}, {}
    began = time.perf_counter()
    for n, (name, url) in enumerate(zip(LABELS, urls, strict=True)):
        seconds[name], sizes[name] = session.fetch(url, f"cold-{index}-{n}")
    total = time.perf_counter() - began
    time.sleep(SETTLE_SECONDS)
    return {
        "plain_upload_201_s": plain,
        "cold_total_s": total,
        "cold_s": seconds,
        "cold_bytes": sizes,
        "cold_tiers": delta(before, session.tiers()),
    }


def eager_upload(session: Session, data: bytes, index: int) -> dict[str, Any]:
    """An upload with the five as eager derivatives: its 201, all five done, then the first
    origin GET of each."""
    sent = time.perf_counter()
    answered, image = session.upload(data, eager=True)
    at_201 = {label(e["transform"], e["format"]): e["state"] for e in image["eager"]}
    if sorted(at_201) != sorted(LABELS):
        raise RuntimeError(f"the 201 lists eager {sorted(at_201)}, not the five asked for")
    done_after: dict[str, float] = {}
    shown: list[dict[str, Any]] = []
    polls = 0
    tick = time.perf_counter()
    while len(done_after) < len(CHAINS):
        shown = session.image(image["id"])["eager"]
        now = time.perf_counter()
        polls += 1
        for e in shown:
            if e["state"] == "failed":
                raise RuntimeError(f"eager {e['transform']} {e['format']} failed: {e.get('error')}")
            if e["state"] == "done":
                done_after.setdefault(label(e["transform"], e["format"]), now - sent)
        if now - sent > DONE_TIMEOUT_SECONDS:
            raise RuntimeError(f"not all done after {DONE_TIMEOUT_SECONDS:.0f} s: {shown}")
        tick += POLL_SECONDS
        time.sleep(max(0.0, tick - time.perf_counter()))
    all_done = max(done_after.values())
    urls = {label(e["transform"], e["format"]): e["url"] for e in shown}
    sizes = {label(e["transform"], e["format"]): e["size_bytes"] for e in shown}
    time.sleep(SETTLE_SECONDS)  # the jobs' renders published before the reading
    before = session.tiers()
    seconds, fetched = {}, {}
    began = time.perf_counter()
    for n, name in enumerate(LABELS):
        seconds[name], fetched[name] = session.fetch(urls[name], f"eager-{index}-{n}")
    total = time.perf_counter() - began
    time.sleep(SETTLE_SECONDS)
    if fetched != sizes:
        raise RuntimeError(f"origin bytes {fetched} differ from the eager sizes {sizes}")
    return {
        "eager_upload_201_s": answered,
        "states_at_201": at_201,
        "all_done_s": all_done,
        "done_after_s": done_after,
        "polls": polls,
        "eager_bytes": sizes,
        "store_gets_total_s": total,
        "store_get_s": seconds,
        "store_tiers": delta(before, session.tiers()),
    }


def access_tiers(log: Path) -> dict[str, str]:
    """The access log's tier of every request this step sent with its own id."""
    found = {}
    for line in log.read_text(errors="replace").splitlines():
        matched = ACCESS.search(line)
        if matched and matched.group(1).startswith(("eager-", "cold-")):
            found[matched.group(1)] = matched.group(2)
    return found


def run(
    registry: Registry, work: Path, photo: Path, repetitions: int = REPETITIONS
) -> dict[str, Any]:
    """Start imgorigin, measure ``WARMUP`` + ``repetitions`` rounds, stop it; the raw numbers,
    their summary and the checks."""
    data = photo.read_bytes()
    server = Imgorigin(settings=SETTINGS)
    port = server.start(registry, work, {}, "empty")
    group: Group = server.group
    session = Session(port)
    rounds = []
    try:
        session.sign_in()
        cpu0, busy0, self0 = cpu_seconds(group.pid), machine_busy_seconds(), self_cpu_seconds()
        began = time.perf_counter()
        for index in range(WARMUP + repetitions):
            measured = {"warmup": index < WARMUP}
            measured.update(baseline(session, data, index))
            measured.update(eager_upload(session, data, index))
            rounds.append(measured)
            if index >= WARMUP:
                print(
                    f"  eager {index - WARMUP + 1}/{repetitions}: 201 "
                    f"{measured['eager_upload_201_s'] * 1000:.0f} ms (plain "
                    f"{measured['plain_upload_201_s'] * 1000:.0f}), all done "
                    f"{measured['all_done_s'] * 1000:.0f} ms, cold origin "
                    f"{measured['cold_total_s'] * 1000:.0f} ms, store GETs "
                    f"{measured['store_gets_total_s'] * 1000:.0f} ms "
                    f"(tiers {measured['store_tiers']})",
                    flush=True,
                )
        span = time.perf_counter() - began
        server_cpu = cpu_seconds(group.pid) - cpu0
        busy = machine_busy_seconds() - busy0
        others = max(0.0, busy - server_cpu - (self_cpu_seconds() - self0))
    except Exception as exc:
        print(group.tail(20), flush=True)
        if isinstance(exc, RuntimeError):
            raise
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from exc  # httpx's, OSError
    finally:
        session.close()
        registry.stop(group)
    if others / (span or 1.0) > OTHER_LOAD_WARN:
        print(f"  warning: other processes used {others / span:.2f} cores in this step", flush=True)
    result = summarise(rounds, access_tiers(group.log) if group.log else {})
    result.update(
        photo={"name": photo.name, "bytes": len(data)},
        chains=[{"transform": t, "format": f} for t, f in CHAINS],
        settings=dict(SETTINGS, workers=str(CORES), CACHE_MAX_BYTES="0"),
        repetitions=repetitions,
        warmup=WARMUP,
        poll_ms=POLL_SECONDS * 1000,
        server_cpu_seconds=server_cpu,
        seconds=span,
        other_cores=others / span if span else 0.0,
    )
    return result


def summarise(rounds: list[dict[str, Any]], logged: dict[str, str]) -> dict[str, Any]:
    """The figures over the counted rounds, and the store and render checks."""
    counted = [r for r in rounds if not r["warmup"]]

    def over(key: str) -> dict[str, Any]:
        return summary([r[key] for r in counted])

    def per_chain(key: str) -> dict[str, Any]:
        return {name: summary([r[key][name] for r in counted]) for name in LABELS}

    def tally(key: str, prefix: str) -> dict[str, Any]:
        tiers: dict[str, int] = {}
        for r in counted:
            for tier, n in r[key].items():
                tiers[tier] = tiers.get(tier, 0) + n
        ids = [
            f"{prefix}-{i}-{n}"
            for i, r in enumerate(rounds)
            if not r["warmup"]
            for n in range(len(CHAINS))
        ]
        seen: dict[str, int] = {}
        for request_id in ids:
            tier = logged.get(request_id, "missing")
            seen[tier] = seen.get(tier, 0) + 1
        return {"gets": len(ids), "metrics": tiers, "access_log": seen}

    store, cold = tally("store_tiers", "eager"), tally("cold_tiers", "cold")
    gets = store["gets"]
    store["ok"] = (
        store["metrics"].get("store", 0) == gets
        and store["metrics"].get("render", 0) == 0
        and store["access_log"] == {"store": gets}
    )
    cold["ok"] = cold["metrics"].get("render", 0) == gets and cold["access_log"] == {"render": gets}
    same = all(r["cold_bytes"] == r["eager_bytes"] for r in counted)
    return {
        "summary": {
            "plain_upload_201": over("plain_upload_201_s"),
            "eager_upload_201": over("eager_upload_201_s"),
            "eager_all_done": over("all_done_s"),
            "cold_origin_total": over("cold_total_s"),
            "store_gets_total": over("store_gets_total_s"),
            "eager_done_by_chain": per_chain("done_after_s"),
            "cold_get_by_chain": per_chain("cold_s"),
            "store_get_by_chain": per_chain("store_get_s"),
        },
        "bytes_by_chain": counted[-1]["eager_bytes"] if counted else {},
        "eager_bytes_equal_cold_bytes": same,
        "store_check": store,
        "cold_check": cold,
        "rounds": rounds,
    }


def _ms(s: dict[str, Any]) -> str:
    return f"{s['median_ms']:.0f} | {s['p90_ms']:.0f}"


def table(result: dict[str, Any]) -> str:
    """The step's markdown: the three times (and the plain upload's), per-chain figures and
    the checks."""
    if "error" in result:
        return f"Eager derivatives: **error**: {result['error']}\n"
    s = result["summary"]
    n = result["repetitions"]
    lines = [
        f"Eager derivatives (imgorigin, W1's photo, {len(CHAINS)} chains, {n} uploads each, "
        f"JOB_POLL_SECONDS={result['settings']['JOB_POLL_SECONDS']}, polled every "
        f"{result['poll_ms']:.0f} ms; other load {result['other_cores']:.2f} cores)",
        "",
        "| eager derivatives | median ms | p90 ms |",
        "|---|---:|---:|",
        f"| upload without eager → 201 | {_ms(s['plain_upload_201'])} |",
        f"| upload with eager → 201 | {_ms(s['eager_upload_201'])} |",
        f"| upload with eager → all {len(CHAINS)} done | {_ms(s['eager_all_done'])} |",
        f"| baseline: the {len(CHAINS)} from the origin, cold, one after another "
        f"| {_ms(s['cold_origin_total'])} |",
        f"| the {len(CHAINS)} eager ones' first origin GETs, one after another "
        f"| {_ms(s['store_gets_total'])} |",
        "",
        "| chain | bytes | done after (median ms) | cold GET (median ms) | store GET (median ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in LABELS:
        lines.append(
            f"| {name} | {result['bytes_by_chain'].get(name, 0):,} "
            f"| {s['eager_done_by_chain'][name]['median_ms']:.0f} "
            f"| {s['cold_get_by_chain'][name]['median_ms']:.0f} "
            f"| {s['store_get_by_chain'][name]['median_ms']:.1f} |"
        )
    store, cold = result["store_check"], result["cold_check"]
    lines += [
        "",
        f"First origin GET of each eager derivative after done: "
        f"{store['metrics'].get('store', 0)}/{store['gets']} store hits, "
        f"{store['metrics'].get('render', 0)} renders (/metrics); access log {store['access_log']} "
        f"— {'ok' if store['ok'] else '**not all store hits**'}. Baseline GETs: "
        f"{cold['metrics'].get('render', 0)}/{cold['gets']} renders "
        f"— {'ok' if cold['ok'] else '**not all renders**'}. Eager bytes = cold bytes: "
        f"{'yes' if result['eager_bytes_equal_cold_bytes'] else '**no**'}.",
    ]
    return "\n".join(lines) + "\n"
