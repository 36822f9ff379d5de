"""Violations of each cross-field rule, shared by the model tests and the CRD (CEL) admission tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from tradesense_operator.api.v1alpha1 import backup, common, incident, pitr, scaling


def scaling_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "targetRef": {"name": "backend"},
        "minReplicas": 3,
        "maxReplicas": 10,
        "metrics": [{"name": "requests", "preset": "request-rate", "target": {"value": 50}}],
    }
    spec.update(overrides)
    return spec


def _backup_spec(storage: dict[str, Any]) -> dict[str, Any]:
    return {"storage": storage}


@dataclass(frozen=True)
class Case:
    """One CEL rule's violation: the model that must reject it and where the CRD carries the rule."""

    name: str
    model: type[BaseModel]
    data: dict[str, Any]
    loc: str  # pydantic's error location ("" = the model itself), camelCase like the wire
    message: str  # the module constant both the validator and the CEL rule use
    kind: str
    path: str  # schema node of the CEL rule


CASES = [
    Case("min-gt-max", scaling.ScalingPolicySpec, scaling_spec(minReplicas=11), "", scaling.MIN_LE_MAX,
        "ScalingPolicy", ".spec"),
    Case("fallback-above-max", scaling.ScalingPolicySpec, scaling_spec(fallback={"replicas": 11}), "",
        scaling.FALLBACK_IN_BOUNDS, "ScalingPolicy", ".spec"),
    Case("fallback-below-min", scaling.ScalingPolicySpec, scaling_spec(fallback={"replicas": 2}), "",
        scaling.FALLBACK_IN_BOUNDS, "ScalingPolicy", ".spec"),
    Case("metric-neither", scaling.ScalingPolicySpec,
        scaling_spec(metrics=[{"name": "m", "target": {"value": 1}}]), "metrics.0",
        scaling.METRIC_EXACTLY_ONE, "ScalingPolicy", ".spec.metrics[*]"),
    Case("metric-both", scaling.ScalingPolicySpec,
        scaling_spec(metrics=[{"name": "m", "preset": "cpu", "query": "up", "target": {"value": 1}}]), "metrics.0",
        scaling.METRIC_EXACTLY_ONE, "ScalingPolicy", ".spec.metrics[*]"),
    Case("workers-min-gt-max", scaling.ScalingPolicySpec,
        scaling_spec(workers={"totalBudget": 40, "min": 9, "max": 8}), "workers",
        scaling.WORKERS_MIN_LE_MAX, "ScalingPolicy", ".spec.workers"),
    Case("storage-neither", backup.BackupPolicySpec, _backup_spec({}), "storage",
        backup.STORAGE_EXACTLY_ONE, "BackupPolicy", ".spec.storage"),
    Case("storage-both", backup.BackupPolicySpec,
        _backup_spec({"filesystem": {"path": "/backups"}, "s3": {"bucket": "bkt", "credentialsSecretRef": "s3"}}),
        "storage", backup.STORAGE_EXACTLY_ONE, "BackupPolicy", ".spec.storage"),
    Case("db-host-and-service", backup.BackupPolicySpec,
        {**_backup_spec({"filesystem": {"path": "/b"}}), "database": {"host": "db", "serviceName": "postgres"}},
        "database", common.HOST_XOR_SERVICE, "BackupPolicy", ".spec.database"),
    Case("gzip-level-above-9", backup.BackupPolicySpec,
        {**_backup_spec({"filesystem": {"path": "/b"}}), "format": "plain-gzip", "compressionLevel": 12},
        "compressionLevel", backup.LEVEL_RANGE, "BackupPolicy", ".spec"),
    Case("zstd-level-0", backup.BackupPolicySpec,
        {**_backup_spec({"filesystem": {"path": "/b"}}), "format": "plain-zstd", "compressionLevel": 0},
        "compressionLevel", backup.LEVEL_RANGE, "BackupPolicy", ".spec"),
    Case("redis-host-and-service", incident.TradeSenseIncidentSpec,
        {"runbook": "high-memory", "target": {"redisConnection": {"host": "r", "serviceName": "redis"}}},
        "target.redisConnection", common.HOST_XOR_SERVICE, "TradeSenseIncident", ".spec.target.redisConnection"),
    Case("custom-without-steps", incident.TradeSenseIncidentSpec, {"runbook": "custom"}, "",
        incident.STEPS_IFF_CUSTOM, "TradeSenseIncident", ".spec"),
    Case("steps-without-custom", incident.TradeSenseIncidentSpec,
        {"runbook": "site-down", "steps": [{"id": "a", "action": "smoke-test"}]}, "",
        incident.STEPS_IFF_CUSTOM, "TradeSenseIncident", ".spec"),
    Case("pitr-lag-order", backup.BackupPolicySpec,
        {**_backup_spec({"filesystem": {"path": "/b"}}),
         "pointInTime": {"enabled": True, "lagWarningSeconds": 600, "lagCriticalSeconds": 60}},
        "pointInTime", pitr.LAG_ORDER, "BackupPolicy", ".spec.pointInTime"),
    Case("pitr-physical-without-volume", backup.BackupPolicySpec,
        {**_backup_spec({"filesystem": {"path": "/b"}}), "pointInTime": {"restore": {"mode": "physical"}}},
        "pointInTime.restore", pitr.PHYSICAL_NEEDS, "BackupPolicy", ".spec.pointInTime.restore"),
    Case("pitr-data-directory-outside-mount", backup.BackupPolicySpec,
        {**_backup_spec({"filesystem": {"path": "/b"}}),
         "pointInTime": {"restore": {"mountPath": "/var/lib/postgresql/data", "dataDirectory": "/pgdata"}}},
        "pointInTime.restore", pitr.DATA_UNDER_MOUNT, "BackupPolicy", ".spec.pointInTime.restore"),
    Case("pitr-physical-without-job-image", backup.BackupPolicySpec,
        {**_backup_spec({"filesystem": {"path": "/b"}}), "pointInTime": {"restore": {
            "mode": "physical", "volumeClaimName": "pgdata", "workload": {"name": "postgres"}}}},
        "", backup.PHYSICAL_RESTORE_JOB, "BackupPolicy", ".spec"),
    Case("restore-backup-and-target-time", incident.TradeSenseIncidentSpec,
        {"runbook": "restore-database", "parameters": {"backupId": "b1", "targetTime": "latest"}}, "parameters",
        incident.PITR_ONE_SOURCE, "TradeSenseIncident", ".spec.parameters"),
    Case("restore-target-time-and-lsn", incident.TradeSenseIncidentSpec,
        {"runbook": "restore-database", "parameters": {"targetTime": "2026-01-10T12:00:00Z", "targetLSN": "0/1"}},
        "parameters", incident.PITR_ONE_SOURCE, "TradeSenseIncident", ".spec.parameters"),
]
