"""data-corruption runbook with a BackupPolicy on the emulated API and a verified backup of the real test
database: writes stopped (READ_ONLY=true rolled out), damage counted, the clean
backup found and a safety copy taken before anything is dropped, and the restore — only as the approved
step — bringing back exactly the backed-up rows; a resumed restore finds its own work done."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.integration.incidents.conftest import TradesenseEnv
from tests.support.rbac import with_and_without_rbac
from tradesense_operator.services.step_adapters.base import Outcome, StepFailed
from tradesense_sandbox.runner import OperatorHandle


async def test_data_corruption_stops_writes_assesses_and_restores_only_when_approved(
    tradesense: TradesenseEnv, backup_policy: str
) -> None:
    env = tradesense
    clean = env.corrupt_data()
    assert env.snapshot() != clean
    spec = env.spec("data-corruption", severity="P1", parameters={"backupPolicy": backup_policy})

    after_restore = ("start-traffic", "writable", "backend-rollout", "smoke-test")
    results = await env.run_plan(spec, skip=after_restore)  # stop-traffic and restore need approval: not run

    assert env.env_of("backend")["READ_ONLY"] == "true"
    assert results["read-only-rollout"].outcome is Outcome.DONE
    assert results["assess-damage"].evidence["tradesCreated"] == "4"
    found = results["find-clean-backup"].evidence
    assert found["backupId"] in results["find-clean-backup"].message
    assert found["safetyBackupId"] != found["backupId"]
    assert "restore" not in results
    assert "stop-traffic" not in results
    assert env.deployment("backend")["spec"]["replicas"] == 3  # the backend was not taken down unapproved
    assert env.snapshot() != clean  # nothing dropped without approval

    stopped = await env.run_step(spec, env.step(spec, "stop-traffic"))  # approved
    assert stopped.evidence["remembered"] == "3"
    restored = await env.run_step(spec, env.step(spec, "restore"))  # approved
    assert restored.outcome is Outcome.DONE
    assert restored.evidence["backupId"] == found["backupId"]
    assert restored.evidence["safetyBackupId"] == found["safetyBackupId"]  # the one safety copy of this incident
    assert env.snapshot() == clean

    again = await env.run_step(spec, env.step(spec, "restore"))
    assert again.outcome is Outcome.ALREADY_DONE
    assert env.snapshot() == clean

    for step_id in after_restore:  # the restore procedure brings the backend back, writable, and smoke-tests it
        assert (await env.run_step(spec, env.step(spec, step_id))).outcome is not Outcome.SKIPPED, step_id
    assert env.deployment("backend")["spec"]["replicas"] == 3
    assert env.env_of("backend")["READ_ONLY"] == "false"


async def test_restore_is_refused_without_a_verified_backup(tradesense: TradesenseEnv, tmp_path: Path) -> None:
    env = tradesense
    env.cluster.create({
        "apiVersion": "ops.tradesense.io/v1alpha1", "kind": "BackupPolicy",
        "metadata": {"name": "empty", "namespace": env.namespace},
        "spec": {"database": {"host": "127.0.0.1", "database": env.pg.name, "user": "postgres"},
                 "storage": {"filesystem": {"path": str(tmp_path)}}},
    })
    spec = env.spec("data-corruption", parameters={"backupPolicy": "empty"})
    with pytest.raises(StepFailed, match="no complete backup to restore"):
        await env.run_step(spec, env.step(spec, "find-clean-backup"))
    with psycopg.connect(env.pg.dsn) as conn:  # the database is untouched
        assert conn.execute("SELECT count(*) FROM trades").fetchone() is not None


@with_and_without_rbac
async def test_data_corruption_through_the_operator_restores_after_approval(
    tradesense: TradesenseEnv, backup_policy: str, operator: OperatorHandle
) -> None:
    env = tradesense
    clean = env.corrupt_data()
    env.apply("corruption", env.spec("data-corruption", severity="P1", parameters={"backupPolicy": backup_policy}))

    waiting = await env.wait_phase("corruption", "AwaitingApproval", "Failed", timeout=60)
    assert waiting["status"]["phase"] == "AwaitingApproval", waiting["status"]
    assert env.env_of("backend")["READ_ONLY"] == "true"
    assert env.snapshot() != clean  # not restored before approval
    found = next(s for s in waiting["status"]["steps"] if s["id"] == "find-clean-backup")
    assert found["evidence"]["backupId"]

    assert waiting["status"]["currentStep"] == "stop-traffic"  # the backend is not taken down unapproved
    assert env.deployment("backend")["spec"]["replicas"] == 3

    env.approve("corruption", "stop-traffic", "restore")
    done = await env.wait_phase("corruption", "Succeeded", "Failed", timeout=60)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert env.snapshot() == clean
    assert env.deployment("backend")["spec"]["replicas"] == 3  # back at the remembered count
    assert env.env_of("backend")["READ_ONLY"] == "false"
