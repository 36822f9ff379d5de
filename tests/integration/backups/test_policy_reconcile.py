"""BackupPolicy ticks against the emulated Kubernetes API and real PostgreSQL, with a ManualClock.

Covers: a schedule fires at its times and not in between; status (lastScheduleTime, nextScheduleTime,
lastSuccessfulBackup, backups[], conditions, observedGeneration) and Events; retention by count deletes
with an Event each; run-now fires once per token; a run that comes due while a backup is running is
skipped and reported; a stale lock is broken; BackupStale; an invalid spec names the field; a password
from a Secret never leaks; executor job creates the Job and harvests its result.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.rbac import with_and_without_rbac
from tradesense_operator.api.crdgen.crd import build_crd
from tradesense_operator.api.v1alpha1.kinds import KINDS
from tradesense_operator.clients.errors import Conflict
from tradesense_operator.clients.kube import KubeClient
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.services.backups import dump_pipeline
from tradesense_operator.services.backups.reconcile import RUN_NOW_ANNOTATION, reconcile
from tradesense_operator.services.runtime import Runtime
from tradesense_sandbox.kubeapi.cluster import EmulatedCluster
from tradesense_sandbox.operator_rbac import OperatorIdentity

from .conftest import KEY_ID, SECRET

API = "ops.tradesense.io/v1alpha1"
NS = "tradesense"
# The emulated API stamps creationTimestamp with the real time; schedules are evaluated from there, so the
# tests run on "tomorrow" (UTC) with a ManualClock moved explicitly through it.
DAY = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
START = DAY + timedelta(hours=1, minutes=59)
DB_SECRET = "tradesense-db-credentials"  # the Secret names deploy/rbac's Role grants (by resourceNames)
S3_SECRET = "tradesense-backup-s3"


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute, seconds=second)


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def stamp(when: datetime) -> str:
    return when.strftime("%Y%m%d_%H%M%S")


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmulatedCluster]:
    with EmulatedCluster(pod_ready_delay=None) as c:
        for kind in KINDS:
            c.install_crd(build_crd(kind))
        c.create_namespace(NS)
        yield c


@pytest.fixture
def rbac_target(cluster: EmulatedCluster) -> tuple[EmulatedCluster, str]:
    return cluster, NS  # deploy-rbac mode (tests/support/rbac.py) places deploy/rbac here


@pytest.fixture
async def runtime(
    cluster: EmulatedCluster, tmp_path: Path, operator_identity: OperatorIdentity | None
) -> AsyncIterator[Runtime]:
    """The operator's Runtime, as the admin or (deploy-rbac mode) as its ServiceAccount."""
    kubeconfig = operator_identity.kubeconfig if operator_identity else cluster.write_kubeconfig(tmp_path / "k", NS)
    kube = await KubeClient.from_kubeconfig(str(kubeconfig))
    rt = Runtime(kube=kube, clock=ManualClock(datetime.now(UTC)))
    yield rt
    await rt.aclose()


def policy(name: str, db: PgTarget, path: Path, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": API, "kind": "BackupPolicy", "metadata": {"name": name, "namespace": NS},
        "spec": {"database": {"host": db.host, "port": db.port, "database": db.dbname, "user": db.user},
                 "schedule": "0 * * * *", "storage": {"filesystem": {"path": str(path)}}, **spec},
    }
    return body


class Harness:
    def __init__(self, cluster: EmulatedCluster, runtime: Runtime, name: str) -> None:
        self.cluster, self.runtime, self.name = cluster, runtime, name

    @property
    def clock(self) -> ManualClock:
        assert isinstance(self.runtime.clock, ManualClock)
        return self.runtime.clock

    def body(self) -> dict[str, Any]:
        return self.cluster.get(API, "BackupPolicy", self.name, NS)

    def status(self) -> dict[str, Any]:
        return dict(self.body().get("status") or {})

    async def tick(self) -> dict[str, Any]:
        await reconcile(self.runtime, self.body())
        return self.status()

    def reasons(self) -> list[str]:
        return [e["reason"] for e in self.cluster.events(NS, self.name)]

    def condition(self, type_: str) -> dict[str, Any]:
        return next(c for c in self.status()["conditions"] if c["type"] == type_)


