"""BackupPolicy `spec.pointInTime` and its status: continuous WAL archiving plus periodic base backups.

Kept apart from backup.py (the logical-dump API) so the two evolve independently; backup.py only
references these models from its spec and status.
"""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import ConfigDict, Field, model_validator

from tradesense_operator.api.v1alpha1.common import ApiModel, SecretKeyRef

CRON = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$"
SLOT = r"^[a-z0-9_]{1,63}$"
LAG_ORDER = "lagWarningSeconds must be less than lagCriticalSeconds"


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
