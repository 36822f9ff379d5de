"""A rule missing from deploy/rbac fails a run, not only a static scan: the operator runs as its ServiceAccount
with deploy/rbac minus the application Role's Lease rule (the per-namespace remediation lock), and the incident
says so — condition Stalled=True/Forbidden and a Warning Event naming the verb, resource and namespace, nothing
done to the application — then, once the rule is back, runs to the end by itself (the slow retry notices)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.incidents.engine_harness import EFFECTS, EngineEnv, step
from tests.support.rbac import DEPLOY_RBAC
from tradesense_operator.services.incidents.stalls import STALLED
from tradesense_sandbox.operator_rbac import apply, deploy_rbac, placed

pytestmark = pytest.mark.parametrize("operator_rbac", [DEPLOY_RBAC], indirect=True)
OPERATOR = "system:serviceaccount:tradesense-system:tradesense-operator"


def _is_lease_rule(rule: dict[str, Any]) -> bool:
    return rule["resources"] == ["leases"]


def _app_role(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return next(d for d in documents if d["kind"] == "Role" and d["metadata"]["name"] == "tradesense-operator")


@pytest.fixture
def rbac_documents() -> list[dict[str, Any]]:
    """deploy/rbac with the application Role's Lease rule removed (in memory)."""
    documents = deploy_rbac()
    role = _app_role(documents)
    assert any(_is_lease_rule(rule) for rule in role["rules"])
    role["rules"] = [rule for rule in role["rules"] if not _is_lease_rule(rule)]
    return documents


def _condition(env: EngineEnv, name: str) -> dict[str, Any]:
    return next((c for c in env.status(name).get("conditions") or [] if c["type"] == STALLED), {})


async def test_a_rule_missing_from_deploy_rbac_stalls_the_incident_naming_the_verb_and_resource(
    env: EngineEnv,
) -> None:
    env.start_operator()
    env.create_incident("locked-out", env.spec(step("first")))
    await env.wait_for("Stalled=True", lambda: _condition(env, "locked-out").get("status") == "True")

    stalled = _condition(env, "locked-out")
    assert stalled["reason"] == "Forbidden"
    assert "grant `get` on `leases.coordination.k8s.io`" in stalled["message"]
    assert (f'User "{OPERATOR}" cannot get resource "leases" in API group "coordination.k8s.io" in the namespace '
            f'"{env.namespace}"') in stalled["message"]
    await env.wait_event("locked-out", "Forbidden")
    [(kind, _, message)] = [e for e in env.events("locked-out") if e[1] == "Forbidden"]
    assert kind == "Warning"
    assert f"may not get leases.coordination.k8s.io tradesense-remediation in namespace {env.namespace}" in message
    assert env.annotation_list(EFFECTS) == []  # nothing was done without the lock

    apply(env.cluster, [_app_role(placed(deploy_rbac(), app_namespace=env.namespace))])  # the rule is back
    status = await env.wait_phase("locked-out", "Succeeded", "Failed", timeout=30)
    assert status["phase"] == "Succeeded", status
    assert (_condition(env, "locked-out")["status"], _condition(env, "locked-out")["reason"]) == ("False", "Recovered")
    assert len(env.annotation_list(EFFECTS)) == 1