def make(cluster: EmulatedCluster, runtime: Runtime, body: dict[str, Any]) -> Harness:
    cluster.create(body)
    h = Harness(cluster, runtime, body["metadata"]["name"])
    if h.clock.now() < START:
        h.clock.set(START)
    # as if the policy had been running until START (the runs between creation and START are not the point)
    cluster.patch(API, "BackupPolicy", h.name, {"status": {"lastScheduleTime": iso(START) + "Z"}}, NS,
                  subresource="status")
    return h


async def test_schedule_fires_at_its_times_with_status_and_retention(
    cluster: EmulatedCluster, runtime: Runtime, source_db: PgTarget, tmp_path: Path
) -> None:
    h = make(cluster, runtime, policy("hourly", source_db, tmp_path / "bk", retention={"keepLast": 2}))
    status = await h.tick()
    assert status.get("backups") in (None, [])
    assert status["nextScheduleTime"].startswith(iso(at(2)))
    assert h.condition("Ready")["status"] == "True"
    assert h.condition("LastBackupSucceeded")["status"] == "Unknown"

    for hour in (2, 3, 4):
        h.clock.set(at(hour, 0, 30))
        status = await h.tick()
        assert status["lastScheduleTime"].startswith(iso(at(hour)))
        h.clock.advance(timedelta(minutes=20))
        await h.tick()  # nothing more is due within the hour
    store = FilesystemStore(tmp_path / "bk")
    ids = [m.id for m in dump_pipeline.list_backups(store, label="hourly")]
    assert ids == [f"hourly_{stamp(at(4, 0, 30))}", f"hourly_{stamp(at(3, 0, 30))}"]  # keepLast=2 deleted the 02:00 one
    status = h.status()
    assert [b["id"] for b in status["backups"]] == ids
    assert all(b["verified"] for b in status["backups"])
    assert status["lastSuccessfulBackup"].startswith(iso(at(4, 0, 30)))
    assert status["observedGeneration"] == h.body()["metadata"]["generation"]
    assert h.condition("LastBackupSucceeded")["status"] == "True"
    assert h.condition("BackupStale")["status"] == "False"
    assert "activeBackup" not in status
    assert h.reasons().count("BackupSucceeded") == 3
    assert h.reasons().count("BackupDeleted") == 1
    # the metrics carry the policy's last success
    sample = runtime.metrics.registry.get_sample_value(
        "tradesense_operator_backup_last_success_timestamp_seconds", {"namespace": NS, "policy": "hourly"})
    assert sample == at(4, 0, 30).timestamp()


async def test_run_now_fires_once_per_token(cluster: EmulatedCluster, runtime: Runtime, source_db: PgTarget,
                                            tmp_path: Path) -> None:
    h = make(cluster, runtime, policy("manual", source_db, tmp_path / "bk", schedule="0 2 1 1 *"))
    cluster.patch(API, "BackupPolicy", "manual", {"metadata": {"annotations": {RUN_NOW_ANNOTATION: "t1"}}}, NS)
    await h.tick()
    h.clock.advance(5)
    await h.tick()
    assert h.status()["lastRunNowToken"] == "t1"
    assert len(dump_pipeline.list_backups(FilesystemStore(tmp_path / "bk"))) == 1
    cluster.patch(API, "BackupPolicy", "manual", {"metadata": {"annotations": {RUN_NOW_ANNOTATION: "t2"}}}, NS)
    h.clock.advance(5)
    await h.tick()
    assert len(dump_pipeline.list_backups(FilesystemStore(tmp_path / "bk"))) == 2


async def test_held_lock_skips_and_reports_then_stale_lock_is_broken(
    cluster: EmulatedCluster, runtime: Runtime, source_db: PgTarget, tmp_path: Path
) -> None:
    h = make(cluster, runtime, policy("locked", source_db, tmp_path / "bk", backupTimeoutSeconds=3600))
    await h.tick()
    # another runner (a crashed operator) holds the lock since 01:59
    cluster.patch(API, "BackupPolicy", "locked", {"status": {"activeBackup": "locked@x",
                                                             "activeBackupStartedAt": START.isoformat()}},
                  NS, subresource="status")
    leftover = tmp_path / "bk" / f".locked_{stamp(START)}.sql.gz.partial-abc"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a dump")
    h.clock.set(at(2, 0, 10))
    await h.tick()
    assert "BackupSkipped" in h.reasons()
    assert dump_pipeline.list_backups(FilesystemStore(tmp_path / "bk")) == []
    assert leftover.exists()  # never swept while the lock is held
    h.clock.set(at(3, 0, 5))  # > 3600 s after the lock was taken
    await h.tick()
    assert "StaleLockBroken" in h.reasons()
    assert not leftover.exists()
    assert len(dump_pipeline.list_backups(FilesystemStore(tmp_path / "bk"))) == 1  # the 03:00 run happened


