"""An alert's resolution, carried through the real operator: with `cancel_on_resolve` the bridge sets
spec.cancel and the engine cancels the steps that have not started; without it the incident carries on.

The target namespace is frozen (`ops.tradesense.io/freeze=true`) so that the incident is held before its
first step — a deterministic "not yet started" — until the test lifts the freeze or the alert resolves.
"""

from __future__ import annotations

import aiohttp
import pytest

from tests.integration.bridge.conftest import alert, notification
from tests.integration.bridge.operator_harness import (
    BAD_IMAGE,
    GOOD_IMAGE,
    OperatorWithBridge,
    RunningOperator,
    install_app_namespace,
)
from tests.support.rbac import with_and_without_rbac
from tests.support.secrets import SecretGuard
from tradesense_operator.domain.alerts import ALERT_STATUS_ANNOTATION
from tradesense_operator.domain.incident.alert_state import CONDITION as ALERT_CONDITION
from tradesense_operator.domain.incident.freeze import FREEZE_ANNOTATION
from tradesense_sandbox.kubeapi import EmulatedCluster


async def _post(session: aiohttp.ClientSession, operator: RunningOperator, payload: dict[str, object]) -> list[str]:
    async with session.post(f"{operator.url}/alerts", json=payload,
                            headers={"Authorization": f"Bearer {operator.token}"}) as response:
        assert response.status == 200, await response.text()
        return [a["outcome"] for a in (await response.json())["alerts"]]


def _freeze(cluster: EmulatedCluster, namespace: str, frozen: bool) -> None:
    cluster.patch("v1", "Namespace", namespace, {"metadata": {"annotations": {FREEZE_ANNOTATION: "true" if frozen
                                                                              else None}}})


def _status(operator: RunningOperator) -> dict[str, object]:
    [incident] = operator.incidents()
    return dict(incident.get("status") or {})


def _alert_condition(operator: RunningOperator) -> dict[str, object]:
    conditions = _status(operator).get("conditions") or []
    assert isinstance(conditions, list)
    return next((dict(c) for c in conditions if c["type"] == ALERT_CONDITION), {})


async def _held_by_the_freeze(operator: RunningOperator) -> None:
    await operator.wait_for("the incident held by the freeze", lambda: _status(operator).get("phase") == "Blocked")


@pytest.fixture
def operator(
    kube_cluster: EmulatedCluster, operator_with_bridge: OperatorWithBridge, secret_guard: SecretGuard
) -> RunningOperator:
    """The operator with its bridge, the app installed in its namespace, and that namespace frozen."""
    running = operator_with_bridge()
    kube_cluster.pod_ready_delay = 0.05
    install_app_namespace(kube_cluster, running.namespace, secret_guard.plant())
    _freeze(kube_cluster, running.namespace, True)
    return running


async def test_resolution_cancels_steps_not_started_when_the_spec_allows_it(operator: RunningOperator) -> None:
    cancellable = alert(annotations={"cancel_on_resolve": "true"})
    async with aiohttp.ClientSession() as session:
        assert await _post(session, operator, notification(cancellable)) == ["created"]
        await _held_by_the_freeze(operator)

        assert await _post(session, operator, notification({**cancellable, "status": "resolved"})) == ["resolved"]

    await operator.wait_for("the incident cancelled", lambda: _status(operator).get("phase") == "Cancelled")
    [incident] = operator.incidents()
    assert incident["spec"]["cancel"] is True
    assert incident["metadata"]["annotations"][ALERT_STATUS_ANNOTATION] == "resolved"
    assert {s["id"]: s["state"] for s in incident["status"]["steps"]} == {
        "error-logs": "Cancelled", "rollback": "Cancelled", "backend-rollout": "Cancelled"}
    assert operator.backend_image() == BAD_IMAGE  # nothing was rolled back
    await operator.wait_for("AlertResolved=True", lambda: _alert_condition(operator).get("status") == "True")


@with_and_without_rbac
async def test_resolution_without_cancel_on_resolve_lets_the_incident_finish(operator: RunningOperator) -> None:
    async with aiohttp.ClientSession() as session:
        assert await _post(session, operator, notification(alert())) == ["created"]
        await _held_by_the_freeze(operator)
        assert await _post(session, operator, notification(alert(status="resolved"))) == ["resolved"]

    _freeze(operator.cluster, operator.namespace, False)

    await operator.wait_for("the incident to finish", lambda: _status(operator).get("phase") == "Succeeded")
    [incident] = operator.incidents()
    assert not incident["spec"].get("cancel")
    assert incident["metadata"]["annotations"][ALERT_STATUS_ANNOTATION] == "resolved"
    assert operator.backend_image() == GOOD_IMAGE
    assert _alert_condition(operator)["status"] == "True"  # resolved before it finished, and still says so
    assert _alert_condition(operator)["reason"] == "AlertResolved"
