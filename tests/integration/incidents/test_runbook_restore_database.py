"""restore-database runbook ("Database Operations → Restore Operations") with a BackupPolicy holding a verified
backup of the real test database: traffic stopped (backend scaled to 0, its pods gone), the database dropped,
recreated and restored to exactly the backed-up rows only as the approved step, the backend scaled back."""

from __future__ import annotations

import asyncio

from tests.integration.incidents.conftest import TradesenseEnv
from tradesense_operator.services.step_adapters.base import Outcome


async def test_restore_database_stops_traffic_restores_and_restarts(
    tradesense: TradesenseEnv, backup_policy: str
) -> None:
    env = tradesense
    clean = env.corrupt_data()
    spec = env.spec("restore-database", parameters={"backupPolicy": backup_policy})
    plan_results = await env.run_plan(spec, skip=("start-traffic", "backend-rollout"))
    assert env.deployment("backend")["spec"]["replicas"] == 0
    assert plan_results["stop-traffic"].message == "backend replicas 3 → 0"
    for _ in range(100):  # the emulated controller removes the pods
        if not env.pods("backend"):
            break
        await asyncio.sleep(0.05)
    assert env.pods("backend") == []
    assert "restore" not in plan_results  # destructive: skipped until approved
    assert env.snapshot() != clean

    restored = await env.run_step(spec, env.step(spec, "restore"))  # approved
    assert restored.evidence["safetyBackupId"] == plan_results["find-clean-backup"].evidence["safetyBackupId"]
    assert env.snapshot() == clean
    await env.run_step(spec, env.step(spec, "start-traffic"))
    assert (await env.run_step(spec, env.step(spec, "backend-rollout"))).outcome is Outcome.DONE
    assert len(env.pods("backend")) == 3


async def test_backend_comes_back_with_the_replicas_it_had_even_after_a_rerun(
    tradesense: TradesenseEnv, backup_policy: str
) -> None:
    """Issue 4: "scales it to 0 (remembering replicas) … scales the backend back" — not the runbook's fixed 3."""
    env = tradesense
    await env.runtime.kube.set_replicas(env.namespace, "backend", 5)
    spec = env.spec("restore-database", parameters={"backupPolicy": backup_policy})
    stop = env.step(spec, "stop-traffic")
    first = await env.run_step(spec, stop)
    assert first.outcome is Outcome.DONE
    assert first.evidence["remembered"] == "5"
    again = await env.run_step(spec, stop)  # a resumed step after a crash must not remember the 0 it set
    assert again.outcome is Outcome.ALREADY_DONE
    assert env.deployment("backend")["spec"]["replicas"] == 0
    assert '"replicas": 5' in env.deployment("backend")["metadata"]["annotations"]["ops.tradesense.io/remembered-replicas"]

    start = env.step(spec, "start-traffic")
    back = await env.run_step(spec, start)
    assert back.message == "backend replicas 0 → 5"
    assert env.deployment("backend")["spec"]["replicas"] == 5
    assert "ops.tradesense.io/remembered-replicas" not in (env.deployment("backend")["metadata"].get("annotations") or {})
    rerun = await env.run_step(spec, start)  # annotation gone: the checkpoint still says 5, not the fallback 3
    assert rerun.outcome is Outcome.ALREADY_DONE
    assert env.deployment("backend")["spec"]["replicas"] == 5
