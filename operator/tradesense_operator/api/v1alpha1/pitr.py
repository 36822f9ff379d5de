"""BackupPolicy `spec.pointInTime` and its status: continuous WAL archiving plus periodic base backups.

Kept apart from backup.py (the logical-dump API) so the two evolve independently; backup.py only
references these models from its spec and status. Pure data: must not do I/O or decide when to archive
(services/backups/pitr_policy does).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal, Self

from pydantic import ConfigDict, Field, model_validator

from tradesense_operator.api.v1alpha1.common import DNS_SUBDOMAIN, ApiModel, SecretKeyRef

CRON = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$"
SLOT = r"^[a-z0-9_]{1,63}$"
LAG_ORDER = "lagWarningSeconds must be less than lagCriticalSeconds"
PHYSICAL_NEEDS = "restore.mode physical needs volumeClaimName and workload (the database's PVC and its workload)"
DATA_UNDER_MOUNT = "restore.dataDirectory must be a directory below restore.mountPath (e.g. <mountPath>/pgdata)"
ABSOLUTE_PATH = r"^/[^'\"]*$"


class RestoreMode(StrEnum):
    """How a point-in-time restore reaches the database.

    logical: replay into a scratch instance inside the operator, dump the database, load it with the
    runbook's drop/create/load (works with any server; needs PostgreSQL server binaries where the operator
    runs; time grows with the database's logical size). physical: stop the database, restore base backup +
    WAL into its own volume in a Job, start it (replay happens in the database itself; the whole cluster,
    every database on the server, goes back to the target).
    """

    LOGICAL = "logical"
    PHYSICAL = "physical"


WorkloadKind = Literal["Deployment", "StatefulSet"]


class DatabaseWorkload(ApiModel):
    """The Deployment or StatefulSet running PostgreSQL on the data volume (scaled to 0 and back)."""

    kind: WorkloadKind = Field(default="Deployment", description="Deployment or StatefulSet.")
    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="Its name.")


class PointInTimeRestoreSpec(ApiModel):
    """Where a point-in-time restore goes: the logical reload (default) or the database's own volume."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "!has(self.mode) || self.mode != 'physical' || (has(self.volumeClaimName) && has(self.workload))",
         "message": PHYSICAL_NEEDS},
        {"rule": "!has(self.dataDirectory) || self.dataDirectory.startsWith("
                 "(has(self.mountPath) ? self.mountPath : '/var/lib/postgresql/data') + '/')",
         "message": DATA_UNDER_MOUNT},
    ]})

    mode: RestoreMode = Field(default=RestoreMode.LOGICAL, description="logical (scratch instance + reload) or "
                                                                       "physical (a Job restores the volume).")
    volume_claim_name: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN,
                                          description="physical: the PVC holding the database's data directory.")
    mount_path: str = Field(default="/var/lib/postgresql/data", max_length=1024, pattern=ABSOLUTE_PATH,
                            description="physical: where the database's pod mounts that PVC (the Job mounts it "
                                        "at the same path, so restore_command's paths hold in both).")
    data_directory: str | None = Field(default=None, max_length=1024, pattern=ABSOLUTE_PATH,
                                       description="physical: PGDATA, below mountPath (default <mountPath>/pgdata).")
    workload: DatabaseWorkload | None = Field(default=None,
                                              description="physical: the workload stopped during the restore.")
    run_as_user: int = Field(default=999, ge=1, le=2147483647,
                             description="physical: uid the database runs as (999 in the postgres image); the Job "
                                         "writes the data directory as this user.")
    timeout_seconds: int = Field(default=3000, ge=60, le=3300,
                                 description="physical: the Job's activeDeadlineSeconds (below the runbook restore "
                                             "step's 3600 s, which also covers stopping and starting the database).")

    @model_validator(mode="after")
    def _physical_complete(self) -> Self:
        if self.mode is RestoreMode.PHYSICAL and (self.volume_claim_name is None or self.workload is None):
            raise ValueError(PHYSICAL_NEEDS)
        if self.data_directory is not None and not self.data_directory.startswith(self.mount_path.rstrip("/") + "/"):
            raise ValueError(DATA_UNDER_MOUNT)
        return self

    @property
    def pgdata(self) -> str:
        """The data directory the Job restores into."""
        return self.data_directory or self.mount_path.rstrip("/") + "/pgdata"

    @property
    def wal_directory(self) -> str:
        """Fetched WAL, on the same volume so the database's restore_command finds it after the Job."""
        return self.mount_path.rstrip("/") + "/tradesense-pitr-wal"


