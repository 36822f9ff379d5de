"""The batch/v1 Jobs that move data outside the operator: `backup run` (`executor: job`) and the physical
point-in-time restore (`backup restore --in-place`), both in the operator image.

Large databases should not be dumped or restored inside the operator's pod (memory, CPU limits, and a
restart of the operator would kill the work). Each Job gets its connection, format and storage settings
as flags; secrets reach it only as `secretKeyRef` environment variables, never as values. Names are
deterministic, so a restarted operator finds (adopts) the Job it created instead of creating another.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from tradesense_operator.api.v1alpha1.backup import BackupPolicySpec
from tradesense_operator.api.v1alpha1.pitr import PointInTimeRestoreSpec
from tradesense_operator.services.backups.policy import PolicyInvalid, database_host

POLICY_LABEL = "ops.tradesense.io/backup-policy"
RESTORE_LABEL = "ops.tradesense.io/point-in-time-restore"
JOB_TTL_SECONDS = 86400


def job_name(policy: str, backup_stamp: str) -> str:
    """`<policy>-backup-<stamp>`, within the 63 characters a Job's pod labels allow."""
    suffix = f"-backup-{backup_stamp}"
    return policy[: 63 - len(suffix)].rstrip("-.") + suffix


def restore_job_name(policy: str, stamp: str) -> str:
    """`<policy>-pitr-<hash of the incident step's stamp>`: one Job per restore step, found again after a restart."""
    suffix = "-pitr-" + hashlib.sha256(stamp.encode()).hexdigest()[:10]
    return policy[: 63 - len(suffix)].rstrip("-.") + suffix


@dataclass
class _Pod:
    """What a Job's single container gets: flags, environment and volumes."""

    args: list[str]
    env: list[dict[str, Any]] = field(default_factory=list)
    # the root filesystem is read-only; tools spool to a private emptyDir at /tmp
    volumes: list[dict[str, Any]] = field(default_factory=lambda: [{"name": "tmp", "emptyDir": {}}])
    mounts: list[dict[str, Any]] = field(default_factory=lambda: [{"name": "tmp", "mountPath": "/tmp"}])  # noqa: S108


def _add_storage(pod: _Pod, spec: BackupPolicySpec, *, why: str) -> None:
    """The policy's store as flags (and its PVC or S3 credentials); PolicyInvalid naming the missing field."""
    if spec.storage.filesystem is not None:
        if not spec.job_volume_claim_name:
            raise PolicyInvalid(f"spec.jobVolumeClaimName: required for {why} with filesystem storage")
        pod.args += ["--storage-path", spec.storage.filesystem.path]
        pod.volumes.append({"name": "backups", "persistentVolumeClaim": {"claimName": spec.job_volume_claim_name}})
        pod.mounts.append({"name": "backups", "mountPath": spec.storage.filesystem.path})
    elif spec.storage.s3 is not None:
        s3 = spec.storage.s3
        pod.args += ["--s3-bucket", s3.bucket, "--s3-prefix", s3.prefix, "--s3-region", s3.region]
        if s3.endpoint:
            pod.args += ["--s3-endpoint", s3.endpoint]
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            pod.env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": s3.credentials_secret_ref,
                                                                        "key": key}}})


def _manifest(
    *, name: str, namespace: str, policy: str, uid: str | None, image: str, pod: _Pod, deadline: int,
    labels: dict[str, str] | None = None, pod_security: dict[str, Any] | None = None,
) -> dict[str, Any]:
    all_labels = {"app.kubernetes.io/managed-by": "tradesense-operator", POLICY_LABEL: policy, **(labels or {})}
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": all_labels}
    if uid:
        metadata["ownerReferences"] = [{
            "apiVersion": "ops.tradesense.io/v1alpha1", "kind": "BackupPolicy", "name": policy, "uid": uid,
            "controller": True, "blockOwnerDeletion": True,
        }]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": 0,  # a failure is reported, never silently retried
            "activeDeadlineSeconds": deadline,
            "ttlSecondsAfterFinished": JOB_TTL_SECONDS,
            "template": {
                "metadata": {"labels": all_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"},
                                        **(pod_security or {})},
                    "containers": [{
                        "name": "backup",
                        "image": image,
                        "args": pod.args,
                        "env": pod.env,
                        "volumeMounts": pod.mounts,
                        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}},
                    }],
                    "volumes": pod.volumes,
                },
            },
        },
    }