async def test_overlapping_run_during_inline_backup_is_skipped(
    cluster: EmulatedCluster, runtime: Runtime, source_db: PgTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = make(cluster, runtime, policy("slow", source_db, tmp_path / "bk", schedule="*/5 * * * *"))
    await h.tick()
    real = dump_pipeline.run_backup

    def slow_backup(*args: Any, **kwargs: Any) -> Any:
        h.clock.advance(timedelta(minutes=6))  # the dump takes longer than the schedule interval
        return real(*args, **kwargs)

    monkeypatch.setattr(dump_pipeline, "run_backup", slow_backup)
    h.clock.set(at(2))
    status = await h.tick()
    assert status["lastScheduleTime"].startswith(iso(at(2, 5)))
    assert "BackupSkipped" in h.reasons()
    h.clock.advance(30)
    await h.tick()
    assert len(dump_pipeline.list_backups(FilesystemStore(tmp_path / "bk"))) == 1


async def test_backup_stale_when_runs_keep_failing(cluster: EmulatedCluster, runtime: Runtime, tmp_path: Path) -> None:
    dead = PgTarget(host="127.0.0.1", port=1, dbname="nothing", user="postgres")
    h = make(cluster, runtime, policy("failing", dead, tmp_path / "bk", schedule="0 2 * * *"))
    h.clock.set(at(2, 0, 1))
    await h.tick()
    assert h.condition("LastBackupSucceeded")["status"] == "False"
    assert "cannot connect" in h.status()["lastFailure"]
    assert h.condition("BackupStale")["status"] == "False"  # the policy is younger than two days
    h.clock.set(at(2, 0, 1) + timedelta(days=2))
    await h.tick()
    assert h.condition("BackupStale")["status"] == "True"
    assert "BackupStale" in h.reasons()
    assert not (tmp_path / "bk").exists() or list((tmp_path / "bk").iterdir()) == []


async def test_invalid_spec_names_the_field(cluster: EmulatedCluster, runtime: Runtime, source_db: PgTarget,
                                            tmp_path: Path) -> None:
    h = make(cluster, runtime, policy("badzone", source_db, tmp_path / "bk", timeZone="Mars/Olympus"))
    await h.tick()
    await h.tick()
    ready = h.condition("Ready")
    assert ready["status"] == "False"
    assert ready["message"].startswith("spec.timeZone")
    assert h.reasons().count("InvalidSpec") == 1  # not repeated every tick


async def test_password_from_secret_is_used_and_never_leaks(
    cluster: EmulatedCluster, runtime: Runtime, source_db: PgTarget, tmp_path: Path, secret_guard: Any
) -> None:
    password = secret_guard.plant(prefix="pgpw")
    role = f"bk_{source_db.dbname}"
    with psycopg.connect(host=source_db.host, user="postgres", dbname=source_db.dbname, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'")
    try:
        cluster.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pg", "namespace": NS},
                        "data": {"password": base64.b64encode(password.encode()).decode()}})
        body = policy("secret", source_db, tmp_path / "bk")
        body["spec"]["database"].update(user=role, passwordSecretRef={"name": "pg", "key": "password"})
        h = make(cluster, runtime, body)
        h.clock.set(at(2, 0, 1))
        await h.tick()
        assert h.condition("LastBackupSucceeded")["status"] == "True"
        secret_guard.add_source("policy status and events",
                                lambda: str(h.body()) + str(cluster.events(NS, "secret")))
    finally:
        with psycopg.connect(host=source_db.host, user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {role}")


@with_and_without_rbac
async def test_executor_job_creates_the_job_and_harvests_it(
    cluster: EmulatedCluster, runtime: Runtime, source_db: PgTarget, tmp_path: Path, operator_rbac: str
) -> None:
    name = f"bigdb-{operator_rbac}"  # both modes share the module's cluster
    body = policy(name, source_db, tmp_path / "bk", executor="job", jobImage="tradesense-operator:dev",
                  jobVolumeClaimName="backups")
    # the Secret name deploy/rbac's Role grants (by resourceNames) for database passwords
    body["spec"]["database"]["passwordSecretRef"] = {"name": DB_SECRET, "key": "password"}
    if cluster.find("v1", "Secret", DB_SECRET, NS) is None:
        cluster.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": DB_SECRET, "namespace": NS},
                        "stringData": {"password": "unused"}})
    h = make(cluster, runtime, body)
    h.clock.set(at(2, 0, 1))
    status = await h.tick()
    job_name = status["activeBackup"]
    job = cluster.get("batch/v1", "Job", job_name, NS)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["backup", "run"]
    assert container["args"][container["args"].index("--storage-path") + 1] == str(tmp_path / "bk")
    assert {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": DB_SECRET, "key": "password"}}} in container["env"]
    assert job["metadata"]["ownerReferences"][0]["kind"] == "BackupPolicy"
    # the Job runs the same engine (here in-process) and completes
    store = FilesystemStore(tmp_path / "bk")
    m = dump_pipeline.run_backup(store, dump_pipeline.BackupRequest(source_db, name), clock=h.clock)
    dump_pipeline.verify_backup(store, m, clock=h.clock)
    h.clock.advance(60)
    await h.tick()
    assert h.status()["activeBackup"] == job_name  # still running: lock held
    cluster.patch("batch/v1", "Job", job_name, {"status": {"succeeded": 1, "conditions": [
        {"type": "Complete", "status": "True"}]}}, NS, subresource="status")
    status = await h.tick()
    assert "activeBackup" not in status
    assert [b["id"] for b in status["backups"]] == [m.id]
    assert h.condition("LastBackupSucceeded")["status"] == "True"


@with_and_without_rbac
async def test_a_job_that_outlives_the_backup_timeout_is_deleted_and_its_lock_broken(
    cluster: EmulatedCluster, runtime: Runtime, source_db: PgTarget, tmp_path: Path, operator_rbac: str
) -> None:
    name = f"hung-{operator_rbac}"  # both modes share the module's cluster
    h = make(cluster, runtime, policy(name, source_db, tmp_path / "bk", executor="job",
                                      jobImage="tradesense-operator:dev", jobVolumeClaimName="backups",
                                      backupTimeoutSeconds=600))
    h.clock.set(at(2, 0, 1))
    job_name = (await h.tick())["activeBackup"]
    assert cluster.find("batch/v1", "Job", job_name, NS) is not None
    h.clock.advance(599)
    assert (await h.tick())["activeBackup"] == job_name  # still within the timeout: the Job keeps the lock
    h.clock.advance(2)
    status = await h.tick()
    assert "activeBackup" not in status
    assert cluster.find("batch/v1", "Job", job_name, NS) is None  # the hung Job is removed, not left running
    assert h.condition("LastBackupSucceeded")["reason"] == "Abandoned"
    assert "StaleLockBroken" in h.reasons()


async def test_maintenance_tasks_run_on_their_crons(cluster: EmulatedCluster, runtime: Runtime, source_db: PgTarget,
                                                    tmp_path: Path) -> None:
    h = make(cluster, runtime, policy("maint", source_db, tmp_path / "bk", schedule="0 5 * * *",
                                      maintenance={"vacuumAnalyze": "30 2 * * *", "reindex": "45 2 * * *"}))

    def last_vacuum() -> object:
        with psycopg.connect(host=source_db.host, user=source_db.user, dbname=source_db.dbname) as conn:
            row = conn.execute("SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'trades'").fetchone()
            return row[0] if row else None

    cluster.patch(API, "BackupPolicy", "maint", {"status": {"lastMaintenance": {
        "vacuum-analyze": iso(START) + "Z", "reindex": iso(START) + "Z"}}}, NS, subresource="status")
    h.clock.set(at(2, 0, 1))
    await h.tick()
    assert h.reasons().count("MaintenanceDone") == 0
    h.clock.set(at(2, 30, 5))
    status = await h.tick()
    assert status["lastMaintenance"] == {"vacuum-analyze": iso(at(2, 30)) + "Z", "reindex": iso(START) + "Z"}
    assert last_vacuum() is not None
    h.clock.set(at(2, 45, 5))
    status = await h.tick()
    assert status["lastMaintenance"]["reindex"] == iso(at(2, 45)) + "Z"
    assert h.reasons().count("MaintenanceDone") == 2
    await h.tick()
    assert h.reasons().count("MaintenanceDone") == 2
    assert dump_pipeline.list_backups(FilesystemStore(tmp_path / "bk")) == []  # the backup schedule (05:00) is not due


async def test_inline_lock_of_a_restarted_operator_is_broken_at_once(
    cluster: EmulatedCluster, runtime: Runtime, source_db: PgTarget, tmp_path: Path
) -> None:
    h = make(cluster, runtime, policy("restarted", source_db, tmp_path / "bk"))
    cluster.patch(API, "BackupPolicy", "restarted", {"status": {
        "activeBackup": "restarted@x", "activeBackupStartedAt": iso(START) + "Z", "activeBackupHolder": "before"}},
        NS, subresource="status")
    h.clock.set(at(2, 0, 10))
    await reconcile(runtime, h.body(), holder="after")
    assert "StaleLockBroken" in h.reasons()
    assert "operator instance restarted" in next(
        e["message"] for e in cluster.events(NS, "restarted") if e["reason"] == "StaleLockBroken")
    assert len(dump_pipeline.list_backups(FilesystemStore(tmp_path / "bk"))) == 1
    status = h.status()
    assert "activeBackup" not in status
    assert "activeBackupHolder" not in status


async def test_missed_runs_while_down_are_reported_and_deadline_skips_late_ones(
    cluster: EmulatedCluster, runtime: Runtime, source_db: PgTarget, tmp_path: Path
) -> None:
    lenient = make(cluster, runtime, policy("lenient", source_db, tmp_path / "a"))
    strict = make(cluster, runtime, policy("strict", source_db, tmp_path / "b", startingDeadlineSeconds=300))
    lenient.clock.set(at(5, 20))  # the operator was down over 02:00, 03:00, 04:00 and 05:00
    await lenient.tick()
    await strict.tick()
    assert len(dump_pipeline.list_backups(FilesystemStore(tmp_path / "a"))) == 1  # only the newest missed run is made up
    assert "MissedSchedule" in lenient.reasons()
    assert lenient.status()["lastScheduleTime"].startswith(iso(at(5)))
    assert dump_pipeline.list_backups(FilesystemStore(tmp_path / "b")) == []  # 20 minutes late > 300 s: skipped
    assert "startingDeadlineSeconds" in " ".join(e["message"] for e in cluster.events(NS, "strict"))
    assert strict.status()["lastScheduleTime"].startswith(iso(at(5)))


async def test_a_tick_from_a_stale_body_conflicts_instead_of_overwriting(
    cluster: EmulatedCluster, runtime: Runtime, source_db: PgTarget, tmp_path: Path
) -> None:
    h = make(cluster, runtime, policy("stale", source_db, tmp_path / "bk"))
    stale = h.body()
    cluster.patch(API, "BackupPolicy", "stale", {"status": {"lastRunNowToken": "written-meanwhile"}}, NS,
                  subresource="status")
    with pytest.raises(Conflict):
        await reconcile(runtime, stale)
    assert h.status()["lastRunNowToken"] == "written-meanwhile"


@with_and_without_rbac
async def test_s3_policy_reads_credentials_from_its_secret(  # noqa: PLR0917  (fixtures)
    cluster: EmulatedCluster, runtime: Runtime, source_db: PgTarget, s3_endpoint: str, s3_client: Any,
    operator_rbac: str,
) -> None:
    bucket = f"policy-bucket-{operator_rbac}"  # both modes share the module's cluster and S3 server
    s3_client.create_bucket(Bucket=bucket)
    if cluster.find("v1", "Secret", S3_SECRET, NS) is None:
        cluster.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": S3_SECRET, "namespace": NS},
                        "stringData": {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}})
    body = policy(f"offsite-{operator_rbac}", source_db, Path("/unused"), format="custom")
    body["spec"]["storage"] = {"s3": {"endpoint": s3_endpoint, "bucket": bucket, "prefix": "ts/",
                                      "credentialsSecretRef": S3_SECRET}}
    h = make(cluster, runtime, body)
    h.clock.set(at(2, 0, 3))
    status = await h.tick()
    assert h.condition("LastBackupSucceeded")["status"] == "True"
    (record,) = status["backups"]
    assert record["location"] == f"s3://{bucket}/ts/{record['id']}.dump"
    keys = sorted(o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [f"ts/{record['id']}.dump", f"ts/{record['id']}.dump.manifest.json"]


async def test_missing_s3_secret_names_the_field(cluster: EmulatedCluster, runtime: Runtime, source_db: PgTarget) -> None:
    body = policy("nosecret", source_db, Path("/unused"))
    body["spec"]["storage"] = {"s3": {"bucket": "whatever", "credentialsSecretRef": "absent"}}
    h = make(cluster, runtime, body)
    await h.tick()
    assert h.condition("Ready")["message"].startswith("spec.storage.s3.credentialsSecretRef: secret ")


async def test_suspended_policy_skips_due_runs_until_resumed(
    cluster: EmulatedCluster, runtime: Runtime, source_db: PgTarget, tmp_path: Path
) -> None:
    h = make(cluster, runtime, policy("paused", source_db, tmp_path / "bk", suspend=True))
    await h.tick()
    h.clock.set(at(3, 0, 30))  # two runs (02:00, 03:00) were due while suspended
    await h.tick()
    store = FilesystemStore(tmp_path / "bk")
    assert dump_pipeline.list_backups(store, label="paused") == []
    assert "BackupSucceeded" not in h.reasons()

    cluster.patch("ops.tradesense.io/v1alpha1", "BackupPolicy", "paused", {"spec": {"suspend": False}}, NS)
    h.clock.set(at(4, 0, 30))
    await h.tick()
    assert [m.id for m in dump_pipeline.list_backups(store, label="paused")] == [f"paused_{stamp(at(4, 0, 30))}"]


async def test_formats_are_scheduled_verified_and_retained_together(
    cluster: EmulatedCluster, runtime: Runtime, source_db: PgTarget, tmp_path: Path
) -> None:
    """spec.format switched between runs: each run uses the format of its time; retention counts them all."""
    h = make(cluster, runtime, policy("formats", source_db, tmp_path / "bk", format="plain-zstd",
                                      retention={"keepLast": 2}, verify={"integrity": True, "testRestore": True}))
    formats = ["plain-zstd", "directory", "binary", "directory", "plain-gzip"]
    for hour, fmt in zip((2, 3, 4, 5, 6), formats, strict=True):
        cluster.patch(API, "BackupPolicy", h.name, {"spec": {"format": fmt}}, NS)
        h.clock.set(at(hour, 0, 30))
        status = await h.tick()
        assert h.condition("LastBackupSucceeded")["status"] == "True", status.get("lastFailure")
        assert status["backups"][0]["format"] == fmt
        assert status["backups"][0]["verified"] is True
    store = FilesystemStore(tmp_path / "bk")
    kept = dump_pipeline.list_backups(store, label="formats")
    assert [(m.id, m.format.value) for m in kept] == [
        (f"formats_{stamp(at(6, 0, 30))}", "plain-gzip"), (f"formats_{stamp(at(5, 0, 30))}", "directory")]
    assert all(m.verification is not None and m.verification.test_restore for m in kept)
    assert kept[1].compression_level == 1
    assert sorted(p.name for p in (tmp_path / "bk").iterdir() if not p.name.endswith(".json")) == sorted(
        m.file_name for m in kept)  # the zstd file, the older tree and the binary tree are gone
    assert h.reasons().count("BackupDeleted") == 3  # the zstd file, a tree, the binary tree


async def test_a_label_added_while_an_inline_backup_runs_does_not_lose_its_result(
    cluster: EmulatedCluster, runtime: Runtime, source_db: PgTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only metadata moved since the pass took the lock (kopf's finalizer, a label): the result is written at the
    new version — the lock released, LastBackupSucceeded True, BackupSucceeded posted — not dropped as a Conflict
    (which left the lock held until it went stale and the condition saying no backup had run)."""
    h = make(cluster, runtime, policy("labelled", source_db, tmp_path / "bk", schedule="0 2 1 1 *"))
    cluster.patch(API, "BackupPolicy", "labelled", {"metadata": {"annotations": {RUN_NOW_ANNOTATION: "t1"}}}, NS)
    real = dump_pipeline.run_verified_backup

    def labelled_meanwhile(*args: Any, **kwargs: Any) -> Any:
        cluster.patch(API, "BackupPolicy", "labelled", {"metadata": {"labels": {"team": "payments"}}}, NS)
        return real(*args, **kwargs)

    monkeypatch.setattr(dump_pipeline, "run_verified_backup", labelled_meanwhile)
    status = await h.tick()

    assert status.get("activeBackup") is None
    assert h.condition("LastBackupSucceeded")["status"] == "True"
    assert status["backups"]
    assert status.get("lastSuccessfulBackup")
    assert "BackupSucceeded" in h.reasons()
    assert len(dump_pipeline.list_backups(FilesystemStore(tmp_path / "bk"))) == 1
