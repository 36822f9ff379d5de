"""The leak guard itself must catch leaks, or every test relying on it proves nothing."""

from __future__ import annotations

import logging

from tests.support.secrets import SecretGuard, _Capture


def test_guard_finds_a_value_in_logs_and_in_sources() -> None:
    guard = SecretGuard()
    value = guard.plant()
    logger = logging.getLogger("tests.leaky")
    handler = _Capture(guard)
    logger.addHandler(handler)
    try:
        logger.error("token is %s", value)
    finally:
        logger.removeHandler(handler)
    guard.add_source("incident status", lambda: f'{{"message": "{value}"}}')
    guard.add_source("events", lambda: "nothing here")
    leaks = guard.leaks()
    assert any("tests.leaky" in leak for leak in leaks)
    assert "incident status" in leaks
    assert "events" not in leaks


def test_guard_is_quiet_without_leaks(secret_guard: SecretGuard) -> None:
    secret_guard.plant("value-that-stays-secret")
    logging.getLogger("tests.clean").warning("nothing sensitive")
    assert secret_guard.leaks() == []
