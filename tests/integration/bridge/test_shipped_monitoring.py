"""The shipped monitoring files as a user installs them: real Prometheus loads deploy/monitoring/tradesense.rules.yaml
byte for byte, real Alertmanager runs deploy/monitoring/alertmanager-receiver.yaml with only its addresses (bridge
and people webhooks, now on loopback) and its credentials file changed. Two application namespaces fail at once;
each gets exactly one incident, in its own namespace, and people are paged for both.

Prometheus attaches the `namespace` label to each target, as Kubernetes service discovery does in a cluster.
Timing is the shipped one: the burn-rate alert has no `for:`, the bridge route waits 5 s, the paging route 30 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.bridge.conftest import Bridge
from tests.support.services import WebhookRecorder
from tradesense_sandbox.app import BackgroundLoad, StandinApp
from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.servers import AlertmanagerServer, PrometheusServer

pytestmark = pytest.mark.prometheus

MONITORING = Path(__file__).resolve().parents[3] / "deploy" / "monitoring"
LOAD_PATHS = ("/api/v1/trades", "/api/v1/monitoring/health")  # no cache lookups: only the error alert can fire


def shipped_routing(bridge_url: str, token_file: Path, people_url: str) -> dict[str, Any]:
    """alertmanager-receiver.yaml with loopback addresses and a local token file; nothing else changed."""
    config: dict[str, Any] = yaml.safe_load((MONITORING / "alertmanager-receiver.yaml").read_text())
    for receiver in config["receivers"]:
        for webhook in receiver["webhook_configs"]:
            if receiver["name"] == "tradesense-operator":
                webhook["url"] = bridge_url
                webhook["http_config"]["authorization"]["credentials_file"] = str(token_file)
            else:
                webhook["url"] = f"{people_url}/{receiver['name']}"
    return config


def test_shipped_routing_changes_only_addresses_and_credentials(tmp_path: Path) -> None:
    shipped = yaml.safe_load((MONITORING / "alertmanager-receiver.yaml").read_text())
    changed = shipped_routing("http://127.0.0.1:1/alerts", tmp_path / "token", "http://127.0.0.1:2")
    assert changed["route"] == shipped["route"]
    for before, after in zip(shipped["receivers"], changed["receivers"], strict=True):
        for hook_before, hook_after in zip(before["webhook_configs"], after["webhook_configs"], strict=True):
            assert {k: v for k, v in hook_after.items() if k not in {"url", "http_config"}} == \
                {k: v for k, v in hook_before.items() if k not in {"url", "http_config"}}


async def _until(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.2)


def _paged(recorder: WebhookRecorder, receiver: str) -> set[tuple[str, str]]:
    """(alertname, namespace) of every firing alert delivered to one people receiver."""
    seen = set()
    for request in recorder.received():
        body = request["body"]
        if request["path"].endswith(f"/{receiver}") and isinstance(body, dict):
            seen.update((a["labels"]["alertname"], a["labels"].get("namespace", "")) for a in body["alerts"]
                        if a["status"] == "firing")
    return seen


async def test_two_failing_namespaces_get_one_incident_each_and_people_are_paged(  # noqa: PLR0917
    bridge: Bridge,
    kube_cluster: EmulatedCluster,
    standin_app_factory: Callable[..., StandinApp],
    prometheus_factory: Callable[..., PrometheusServer],
    alertmanager_factory: Callable[..., AlertmanagerServer],
    webhook_recorder: WebhookRecorder,
    tmp_path: Path,
) -> None:
    namespaces = [f"{bridge.namespace}-a", f"{bridge.namespace}-b"]
    for namespace in namespaces:
        kube_cluster.create_namespace(namespace)
    apps = [standin_app_factory(), standin_app_factory()]
    token_file = tmp_path / "bridge-token"
    token_file.write_text(bridge.token)
    token_file.chmod(0o600)
    alertmanager = alertmanager_factory(
        config=shipped_routing(f"{bridge.url}/alerts", token_file, webhook_recorder.url))
    prometheus = prometheus_factory(
        [app.target for app in apps], job_name="tradesense-backend",
        target_labels={app.target: {"namespace": ns} for app, ns in zip(apps, namespaces, strict=True)},
        rule_files=[MONITORING / "tradesense.rules.yaml"], alertmanagers=[alertmanager.target],
    )
    try:
        await prometheus.wait_for_target_up_async()
        async with (BackgroundLoad(apps[0].base_url, rate=20, paths=LOAD_PATHS, max_duration=120),
                    BackgroundLoad(apps[1].base_url, rate=20, paths=LOAD_PATHS, max_duration=120)):
            for app in apps:
                app.set_mode(errors=0.5)
            await _until("an incident in each namespace",
                         lambda: all(bridge.incidents(ns) for ns in namespaces), timeout=40)
            await _until("people paged for both namespaces",
                         lambda: {("HighErrorRate", ns) for ns in namespaces} <= _paged(webhook_recorder, "people-page"),
                         timeout=60)

        for namespace in namespaces:
            [incident] = bridge.incidents(namespace)
            spec = incident["spec"]
            assert spec["target"]["namespace"] == namespace
            assert (spec["runbook"], spec["severity"], spec["cancelOnAlertResolved"]) == ("high-error-rate", "P2", True)
            assert spec["source"]["alertname"] == "HighErrorRate"
        assert bridge.incidents() == []  # nothing fell back to the bridge's default namespace
        assert ("HighErrorRate", namespaces[0]) not in _paged(webhook_recorder, "people")  # paged, not queued
    finally:
        for namespace in namespaces:
            kube_cluster.delete("v1", "Namespace", namespace)
