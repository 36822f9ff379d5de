"""The physical point-in-time restore (`pointInTime.restore.mode: physical`) of the restore-database runbook's
restore step, on the emulated API and a real PostgreSQL 15 archive.

The step stops the database Deployment, creates the restore Job and waits; the test then runs the Job's own
command line for real (the operator's CLI) against a directory that plays the database's PVC, marks the Job
complete, and starts PostgreSQL on that directory where the step expects the database. The step brings the
Deployment back and verifies; the rows committed before T are there, none begun after T, and the damaged
data directory is kept aside. Kill point: an operator restarted while the Job runs (with or without the
checkpoint saying it created the Job) adopts that Job and never creates a second one; re-running the Job's
command after it finished changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.integration.pitr import conftest as pitr_env
from tests.integration.pitr.conftest import LABEL, RUN_AS, SLOT, Writer, corrupted_after_target, ids
from tradesense_operator.api.v1alpha1.incident import PlannedStep, TradeSenseIncidentSpec
from tradesense_operator.clients.kube import KubeClient, ObjectRef
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.pginstance import LocalServer, chown_tree, free_port
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.config import Settings
from tradesense_operator.domain.clock import SystemClock
from tradesense_operator.domain.runbooks import resolve_plan
from tradesense_operator.services.backups import jobs, pitr_restore
from tradesense_operator.services.backups.base_backup import take_base_backup
from tradesense_operator.services.backups.wal_archiver import WalArchiver
from tradesense_operator.services.runtime import Runtime
from tradesense_operator.services.step_adapters.base import Outcome, StepContext, StepFailed, StepResult
from tradesense_operator.services.step_adapters.registry import ACTIONS
from tradesense_sandbox.kubeapi.cluster import EmulatedCluster
from tradesense_sandbox.servers.postgres import ThrowawayPostgres
from tradesense_sandbox.tradesense_namespace import deployment

pytestmark = pytest.mark.slow

API = "ops.tradesense.io/v1alpha1"


class Step:
    """Invokes one planned step's action like the engine: the checkpoint survives, the Runtime may not."""

    def __init__(self, runtime: Runtime, spec: TradeSenseIncidentSpec, step: PlannedStep) -> None:
        self.runtime, self.spec, self.step = runtime, spec, step
        self.checkpoint: dict[str, str] = {}
        self.incident = ObjectRef(API, "TradeSenseIncident", "corruption", spec.target.namespace, uid="u-1")

    def context(self) -> StepContext:
        async def save(values: Mapping[str, str]) -> None:
            self.checkpoint.update(values)

        return StepContext(self.runtime, self.incident, self.spec, self.step, 1, dict(self.checkpoint), save)

    async def once(self) -> StepResult:
        return await ACTIONS[self.step.action].run(self.context())

    async def until(self, done: Any, timeout: float = 30.0) -> StepResult:
        deadline = time.monotonic() + timeout
        while True:
            result = await self.once()
            if done(result) or time.monotonic() > deadline:
                return result
            await asyncio.sleep(0.05)


@pytest.fixture
async def runtime(kubeconfig_path: Path) -> AsyncIterator[Runtime]:
    rt = Runtime(kube=await KubeClient.from_kubeconfig(str(kubeconfig_path)),
                 settings=Settings(step_poll_seconds=0.05))
    yield rt
    await rt.aclose()


@dataclass
class VolumeDatabase:
    """The database Deployment, its "PVC" (a local directory mounted at the same path in the Job) and the
    BackupPolicy naming both; `start()` starts PostgreSQL on the volume where the policy expects it."""

    cluster: EmulatedCluster
    namespace: str
    volume: Path
    workdir: Path
    port: int
    server: LocalServer | None = None
    data_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.data_dir = self.volume / "pgdata"

    def start(self) -> LocalServer:
        if RUN_AS:  # the Job wrote as the database's uid; here the test ran it as root
            chown_tree(self.volume.parent, RUN_AS)
        self.server = LocalServer(self.data_dir, self.workdir, run_as=RUN_AS, port=self.port)
        self.server.start()
        return self.server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def complete(self, job: dict[str, Any]) -> None:
        """The Job's pod ran `job`'s command; mark the Job complete as the Job controller would."""
        done = run_job_command(job)
        assert done.returncode == 0, done.stderr
        self.cluster.patch("batch/v1", "Job", job["metadata"]["name"], {"status": {"succeeded": 1, "conditions": [
            {"type": "Complete", "status": "True"}]}}, self.namespace, subresource="status")

    def replicas(self) -> int:
        return int(self.cluster.get("apps/v1", "Deployment", "postgres", self.namespace)["spec"]["replicas"])


