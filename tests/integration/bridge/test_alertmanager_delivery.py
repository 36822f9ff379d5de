"""A real Alertmanager talking to the bridge (alerts injected through its API, no Prometheus needed):
its own payloads parse, its bearer credentials authenticate, its repeats update instead of create, and
wrong credentials create nothing (Alertmanager does not retry a 4xx)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from tests.integration.bridge.conftest import Bridge
from tradesense_sandbox.servers import AlertmanagerServer

pytestmark = pytest.mark.prometheus

AlertmanagerFactory = Callable[..., AlertmanagerServer]


def _alert(alertname: str, **labels: str) -> dict[str, object]:
    return {"labels": {"alertname": alertname, "severity": "high", **labels},
            "annotations": {"summary": "injected"},
            "startsAt": datetime.now(UTC).isoformat().replace("+00:00", "Z")}


async def _until(what: str, check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.1)


async def test_alertmanager_with_the_token_creates_one_incident_per_alert_despite_repeats(
    bridge: Bridge, alertmanager_factory: AlertmanagerFactory
) -> None:
    alertmanager = alertmanager_factory(f"{bridge.url}/alerts", bearer_token=bridge.token, group_wait="1s",
                                        group_interval="1s", repeat_interval="1s")

    await asyncio.to_thread(alertmanager.post_alerts, [
        _alert("HighErrorRate", instance="a"), _alert("HighErrorRate", instance="b"), _alert("NotInTheRunbook"),
    ])

    async def repeated() -> bool:
        return await bridge.metric("tradesense_operator_bridge_alerts_total", outcome="updated") >= 4

    await _until("Alertmanager's repeat notifications", repeated)
    incidents = bridge.incidents()
    assert len(incidents) == 2  # one per HighErrorRate label set; the unmapped alert creates nothing
    fingerprints = {i["spec"]["source"]["fingerprint"] for i in incidents}
    assert len(fingerprints) == 2
    assert all(i["spec"]["runbook"] == "high-error-rate" for i in incidents)
    assert await bridge.metric("tradesense_operator_bridge_alerts_total", outcome="created") == 2
    assert await bridge.metric("tradesense_operator_bridge_alerts_total", outcome="unknown") >= 1


async def test_alertmanager_with_a_wrong_token_creates_nothing(
    bridge: Bridge, alertmanager_factory: AlertmanagerFactory
) -> None:
    alertmanager = alertmanager_factory(f"{bridge.url}/alerts", bearer_token=secrets.token_urlsafe(32),
                                        group_wait="1s", group_interval="1s", repeat_interval="1s")

    await asyncio.to_thread(alertmanager.post_alerts, [_alert("HighErrorRate")])

    async def refused() -> bool:
        return await bridge.metric("tradesense_operator_bridge_requests_total", outcome="unauthorized") >= 2

    await _until("refused deliveries (first notification and a repeat)", refused)
    assert bridge.incidents() == []
    assert await bridge.metric("tradesense_operator_bridge_requests_total", outcome="accepted") == 0
