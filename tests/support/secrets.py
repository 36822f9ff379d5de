"""Secret-leak guard shared by every test: planted secret values must never reach logs, status or Events.

Tests call `secret_guard.plant()` for each secret value they put into the world (a Secret's data, a
password, a token). At teardown, the guard scans every log record emitted during the test and every
text source registered with `secret_guard.add_source` — the `kube_cluster`/`fresh_kube_cluster` fixtures
register every object but Secrets (statuses, Events, annotations), tests may add /metrics output — and
fails the test naming where a value leaked.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest


@dataclass
class SecretGuard:
    """Collects planted values and the places to scan."""

    planted: set[str] = field(default_factory=set)
    sources: list[tuple[str, Callable[[], str]]] = field(default_factory=list)
    records: list[logging.LogRecord] = field(default_factory=list)

    def plant(self, value: str | None = None, *, prefix: str = "planted") -> str:
        """Register (or make) a secret value; returns it."""
        text = value if value is not None else f"{prefix}-{secrets.token_hex(12)}"
        self.planted.add(text)
        return text

    def add_source(self, name: str, read: Callable[[], str]) -> None:
        """Scan read() at teardown, e.g. a JSON dump of the cluster's objects and Events."""
        self.sources.append((name, read))

    def leaks(self) -> list[str]:
        """Where each planted value was found."""
        found: list[str] = []
        if not self.planted:
            return found
        for record in self.records:
            texts = [record.getMessage(), str(record.exc_text or "")]
            if record.exc_info and record.exc_info[1] is not None:
                texts.append(repr(record.exc_info[1]))
            for value in self.planted:
                if any(value in t for t in texts):
                    found.append(f"log record from {record.name}: {record.getMessage()[:120]!r}")
        for name, read in self.sources:
            text = read()
            found.extend(f"{name}" for value in self.planted if value in text)
        return found


class _Capture(logging.Handler):
    def __init__(self, guard: SecretGuard) -> None:
        super().__init__(level=logging.DEBUG)
        self._guard = guard

    def emit(self, record: logging.LogRecord) -> None:
        self._guard.records.append(record)


@pytest.fixture(autouse=True)
def secret_guard() -> Iterator[SecretGuard]:
    """Autouse: every test is checked; tests that plant nothing pay almost nothing."""
    guard = SecretGuard()
    handler = _Capture(guard)
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(min(previous_level, logging.DEBUG) if previous_level else logging.DEBUG)
    try:
        yield guard
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
    leaks = guard.leaks()
    if leaks:
        pytest.fail("planted secret value leaked into: " + "; ".join(sorted(set(leaks))), pytrace=False)