@pytest.fixture
def database(kube_cluster: EmulatedCluster, test_namespace: str, store: FilesystemStore,
             restore_dir: Path) -> Iterator[VolumeDatabase]:
    cluster, ns = kube_cluster, test_namespace
    cluster.pod_ready_delay = 0.05
    cluster.create(deployment(ns, "postgres", 1))
    db = volume_database(cluster, ns, store, restore_dir)
    yield db
    db.stop()


def volume_database(cluster: EmulatedCluster, ns: str, store: FilesystemStore, restore_dir: Path) -> VolumeDatabase:
    """The volume (holding a damaged data directory) and BackupPolicy `pol` in physical mode for Deployment postgres."""
    db = VolumeDatabase(cluster, ns, restore_dir / "volume", restore_dir / "work", free_port())
    db.data_dir.mkdir(parents=True)
    (db.data_dir / "PG_VERSION").write_text("15\n")  # the damaged database the restore replaces
    db.workdir.mkdir()
    cluster.create({
        "apiVersion": API, "kind": "BackupPolicy", "metadata": {"name": LABEL, "namespace": ns},
        "spec": {"database": {"host": str(db.workdir / "sock"), "port": db.port, "database": "postgres",
                              "user": "postgres", "sslmode": "disable"},
                 "storage": {"filesystem": {"path": str(store.root)}},
                 "jobImage": "tradesense-operator:dev", "jobVolumeClaimName": "backups",
                 "pointInTime": {"restore": {"mode": "physical", "volumeClaimName": "pgdata",
                                             "mountPath": str(db.volume), "dataDirectory": str(db.data_dir),
                                             "workload": {"kind": "Deployment", "name": "postgres"}}}},
    })
    return db


def restore_step(runtime: Runtime, ns: str, target: str) -> tuple[Step, Step]:
    """(find-clean-backup, restore) of the restore-database runbook aimed at `target`."""
    spec = TradeSenseIncidentSpec.model_validate({
        "runbook": "restore-database", "target": {"namespace": ns},
        "parameters": {"backupPolicy": LABEL, "targetTime": target}})
    plan = {s.id: s for s in resolve_plan(spec)}
    return Step(runtime, spec, plan["find-clean-backup"]), Step(runtime, spec, plan["restore"])


def restore_jobs(cluster: EmulatedCluster, ns: str) -> list[dict[str, Any]]:
    return [j for j in cluster.list("batch/v1", "Job", ns)
            if j["metadata"]["labels"].get(jobs.RESTORE_LABEL) == "true"]


