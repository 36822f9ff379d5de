"""Switchable failure modes of the stand-in app, so tests can push it into the states the runbook reacts to.

A mode is an immutable value; the app swaps the whole value atomically, so a request always sees one
consistent mode even while another thread (a test, the admin endpoint) changes it.

Owns the mode values and their exact counters; must not delay or fail requests itself (the server applies the
mode).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

_MAX_LATENCY_MS = 30_000


@dataclass(frozen=True, slots=True)
class FailureMode:
    """What is wrong with the app right now; the default value means healthy."""

    errors: float = 0.0
    """Fraction (0..1) of API requests answered 500, spread evenly (0.5 fails every second request)."""
    latency_ms: int = 0
    """Extra delay added to every API request, so p95 latency rises."""
    down: bool = False
    """Every API route answers 503 (the listener stays up, so Prometheus sees the 5xx)."""
    auth_broken: bool = False
    """Logins answer 401 even for good credentials, issued tokens are rejected, /api/v1/auth answers 503."""
    cache_miss: float = 0.0
    """Fraction (0..1) of cache lookups forced to miss, so the cache hit rate drops."""
    db_leak: int = 0
    """Database pool slots held by a simulated connection leak; at the pool size every DB route answers 503."""
    db_latency_ms: int = 0
    """Extra time spent inside each database query (pg_sleep when PostgreSQL is configured)."""
    cpu_cores: float = 0.0
    """Baseline CPU burn in cores (0..64), on top of the per-request cost, for the high-CPU runbook and scaling."""

    def __post_init__(self) -> None:
        for name in ("errors", "cache_miss"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"mode field {name!r} must be a number between 0 and 1, got {value!r}")
        if isinstance(self.cpu_cores, bool) or not isinstance(self.cpu_cores, int | float) or not 0 <= self.cpu_cores <= 64:
            raise ValueError(f"mode field 'cpu_cores' must be a number between 0 and 64, got {self.cpu_cores!r}")
        for name in ("latency_ms", "db_latency_ms", "db_leak"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_LATENCY_MS:
                raise ValueError(f"mode field {name!r} must be an integer between 0 and {_MAX_LATENCY_MS}, got {value!r}")
        for name in ("down", "auth_broken"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"mode field {name!r} must be true or false, got {getattr(self, name)!r}")

    @property
    def healthy(self) -> bool:
        """True when nothing is switched on."""
        return self == FailureMode()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the admin endpoint's answer)."""
        return asdict(self)

    def updated(self, changes: Mapping[str, Any]) -> FailureMode:
        """A copy with `changes` applied; unknown keys are rejected by name so typos do not pass silently."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown mode field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return replace(self, **dict(changes))


class _FractionCounter:
    """Turns a fraction into exact counts without randomness: with 0.25, exactly every 4th `next` says yes."""

    def __init__(self) -> None:
        self._debt = 0.0

    def next(self, fraction: float) -> bool:
        """Whether this event is one of the `fraction` (an accumulator: each call adds the fraction, 1.0 is a yes)."""
        self._debt += fraction
        if self._debt >= 1.0 - 1e-9:
            self._debt -= 1.0
            return True
        return False


class ModeSwitch:
    """Holds the current mode and the deterministic counters that turn fractions into exact request counts."""

    def __init__(self, before_change: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._mode = FailureMode()
        self.before_change = before_change
        """Called (outside the lock) just before every change, e.g. to settle the simulated CPU up to now."""
        self._errors = _FractionCounter()
        self._misses = _FractionCounter()

    @property
    def current(self) -> FailureMode:
        """The mode in force now."""
        with self._lock:
            return self._mode

    def set(self, mode: FailureMode) -> FailureMode:
        """Replace the whole mode; resets the fraction counters so a new fraction starts cleanly."""
        if self.before_change is not None:
            self.before_change()
        with self._lock:
            self._mode = mode
            self._errors = _FractionCounter()
            self._misses = _FractionCounter()
            return mode

    def update(self, **changes: Any) -> FailureMode:
        """Change some fields, keep the others."""
        return self.set(self.current.updated(changes))  # validated before anything is settled

    def next_request_fails(self) -> bool:
        """Whether this request gets a 500: errors=0.25 fails exactly 1 request in 4."""
        with self._lock:
            return self._errors.next(self._mode.errors)

    def next_lookup_misses(self) -> bool:
        """Whether this cache lookup is forced to miss (the same exact counting as errors)."""
        with self._lock:
            return self._misses.next(self._mode.cache_miss)
