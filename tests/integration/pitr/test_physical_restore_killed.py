"""Kill point of the physical point-in-time restore through the real operator (kopf, incident engine, production
actions): a restore-database incident with `targetTime` runs until the restore Job exists, the operator is
killed there (SIGKILL: no cleanup), a new operator takes the incident over, adopts that Job and creates no
other; once the Job's command has run (for real, against the directory playing the PVC) the new operator
brings the database back, verifies it and finishes the runbook: rows committed before T are there, none
begun after T."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.integration.incidents.conftest import StartOperator, TradesenseEnv, start_operator, tradesense  # noqa: F401
from tests.integration.pitr.conftest import LABEL, Writer, corrupted_after_target, ids
from tests.integration.pitr.test_physical_restore import restore_jobs, volume_database
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.services.backups.wal_archiver import WalArchiver
from tradesense_sandbox.servers.postgres import ThrowawayPostgres

pytestmark = pytest.mark.slow


async def wait_for(what: str, check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


async def test_operator_killed_while_the_restore_job_runs_adopts_it(
    tradesense: TradesenseEnv, start_operator: StartOperator, *, source: ThrowawayPostgres,  # noqa: F811
    store: FilesystemStore, archiver: WalArchiver, writer: Writer, tmp_path: Path, restore_dir: Path,
) -> None:
    env, ns = tradesense, tradesense.namespace
    db = volume_database(env.cluster, ns, store, restore_dir)
    _, target = await asyncio.to_thread(corrupted_after_target, source, store, archiver, writer, tmp_path / "bb")
    spec = env.spec("restore-database", parameters={"backupPolicy": LABEL, "targetTime": target.isoformat()},
                    approvals=["read-only", "restore"])

    first = start_operator()
    env.apply("pitr", spec)
    await wait_for("the restore Job", lambda: bool(restore_jobs(env.cluster, ns)))
    first.kill()
    [job] = restore_jobs(env.cluster, ns)
    steps = {s["id"]: s for s in env.incident_obj("pitr")["status"]["steps"]}
    assert steps["restore"]["state"] == "Running"
    assert db.replicas() == 0
    assert env.deployment("backend")["spec"]["replicas"] == 0  # the application was quiesced first

    start_operator()
    await wait_for("the new operator resuming the restore", lambda: "StepResumed" in [
        e["reason"] for e in env.incident_events("pitr")])
    await asyncio.sleep(0.5)  # several polls of the new operator while the Job still runs
    assert [j["metadata"]["uid"] for j in restore_jobs(env.cluster, ns)] == [job["metadata"]["uid"]]

    await asyncio.to_thread(db.complete, job)
    server = db.start()
    try:
        done = await env.wait_phase("pitr", "Succeeded", "Failed", timeout=120)
        assert done["status"]["phase"] == "Succeeded", done["status"]
        writer.assert_restored_to(target, ids(server.dsn()))
    finally:
        db.stop()
    assert len(restore_jobs(env.cluster, ns)) == 1
    assert db.replicas() == 1
    assert env.deployment("backend")["spec"]["replicas"] == 3
