"""BackupPolicy (short name `bp`): scheduled, checksummed, verified pg_dump backups with retention.

Owns the wire format and its field-level validation; must not do I/O or hold backup logic (domain/backups and
services/backups do).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Self

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from tradesense_operator.api.v1alpha1.common import ApiModel, Condition, DatabaseConnection, list_map
from tradesense_operator.api.v1alpha1.pitr import PointInTimeSpec, PointInTimeStatus, RestoreMode

KIND = "BackupPolicy"
PLURAL = "backuppolicies"
SINGULAR = "backuppolicy"
SHORT_NAMES = ["bp"]

CRON = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$"
DURATION = r"^([0-9]+(s|m|h|d|w))+$"


class BackupFormat(StrEnum):
    """plain-gzip is the runbook's `pg_dump | gzip > .sql.gz`; custom is pg_dump's own archive.

    plain-zstd is the same SQL compressed with multi-threaded zstd (`zstd -dc | psql` restores it);
    directory is `pg_dump -Fd -j N` (one checksummed file per table, restored by `pg_restore -j N`);
    binary is binary COPY of table chunks in one snapshot, zstd-compressed, loaded by N sessions.
    """

    PLAIN_GZIP = "plain-gzip"
    CUSTOM = "custom"
    PLAIN_ZSTD = "plain-zstd"
    DIRECTORY = "directory"
    BINARY = "binary"


class Executor(StrEnum):
    """Run pg_dump inside the operator (inline) or as a Kubernetes Job from the operator image."""

    INLINE = "inline"
    JOB = "job"


class FilesystemStorage(ApiModel):
    """A directory, typically a PVC mounted into the operator."""

    path: str = Field(min_length=1, max_length=4096, pattern=r"^/", description="Absolute directory path.")


class S3Storage(ApiModel):
    """S3-compatible object storage; credentials come from a Secret."""

    endpoint: str | None = Field(default=None, max_length=2048, pattern=r"^https?://",
                                 description="Endpoint URL for non-AWS services (MinIO, Ceph, …).")
    bucket: str = Field(min_length=3, max_length=63, description="Bucket name.")
    prefix: str = Field(default="", max_length=1024, description="Key prefix, e.g. tradesense/prod/.")
    region: str = Field(default="us-east-1", max_length=64, description="Region.")
    credentials_secret_ref: str = Field(min_length=1, max_length=253,
                                        description="Secret with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.")


STORAGE_EXACTLY_ONE = "exactly one of filesystem or s3 must be set"


class StorageSpec(ApiModel):
    """Exactly one of filesystem or s3."""

    # The same rule in-cluster (CEL in the CRD) and in the CLI/handlers (the validator below).
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "has(self.filesystem) != has(self.s3)", "message": STORAGE_EXACTLY_ONE},
    ]})

    filesystem: FilesystemStorage | None = Field(default=None, description="Filesystem (PVC) storage.")
    s3: S3Storage | None = Field(default=None, description="S3-compatible object storage.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.filesystem is None) == (self.s3 is None):
            raise ValueError(STORAGE_EXACTLY_ONE)
        return self


class RetentionSpec(ApiModel):
    """Which backups to keep; the newest verified backup is never deleted whatever these say."""

    keep_last: int | None = Field(default=7, ge=1, le=10000, description="Keep at most this many successful backups.")
    max_age: str | None = Field(default=None, pattern=DURATION, description="Delete backups older than this, e.g. 30d.")


class VerifySpec(ApiModel):
    """How each backup is verified after it is written."""

    integrity: bool = Field(default=True, description="Re-read the file, decompress it and compare its sha256.")
    test_restore: bool = Field(default=False,
                               description="Restore into a scratch database, compare per-table row counts, drop it.")


class MaintenanceSpec(ApiModel):
    """Optional cron schedules for the runbook's maintenance tasks."""

    vacuum_analyze: str | None = Field(default=None, pattern=CRON, description="Cron for VACUUM ANALYZE.")
    analyze: str | None = Field(default=None, pattern=CRON, description="Cron for ANALYZE.")
    reindex: str | None = Field(default=None, pattern=CRON, description="Cron for REINDEX DATABASE.")


LEVEL_RANGE = "compressionLevel: 0-9 for gzip formats (plain-gzip, custom, directory), 1-19 for zstd (plain-zstd, binary)"
ZSTD_FORMATS = (BackupFormat.PLAIN_ZSTD, BackupFormat.BINARY)
PHYSICAL_RESTORE_JOB = ("pointInTime.restore.mode physical runs a Job: it needs jobImage, and jobVolumeClaimName "
                        "with filesystem storage")


