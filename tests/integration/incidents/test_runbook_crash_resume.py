"""Crash safety of the real runbooks: the operator is killed right after each step's effect happened and
before the engine recorded it (the worst boundary), a new operator finishes the incident, and every effect
exists exactly once — pods replaced once per tier (counted from the API server's pod creations), each
Deployment one revision further, READ_ONLY set once, one safety backup, the restore done once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tests.integration.incidents.conftest import StartOperator, TradesenseEnv
from tradesense_operator.api.v1alpha1.incident import (
    IncidentParameters,
    Runbook,
    StepAction,
    TradeSenseIncidentSpec,
)
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.domain.runbooks import resolve_plan
from tradesense_operator.services.backups import dump_pipeline
from tradesense_operator.services.backups.restore import SAFETY_KIND
from tradesense_operator.services.step_adapters.base import Action, Outcome, StepContext, StepResult
from tradesense_operator.services.step_adapters.registry import ACTIONS
from tradesense_operator.services.step_adapters.workloads import REVISION
from tradesense_sandbox.kubeapi import EmulatedCluster

COMPLETE_FAILURE = [s.id for s in resolve_plan(TradeSenseIncidentSpec(runbook=Runbook.COMPLETE_FAILURE))]
DATA_CORRUPTION = [s.id for s in resolve_plan(TradeSenseIncidentSpec(
    runbook=Runbook.DATA_CORRUPTION, parameters=IncidentParameters(backup_policy="any")))]


class HangAfterEffect:
    """Runs the real action, then hangs (instead of reporting) once, at one step: the operator is killed there."""

    def __init__(self, inner: Action, step_id: str, reached: threading.Event) -> None:
        self.inner = inner
        self.name = inner.name
        self.destructive = inner.destructive
        self._step_id = step_id
        self._reached = reached

    async def describe(self, ctx: StepContext) -> str:
        return await self.inner.describe(ctx)

    async def run(self, ctx: StepContext) -> StepResult:
        result = await self.inner.run(ctx)
        if ctx.step.id == self._step_id and result.outcome is not Outcome.WAITING:
            self._reached.set()
            await asyncio.Event().wait()  # never returns: killed with the effect done and unrecorded
        return result


def hanging_actions(step_id: str, reached: threading.Event) -> Mapping[StepAction, Action]:
    return {name: HangAfterEffect(action, step_id, reached) for name, action in ACTIONS.items()}


@pytest.fixture
def pod_creations(tradesense: TradesenseEnv, kube_cluster: EmulatedCluster) -> Iterator[dict[str, int]]:
    """Pods created in the test namespace from now on, by app label (a listener on the emulator's store)."""
    counts: dict[str, int] = {}
    active = [True]

    def listen(rtype: Any, event_type: str, obj: dict[str, Any], _old: Any) -> None:
        mine = obj["metadata"].get("namespace") == tradesense.namespace
        if active[0] and mine and rtype.kind == "Pod" and event_type == "ADDED":
            app = obj["metadata"].get("labels", {}).get("app", "")
            counts[app] = counts.get(app, 0) + 1

    kube_cluster.store.add_listener(listen)
    yield counts
    active[0] = False  # the store has no unsubscribe; the listener goes quiet


async def crash_and_resume(
    env: TradesenseEnv, start_operator: StartOperator, name: str, spec: TradeSenseIncidentSpec, step_id: str
) -> dict[str, Any]:
    reached = threading.Event()
    crashing = start_operator(hanging_actions(step_id, reached))
    env.apply(name, spec)
    assert await asyncio.to_thread(reached.wait, 30), f"step {step_id} never completed its effect"
    crashing.kill()
    steps = {s["id"]: s["state"] for s in env.incident_obj(name)["status"]["steps"]}
    assert steps[step_id] == "Running"  # the effect happened, the engine never heard of it
    start_operator()
    return await env.wait_phase(name, "Succeeded", "Failed", timeout=60)


@pytest.mark.parametrize("step_id", COMPLETE_FAILURE)
async def test_complete_failure_killed_after_each_effect_finishes_with_every_effect_once(
    tradesense: TradesenseEnv, start_operator: StartOperator, pod_creations: dict[str, int], step_id: str
) -> None:
    env = tradesense
    obj = await crash_and_resume(env, start_operator, "outage", env.spec("complete-failure"), step_id)

    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    assert pod_creations == {"postgres": 1, "redis": 1, "backend": 3, "frontend": 2}
    for app in ("backend", "frontend"):
        assert env.deployment(app)["metadata"]["annotations"][REVISION] == "2", app
    for app in ("postgres", "redis"):
        assert env.deployment(app)["metadata"]["annotations"][REVISION] == "1", app
    reasons = [e["reason"] for e in env.incident_events("outage")]
    assert reasons.count("StepResumed") == 1


@pytest.mark.parametrize("step_id", DATA_CORRUPTION)
async def test_data_corruption_killed_after_each_effect_finishes_with_every_effect_once(
    tradesense: TradesenseEnv, start_operator: StartOperator, pod_creations: dict[str, int], backup_policy: str,
    step_id: str,
) -> None:
    env = tradesense
    clean = env.corrupt_data()
    spec = env.spec("data-corruption", parameters={"backupPolicy": backup_policy}, approvals=["stop-traffic", "restore"])
    obj = await crash_and_resume(env, start_operator, "corruption", spec, step_id)

    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    assert env.env_of("backend")["READ_ONLY"] == "false"
    # each effect once: a READ_ONLY=true rollout (3 pods), back from 0 to the remembered 3, a READ_ONLY=false rollout
    assert pod_creations == {"backend": 9}
    assert env.deployment("backend")["spec"]["replicas"] == 3
    assert env.deployment("backend")["metadata"]["annotations"][REVISION] == "3"
    policy = env.cluster.get("ops.tradesense.io/v1alpha1", "BackupPolicy", backup_policy, env.namespace)
    store = FilesystemStore(policy["spec"]["storage"]["filesystem"]["path"])
    safety = [m for m in dump_pipeline.list_backups(store) if m.kind == SAFETY_KIND]
    assert len(safety) == 1
    assert env.snapshot() == clean
