"""Prometheus metrics: one ``CollectorRegistry`` per app, so apps (and tests) never collide.

Counters are per process. Behind ``imgorigin serve --workers N`` (imgorigin.supervisor)
every worker writes its samples to a private folder once a second and at exit (``Shared``),
and each worker's ``/metrics`` answers the sum over all of them — its own live values, the
others' last written ones (at most a second old): counters and histograms of every worker
that ever ran (a restarted worker's counts are kept), gauges of the live ones only.

The counters the cache-hit path touches (requests, tier hits and misses, bytes out) are plain
integers read by a collector at scrape time: ``prometheus_client.Counter.inc`` takes a lock
and checks its labels on every call, which the hot path does not need — it runs on the event
loop only. The render histogram (worker threads) and the gauges are prometheus-client's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from origin.digits import plain_int

TIERS = ("memory", "store", "render")
RENDER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Count:
    """A counter for the event loop: ``inc`` is an integer add."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class Metrics:
    """The origin's metrics, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests: Tally[tuple[str, str, int]] = Tally()
        self.hit = {tier: Count() for tier in TIERS}
        self.miss = {tier: Count() for tier in TIERS[:2]}
        self.bytes_out = Count()
        self.ratelimit_store_failures = Count()
        self.writes_skipped = Count()  # derivatives not stored: too many writes pending
        # renders refused (429) by their limit: by "unsigned" URL or "user_key" (origin.delivery)
        self.renders_refused: Tally[str] = Tally()
        self.evicted = Count()  # derivatives the derivative store's sweep removed
        # purge tries at the edge, by (target: nginx, cloudflare, fastly, webhook; outcome)
        self.purges: Tally[tuple[str, str]] = Tally()
        self.auto_quality_searches: Tally[str] = Tally()  # by output format
        # reads of remote source objects, by (source, result): origin.sources.cache
        self.source_reads: Tally[tuple[str, str]] = Tally()
        # background jobs ended, by (kind, outcome: done, retried, failed): origin.jobs.runner
        self.jobs: Tally[tuple[str, str]] = Tally()
        self.registry.register(_Counters(self))
        self.render_seconds = Histogram(
            "imgorigin_render_seconds",
            "Time spent rendering and encoding one derivative in a libvips worker.",
            ("format",),
            buckets=RENDER_BUCKETS,
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "imgorigin_job_seconds",
            "Time one background job's successful try took, by kind (eager, webhook).",
            ("kind",),
            buckets=RENDER_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "imgorigin_queue_depth",
            "Jobs waiting for a libvips worker slot.",
            registry=self.registry,
        )
        self.busy_workers = Gauge(
            "imgorigin_busy_workers",
            "libvips worker slots in use.",
            registry=self.registry,
        )

    def count_request(self, route: str, method: str, status: int) -> None:
        self.requests[route, method, status] += 1

    def watch_queue(self, waiting: Callable[[], float], busy: Callable[[], float]) -> None:
        """Read the pool's queue depth and busy slots at scrape time."""
        self.queue_depth.set_function(waiting)
        self.busy_workers.set_function(busy)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def samples(self) -> list[dict[str, Any]]:
        """Every family with its samples, as JSON-able values."""
        return [
            {
                "name": family.name,
                "type": family.type,
                "documentation": family.documentation,
                "samples": [[s.name, s.labels, s.value] for s in family.samples],
            }
            for family in self.registry.collect()
        ]


SHARED_SECONDS = 1.0


class Shared:
    """This worker's part of the service's metrics: its samples written to
    ``{folder}/{pid}.json`` (atomically) every ``SHARED_SECONDS`` and at exit, and an
    exposition summing every worker's file with its own live values."""

    def __init__(self, metrics: Metrics, folder: Path) -> None:
        self.metrics = metrics
        self.folder = folder
        self.pid = os.getpid()

    def write(self) -> None:
        path = self.folder / f"{self.pid}.json"
        part = path.with_suffix(".part")
        part.write_text(json.dumps(self.metrics.samples()))
        part.replace(path)

    async def run(self) -> None:
        try:
            while True:
                self.write()
                await asyncio.sleep(SHARED_SECONDS)
        finally:
            self.write()

    def parts(self) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        for path in self.folder.glob("*.json"):
            pid = int(path.stem) if plain_int(path.stem) else 0
            if pid:
                with contextlib.suppress(OSError, ValueError):
                    yield pid, json.loads(path.read_text())

    def exposition(self) -> bytes:
        """Every worker's file, this one's written first: whichever worker answers, a
        counter is never below an earlier answer's (this worker's live values beside the
        others' second-old files went backwards when the next scrape reached another)."""
        self.write()
        registry = CollectorRegistry(auto_describe=False)
        parts = [(pid == self.pid or _alive(pid), samples) for pid, samples in self.parts()]
        registry.register(_Summed(parts))
        return generate_latest(registry)


