"""Issue 6, "Done when" #1: the whole alert path with real programs, no shortcuts between them.

stand-in app (errors) → real Prometheus (scrapes it, evaluates the SHIPPED rules) → real Alertmanager
(groups, repeats, resolves) → the operator's bridge (bearer token from a Secret) → TradeSenseIncident →
the real kopf operator runs the high-error-rate runbook against the emulated API (check logs, rollout undo
of the backend, rollout status) → the app is healthy again → the alert resolves → recorded on the incident
(the bridge's annotation, and the AlertResolved condition the engine derives from it — also on an incident
that already finished).

The only liberty taken with `deploy/monitoring/tradesense.rules.yaml` is time, so that it runs in seconds:
every `for:` becomes 0s and every range selector (`[5m]`, `[10m]`, ...) becomes `[10s]`; Prometheus scrapes
and evaluates every 1 s; Alertmanager uses group_wait 1s, group_interval 1s and repeat_interval 2s, so
repeat notifications DO arrive while the alert fires (and must not create a second incident). Expressions,
thresholds, labels and annotations are the shipped ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.integration.bridge.conftest import sample_value
from tests.integration.bridge.operator_harness import (
    BAD_IMAGE,
    GOOD_IMAGE,
    OperatorWithBridge,
    RunningOperator,
    copy_logs_to_backend_pods,
    install_app_namespace,
)
from tests.support.secrets import SecretGuard
from tradesense_operator.domain.alerts import ALERT_NOTIFICATIONS_ANNOTATION, ALERT_STATUS_ANNOTATION
from tradesense_operator.domain.incident.alert_state import CONDITION as ALERT_CONDITION
from tradesense_operator.services.step_adapters.workloads import REVISION
from tradesense_sandbox.app import BackgroundLoad, StandinApp
from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.servers import AlertmanagerServer, PrometheusServer

SHIPPED_RULES = Path(__file__).resolve().parents[3] / "deploy" / "monitoring" / "tradesense.rules.yaml"
FAST_WINDOW = "[10s]"
# API paths without cache lookups: the cache-hit-rate rule sees no traffic (0/0 is no sample), so the only
# runbook alert the load can raise is the one under test.
LOAD_PATHS = ("/api/v1/trades", "/api/v1/monitoring/health")


def fast_rules(source: Path, target: Path) -> Path:
    """The shipped rules with `for: 0s` and `[10s]` windows (see the module docstring); nothing else changed."""
    document = yaml.safe_load(source.read_text(encoding="utf-8"))
    for group in document["groups"]:
        for rule in group["rules"]:
            rule["expr"] = re.sub(r"\[\d+[smhdwy]\]", FAST_WINDOW, rule["expr"])  # recording rules too
            if "for" in rule:
                rule["for"] = "0s"
    target.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return target


def test_fast_rules_change_only_durations(tmp_path: Path) -> None:
    shipped = yaml.safe_load(SHIPPED_RULES.read_text(encoding="utf-8"))
    fast = yaml.safe_load(fast_rules(SHIPPED_RULES, tmp_path / "fast.yaml").read_text(encoding="utf-8"))
    pairs = [(a, b) for ga, gb in zip(shipped["groups"], fast["groups"], strict=True)
             for a, b in zip(ga["rules"], gb["rules"], strict=True)]
    assert any("[5m]" in a["expr"] for a, _ in pairs)
    for original, changed in pairs:
        assert {k: v for k, v in changed.items() if k not in {"expr", "for"}} == \
            {k: v for k, v in original.items() if k not in {"expr", "for"}}
        assert changed["expr"] == re.sub(r"\[\d+[smhdwy]\]", FAST_WINDOW, original["expr"])
        assert changed.get("for", "0s") == "0s"


@contextlib.asynccontextmanager
async def background(coro: Callable[[], Any]) -> AsyncIterator[None]:
    """Run `coro()` as a task for the duration of the block (cancelled on the way out, even on failure)."""
    task = asyncio.create_task(coro())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.prometheus
async def test_high_error_rate_alert_runs_one_incident_that_rolls_back_and_records_the_resolution(  # noqa: PLR0917
    kube_cluster: EmulatedCluster,
    operator_with_bridge: OperatorWithBridge,
    standin_app: StandinApp,
    prometheus_factory: Callable[..., PrometheusServer],
    alertmanager_factory: Callable[..., AlertmanagerServer],
    secret_guard: SecretGuard,
    tmp_path: Path,
) -> None:
    operator: RunningOperator = operator_with_bridge()
    kube_cluster.pod_ready_delay = 0.05
    await asyncio.to_thread(install_app_namespace, kube_cluster, operator.namespace, secret_guard.plant())
    assert operator.backend_image() == BAD_IMAGE
    alertmanager = alertmanager_factory(
        f"{operator.url}/alerts", bearer_token=operator.token,
        group_wait="1s", group_interval="1s", repeat_interval="2s",
    )
    operator_target = f"127.0.0.1:{operator.port}"  # Prometheus scrapes the operator's /metrics too
    prometheus = prometheus_factory(
        [standin_app.target, operator_target], job_name="tradesense-backend",  # the job SiteDown watches
        rule_files=[fast_rules(SHIPPED_RULES, tmp_path / "tradesense.rules.yaml")],
        alertmanagers=[alertmanager.target], scrape_interval="1s", evaluation_interval="1s",
    )
    await prometheus.wait_for_target_up_async()

    most_incidents_seen = 0

    async def watch() -> None:
        """Count incidents all along (not only at the end), and play the app's part of the story."""
        nonlocal most_incidents_seen
        recovered = False
        while True:
            most_incidents_seen = max(most_incidents_seen, len(operator.incidents()))
            if not recovered and operator.backend_image() == GOOD_IMAGE:
                standin_app.reset_mode()  # the rollback is what fixes the app
                recovered = True
            if not recovered:  # `kubectl logs deployment/backend` shows the app's errors
                copy_logs_to_backend_pods(kube_cluster, operator.namespace, standin_app.logs.text())
            await asyncio.sleep(0.1)

    async with BackgroundLoad(standin_app.base_url, rate=25, paths=LOAD_PATHS, max_duration=90), background(watch):
        standin_app.set_mode(errors=0.5)

        await operator.wait_for("an incident from the alert", lambda: len(operator.incidents()) >= 1, timeout=30)
        await operator.wait_for("the incident to finish", lambda: _phase(operator) in {"Succeeded", "Failed"},
                                timeout=30)
        assert _phase(operator) == "Succeeded", _incident(operator).get("status")
        assert operator.backend_image() == GOOD_IMAGE
        # finished while the alert still fires (its 10 s window still holds the errors)
        assert _alert_condition(operator)["status"] == "False"
        assert _alert_condition(operator)["reason"] == "AlertFiring"
        await operator.wait_for("the alert's resolution recorded on the incident",
                                lambda: _alert_condition(operator).get("status") == "True", timeout=40)

    condition = _alert_condition(operator)
    assert condition["reason"] == "AlertResolved"
    assert "resolved" in condition["message"]
    assert _annotations(operator)[ALERT_STATUS_ANNOTATION] == "resolved"

    incident = _incident(operator)
    assert most_incidents_seen == 1
    assert len(operator.incidents()) == 1
    spec = incident["spec"]
    assert spec["runbook"] == "high-error-rate"
    assert spec["severity"] == "P2"  # the rule's severity: high
    assert spec["source"]["kind"] == "alertmanager"
    assert spec["source"]["alertname"] == "HighErrorRate"
    assert re.fullmatch(r"[0-9a-f]{16}", spec["source"]["fingerprint"])  # Alertmanager's own fingerprint
    assert int(incident["metadata"]["annotations"][ALERT_NOTIFICATIONS_ANNOTATION]) >= 2  # repeats arrived
    # carried out against the emulated API: the logs were checked, revision 1 (v2.0.0) is back as revision 3
    steps = {s["id"]: s for s in incident["status"]["steps"]}
    assert [steps[i]["state"] for i in ("error-logs", "rollback", "backend-rollout")] == ["Succeeded"] * 3
    assert int(steps["error-logs"]["evidence"]["matches"]) > 0
    backend = kube_cluster.get("apps/v1", "Deployment", "backend", operator.namespace)
    assert backend["metadata"]["annotations"][REVISION] == "3"
    assert all(p["spec"]["containers"][0]["image"] == GOOD_IMAGE
               for p in kube_cluster.list("v1", "Pod", operator.namespace, label_selector="app=backend"))

    # the operator's own account of it, scraped over HTTP
    # ... and as Prometheus saw it: the exposition is scrapable and the counter is there
    created = 'sum(tradesense_operator_bridge_alerts_total{outcome="created"})'
    for _ in range(100):
        if await _query(prometheus, created) == 1.0:
            break
        await asyncio.sleep(0.1)
    assert await _query(prometheus, created) == 1.0
    exposition = await _scrape(operator)
    assert sample_value(exposition, "tradesense_operator_bridge_alerts_total", outcome="created") == 1
    assert sample_value(exposition, "tradesense_operator_bridge_alerts_total", outcome="updated") >= 1
    assert sample_value(exposition, "tradesense_operator_bridge_alerts_total", outcome="resolved") >= 1
    assert sample_value(exposition, "tradesense_operator_bridge_requests_total", outcome="accepted") >= 3
    assert sample_value(exposition, "tradesense_operator_bridge_requests_total", outcome="unauthorized") == 0


