"""The stand-in app's Prometheus metrics, with exactly the names the runbook's queries and alerts use.

Each app instance owns its registry: several apps run in one test process, and prometheus_client's
global registry would refuse the second set of metrics (and mix their values).

Must not use prometheus_client's global registry.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Around the runbook's SLO (p95 < 500 ms) finely enough that histogram_quantile is meaningful there.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)
# Around the database SLO (p95 < 100 ms).
DB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class AppMetrics:
    """The metric families of one app instance."""

    def __init__(self, *, version: str, db_connections_active: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "tradesense_http_requests_total",
            "HTTP requests answered, by method, route and status code.",
            ["method", "path", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "tradesense_http_request_duration_seconds",
            "Time to answer an HTTP request, including injected latency.",
            ["method", "path"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self.db_connections = Gauge(
            "tradesense_db_connections_active",
            "Database pool connections checked out right now (including leaked ones).",
            registry=self.registry,
        )
        self.db_connections.set_function(db_connections_active)
        self.db_pool_size = Gauge(
            "tradesense_db_connections_max", "Size of the database connection pool.", registry=self.registry
        )
        self.db_query_duration = Histogram(
            "tradesense_db_query_duration_seconds",
            "Time spent in database queries.",
            ["query"],
            buckets=DB_BUCKETS,
            registry=self.registry,
        )
        self.cache_hits = Counter("tradesense_cache_hits_total", "Cache lookups that found a value.", registry=self.registry)
        self.cache_requests = Counter("tradesense_cache_requests_total", "Cache lookups.", registry=self.registry)
        self.build_info = Gauge(
            "tradesense_build_info",
            "Always 1; the version label says which build answers.",
            ["version"],
            registry=self.registry,
        )
        self.build_info.labels(version=version).set(1)

    def exposition(self) -> tuple[bytes, str]:
        """Body and content type of a /metrics answer."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