def run_job_command(job: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """What the Job's container runs (`tradesense-operator <args>`), here as a local process."""
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    return subprocess.run([sys.executable, "-m", "tradesense_operator", *args], capture_output=True, text=True,
                          timeout=300, check=False)


async def test_physical_restore_to_time_through_a_job(
    kube_cluster: EmulatedCluster, test_namespace: str, kubeconfig_path: Path, runtime: Runtime, *,
    source: ThrowawayPostgres, store: FilesystemStore, archiver: WalArchiver, writer: Writer, tmp_path: Path,
    database: VolumeDatabase,
) -> None:
    cluster, ns, db = kube_cluster, test_namespace, database
    _, target = await asyncio.to_thread(corrupted_after_target, source, store, archiver, writer, tmp_path / "bb")
    # the server moves on two more segments: the restore branches off well before the archiver's position
    await asyncio.to_thread(pitr_env.write_and_switch, source, switches=2)
    await asyncio.to_thread(pitr_env.tick_until, archiver, lambda r: r.health.lag_bytes == 0)

    find, step = restore_step(runtime, ns, target.isoformat())
    found = await find.once()
    assert found.outcome is Outcome.DONE
    assert "WAL segments" in found.evidence["plan"]
    assert restore_jobs(cluster, ns) == []  # planning moves nothing
    assert "stop deployment/postgres" in await ACTIONS[step.step.action].describe(step.context())

    waiting = await step.until(lambda r: bool(restore_jobs(cluster, ns)))
    assert waiting.outcome is Outcome.WAITING
    assert db.replicas() == 0
    assert cluster.list("v1", "Pod", ns, label_selector="app=postgres") == []  # stopped before the Job
    assert step.checkpoint["dbReplicas"] == "1"
    [job] = restore_jobs(cluster, ns)
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 999
    assert {"name": "pgdata", "persistentVolumeClaim": {"claimName": "pgdata"}} in pod["volumes"]
    assert {"name": "pgdata", "mountPath": str(db.volume)} in pod["containers"][0]["volumeMounts"]

    # kill point: the operator restarts while the Job runs — once with the checkpoint, once as if it had died
    # between creating the Job and recording it; both times it adopts the Job and creates no other
    restarted = Runtime(kube=await KubeClient.from_kubeconfig(str(kubeconfig_path)),
                        settings=Settings(step_poll_seconds=0.05))
    try:
        step.runtime = restarted
        assert (await step.once()).outcome is Outcome.WAITING
        step.checkpoint.pop("jobCreated")
        again = await step.once()
        assert again.outcome is Outcome.WAITING
        assert "running" in again.message
        assert [j["metadata"]["uid"] for j in restore_jobs(cluster, ns)] == [job["metadata"]["uid"]]

        db.complete(job)  # the Job's pod, for real, against the "PVC"
        rerun = run_job_command(job)  # a re-run of the finished Job does nothing
        assert rerun.returncode == 0, rerun.stderr
        assert "alreadyPrepared" in json.loads(rerun.stdout)
        aside = pitr_restore.set_aside_path(db.data_dir, f"{step.incident.uid}/restore")
        assert (aside / "PG_VERSION").read_text() == "15\n"  # the damaged directory is kept, not deleted

        starting = await step.until(lambda r: "accept connections" in r.message)
        assert starting.outcome is Outcome.WAITING
        assert db.replicas() == 1
        server = db.start()  # the database pod starting on the restored volume
        result = await step.until(lambda r: r.outcome is not Outcome.WAITING, timeout=120)
        assert result.outcome is Outcome.DONE, f"{result.message}\n{server.log_text()[-2000:]}"
        restored = ids(server.dsn())
        assert result.evidence["rows.public.trades"] == str(len(restored))
        writer.assert_restored_to(target, restored)
    finally:
        await restarted.aclose()
    assert len(restore_jobs(cluster, ns)) == 1

    # the archiver goes on against the restored server (same address for the daemon): a new timeline, no slot,
    # and the old stream's partial segment still in its staging directory
    with source.connect() as conn:  # a segment being written: pg_receivewal holds it as .partial
        conn.execute("INSERT INTO trades (note) VALUES ('late')")
    await asyncio.to_thread(pitr_env.tick_until, archiver, lambda r: r.health.lag_bytes == 0)
    await asyncio.to_thread(archiver.stop)
    assert any(archiver.staging.glob("*.partial")), sorted(p.name for p in archiver.staging.iterdir())
    again = WalArchiver(target=PgTarget(host=str(db.workdir / "sock"), port=db.port, dbname="postgres",
                                        user="postgres"),
                        store=store, label=LABEL, staging=archiver.staging, slot=SLOT, clock=SystemClock())
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("INSERT INTO trades (note) SELECT 'after' FROM generate_series(1, 100)")
        report = await asyncio.to_thread(
            pitr_env.tick_until, again, lambda r: any(".walpartial.00000002" in n or ".wal.00000002" in n
                                                      for n in r.uploaded))
        assert again.restarts == 0, report.health.detail
        assert report.health.receiver_running, report.health.detail
        # the new timeline becomes restorable with its first base backup; timeline 1's WAL is never mixed in
        fresh = await asyncio.to_thread(take_base_backup, again.target, store, LABEL, staging=tmp_path / "bb2",
                                        clock=SystemClock())
        assert fresh.timeline == 2
        report = await asyncio.to_thread(
            pitr_env.tick_until, again, lambda r: r.window is not None and r.window.base_backup_id == fresh.id)
        assert report.gaps == [], report.gaps
        trial = await asyncio.to_thread(pitr_restore.trial_restore_latest, store, LABEL, now=datetime.now(UTC),
                                        workdir=db.volume.parent / "trial", dbname="postgres", run_as=RUN_AS, timeout=120)
        assert trial.ok, trial.detail
        assert trial.plan is not None
        assert trial.plan.window.run.timeline == 2
        assert trial.table_counts == {"public.trades": len(restored) + 100}
    finally:
        await asyncio.to_thread(again.stop)


async def test_no_commit_after_the_target_replays_all_wal_with_a_second_job(
    kube_cluster: EmulatedCluster, test_namespace: str, runtime: Runtime, *, source: ThrowawayPostgres,
    store: FilesystemStore, archiver: WalArchiver, tmp_path: Path, database: VolumeDatabase,
) -> None:
    """An idle server: nothing was committed after T, so PostgreSQL stops with TARGET_NOT_REACHED; the step
    reads that in the database pod's log, restores once more without the target, and the database opens."""
    cluster, ns, db = kube_cluster, test_namespace, database
    await asyncio.to_thread(archiver.tick)
    await asyncio.to_thread(take_base_backup, pitr_env.target_of(source), store, LABEL, staging=tmp_path / "bb",
                            clock=SystemClock())
    with source.connect() as conn:
        conn.execute("INSERT INTO trades (note) SELECT 'ok' FROM generate_series(1, 50)")
    await asyncio.to_thread(pitr_env.tick_until, archiver, lambda r: r.health.lag_bytes == 0 and r.window is not None)
    target = datetime.now(UTC)
    await asyncio.to_thread(pitr_env.tick_until, archiver, lambda r: r.window is not None and r.window.latest > target)

    _, step = restore_step(runtime, ns, target.isoformat())
    await step.until(lambda r: bool(restore_jobs(cluster, ns)))
    [first] = restore_jobs(cluster, ns)
    db.complete(first)
    await step.until(lambda r: "accept connections" in r.message)
    server = db.start()
    await asyncio.to_thread(wait_exited, server)
    assert pitr_restore.TARGET_NOT_REACHED in server.log_text()
    [pod] = cluster.list("v1", "Pod", ns, label_selector="app=postgres")
    cluster.set_pod_log(ns, pod["metadata"]["name"], server.log_text())  # what `kubectl logs` would show

    retarget = await step.until(lambda r: len(restore_jobs(cluster, ns)) == 2)
    assert step.checkpoint["retarget"] == "true", retarget.message
    assert db.replicas() == 0
    second = next(j for j in restore_jobs(cluster, ns) if j["metadata"]["uid"] != first["metadata"]["uid"])
    assert "--without-target" in second["spec"]["template"]["spec"]["containers"][0]["args"]
    db.complete(second)
    await step.until(lambda r: "accept connections" in r.message)
    assert db.replicas() == 1
    server = db.start()
    result = await step.until(lambda r: r.outcome is not Outcome.WAITING, timeout=120)
    assert result.outcome is Outcome.DONE, f"{result.message}\n{server.log_text()[-2000:]}"
    assert ids(server.dsn()) == set(range(1, 51))
    assert len(restore_jobs(cluster, ns)) == 2


async def test_unrestorable_target_is_refused_before_the_database_is_stopped(
    kube_cluster: EmulatedCluster, test_namespace: str, runtime: Runtime, database: VolumeDatabase,
) -> None:
    """An empty archive: the approved restore step refuses with the reason; the database keeps running."""
    _, step = restore_step(runtime, test_namespace, "2026-01-16T14:03:00+00:00")
    with pytest.raises(StepFailed, match="no recoverable window"):
        await step.once()
    assert database.replicas() == 1
    assert restore_jobs(kube_cluster, test_namespace) == []
    assert step.checkpoint == {}
    assert (database.data_dir / "PG_VERSION").read_text() == "15\n"


def wait_exited(server: LocalServer, timeout: float = 60.0) -> None:
    """Until the server process has exited (it stops by itself when recovery cannot reach the target)."""
    assert server.proc is not None
    server.proc.wait(timeout=timeout)