def build_job(
    *, policy: str, namespace: str, uid: str | None, spec: BackupPolicySpec, name: str
) -> dict[str, Any]:
    """The backup Job manifest; PolicyInvalid naming the field when the spec lacks what a Job needs."""
    if not spec.job_image:
        raise PolicyInvalid("spec.jobImage: required when spec.executor is job")
    db = spec.database
    pod = _Pod([
        "backup", "run",
        "--host", database_host(db, namespace), "--port", str(db.port), "--user", db.user, "--dbname", db.database,
        "--sslmode", db.sslmode, "--format", spec.format.value, "--label", policy,
    ])
    if spec.compression_level is not None:
        pod.args += ["--compression-level", str(spec.compression_level)]
    pod.args += ["--verify-integrity"] if spec.verify.integrity else ["--no-verify-integrity"]
    if spec.verify.test_restore:
        pod.args.append("--test-restore")
    if db.password_secret_ref is not None:
        pod.env.append({"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {
            "name": db.password_secret_ref.name, "key": db.password_secret_ref.key}}})
    _add_storage(pod, spec, why="spec.executor job")
    return _manifest(name=name, namespace=namespace, policy=policy, uid=uid, image=spec.job_image, pod=pod,
                     deadline=spec.backup_timeout_seconds)


def target_flags(target_time: str | None, target_lsn: str | None) -> list[str]:
    """`--target-time T`, `--target-lsn L` or `--latest` (targetTime "latest" or nothing)."""
    if target_lsn:
        return ["--target-lsn", target_lsn]
    if target_time and target_time != "latest":
        return ["--target-time", target_time]
    return ["--latest"]


def build_restore_job(
    *, policy: str, namespace: str, uid: str | None, spec: BackupPolicySpec, name: str, stamp: str,
    target_time: str | None, target_lsn: str | None, without_target: bool = False,
) -> dict[str, Any]:
    """The physical point-in-time restore Job: the database's PVC mounted where its pod mounts it, the store,
    and `backup restore --in-place` writing the data directory as the database's uid.

    `without_target`: the follow-up Job that drops the target from a directory the first one prepared
    (PostgreSQL found no archived commit after it); `stamp` stays the first Job's.
    """
    restore: PointInTimeRestoreSpec = spec.point_in_time.restore
    if not spec.job_image:
        raise PolicyInvalid("spec.jobImage: required for pointInTime.restore.mode physical")
    if not restore.volume_claim_name:
        raise PolicyInvalid("spec.pointInTime.restore.volumeClaimName: required for mode physical")
    target = ["--without-target"] if without_target else target_flags(target_time, target_lsn)
    pod = _Pod(["backup", "restore", "--label", policy, *target,
                "--data-dir", restore.pgdata, "--wal-dir", restore.wal_directory, "--in-place", "--stamp", stamp,
                "--yes"])
    _add_storage(pod, spec, why="pointInTime.restore.mode physical")
    pod.volumes.append({"name": "pgdata", "persistentVolumeClaim": {"claimName": restore.volume_claim_name}})
    pod.mounts.append({"name": "pgdata", "mountPath": restore.mount_path})
    uid_ = restore.run_as_user
    return _manifest(name=name, namespace=namespace, policy=policy, uid=uid, image=spec.job_image, pod=pod,
                     deadline=restore.timeout_seconds, labels={RESTORE_LABEL: "true"},
                     pod_security={"runAsUser": uid_, "runAsGroup": uid_, "fsGroup": uid_,
                                   # a large data volume is not re-chowned file by file on every mount
                                   "fsGroupChangePolicy": "OnRootMismatch"})


def job_outcome(job: dict[str, Any]) -> str | None:
    """"Succeeded", "Failed" or None while it runs (from status counts and conditions)."""
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return "Succeeded" if cond["type"] == "Complete" else "Failed"
    if int(status.get("succeeded") or 0) > 0:
        return "Succeeded"
    if int(status.get("failed") or 0) > 0:
        return "Failed"
    return None
