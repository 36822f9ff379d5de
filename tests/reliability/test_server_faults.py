"""Data-plane servers fail under a running step (throwaway servers; the shared ones are never touched):
- PostgreSQL SIGKILLed in the middle of a restore: the step fails with the reason, the database carries the
  operator's `restoring` marker (never a silently half-restored database), and the same restore stamp resumes
  to the exact backed-up data once the server is back;
- PostgreSQL stopped during the runbook's health check (`pg_isready`): the step reports no-response as
  evidence (it is a diagnosis, not a gate) and nothing else is attempted against the database;
- Redis down during the security-breach session reset: the step fails each attempt with a reason naming
  Redis, gives up per its retry policy (3 attempts), the incident fails naming the step, and the steps
  after it (SECURITY_AUDIT) are not run: nothing half done.
Covered elsewhere, not repeated: PostgreSQL killed mid-dump leaves no backup (tests/integration/backups/
test_server_crash.py), closed-port errors of every client (tests/integration/clients), Prometheus down →
ScalingPolicy fallback (tests/integration/scaling/test_scaling_service.py::test_prometheus_outage_triggers_the_fallback).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.integration.backups.conftest import table_checksums
from tests.integration.incidents.conftest import StartOperator, TradesenseEnv
from tests.support.services import runbook_database
from tradesense_operator.clients import pgdump
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.services.backups import dump_pipeline, restore
from tradesense_operator.services.backups.dump_pipeline import BackupRequest
from tradesense_sandbox.servers import ThrowawayPostgres, ThrowawayRedis


@pytest.mark.slow
def test_postgres_killed_mid_restore_leaves_a_resumable_marker_and_the_rerun_restores(
    throwaway_pg: ThrowawayPostgres, tmp_path: Path
) -> None:
    clock = ManualClock()
    runbook_database(throwaway_pg, users=500, trades=150_000, seed=7)
    target = PgTarget(host=throwaway_pg.host, port=throwaway_pg.port, user="postgres", dbname="tradesense")
    store = FilesystemStore(tmp_path / "bk")
    dumped = dump_pipeline.run_backup(store, BackupRequest(target, "tradesense"), clock=clock)
    manifest = dump_pipeline.verify_backup(store, dumped, clock=clock)
    backed_up = table_checksums(target)
    with throwaway_pg.connect("tradesense") as conn:
        conn.execute("DELETE FROM trades WHERE id % 2 = 0")
    safety = restore.take_safety_backup_sync(store, target, stamp="s1", label="tradesense", clock=clock)

    failure: list[BaseException] = []

    def run() -> None:
        try:
            restore.restore_database_sync(store, target, manifest, stamp="s1",
                                          safety_backup_id=safety.id if safety else None)
        except BaseException as exc:  # noqa: BLE001  (handed to the test thread)
            failure.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 60
    while not _restoring(target):
        assert worker.is_alive(), f"the restore ended before it could be interrupted: {failure}"
        assert time.monotonic() < deadline, "the restore never started"
        time.sleep(0.01)
    throwaway_pg.kill()
    worker.join(60)
    assert failure, "the restore reported success although its server was killed"
    assert "password" not in str(failure[0]).lower()

    throwaway_pg.restart()
    comment = pgdump.database_comment(target, "tradesense")
    assert comment is not None
    assert comment.startswith("tradesense-operator restore restoring stamp=s1")
    report = restore.restore_database_sync(store, target, manifest, stamp="s1",
                                           safety_backup_id=safety.id if safety else None)
    assert not report.already_done
    assert table_checksums(target) == backed_up
    assert pgdump.database_comment(target, "tradesense") == (
        f"tradesense-operator restore restored stamp=s1 backup={manifest.id}")


def _restoring(target: PgTarget) -> bool:
    try:
        comment = pgdump.database_comment(target, target.dbname)
    except Exception:  # noqa: BLE001  (dropped between DROP and CREATE: not there yet)
        return False
    return bool(comment and " restoring " in comment)


async def test_postgres_stopped_during_the_health_check_is_reported_as_no_response(
    tradesense: TradesenseEnv, throwaway_pg: ThrowawayPostgres
) -> None:
    env = tradesense
    throwaway_pg.stop()
    spec = env.spec("site-down", target={"database": {"host": throwaway_pg.host, "port": throwaway_pg.port,
                                                      "database": "tradesense", "user": "postgres",
                                                      "sslmode": "disable"}})
    result = await env.run_step(spec, env.step(spec, "pg-isready"))
    assert result.evidence["pgIsReady"] == "no-response"
    assert result.message.endswith(": no-response")


async def test_redis_down_during_the_session_reset_fails_per_retry_policy_and_stops_there(
    tradesense: TradesenseEnv, throwaway_redis: ThrowawayRedis, start_operator: StartOperator
) -> None:
    env = tradesense
    throwaway_redis.stop()
    spec = env.spec("security-breach", severity="P1",
                    target={"redisConnection": {"host": throwaway_redis.host, "port": throwaway_redis.port, "db": 0}})
    start_operator()
    env.apply("breach", spec)
    obj = await env.wait_phase("breach", "Succeeded", "Failed", timeout=60)
    status = obj["status"]
    steps = {s["id"]: s for s in status["steps"]}
    assert status["phase"] == "Failed"
    assert "force-logout" in status["message"]
    assert steps["rotate-signing-key"]["state"] == "Succeeded"
    assert steps["force-logout"]["state"] == "Failed"
    assert steps["force-logout"]["attempts"] == 3  # retries: 2
    assert "Unavailable" in steps["force-logout"]["message"]
    assert "redis" in steps["force-logout"]["message"].lower()
    assert [steps[s]["state"] for s in ("security-audit", "backend-rollout", "suspicious-auth")] == ["Cancelled"] * 3
    assert "SECURITY_AUDIT" not in env.env_of("backend")
    failed_attempts = [e for e in env.incident_events("breach") if e["reason"] == "AttemptFailed"]
    assert len(failed_attempts) == 2
