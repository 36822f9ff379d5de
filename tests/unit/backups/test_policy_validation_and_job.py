"""Spec validation names the offending field; the executor-job manifest carries secrets only as references."""

from __future__ import annotations

from typing import Any

import pytest

from tradesense_operator.api.v1alpha1.backup import BackupPolicySpec
from tradesense_operator.services.backups import jobs
from tradesense_operator.services.backups.policy import PolicyInvalid
from tradesense_operator.services.backups.reconcile import validate_spec


def spec(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"database": {"host": "pg"}, "storage": {"filesystem": {"path": "/backups"}}}
    base.update(over)
    return base


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (spec(schedule="not a cron"), "spec.schedule"),
        (spec(schedule="0 2 * * *", timeZone="Nowhere/Land"), "spec.timeZone"),
        (spec(retention={"maxAge": "5 days"}), "spec.retention.maxAge"),
        (spec(maintenance={"reindex": "0 3 * * 8"}), "spec.maintenance.reindex"),
        (spec(storage={}), "spec.storage"),
        (spec(storage={"filesystem": {"path": "/a"}, "s3": {"bucket": "abc", "credentialsSecretRef": "s"}}),
         "spec.storage"),
        (spec(executor="job"), "spec.jobImage"),
        (spec(compressionLevel=11), "spec.compressionLevel"),
    ],
)
def test_invalid_spec_names_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(PolicyInvalid) as info:
        validate_spec(raw)
    assert str(info.value).startswith(field)


def test_valid_spec_parses_schedules() -> None:
    valid = validate_spec(spec(timeZone="Europe/Berlin", retention={"maxAge": "30d"},
                               maintenance={"vacuumAnalyze": "0 3 * * 0", "analyze": "@daily"}))
    assert valid.schedule.time_zone == "Europe/Berlin"
    assert set(valid.maintenance) == {"vacuum-analyze", "analyze"}
    assert valid.max_age is not None
    assert valid.max_age.days == 30


def test_job_for_s3_uses_secret_references_only() -> None:
    s = BackupPolicySpec.model_validate(spec(
        executor="job", jobImage="ghcr.io/x/tradesense-operator:1", format="custom",
        database={"serviceName": "postgres", "passwordSecretRef": {"name": "pg", "key": "password"}},
        storage={"s3": {"bucket": "backups", "prefix": "p/", "credentialsSecretRef": "s3-creds",
                        "endpoint": "http://minio:9000"}},
        verify={"testRestore": True},
    ))
    job = jobs.build_job(policy="prod", namespace="ts", uid="u1", spec=s, name=jobs.job_name("prod", "20260105-020000"))
    container = job["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--host") + 1] == "postgres.ts.svc"
    assert args[args.index("--format") + 1] == "custom"
    assert "--test-restore" in args
    assert args[args.index("--s3-endpoint") + 1] == "http://minio:9000"
    names = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert names == {"PGPASSWORD": {"name": "pg", "key": "password"},
                     "AWS_ACCESS_KEY_ID": {"name": "s3-creds", "key": "AWS_ACCESS_KEY_ID"},
                     "AWS_SECRET_ACCESS_KEY": {"name": "s3-creds", "key": "AWS_SECRET_ACCESS_KEY"}}
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["metadata"]["name"] == "prod-backup-20260105-020000"


def test_job_with_filesystem_needs_a_claim() -> None:
    s = BackupPolicySpec.model_validate(spec(executor="job", jobImage="img"))
    with pytest.raises(PolicyInvalid, match="jobVolumeClaimName"):
        jobs.build_job(policy="p", namespace="n", uid=None, spec=s, name="p-backup-x")


def test_job_name_fits_label_limit() -> None:
    assert len(jobs.job_name("x" * 80, "20260105-020000")) <= 63


PHYSICAL = {"mode": "physical", "volumeClaimName": "pgdata", "workload": {"kind": "StatefulSet", "name": "postgres"}}


def test_physical_restore_job_mounts_the_database_volume_and_s3_by_reference() -> None:
    s = BackupPolicySpec.model_validate(spec(
        jobImage="ghcr.io/x/tradesense-operator:1",
        storage={"s3": {"bucket": "backups", "credentialsSecretRef": "s3-creds", "endpoint": "http://minio:9000"}},
        pointInTime={"restore": {**PHYSICAL, "runAsUser": 26}},
    ))
    stamp = "uid-1/restore"
    name = jobs.restore_job_name("x" * 80, stamp)
    assert len(name) <= 63
    assert name == jobs.restore_job_name("x" * 80, stamp) != jobs.restore_job_name("x" * 80, "uid-2/restore")
    job = jobs.build_restore_job(policy="prod", namespace="ts", uid="u1", spec=s, name=name, stamp=stamp,
                                 target_time="2026-01-16T14:03:00+00:00", target_lsn=None)
    pod = job["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[:2] == ["backup", "restore"]
    assert args[args.index("--target-time") + 1] == "2026-01-16T14:03:00+00:00"
    assert args[args.index("--data-dir") + 1] == "/var/lib/postgresql/data/pgdata"
    assert args[args.index("--wal-dir") + 1] == "/var/lib/postgresql/data/tradesense-pitr-wal"
    assert args[args.index("--stamp") + 1] == stamp
    assert "--in-place" in args
    assert {"name": "pgdata", "mountPath": "/var/lib/postgresql/data"} in pod["containers"][0]["volumeMounts"]
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["fsGroup"] == 26
    assert {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {
        "name": "s3-creds", "key": "AWS_SECRET_ACCESS_KEY"}}} in pod["containers"][0]["env"]
    assert job["spec"]["backoffLimit"] == 0
    assert jobs.target_flags("latest", None) == ["--latest"]
    assert jobs.target_flags(None, "0/3000060") == ["--target-lsn", "0/3000060"]


@pytest.mark.parametrize(("raw", "message"), [
    (spec(pointInTime={"restore": {"mode": "physical"}}), "needs volumeClaimName and workload"),
    (spec(pointInTime={"restore": PHYSICAL}), "it needs jobImage"),
    (spec(jobImage="i", pointInTime={"restore": PHYSICAL}), "jobVolumeClaimName with filesystem storage"),
    (spec(pointInTime={"restore": {"mountPath": "/data", "dataDirectory": "/data2/pg"}}), "below restore.mountPath"),
])
def test_physical_restore_spec_is_complete(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyInvalid, match=message):
        validate_spec(raw)