class BackupPolicySpec(ApiModel):
    """Desired backup behaviour for one database."""

    # The level's range depends on the format: in-cluster (CEL) and in the CLI/handlers (the validator below).
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "!has(self.compressionLevel) || (has(self.format) && self.format in ['plain-zstd', 'binary'] ? "
                 "self.compressionLevel >= 1 : self.compressionLevel <= 9)", "message": LEVEL_RANGE},
        {"rule": "!has(self.pointInTime) || !has(self.pointInTime.restore) || !has(self.pointInTime.restore.mode) || "
                 "self.pointInTime.restore.mode != 'physical' || (has(self.jobImage) && "
                 "(!has(self.storage.filesystem) || has(self.jobVolumeClaimName)))", "message": PHYSICAL_RESTORE_JOB},
    ]})

    database: DatabaseConnection = Field(default_factory=DatabaseConnection, description="Database to back up.")
    schedule: str = Field(default="0 2 * * *", pattern=CRON, description="Cron schedule (5 fields or @daily …).")
    time_zone: str | None = Field(default=None, max_length=64, description="IANA time zone for the schedule.")
    starting_deadline_seconds: int | None = Field(
        default=None, ge=0, description="Skip a missed run when more than this late (like CronJob)."
    )
    suspend: bool = Field(default=False, description="Stop scheduling new backups.")
    format: BackupFormat = Field(default=BackupFormat.PLAIN_GZIP, description="Dump format.")
    compression_level: int | None = Field(
        default=None, ge=0, le=19,
        description="Compression level; unset = the format's default (gzip 6 as the runbook, zstd 1). "
                    "gzip/zlib formats 0-9 (0 = none), plain-zstd and binary 1-19.",
    )
    storage: StorageSpec = Field(description="Where backups go.")
    retention: RetentionSpec = Field(default_factory=RetentionSpec, description="What to keep.")
    verify: VerifySpec = Field(default_factory=VerifySpec, description="Verification after each backup.")
    maintenance: MaintenanceSpec = Field(default_factory=MaintenanceSpec, description="Maintenance schedules.")
    executor: Executor = Field(default=Executor.INLINE, description="inline or job.")
    job_image: str | None = Field(default=None, max_length=512, description="Image for executor job.")
    job_volume_claim_name: str | None = Field(
        default=None, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="executor job with filesystem storage: the PVC mounted at storage.filesystem.path in the Job.",
    )
    backup_timeout_seconds: int = Field(
        default=21600, ge=60, le=604800,
        description="A backup running longer than this is presumed dead: its lock is broken and the run reported failed.",
    )
    point_in_time: PointInTimeSpec = Field(default_factory=PointInTimeSpec,
                                           description="Continuous WAL archiving and base backups (PITR).")

    @model_validator(mode="after")
    def _physical_restore_has_a_job(self) -> Self:
        if self.point_in_time.restore.mode is RestoreMode.PHYSICAL and (
                not self.job_image or (self.storage.filesystem is not None and not self.job_volume_claim_name)):
            raise ValueError(PHYSICAL_RESTORE_JOB)
        return self

    @field_validator("compression_level")
    @classmethod
    def _level_fits_format(cls, level: int | None, info: ValidationInfo) -> int | None:
        zstd = info.data.get("format") in ZSTD_FORMATS
        if level is not None and not (1 <= level <= 19 if zstd else level <= 9):
            raise ValueError(LEVEL_RANGE)
        return level


class BackupRecord(ApiModel):
    """One backup in the inventory."""

    id: str = Field(description="Backup id <policy>_<YYYYmmdd>_<HHMMSS> (UTC start); the stored file's name stem.")
    started_at: datetime = Field(description="When pg_dump started.")
    finished_at: datetime | None = Field(default=None, description="When the file and its manifest were durable.")
    bytes: int = Field(default=0, ge=0, description="Stored (compressed) size in bytes.")
    sha256: str = Field(default="", description="sha256 of the stored file; re-checked by verification and restores.")
    location: str = Field(default="", description="Path or s3:// URL of the stored file.")
    format: BackupFormat = Field(default=BackupFormat.PLAIN_GZIP, description="Dump format.")
    verified: bool = Field(default=False, description="Passed the verification configured when it ran.")
    duration_seconds: float = Field(default=0.0, ge=0, description="Wall time of dump, compression and storage.")


class BackupPolicyStatus(ApiModel):
    """Observed state, owned by the operator."""

    last_schedule_time: datetime | None = Field(
        default=None, description="Newest scheduled time accounted for (run, skipped as overlapping, or missed)."
    )
    next_schedule_time: datetime | None = Field(default=None, description="Next due run.")
    last_successful_backup: datetime | None = Field(default=None, description="Finish time of the newest success.")
    last_backup_size: str | None = Field(default=None, description="Human-readable size of the newest success.")
    active_backup: str | None = Field(default=None, description="Id of a backup in progress (the one-at-a-time lock).")
    active_backup_started_at: datetime | None = Field(
        default=None, description="When the backup in progress started; a lock older than the stale limit is broken."
    )
    active_backup_holder: str | None = Field(
        default=None, max_length=64,
        description="Operator instance running the inline backup; a lock held by an instance that has restarted is broken.",
    )
    last_run_now_token: str | None = Field(
        default=None, description="Value of the ops.tradesense.io/run-now annotation last handled (handled once)."
    )
    last_failure: str | None = Field(default=None, max_length=2048, description="Why the last backup run failed.")
    backups: list[BackupRecord] = Field(default_factory=list, max_length=200, description="Bounded inventory.")
    last_maintenance: dict[str, datetime] = Field(default_factory=dict, description="Last run per maintenance task.")
    observed_generation: int | None = Field(default=None, description="Spec generation last acted on.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready, LastBackupSucceeded, BackupStale.",
                                        json_schema_extra=list_map("type"))
    point_in_time: PointInTimeStatus | None = Field(default=None, description="Recoverable window and archiver lag.")


class BackupPolicy(ApiModel):
    """Top-level object."""

    api_version: str = Field(default="ops.tradesense.io/v1alpha1", description="API version.")
    kind: str = Field(default=KIND, description="Kind.")
    metadata: dict[str, object] = Field(default_factory=dict, description="Object metadata.")
    spec: BackupPolicySpec = Field(description="Desired behaviour.")
    status: BackupPolicyStatus | None = Field(default=None, description="Observed state.")

