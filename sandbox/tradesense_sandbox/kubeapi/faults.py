"""Fault injection and request accounting for reliability tests and benchmarks.

A `FaultRule` makes the next N requests matching (method, path regex) fail with a status code
(409/429/500/…, with `Retry-After` for 429), or just answer late. Rules are consumed in order of
registration; `RequestStats` counts every request by (verb, resource) so benchmarks can report
API calls per reconciliation.

Must not inject anything a test did not ask for: with no rule, every request is served normally.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def reason_for(code: int) -> str:
    return _REASONS.get(code, "InternalError")


@dataclass
class FaultRule:
    """Answer matching requests with `status` (if set) after `latency` seconds, `times` times (None = forever)."""

    method: str | None
    path: re.Pattern[str]
    status: int | None = None
    times: int | None = 1
    retry_after: float | None = None
    latency: float = 0.0
    message: str = "injected fault"
    hits: int = 0

    def matches(self, method: str, *paths: str) -> bool:
        """Method, and the regex found in any of `paths` (the path alone, then with its query: a `$`-anchored
        rule still matches a write that carries `?fieldManager=…`)."""
        return (self.method is None or self.method.upper() == method.upper()) and any(
            self.path.search(path) is not None for path in paths
        )


@dataclass
class Faults:
    """The active fault rules of a cluster; thread-safe."""

    _rules: list[FaultRule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self,
        method: str | None = None,
        path: str = ".*",
        *,
        status: int | None = None,
        times: int | None = 1,
        retry_after: float | None = None,
        latency: float = 0.0,
        message: str = "injected fault",
    ) -> FaultRule:
        if status is None and latency <= 0:
            raise ValueError("a fault rule needs a status code, a latency, or both")
        rule = FaultRule(method, re.compile(path), status, times, retry_after, latency, message)
        with self._lock:
            self._rules.append(rule)
        return rule

    def take(self, method: str, *paths: str) -> FaultRule | None:
        """The first live rule matching the request (its path, its path with query), consuming one of its uses."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, *paths):
                    rule.hits += 1
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self._rules.remove(rule)
                    return rule
        return None

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()


@dataclass
class RequestStats:
    """Requests served, by (verb, resource[/subresource]) in the API server's verb vocabulary."""

    _counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, verb: str, resource: str) -> None:
        with self._lock:
            self._counts[(verb, resource)] += 1

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)

    def total(self, verb: str | None = None, resource: str | None = None) -> int:
        with self._lock:
            return sum(
                n
                for (v, r), n in self._counts.items()
                if (verb is None or v == verb) and (resource is None or r == resource)
            )

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
