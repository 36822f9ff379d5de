"""Nothing wedges, everything says why (issue 12), through the real operator (kopf, handlers, engine) on the
emulated API, whose fault injection answers chosen requests like a real API server would:

- a target namespace that does not exist and lies outside the operator's RBAC (every request there 403, as on
  a real cluster where the operator's Role lives only in `tradesense`): Blocked/MissingNamespace, then
  `spec.cancel` ends it Cancelled and `kubectl delete` completes (the finalizer is removed);
- an existing namespace without RBAC: condition Stalled=True/Forbidden and a Warning Event naming the verb,
  resource and namespace; once RBAC is granted the incident runs by itself; cancel works meanwhile;
- a 400/422 answer: Stalled/Invalid naming the call and the server's message (bounded), a slow retry, the
  daemon alive, the incident finished once the API accepts the request;
- cancel and delete of an incident waiting in AwaitingApproval.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.incidents.conftest import API_VERSION, KIND, TradesenseEnv
from tests.support.waiting import eventually
from tradesense_operator.services.incidents.stalls import MESSAGE_CHARS, STALLED
from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.runner import OperatorHandle

NOTIFY_ONLY = [{"id": "tell", "action": "notify", "params": {"message": "hello"}}]


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


def stalled_condition(env: TradesenseEnv, name: str) -> dict[str, Any] | None:
    shown = condition(env.incident_obj(name), STALLED)
    return shown if shown is not None and shown["status"] == "True" else None


def forbidden_events(env: TradesenseEnv, name: str) -> list[dict[str, Any]]:
    return [e for e in env.incident_events(name) if e["reason"] == "Forbidden"]


def forbid_namespace(cluster: EmulatedCluster, namespace: str) -> None:
    """Every namespaced request in `namespace` answers 403 (no Role there); the Namespace object stays readable."""
    cluster.inject_fault(None, rf"/namespaces/{namespace}/", status=403, times=None)


def gone(env: TradesenseEnv, name: str) -> bool:
    return env.cluster.find(API_VERSION, KIND, name, env.namespace) is None


async def test_a_missing_namespace_outside_rbac_blocks_and_cancel_and_delete_still_complete(
    tradesense: TradesenseEnv, operator: OperatorHandle
) -> None:
    env = tradesense
    ghost = f"{env.namespace}-ghost"
    forbid_namespace(env.cluster, ghost)
    for name in ("ghost-cancel", "ghost-delete"):
        env.apply(name, env.spec("custom", steps=NOTIFY_ONLY, target={"namespace": ghost}))
    for name in ("ghost-cancel", "ghost-delete"):
        blocked = await env.wait_phase(name, "Blocked", timeout=30)
        assert blocked["status"]["message"] == f"target namespace {ghost} does not exist"

    env.cluster.patch(API_VERSION, KIND, "ghost-cancel", {"spec": {"cancel": True}}, env.namespace)
    cancelled = await env.wait_phase("ghost-cancel", "Cancelled", timeout=30)
    assert [s["state"] for s in cancelled["status"]["steps"]] == ["Cancelled"]

    env.cluster.delete(API_VERSION, KIND, "ghost-delete", env.namespace)
    await eventually(lambda: gone(env, "ghost-delete"), what="the deleted incident to disappear (finalizer removed)")


async def test_a_namespace_without_rbac_says_forbidden_and_runs_once_granted(
    tradesense: TradesenseEnv, operator: OperatorHandle
) -> None:
    env = tradesense
    locked = f"{env.namespace}-locked"
    env.cluster.create_namespace(locked)
    forbid_namespace(env.cluster, locked)
    env.apply("locked", env.spec("custom", steps=NOTIFY_ONLY, target={"namespace": locked}))
    env.apply("locked-cancel", env.spec("custom", steps=NOTIFY_ONLY, target={"namespace": locked}))

    for name in ("locked", "locked-cancel"):
        stalled = await eventually(lambda n=name: stalled_condition(env, n), what=f"{name} Stalled")
        assert stalled["reason"] == "Forbidden"
        assert (f"may not get leases.coordination.k8s.io tradesense-remediation in namespace {locked}"
                in stalled["message"])
        assert "grant `get` on `leases.coordination.k8s.io`" in stalled["message"]
    warnings = await eventually(lambda: forbidden_events(env, "locked"), what="the Forbidden Event")
    assert warnings[0]["type"] == "Warning"
    assert f"in namespace {locked}" in warnings[0]["message"]

    env.cluster.patch(API_VERSION, KIND, "locked-cancel", {"spec": {"cancel": True}}, env.namespace)
    await env.wait_phase("locked-cancel", "Cancelled", timeout=30)

    env.cluster.faults.clear()  # RBAC granted: the slow retry notices it
    done = await env.wait_phase("locked", "Succeeded", "Failed", timeout=30)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    recovered = condition(done, STALLED)
    assert recovered is not None
    assert (recovered["status"], recovered["reason"]) == ("False", "Recovered")
    assert len(forbidden_events(env, "locked")) == 1  # once per distinct message, not once per slow retry


@pytest.mark.parametrize(("method", "path", "status", "call"), [
    ("POST", "/leases$", 422, "create leases.coordination.k8s.io in namespace"),
    # the status write itself rejected (twice: the engine's and the report's): the Event is the record
    ("PATCH", "/tradesenseincidents/rejected/status$", 400,
     "patch tradesenseincidents.ops.tradesense.io/status rejected in namespace"),
])
async def test_a_rejected_request_is_reported_bounded_and_retried_not_a_dead_daemon(  # noqa: PLR0917
    tradesense: TradesenseEnv, operator: OperatorHandle, method: str, path: str, status: int, call: str
) -> None:
    env = tradesense
    # the API server's message names the field; this one is far longer than any status field may hold
    long_message = "spec.holderIdentity: Invalid value: " + "x" * 100_000
    env.cluster.faults.add(method, path, status=status, times=2, message=long_message)
    env.apply("rejected", env.spec("custom", steps=NOTIFY_ONLY))

    done = await env.wait_phase("rejected", "Succeeded", "Failed", timeout=30)

    assert done["status"]["phase"] == "Succeeded", done["status"]
    events = [e for e in env.incident_events("rejected") if e["reason"] == "Invalid"]
    assert events, [e["reason"] for e in env.incident_events("rejected")]
    assert f"the API server rejected {call} {env.namespace} as invalid: spec.holderIdentity: Invalid value: xxx" \
        in events[0]["message"]
    assert len(events[0]["message"]) <= MESSAGE_CHARS
    stalled = condition(done, STALLED)
    if method == "POST":
        assert stalled is not None, done["status"]
        assert (stalled["status"], stalled["reason"]) == ("False", "Recovered")  # once the API accepted it
    else:
        assert stalled is None, stalled  # never written: both writes were the rejected ones


async def test_an_incident_awaiting_approval_can_be_cancelled_and_deleted(
    tradesense: TradesenseEnv, operator: OperatorHandle
) -> None:
    env = tradesense
    gated = [{"id": "scale", "action": "scale", "target": "frontend", "params": {"replicas": 4},
              "destructive": True}]
    env.apply("gated-cancel", env.spec("custom", steps=gated))
    await env.wait_phase("gated-cancel", "AwaitingApproval", timeout=30)
    env.cluster.patch(API_VERSION, KIND, "gated-cancel", {"spec": {"cancel": True}}, env.namespace)
    await env.wait_phase("gated-cancel", "Cancelled", timeout=30)

    env.apply("gated-delete", env.spec("custom", steps=gated))  # one at a time: both need the namespace lock
    await env.wait_phase("gated-delete", "AwaitingApproval", timeout=30)
    env.cluster.delete(API_VERSION, KIND, "gated-delete", env.namespace)
    await eventually(lambda: gone(env, "gated-delete"), what="the deleted incident to disappear")
    assert env.deployment("frontend")["spec"]["replicas"] == 2  # never approved, never scaled