class PointInTimeSpec(ApiModel):
    """Stream WAL over a replication connection (pg_receivewal with a slot) and take base backups.

    The server needs `wal_level` replica (PostgreSQL's default), a free `max_wal_senders` slot and a
    role with REPLICATION that pg_hba.conf admits to the `replication` pseudo-database.
    """

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "self.lagWarningSeconds < self.lagCriticalSeconds", "message": LAG_ORDER},
    ]})

    enabled: bool = Field(default=False, description="Archive WAL continuously and take base backups.")
    replication_user: str = Field(default="replicator", min_length=1, max_length=63,
                                  description="Role with the REPLICATION attribute used by pg_receivewal/pg_basebackup.")
    replication_password_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the replication role's password (none: trust/cert auth).")
    slot_name: str = Field(default="tradesense_archiver", pattern=SLOT,
                           description="Physical replication slot that holds WAL while the archiver is down.")
    base_backup_schedule: str = Field(default="0 1 * * *", pattern=CRON,
                                      description="Cron schedule for pg_basebackup (spec.timeZone applies).")
    keep_base_backups: int = Field(default=2, ge=1, le=100,
                                   description="Base backups kept; WAL older than the oldest kept one is deleted.")
    lag_warning_seconds: int = Field(default=60, ge=1, le=86400,
                                     description="WALArchiving turns False (FallingBehind) beyond this lag.")
    lag_critical_seconds: int = Field(
        default=900, ge=2, le=604800,
        description="The policy's RPO limit: beyond it WALArchiving says so and TradeSenseWALArchiveBehind fires "
                    "(exported as tradesense_operator_wal_archive_max_lag_seconds, which the alert compares against).")
    lag_warning_bytes: int = Field(default=256 * 1024 * 1024, ge=1,
                                   description="WALArchiving turns False (FallingBehind) beyond this many bytes.")
    verify_schedule: str | None = Field(
        default=None, pattern=CRON,
        description="Cron for a test restore of the newest base backup plus WAL into a throwaway instance.")
    restore: PointInTimeRestoreSpec = Field(
        default_factory=PointInTimeRestoreSpec,
        description="How the runbooks restore a point in time: logical (default) or physical (the volume).")

    @model_validator(mode="after")
    def _lag_order(self) -> Self:
        if self.lag_warning_seconds >= self.lag_critical_seconds:
            raise ValueError(LAG_ORDER)
        return self


class PointInTimeStatus(ApiModel):
    """What the archive can restore right now and how far behind the server it is."""

    earliest_restorable_time: datetime | None = Field(
        default=None, description="Oldest moment restorable (the oldest usable base backup's end).")
    latest_restorable_time: datetime | None = Field(
        default=None, description="Every transaction committed before this moment is archived.")
    archived_lsn: str | None = Field(default=None, description="End of the continuously archived WAL.")
    server_lsn: str | None = Field(default=None, description="Server's current WAL position at the last sample.")
    lag_seconds: float | None = Field(default=None, ge=0, description="Now minus latestRestorableTime.")
    lag_bytes: int | None = Field(default=None, ge=0, description="Server WAL position minus archived position.")
    segments: int = Field(default=0, ge=0, description="WAL segments in the archive.")
    base_backups: list[str] = Field(default_factory=list, max_length=100,
                                    description="Base backup ids in the archive, newest first.")
    gaps: list[str] = Field(default_factory=list, max_length=20, description="Missing WAL segment ranges.")
    last_verification: datetime | None = Field(default=None, description="When a test restore last succeeded.")
    last_verification_result: str | None = Field(default=None, max_length=2048,
                                                 description="What the last test restore restored, or why it failed.")
    last_base_backup_schedule_time: datetime | None = Field(
        default=None, description="Newest base-backup scheduled time accounted for.")
    last_verify_schedule_time: datetime | None = Field(
        default=None, description="Newest verification scheduled time accounted for.")
    archiver_restarts: int = Field(default=0, ge=0, description="pg_receivewal restarts since the operator started.")
