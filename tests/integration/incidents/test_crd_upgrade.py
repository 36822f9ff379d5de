"""A CRD upgrade while an incident is in flight: it was created under the previous CRD (without a defaulted
field), the new CRD is applied, the API server now serves the incident with the new default — and the
incident still finishes, instead of stopping with SpecChanged for an edit nobody made.

Runs on a private emulated cluster: the test replaces the TradeSenseIncident CRD.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

from tests.integration.incidents.engine_harness import EngineEnv, step
from tests.support.kube import OperatorFactory
from tradesense_sandbox.kubeapi import EmulatedCluster

CRD = ("apiextensions.k8s.io/v1", "CustomResourceDefinition", "tradesenseincidents.ops.tradesense.io")
FIELD = "cancelOnAlertResolved"


def _without_field(crd: dict[str, Any]) -> dict[str, Any]:
    """The 'previous release' of the CRD: no spec.cancelOnAlertResolved (nor the rule that guards it)."""
    previous = copy.deepcopy(crd)
    for version in previous["spec"]["versions"]:
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        spec["properties"].pop(FIELD)
        spec["x-kubernetes-validations"] = [r for r in spec.get("x-kubernetes-validations", []) if FIELD not in r["rule"]]
    return previous


async def test_an_incident_created_under_the_previous_crd_finishes_after_the_upgrade(
    fresh_kube_cluster: EmulatedCluster, operator_factory: OperatorFactory, tmp_path: Path
) -> None:
    cluster = fresh_kube_cluster
    current = cluster.get(*CRD)
    cluster.replace(_without_field(current))
    namespace = "crd-upgrade"
    cluster.create_namespace(namespace)
    env = EngineEnv(cluster, namespace, cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace=namespace),
                    functools.partial(operator_factory, cluster=cluster))
    env.create_deployment()
    env.start_operator()
    env.create_incident("inflight", env.spec(step("before"), step("failover", "dr-failover", destructive=True)))
    await env.wait_phase("inflight", "AwaitingApproval")
    assert FIELD not in env.incident("inflight")["spec"]

    upgraded = copy.deepcopy(current)
    upgraded["metadata"]["resourceVersion"] = cluster.get(*CRD)["metadata"]["resourceVersion"]
    cluster.replace(upgraded)
    assert env.incident("inflight")["spec"][FIELD] is False  # served with the new default

    env.patch_spec("inflight", {"approvals": ["failover"]})
    status = await env.wait_phase("inflight", "Succeeded", "Blocked", "Failed")
    assert status["phase"] == "Succeeded", status["message"]
    assert [s["state"] for s in status["steps"]] == ["Succeeded", "Succeeded"]
