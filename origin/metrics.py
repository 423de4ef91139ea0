"""Prometheus metrics: one ``CollectorRegistry`` per app, so apps (and tests) never collide.

Counters are per process. Behind ``imgorigin serve --workers N`` each worker answers
``/metrics`` with its own numbers (the scraper sees whichever worker took the connection);
sum over scrapes or run one worker per container when exact totals matter.

The counters the cache-hit path touches (requests, tier hits and misses, bytes out) are plain
integers read by a collector at scrape time: ``prometheus_client.Counter.inc`` takes a lock
and checks its labels on every call, which the hot path does not need — it runs on the event
loop only. The render histogram (worker threads) and the gauges are prometheus-client's own.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

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
        self.auto_quality_searches: Tally[str] = Tally()  # by output format
        self.registry.register(_Counters(self))
        self.render_seconds = Histogram(
            "imgorigin_render_seconds",
            "Time spent rendering and encoding one derivative in a libvips worker.",
            ("format",),
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
        failures = CounterMetricFamily(
            "imgorigin_ratelimit_store_failures",
            "Requests let through because the shared rate-limit store (Redis) failed.",
        )
        failures.add_metric((), m.ratelimit_store_failures.value)
        yield failures
        searches = CounterMetricFamily(
            "imgorigin_auto_quality_searches",
            "q_auto quality searches run (a choice remembered in the database is not searched "
            "again), by output format.",
            labels=("format",),
        )
        for fmt, count in sorted(m.auto_quality_searches.items()):
            searches.add_metric((fmt,), count)
        yield searches
