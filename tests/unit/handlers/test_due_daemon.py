"""due_daemon.serve after the daemon's own write: with numeric resourceVersions it does not wake to re-check
(idle CPU: thousands of idle policies all re-deciding ECHO_WAIT_SECONDS after their last write); with opaque
ones it trusts the live body after ECHO_WAIT_SECONDS, as before. Counted in calls of `due_at` and `act`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
import pytest

from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.handlers import due_daemon
from tradesense_operator.handlers.due_daemon import Acted, serve


class Stop(asyncio.Event):
    def __bool__(self) -> bool:
        return self.is_set()


async def run_daemon(live: str, ours: str) -> tuple[list[str], int]:
    """A daemon whose object (live resourceVersion `live`) is due until it was acted on; its act writes `ours`.
    Returns the versions `due_at` saw and how often it acted, after five echo waits of real time."""
    seen: list[str] = []
    acts = 0

    def due_at(view: Mapping[str, Any], now: datetime) -> datetime | None:
        version = str(view["metadata"]["resourceVersion"])
        seen.append(version)
        return now if version == live else None

    async def act(view: Mapping[str, Any]) -> Acted:
        nonlocal acts
        acts += 1
        return Acted(written={"metadata": {"resourceVersion": ours}})

    stop = Stop()
    body: dict[str, Any] = {"metadata": {"resourceVersion": live}}
    task = asyncio.ensure_future(serve(body, kopf.Memo(), stop, clock=ManualClock(datetime(2026, 1, 5, tzinfo=UTC)),  # type: ignore[arg-type]
                                       due_at=due_at, act=act))
    await asyncio.sleep(5 * due_daemon.ECHO_WAIT_SECONDS)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    return seen, acts


async def test_no_re_check_after_its_own_write_when_versions_are_numeric(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(due_daemon, "ECHO_WAIT_SECONDS", 0.05)
    seen, acts = await run_daemon("1", "2")  # the watch never shows "2": our write is the view, nothing is due
    assert acts == 1
    assert seen == ["1", "2"]


async def test_opaque_versions_trust_the_live_body_after_the_echo_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(due_daemon, "ECHO_WAIT_SECONDS", 0.05)
    seen, acts = await run_daemon("a", "b")
    assert acts >= 2  # the live body was trusted again (and still says due)
    assert seen[:3] == ["a", "b", "a"]
