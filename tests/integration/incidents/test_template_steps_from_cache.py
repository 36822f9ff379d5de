"""Template steps (set-env, set-resources, rollout restart) decide from the Deployment watch cache and write
guarded by the resourceVersion they decided from (`workloads.patch_template_guarded`).

What must hold: with a current cache the step costs one PATCH and no GET; a cache that missed someone else's
write costs a Conflict, a GET and a new decision — never a change computed from the old template; a "no change
needed" seen in the cache is confirmed by a fresh read before the step reports it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tradesense_operator.api.v1alpha1.incident import PlannedStep, StepAction, TradeSenseIncidentSpec
from tradesense_operator.clients.kube import DEPLOYMENTS, KubeClient, ObjectRef
from tradesense_operator.services.runtime import Runtime
from tradesense_operator.services.step_adapters.base import Outcome, StepContext
from tradesense_operator.services.step_adapters.registry import ACTIONS
from tradesense_sandbox.kubeapi import EmulatedCluster


@pytest.fixture
async def runtime(kube_cluster: EmulatedCluster, test_namespace: str, kubeconfig_path: Path
                  ) -> AsyncIterator[Runtime]:
    kube_cluster.create({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": test_namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "example/web:1"}]}}},
    })
    rt = Runtime(kube=await KubeClient.from_kubeconfig(str(kubeconfig_path)))
    await rt.watch_cache(DEPLOYMENTS).get(test_namespace, "web")  # listed and watching, as in a running operator
    yield rt
    await rt.aclose()


def _context(rt: Runtime, namespace: str, value: str) -> StepContext:
    spec = TradeSenseIncidentSpec.model_validate({"runbook": "custom", "target": {"namespace": namespace}, "steps": [
        {"id": "mark", "action": "set-env", "target": "web", "params": {"name": "MODE", "value": value}}]})
    step = PlannedStep(id="mark", action=StepAction.SET_ENV, target="deployment/web",
                       params={"name": "MODE", "value": value})
    incident = ObjectRef(api_version="ops.tradesense.io/v1alpha1", kind="TradeSenseIncident", name="inc",
                         namespace=namespace, uid="uid-1")

    async def save(_: Any) -> None:
        raise AssertionError("set-env saves no checkpoint")

    return StepContext(rt, incident, spec, step, 1, {}, save)


def _env(cluster: EmulatedCluster, namespace: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = cluster.get("apps/v1", "Deployment", "web", namespace)["spec"]["template"]["spec"][
        "containers"][0].get("env") or []
    return env


def _counts(cluster: EmulatedCluster) -> tuple[int, int]:
    return cluster.stats.total("get", "deployments"), cluster.stats.total("patch", "deployments")


async def test_a_current_cache_costs_one_patch_and_no_read(
    kube_cluster: EmulatedCluster, test_namespace: str, runtime: Runtime
) -> None:
    before = _counts(kube_cluster)
    result = await ACTIONS[StepAction.SET_ENV].run(_context(runtime, test_namespace, "fast"))
    gets, patches = (a - b for a, b in zip(_counts(kube_cluster), before, strict=True))
    assert result.outcome is Outcome.DONE
    assert _env(kube_cluster, test_namespace) == [{"name": "MODE", "value": "fast"}]
    assert (gets, patches) == (0, 1)


async def test_a_write_the_cache_has_not_seen_costs_a_conflict_and_a_new_decision(
    kube_cluster: EmulatedCluster, test_namespace: str, runtime: Runtime
) -> None:
    # Someone else turns MODE into a reference; the step decides before the watch can show it (no await between).
    kube_cluster.patch("apps/v1", "Deployment", "web", {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}}]}
    ]}}}}, test_namespace,
        content_type="application/strategic-merge-patch+json")
    before = _counts(kube_cluster)
    result = await ACTIONS[StepAction.SET_ENV].run(_context(runtime, test_namespace, "fast"))
    gets, patches = (a - b for a, b in zip(_counts(kube_cluster), before, strict=True))
    # Decided again from the fresh read: the reference is replaced (valueFrom cleared), as `kubectl set env` does.
    assert _env(kube_cluster, test_namespace) == [{"name": "MODE", "value": "fast"}]
    assert result.message == "set MODE=fast on deployment/web (was a reference)"
    assert (gets, patches) == (1, 2)


async def test_no_change_needed_is_confirmed_by_a_fresh_read(
    kube_cluster: EmulatedCluster, test_namespace: str, runtime: Runtime
) -> None:
    await ACTIONS[StepAction.SET_ENV].run(_context(runtime, test_namespace, "fast"))  # the cache remembers it
    kube_cluster.patch("apps/v1", "Deployment", "web", {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "env": [{"name": "MODE", "value": "slow"}]}]}}}}, test_namespace,
        content_type="application/strategic-merge-patch+json")
    result = await ACTIONS[StepAction.SET_ENV].run(_context(runtime, test_namespace, "fast"))
    assert result.outcome is Outcome.DONE
    assert result.message == "set MODE=fast on deployment/web (was slow)"
    assert _env(kube_cluster, test_namespace) == [{"name": "MODE", "value": "fast"}]
