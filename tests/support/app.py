"""Shared pytest fixtures for the stand-in TradeSense app.

`standin_app` is a running app (synthetic data, in-memory cache) on its own background thread, so it keeps
answering while a test blocks; `standin_app_factory(**AppConfig fields)` starts more, e.g. one backed by
`pg_database.dsn` and `redis_url`. Both yield `StandinApp` objects: `base_url`, `target` (host:port for a
scrape config), `set_mode(...)`/`reset_mode()`, `logs`, `rotate_signing_key(...)`. The app's log ring is
registered with the secret guard, so a planted password or token showing up in it fails the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tradesense_sandbox.app import StandinApp

if TYPE_CHECKING:  # imported at runtime it would pre-empt pytest's assertion rewriting of that plugin
    from tests.support.secrets import SecretGuard


@pytest.fixture
def standin_app_factory(secret_guard: SecretGuard) -> Iterator[Callable[..., StandinApp]]:
    """`make(**config)`: a started stand-in app on a background thread, stopped at teardown."""
    apps: list[StandinApp] = []

    def make(**config: Any) -> StandinApp:
        app = StandinApp(**config)
        app.start()
        apps.append(app)
        secret_guard.add_source(f"stand-in app log ({app.base_url})", app.logs.text)
        return app

    yield make
    for app in apps:
        app.stop()


@pytest.fixture
def standin_app(standin_app_factory: Callable[..., StandinApp]) -> StandinApp:
    """A running, healthy stand-in app with no PostgreSQL or Redis behind it."""
    return standin_app_factory()
