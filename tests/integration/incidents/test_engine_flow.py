"""Engine flow against the emulated API with the real kopf operator: plan frozen in status, phases and
conditions, Events per transition, approvals, dry run, retries with backoff, step timeouts, cancel,
invalid specs, immutable spec fields, and that a finished incident is never run again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.incidents.engine_harness import (
    EFFECTS,
    EngineEnv,
    step,
)
from tradesense_operator.sandbox.kubeapi import EmulatedCluster


@pytest.fixture
def env(kube_cluster: EmulatedCluster, test_namespace: str, kubeconfig_path: Path, operator_factory) -> EngineEnv:
    engine_env = EngineEnv(kube_cluster, test_namespace, kubeconfig_path, operator_factory)
    engine_env.create_deployment()
    return engine_env


def _condition(status: dict, type_: str) -> dict:
    return next(c for c in status.get("conditions", []) if c["type"] == type_)


async def test_steps_run_in_order_and_the_incident_succeeds(env: EngineEnv) -> None:
    env.start_operator()
    env.create_incident("ok", env.spec(step("first"), step("second", "scale"), step("smoke", "smoke-test"),
                                       severity="P2"))
    status = await env.wait_phase("ok", "Succeeded", "Failed")

    assert status["phase"] == "Succeeded"
    assert [s["id"] for s in status["plan"]] == ["first", "second", "smoke"]
    assert [(s["id"], s["state"], s["attempts"]) for s in status["steps"]] == [
        ("first", "Succeeded", 1), ("second", "Succeeded", 1), ("smoke", "Succeeded", 1)]
    uid = env.incident("ok")["metadata"]["uid"]
    assert env.annotation_list(EFFECTS) == [f"{uid}/first", f"{uid}/second", f"{uid}/smoke"]
    assert _condition(status, "Ready")["status"] == "True"
    assert _condition(status, "Progressing")["status"] == "False"
    assert status["resolvedAt"]
    assert "currentStep" not in status
    assert status["observedGeneration"] == env.incident("ok")["metadata"]["generation"]
    await env.wait_event("ok", "IncidentSucceeded")
    assert env.reasons("ok") == ["Planned", "StepStarted", "StepSucceeded", "StepStarted", "StepSucceeded",
                       "StepStarted", "StepSucceeded", "IncidentSucceeded"]


async def test_respond_by_follows_severity(env: EngineEnv) -> None:
    env.start_operator()
    created = env.create_incident("p1", env.spec(step("only"), severity="P1"))
    status = await env.wait_phase("p1", "Succeeded")
    from datetime import datetime, timedelta
    created_at = datetime.fromisoformat(created["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    assert datetime.fromisoformat(status["respondBy"].replace("Z", "+00:00")) == created_at + timedelta(minutes=15)
