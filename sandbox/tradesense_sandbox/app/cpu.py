"""Simulated container CPU, exposed the way cAdvisor does (`container_cpu_usage_seconds_total`).

The runbook's autoscaling is "70 % CPU", and the ScalingPolicy `cpu` preset reads cAdvisor's counter. There
is no kubelet here, so the app itself publishes that counter for its (emulated) pod: a baseline set by the
`cpu_cores` mode plus a fixed cost per request served, so CPU follows load the way it does in production
and `rate(container_cpu_usage_seconds_total[1m])` reads in cores.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


class SimulatedCpu(Collector):
    """Accumulates CPU seconds; thread-safe, read by Prometheus through `collect()`."""

    def __init__(
        self,
        *,
        cores: Callable[[], float],
        seconds_per_request: float,
        labels: dict[str, str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cores = cores
        self._per_request = seconds_per_request
        self._labels = dict(labels)
        self._clock = clock
        self._lock = threading.Lock()
        self._total = 0.0
        self._last = clock()

    def _advance(self) -> None:
        now = self._clock()
        self._total += max(0.0, now - self._last) * self._cores()
        self._last = now

    def mode_changing(self) -> None:
        """Settle the baseline up to now, before the `cpu_cores` mode changes (so it never applies retroactively)."""
        with self._lock:
            self._advance()

    def request_served(self) -> None:
        """Charge one request's CPU cost."""
        with self._lock:
            self._total += self._per_request

    def seconds(self) -> float:
        """CPU seconds consumed so far."""
        with self._lock:
            self._advance()
            return self._total

    def collect(self) -> Iterator[CounterMetricFamily]:
        """The cAdvisor-shaped counter (prometheus_client appends `_total`)."""
        family = CounterMetricFamily(
            "container_cpu_usage_seconds",
            "Cumulative CPU time consumed by the (emulated) container, in seconds.",
            labels=list(self._labels),
        )
        family.add_metric(list(self._labels.values()), self.seconds())
        yield family
