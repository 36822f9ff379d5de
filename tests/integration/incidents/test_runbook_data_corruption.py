"""data-corruption and restore-database runbooks with a BackupPolicy on the emulated API and a verified
backup of the real test database: writes stopped (READ_ONLY=true rolled out), damage counted, the clean
backup found and a safety copy taken before anything is dropped, and the restore — only as the approved
step — bringing back exactly the backed-up rows; a resumed restore finds its own work done."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from tests.integration.incidents.conftest import TradesenseEnv
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.sandbox.runner import OperatorHandle
from tradesense_operator.sandbox.schema import TableFingerprint, fingerprint
from tradesense_operator.services.actions.base import Outcome, StepFailed
from tradesense_operator.services.backups import engine
from tradesense_operator.services.backups.engine import BackupRequest

POLICY = "nightly"


def snapshot(env: TradesenseEnv) -> dict[str, TableFingerprint]:
    with env.pg.connect() as conn:
        return fingerprint(conn)


def corrupt(env: TradesenseEnv) -> None:
    with env.pg.connect() as conn:
        conn.execute("UPDATE trades SET quantity = 999999 WHERE id % 3 = 0")
        conn.execute("INSERT INTO trades (user_id, symbol, side, quantity, price, entry_date)"
                     " SELECT user_id, 'BAD', 'buy', 1, 1, now() FROM trades LIMIT 4")


@pytest.fixture
def backup_policy(tradesense: TradesenseEnv, tmp_path: Path) -> str:
    """A BackupPolicy on the emulated API whose filesystem store holds one verified backup of the test database."""
    env = tradesense
    root = tmp_path / "backups"
    root.mkdir()
    target = PgTarget(host="127.0.0.1", port=5432, dbname=env.pg.name, user="postgres")
    store = FilesystemStore(str(root))
    clock = ManualClock()
    engine.verify_backup(store, engine.run_backup(store, BackupRequest(target, POLICY), clock=clock), clock=clock)
    env.cluster.create({
        "apiVersion": "ops.tradesense.io/v1alpha1", "kind": "BackupPolicy",
        "metadata": {"name": POLICY, "namespace": env.namespace},
        "spec": {"database": {"host": "127.0.0.1", "database": env.pg.name, "user": "postgres", "sslmode": "disable"},
                 "storage": {"filesystem": {"path": str(root)}}},
    })
    return str(root)


async def test_data_corruption_stops_writes_assesses_and_restores_only_when_approved(
    tradesense: TradesenseEnv, backup_policy: str
) -> None:
    env = tradesense
    clean = snapshot(env)
    corrupt(env)
    assert snapshot(env) != clean
    spec = env.spec("data-corruption", severity="P1", parameters={"backupPolicy": POLICY})

    results = await env.run_plan(spec)  # restore needs approval: not run

    assert env.env_of("backend")["READ_ONLY"] == "true"
    assert results["read-only-rollout"].outcome is Outcome.DONE
    assert results["assess-damage"].evidence["tradesCreated"] == "4"
    found = results["find-clean-backup"].evidence
    assert found["backupId"] in results["find-clean-backup"].message
    assert found["safetyBackupId"] != found["backupId"]
    assert "restore" not in results
    assert snapshot(env) != clean  # nothing dropped without approval

    restored = await env.run_step(spec, env.step(spec, "restore"))  # approved
    assert restored.outcome is Outcome.DONE
    assert restored.evidence["backupId"] == found["backupId"]
    assert restored.evidence["safetyBackupId"] == found["safetyBackupId"]  # the one safety copy of this incident
    assert snapshot(env) == clean

    again = await env.run_step(spec, env.step(spec, "restore"))
    assert again.outcome is Outcome.ALREADY_DONE
    assert snapshot(env) == clean


async def test_restore_database_stops_traffic_restores_and_restarts(
    tradesense: TradesenseEnv, backup_policy: str
) -> None:
    env = tradesense
    clean = snapshot(env)
    corrupt(env)
    spec = env.spec("restore-database", parameters={"backupPolicy": POLICY})
    plan_results = await env.run_plan(spec, skip=("start-traffic", "backend-rollout"))
    assert env.deployment("backend")["spec"]["replicas"] == 0
    assert plan_results["stop-traffic"].message == "backend replicas 3 → 0"
    for _ in range(100):  # the emulated controller removes the pods
        if not env.pods("backend"):
            break
        await asyncio.sleep(0.05)
    assert env.pods("backend") == []

    await env.run_step(spec, env.step(spec, "restore"))
    assert snapshot(env) == clean
    await env.run_step(spec, env.step(spec, "start-traffic"))
    assert (await env.run_step(spec, env.step(spec, "backend-rollout"))).outcome is Outcome.DONE
    assert len(env.pods("backend")) == 3


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


async def test_data_corruption_through_the_operator_restores_after_approval(
    tradesense: TradesenseEnv, backup_policy: str, operator: OperatorHandle
) -> None:
    env = tradesense
    clean = snapshot(env)
    corrupt(env)
    env.apply("corruption", env.spec("data-corruption", severity="P1", parameters={"backupPolicy": POLICY}))

    waiting = await env.wait_phase("corruption", "AwaitingApproval", "Failed", timeout=60)
    assert waiting["status"]["phase"] == "AwaitingApproval", waiting["status"]
    assert env.env_of("backend")["READ_ONLY"] == "true"
    assert snapshot(env) != clean  # not restored before approval
    found = next(s for s in waiting["status"]["steps"] if s["id"] == "find-clean-backup")
    assert found["evidence"]["backupId"]

    env.approve("corruption", "restore")
    done = await env.wait_phase("corruption", "Succeeded", "Failed", timeout=60)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert snapshot(env) == clean
