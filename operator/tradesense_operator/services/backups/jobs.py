"""`executor: job`: the batch/v1 Job that runs `tradesense-operator backup run` in the operator image.

Large databases should not be dumped inside the operator's pod (memory, CPU limits, and a restart of
the operator would kill the dump). The Job gets the same connection, format and storage settings as
flags; secrets reach it only as `secretKeyRef` environment variables, never as values.
"""

from __future__ import annotations

from typing import Any

from tradesense_operator.api.v1alpha1.backup import BackupPolicySpec
from tradesense_operator.services.backups.policy import PolicyInvalid, database_host

POLICY_LABEL = "ops.tradesense.io/backup-policy"
JOB_TTL_SECONDS = 86400


def job_name(policy: str, backup_stamp: str) -> str:
    """`<policy>-backup-<stamp>`, within the 63 characters a Job's pod labels allow."""
    suffix = f"-backup-{backup_stamp}"
    return policy[: 63 - len(suffix)].rstrip("-.") + suffix


def build_job(
    *, policy: str, namespace: str, uid: str | None, spec: BackupPolicySpec, name: str
) -> dict[str, Any]:
    """The Job manifest; PolicyInvalid naming the field when the spec lacks what a Job needs."""
    if not spec.job_image:
        raise PolicyInvalid("spec.jobImage: required when spec.executor is job")
    db = spec.database
    args = [
        "backup", "run",
        "--host", database_host(db, namespace), "--port", str(db.port), "--user", db.user, "--dbname", db.database,
        "--sslmode", db.sslmode, "--format", spec.format.value, "--label", policy,
    ]
    if spec.compression_level is not None:
        args += ["--compression-level", str(spec.compression_level)]
    args += ["--verify-integrity"] if spec.verify.integrity else ["--no-verify-integrity"]
    if spec.verify.test_restore:
        args.append("--test-restore")
    env: list[dict[str, Any]] = []
    if db.password_secret_ref is not None:
        env.append({"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {
            "name": db.password_secret_ref.name, "key": db.password_secret_ref.key}}})
    # the root filesystem is read-only; pg_dump's stderr is spooled to a temporary file
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108  (a private emptyDir)
    if spec.storage.filesystem is not None:
        if not spec.job_volume_claim_name:
            raise PolicyInvalid("spec.jobVolumeClaimName: required when spec.executor is job with filesystem storage")
        args += ["--storage-path", spec.storage.filesystem.path]
        volumes.append({"name": "backups", "persistentVolumeClaim": {"claimName": spec.job_volume_claim_name}})
        mounts.append({"name": "backups", "mountPath": spec.storage.filesystem.path})
    elif spec.storage.s3 is not None:
        s3 = spec.storage.s3
        args += ["--s3-bucket", s3.bucket, "--s3-prefix", s3.prefix, "--s3-region", s3.region]
        if s3.endpoint:
            args += ["--s3-endpoint", s3.endpoint]
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": s3.credentials_secret_ref, "key": key}}})
    labels = {"app.kubernetes.io/managed-by": "tradesense-operator", POLICY_LABEL: policy}
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
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
            "backoffLimit": 0,  # a failed dump is reported, not silently retried over the next schedule slot
            "activeDeadlineSeconds": spec.backup_timeout_seconds,
            "ttlSecondsAfterFinished": JOB_TTL_SECONDS,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "backup",
                        "image": spec.job_image,
                        "args": args,
                        "env": env,
                        "volumeMounts": mounts,
                        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}},
                    }],
                    "volumes": volumes,
                },
            },
        },
    }


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