def _incident(operator: RunningOperator) -> dict[str, Any]:
    [incident] = operator.incidents()
    return incident


def _phase(operator: RunningOperator) -> str | None:
    items = operator.incidents()
    return (items[0].get("status") or {}).get("phase") if items else None


def _alert_condition(operator: RunningOperator) -> dict[str, Any]:
    """The incident's AlertResolved condition (the engine derives it from the bridge's annotations)."""
    items = operator.incidents()
    conditions = ((items[0].get("status") or {}).get("conditions") or []) if items else []
    return next((c for c in conditions if c["type"] == ALERT_CONDITION), {})


def _annotations(operator: RunningOperator) -> dict[str, str]:
    items = operator.incidents()
    return dict(items[0]["metadata"].get("annotations") or {}) if items else {}


async def _scrape(operator: RunningOperator) -> str:
    async with aiohttp.ClientSession() as session, session.get(operator.url + "/metrics") as response:
        assert response.status == 200
        return await response.text()


async def _query(prometheus: PrometheusServer, promql: str) -> float | None:
    """An instant query's single value, or None while it has no sample."""
    async with aiohttp.ClientSession() as session, session.get(prometheus.query_url(promql)) as response:
        result = (await response.json())["data"]["result"]
    return float(result[0]["value"][1]) if result else None
