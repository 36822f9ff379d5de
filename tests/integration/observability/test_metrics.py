"""The operator's /metrics, /healthz and /readyz, scraped over HTTP from the real operator process after it
handled bridge requests and carried out an alert-driven incident against the emulated API."""

from __future__ import annotations

import asyncio
import secrets

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.bridge.conftest import alert, notification, sample_value
from tests.integration.bridge.operator_harness import (
    GOOD_IMAGE,
    OperatorWithBridge,
    RunningOperator,
    install_app_namespace,
    run_alert_incident,
)
from tests.support.secrets import SecretGuard
from tradesense_sandbox.kubeapi import EmulatedCluster


async def _scrape(session: aiohttp.ClientSession, operator: RunningOperator) -> str:
    async with session.get(operator.url + "/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        return await response.text()


@pytest.fixture
async def after_a_run(
    kube_cluster: EmulatedCluster, operator_with_bridge: OperatorWithBridge, secret_guard: SecretGuard
) -> tuple[RunningOperator, str]:
    """One incident executed through the bridge, plus a rejected and an unknown request; then /metrics."""
    operator = operator_with_bridge()
    kube_cluster.pod_ready_delay = 0.05
    install_app_namespace(kube_cluster, operator.namespace, secret_guard.plant())
    async with aiohttp.ClientSession() as session:
        before = await _scrape(session, operator)
        assert sample_value(before, "tradesense_operator_bridge_requests_total", outcome="accepted") == 0
        async with session.post(f"{operator.url}/alerts", json=notification(alert()),
                                headers={"Authorization": f"Bearer {secrets.token_hex(8)}"}) as response:
            assert response.status == 401
        async with session.post(f"{operator.url}/alerts", data=b"{not json",
                                headers={"Authorization": f"Bearer {operator.token}"}) as response:
            assert response.status == 400
        async with session.post(f"{operator.url}/alerts", json=notification(alert("NoSuchAlert", fingerprint="00ff")),
                                headers={"Authorization": f"Bearer {operator.token}"}) as response:
            assert response.status == 200
        await run_alert_incident(operator, session, notification(alert()))
        assert operator.backend_image() == GOOD_IMAGE
        # the engine counts a transition right after its status write lands, so /metrics may trail what the
        # test just read from the API server by a moment
        for _ in range(200):
            exposition = await _scrape(session, operator)
            if sample_value(exposition, "tradesense_operator_incident_transitions_total",
                            runbook="high-error-rate", phase="Succeeded") >= 1:
                break
            await asyncio.sleep(0.05)
    secret_guard.add_source("/metrics of the operator", lambda: exposition)
    return operator, exposition


async def test_bridge_counters_moved(after_a_run: tuple[RunningOperator, str]) -> None:
    _, exposition = after_a_run

    def requests(outcome: str) -> float:
        return sample_value(exposition, "tradesense_operator_bridge_requests_total", outcome=outcome)

    def alerts(outcome: str) -> float:
        return sample_value(exposition, "tradesense_operator_bridge_alerts_total", outcome=outcome)

    assert (requests("accepted"), requests("unauthorized"), requests("malformed-json")) == (2, 1, 1)
    assert (alerts("created"), alerts("unknown")) == (1, 1)


async def test_incident_step_and_action_counters_moved(after_a_run: tuple[RunningOperator, str]) -> None:
    _, exposition = after_a_run

    def value(name: str, **labels: str) -> float:
        return sample_value(exposition, f"tradesense_operator_{name}", **labels)

    # the high-error-rate runbook: check logs, rollout undo, rollout status — each once, each done
    for action in ("log-scan", "rollout-undo", "rollout-status"):
        assert value("remediation_actions_total", action=action, outcome="done") == 1, action
        assert value("step_duration_seconds_count", action=action, outcome="done") == 1, action
    assert value("incident_transitions_total", runbook="high-error-rate", phase="Succeeded") == 1
    # the phase gauge followed the incident: counted once, in its final phase only
    phases = [family for family in text_string_to_metric_families(exposition)
              if family.name == "tradesense_operator_incidents"]
    [family] = phases
    assert {s.labels["phase"]: s.value for s in family.samples if s.value} == {"Succeeded": 1.0}


async def test_health_and_readiness_answer_on_the_operator_port(
    operator_with_bridge: OperatorWithBridge,
) -> None:
    operator = operator_with_bridge()
    async with aiohttp.ClientSession() as session:
        async with session.get(operator.url + "/healthz") as response:
            assert (response.status, (await response.json())["status"]) == (200, "ok")
        async with session.get(operator.url + "/readyz") as response:  # ready once startup finished
            assert (response.status, (await response.json())["status"]) == (200, "ready")
        async with session.get(operator.url + "/alerts") as response:
            assert response.status == 405  # the webhook is POST only
