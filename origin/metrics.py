"""Prometheus metrics: one ``CollectorRegistry`` per app, so apps (and tests) never collide.

Counters are per process. Behind ``imgorigin serve --workers N`` each worker answers
``/metrics`` with its own numbers (the scraper sees whichever worker took the connection);
sum over scrapes or run one worker per container when exact totals matter.

Label children used on the hot path are bound once here (``.labels()`` costs a dict lookup
and a lock on every call).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

TIERS = ("memory", "store", "render")
RENDER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The origin's metrics, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "imgorigin_requests",
            "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.render_seconds = Histogram(
            "imgorigin_render_seconds",
            "Time spent rendering and encoding one derivative in a libvips worker.",
            ("format",),
            buckets=RENDER_BUCKETS,
            registry=self.registry,
        )
        self.cache_hits = Counter(
            "imgorigin_cache_hits",
            "Derivatives answered by a tier: memory (this process), store (object storage) "
            "or render (made now).",
            ("tier",),
            registry=self.registry,
        )
        self.cache_misses = Counter(
            "imgorigin_cache_misses",
            "Derivatives a tier did not hold (memory, store).",
            ("tier",),
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
        self.bytes_out = Counter(
            "imgorigin_bytes_out",
            "Body bytes sent in image and metadata answers (not HEAD, not 304).",
            registry=self.registry,
        )
        self.hit = {tier: self.cache_hits.labels(tier) for tier in TIERS}
        self.miss = {tier: self.cache_misses.labels(tier) for tier in TIERS[:2]}
        self._request_children: dict[tuple[str, str, int], Counter] = {}

    def count_request(self, route: str, method: str, status: int) -> None:
        key = (route, method, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(route, method, str(status))
        child.inc()

    def watch_queue(self, waiting: Callable[[], float], busy: Callable[[], float]) -> None:
        """Read the pool's queue depth and busy slots at scrape time."""
        self.queue_depth.set_function(waiting)
        self.busy_workers.set_function(busy)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
