"""Structured logs of the real operator: one JSON object per line, with the incident and step on the lines
written while a step runs (issue 6: "Structured JSON logs with the incident and step on every line")."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.integration.bridge.conftest import alert, notification
from tests.integration.bridge.operator_harness import (
    OperatorWithBridge,
    install_app_namespace,
    run_alert_incident,
)
from tests.support.secrets import SecretGuard
from tradesense_operator.observability.logs import configure_logging
from tradesense_sandbox.kubeapi import EmulatedCluster

STEP_EVENTS = ("StepStarted", "StepSucceeded", "StepSkipped", "AttemptFailed", "StepFailed")


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The production log configuration (`configure_logging(log_format="json")`) writing into a buffer."""
    root = logging.getLogger()
    level = root.level
    handler = configure_logging(log_format="json", level="INFO")
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
async def incident_log(
    json_log: io.StringIO,
    kube_cluster: EmulatedCluster,
    operator_with_bridge: OperatorWithBridge,
    secret_guard: SecretGuard,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A high-error-rate incident carried out by the operator; its log lines, parsed."""
    operator = operator_with_bridge()
    kube_cluster.pod_ready_delay = 0.05
    install_app_namespace(kube_cluster, operator.namespace, secret_guard.plant())
    async with aiohttp.ClientSession() as session:
        incident = await run_alert_incident(operator, session, notification(alert()))
    text = json_log.getvalue()
    secret_guard.add_source("JSON log output", lambda: text)
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "the operator logged nothing"
    parsed = []
    for line in lines:
        record = json.loads(line)  # every line, from every logger, is one JSON object
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= record.keys(), line
        parsed.append(record)
    return incident, parsed


def _ref(incident: dict[str, Any]) -> str:
    return f"TradeSenseIncident {incident['metadata']['namespace']}/{incident['metadata']['name']}"


async def test_every_line_is_json_and_kopf_lines_name_the_object(
    incident_log: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    incident, records = incident_log
    name = incident["metadata"]["name"]
    about = [r for r in records if r["logger"].startswith("kopf.objects")]
    assert about, "kopf logged nothing about the incident"
    for record in about:
        assert name in record["object"], record  # from kopf's own k8s_ref


async def test_lines_written_while_a_step_runs_carry_incident_and_step(
    incident_log: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    incident, records = incident_log
    plan = [step["id"] for step in incident["status"]["plan"]]
    step_lines = [r for r in records if r["logger"].startswith("tradesense_operator.")
                  and any(event in r["message"] for event in STEP_EVENTS)]
    assert {r.get("step") for r in step_lines} == set(plan)  # every step was logged, each line names its step
    for record in step_lines:
        assert record.get("object") == _ref(incident), record
        assert f"] {record['step']}" in record["message"], record
    for record in records:
        if record["logger"].startswith(
            ("tradesense_operator.services.incidents", "tradesense_operator.services.step_adapters")
        ):
            assert record.get("object") == _ref(incident), record