def job_counts_exposition(counts: dict[tuple[str, str], int], oldest: float | None) -> bytes:
    """The queue as the database holds it (one answer for the whole service, however many
    processes): jobs by kind and state, and how long the oldest due job has waited."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Queue(counts, oldest))
    return generate_latest(registry)


class _Queue(Collector):
    def __init__(self, counts: dict[tuple[str, str], int], oldest: float | None) -> None:
        self.counts = counts
        self.oldest = oldest

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "imgorigin_jobs_in_queue",
            "Background jobs in the queue by kind and state (queued, running, done, failed).",
            labels=("kind", "state"),
        )
        for (kind, state), count in sorted(self.counts.items()):
            depth.add_metric((kind, state), count)
        yield depth
        wait = GaugeMetricFamily(
            "imgorigin_jobs_oldest_due_seconds",
            "How long the oldest job that is due has waited to start (0: none waits).",
        )
        wait.add_metric((), self.oldest or 0.0)
        yield wait


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Summed(Collector):
    """The families of several workers, their samples summed by name and labels (a gauge
    only over the workers still alive)."""

    def __init__(self, parts: Iterable[tuple[bool, list[dict[str, Any]]]]) -> None:
        self.parts = list(parts)

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for alive, samples in self.parts:
            for family in samples:
                if family["type"] == "gauge" and not alive:
                    continue
                name = family["name"]
                if name not in families:
                    families[name] = Metric(name, family["documentation"], family["type"])
                    values[name] = {}
                summed = values[name]
                for sample, labels, value in family["samples"]:
                    key = (sample, tuple(sorted(labels.items())))
                    if sample.endswith("_created"):  # a time: the first worker's, not a sum
                        summed[key] = min(summed.get(key, value), value)
                    else:
                        summed[key] = summed.get(key, 0.0) + value
        for name, metric in families.items():
            for (sample, labels), value in values[name].items():
                metric.add_sample(sample, dict(labels), value)
            yield metric


class _Counters(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        requests = CounterMetricFamily(
            "imgorigin_requests",
            "HTTP requests answered, by route template, method and status.",
            labels=("route", "method", "status"),
        )
        for (route, method, status), count in sorted(m.requests.items()):
            requests.add_metric((route, method, str(status)), count)
        yield requests
        hits = CounterMetricFamily(
            "imgorigin_cache_hits",
            "Derivatives answered by a tier: memory (this process), store (object storage) "
            "or render (made now).",
            labels=("tier",),
        )
        for tier, hit in m.hit.items():
            hits.add_metric((tier,), hit.value)
        yield hits
        misses = CounterMetricFamily(
            "imgorigin_cache_misses",
            "Derivatives a tier did not hold (memory, store).",
            labels=("tier",),
        )
        for tier, miss in m.miss.items():
            misses.add_metric((tier,), miss.value)
        yield misses
        sent = CounterMetricFamily(
            "imgorigin_bytes_out",
            "Body bytes sent in image and metadata answers (not HEAD, not 304).",
        )
        sent.add_metric((), m.bytes_out.value)
        yield sent
        skipped = CounterMetricFamily(
            "imgorigin_derivative_writes_skipped",
            "Derivatives answered but not stored because PENDING_WRITES_MAX writes were pending "
            "(slow object storage or database); the next miss renders them again.",
        )
        skipped.add_metric((), m.writes_skipped.value)
        yield skipped
        failures = CounterMetricFamily(
            "imgorigin_ratelimit_store_failures",
            "Requests let through because the shared rate-limit store (Redis) failed.",
        )
        failures.add_metric((), m.ratelimit_store_failures.value)
        yield failures
        refused = CounterMetricFamily(
            "imgorigin_renders_refused",
            "Renders refused (429) by their per-minute limit, by what asked: an unsigned URL "
            "(UNSIGNED_RENDERS_PER_IMAGE / _PER_USER) or a user's signing key "
            "(USER_KEY_RENDERS_PER_MINUTE); cache and store hits are never counted.",
            labels=("by",),
        )
        for by, count in sorted(m.renders_refused.items()):
            refused.add_metric((by,), count)
        yield refused
        evicted = CounterMetricFamily(
            "imgorigin_derivatives_evicted",
            "Derivatives (rows and objects) the derivative store's sweep removed from users "
            "over USER_DERIVATIVE_BYTES, least recently used first.",
        )
        evicted.add_metric((), m.evicted.value)
        yield evicted
        purges = CounterMetricFamily(
            "imgorigin_purges",
            "Purge tries at the edge, by target (nginx, cloudflare, fastly, webhook) and "
            "outcome (done, failed: the job retries on JOB_RETRY_SCHEDULE).",
            labels=("target", "outcome"),
        )
        for (target, outcome), count in sorted(m.purges.items()):
            purges.add_metric((target, outcome), count)
        yield purges
        searches = CounterMetricFamily(
            "imgorigin_auto_quality_searches",
            "q_auto quality searches run (a choice remembered in the database is not searched "
            "again), by output format.",
            labels=("format",),
        )
        for fmt, count in sorted(m.auto_quality_searches.items()):
            searches.add_metric((fmt,), count)
        yield searches
        reads = CounterMetricFamily(
            "imgorigin_source_reads",
            "Reads of remote source objects from their upstream, by source and result: "
            "fetched (new bytes), not_modified (304), unchanged (the same bytes again), "
            "missing (404/410), failed (an error status, a timeout, too large, not an image).",
            labels=("source", "result"),
        )
        for (source, result), count in sorted(m.source_reads.items()):
            reads.add_metric((source, result), count)
        yield reads
        jobs = CounterMetricFamily(
            "imgorigin_jobs",
            "Background job tries ended, by kind and outcome: done, retried (failed, queued "
            "again after its backoff), failed (for good).",
            labels=("kind", "outcome"),
        )
        for (kind, outcome), count in sorted(m.jobs.items()):
            jobs.add_metric((kind, outcome), count)
        yield jobs
