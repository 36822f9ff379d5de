"""The operator killed at every step boundary and mid-step of the complete-failure, data-corruption and
security-breach runbooks (real actions, real PostgreSQL/Redis, the emulated API): after a new operator
finished the incident, every step ran exactly once — counted from the EFFECTS (pods created per tier,
signing-key writes, SECURITY_AUDIT rollouts, safety backups, restored rows) — and the end state equals an
uninterrupted run's.

What is already covered elsewhere and not repeated: every step's `after-effect` point of complete-failure
and data-corruption (tests/integration/incidents/test_runbook_crash_resume.py, H8) and the engine's
boundaries with synthetic actions (test_engine_crash.py, H3). This module adds security-breach at every
point, and `before-effect`, `after-checkpoint`, `mid-wait` (inside a WAITING rollout / pods-ready poll)
and `after-return` for the other two. Two representative cases run in the default tier; the rest are slow.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from tests.integration.incidents.conftest import StartOperator, TradesenseEnv
from tests.reliability.abrupt import kill_operator
from tests.reliability.kill_points import (
    KillPoint,
    applicable,
    listen_pods_and_secret_writes,
    stall_after_return,
    stoppable_actions,
)
from tradesense_operator.api.v1alpha1.incident import IncidentParameters, Runbook, StepAction, TradeSenseIncidentSpec
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.domain.runbooks import resolve_plan
from tradesense_operator.services.backups import dump_pipeline
from tradesense_operator.services.backups.restore import SAFETY_KIND
from tradesense_operator.services.incidents.attempts import RESULT_MAY_WAIT
from tradesense_operator.services.step_adapters.secrets import ROTATED_BY
from tradesense_operator.services.step_adapters.workloads import REVISION
from tradesense_sandbox.kubeapi.faults import FaultRule

PLANS = {
    "complete-failure": resolve_plan(TradeSenseIncidentSpec(runbook=Runbook.COMPLETE_FAILURE)),
    "security-breach": resolve_plan(TradeSenseIncidentSpec(runbook=Runbook.SECURITY_BREACH)),
    "data-corruption": resolve_plan(TradeSenseIncidentSpec(
        runbook=Runbook.DATA_CORRUPTION, parameters=IncidentParameters(backup_policy="any"))),
}
# after-effect of complete-failure and data-corruption: H8's test_runbook_crash_resume.py.
POINTS_BY_RUNBOOK = {
    "security-breach": ("before-effect", "after-checkpoint", "mid-wait", "after-effect", "after-return"),
    "complete-failure": ("before-effect", "after-checkpoint", "mid-wait", "after-return"),
    "data-corruption": ("before-effect", "after-checkpoint", "mid-wait", "after-return"),
}
DEFAULT_TIER = {("security-breach", "rotate-signing-key", "after-effect"),
                ("complete-failure", "backend-rollout", "mid-wait")}


def cases() -> list[Any]:
    found = []
    for runbook, plan in PLANS.items():
        for index, planned in enumerate(plan):
            for point in POINTS_BY_RUNBOOK[runbook]:
                if not applicable(planned.action, point) or (point == "after-return" and index == len(plan) - 1):
                    continue
                marks = [] if (runbook, planned.id, point) in DEFAULT_TIER else [pytest.mark.slow]
                found.append(pytest.param(runbook, planned.id, point, marks=marks,
                                          id=f"{runbook}-{planned.id}-{point}"))
    return found


async def kill_and_resume(
    env: TradesenseEnv, start_operator: StartOperator, spec: TradeSenseIncidentSpec, step_id: str, point: str
) -> dict[str, Any]:
    stalls: list[FaultRule] = []
    action = next(p.action for p in resolve_plan(spec) if p.id == step_id)
    kill = KillPoint(step_id, point, stall_after_return(env.cluster, env.namespace, step_id, action, stalls))
    if point == "mid-wait":  # slow pods, so the rollout / readiness poll really waits
        env.cluster.set_pod_readiness(0.8, namespace=env.namespace)
    crashing = start_operator(stoppable_actions(kill))
    env.apply("victim", spec)
    assert await asyncio.to_thread(kill.reached.wait, 40), f"{step_id} never reached {point}"
    if point == "after-return":
        await _until(lambda: bool(stalls) and stalls[0].hits == 1)  # type: ignore[attr-defined]
    kill_operator(crashing)
    before = _steps(env)
    assert before[step_id] == ("Running" if point != "after-return" else before[step_id])
    start_operator()
    return await env.wait_phase("victim", "Succeeded", "Failed", timeout=90)


def _steps(env: TradesenseEnv) -> dict[str, str]:
    status = env.incident_obj("victim").get("status") or {}
    return {s["id"]: s["state"] for s in status.get("steps", [])}


async def _until(predicate: Any, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _assert_every_step_once(obj: dict[str, Any], point: str) -> None:
    status = obj["status"]
    assert status["phase"] == "Succeeded", status
    assert all(s["attempts"] == 1 for s in status["steps"]), [(s["id"], s["attempts"]) for s in status["steps"]]


def _action_of(env: TradesenseEnv, step_id: str) -> StepAction:
    plan = (env.incident_obj("victim").get("status") or {}).get("plan") or []
    return StepAction(next(p["action"] for p in plan if p["id"] == step_id))


def _resumed(env: TradesenseEnv) -> int:
    return [e["reason"] for e in env.incident_events("victim")].count("StepResumed")


@pytest.mark.parametrize(("runbook", "step_id", "point"), cases())
async def test_killed_mid_runbook_every_effect_happens_once(  # noqa: PLR0917  (fixtures + parameters)
    request: pytest.FixtureRequest, tradesense: TradesenseEnv, start_operator: StartOperator,
    runbook: str, step_id: str, point: str,
) -> None:
    env = tradesense
    if runbook == "security-breach":
        new_key = await _security_breach(env, start_operator, step_id, point)
        request.getfixturevalue("secret_guard").plant(new_key)  # neither key in any log, status or Event
    elif runbook == "complete-failure":
        await _complete_failure(env, start_operator, step_id, point)
    else:
        await _data_corruption(env, start_operator, request.getfixturevalue("backup_policy"), step_id, point)
    # After the action returned, only a result that rides with the next write (RESULT_MAY_WAIT) is resumed.
    stored = point == "after-return" and _action_of(env, step_id) not in RESULT_MAY_WAIT
    assert _resumed(env) == (0 if stored else 1)


async def _security_breach(env: TradesenseEnv, start_operator: StartOperator, step_id: str, point: str) -> str:
    for user in range(5):
        env.redis.set(env.key(f"session:{user}"), "t", ex=600)
    env.redis.set(env.key("cache:analytics:dashboard"), "{}")
    seen = listen_pods_and_secret_writes(env.cluster, env.namespace)
    try:
        obj = await kill_and_resume(env, start_operator, env.spec("security-breach", severity="P1"), step_id, point)
    finally:
        seen["active"] = False
    _assert_every_step_once(obj, point)
    uid = obj["metadata"]["uid"]
    secret = env.cluster.get("v1", "Secret", "tradesense-secrets", env.namespace)
    assert seen["secret_changes"] == 1  # rotated exactly once
    assert secret["metadata"]["annotations"][ROTATED_BY] == f"{uid}/rotate-signing-key"
    new_key = base64.b64decode(secret["data"]["jwt-secret-key"]).decode()
    assert new_key != env.signing_key
    assert env.redis.exists(*(env.key(f"session:{u}") for u in range(5))) == 0  # everyone logged out
    assert env.redis.exists(env.key("cache:analytics:dashboard")) == 1           # nothing else deleted
    assert env.env_of("backend")["SECURITY_AUDIT"] == "true"
    assert seen["pods"] == {"backend": 3}  # one rollout for SECURITY_AUDIT
    assert env.deployment("backend")["metadata"]["annotations"][REVISION] == "2"
    steps = {s["id"]: s for s in obj["status"]["steps"]}
    assert steps["force-logout"]["state"] == "Succeeded"
    assert "pods" in steps["suspicious-auth"]["evidence"]
    return new_key


async def _complete_failure(env: TradesenseEnv, start_operator: StartOperator, step_id: str, point: str) -> None:
    seen = listen_pods_and_secret_writes(env.cluster, env.namespace)
    try:
        obj = await kill_and_resume(env, start_operator, env.spec("complete-failure"), step_id, point)
    finally:
        seen["active"] = False
    _assert_every_step_once(obj, point)
    assert seen["pods"] == {"postgres": 1, "redis": 1, "backend": 3, "frontend": 2}
    for app in ("backend", "frontend"):
        assert env.deployment(app)["metadata"]["annotations"][REVISION] == "2", app
    for app in ("postgres", "redis"):
        assert env.deployment(app)["metadata"]["annotations"][REVISION] == "1", app
    for app, replicas in (("postgres", 1), ("redis", 1), ("backend", 3), ("frontend", 2)):
        ready = [p for p in env.pods(app) if p["metadata"].get("deletionTimestamp") is None]
        assert len(ready) == replicas, app


async def _data_corruption(
    env: TradesenseEnv, start_operator: StartOperator, backup_policy: str, step_id: str, point: str
) -> None:
    clean = env.corrupt_data()
    seen = listen_pods_and_secret_writes(env.cluster, env.namespace)
    spec = env.spec("data-corruption", parameters={"backupPolicy": backup_policy}, approvals=["stop-traffic", "restore"])
    try:
        obj = await kill_and_resume(env, start_operator, spec, step_id, point)
    finally:
        seen["active"] = False
    _assert_every_step_once(obj, point)
    # Expected effects derived from the plan, so they follow the catalogue: every set-env step on the backend is
    # one pod-template write, every scale step that changes the count one replicas write — each exactly once.
    plan = [s for s in obj["status"]["plan"] if s["target"] == "deployment/backend"]
    env_steps = [s for s in plan if s["action"] == "set-env"]
    scale_steps = [s for s in plan if s["action"] == "scale"]
    assert seen["template_changes"].get("backend", 0) == len(env_steps)
    assert seen["replica_changes"].get("backend", 0) == len(scale_steps)
    assert env.env_of("backend")["READ_ONLY"] == str(env_steps[-1]["params"]["value"]).lower()
    assert env.deployment("backend")["spec"]["replicas"] == 3  # back to what it was
    policy = env.cluster.get("ops.tradesense.io/v1alpha1", "BackupPolicy", backup_policy, env.namespace)
    store = FilesystemStore(policy["spec"]["storage"]["filesystem"]["path"])
    assert len([m for m in dump_pipeline.list_backups(store) if m.kind == SAFETY_KIND]) == 1  # one safety backup
    assert env.snapshot() == clean  # restored, to the clean state an uninterrupted run reaches
