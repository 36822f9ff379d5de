"""Point-in-time recovery for one BackupPolicy inside the operator: owns its archiver, schedules base
backups and test restores, applies PITR retention, and reports the window, lag and WALArchiving.

The archiver pass runs every few seconds; base backups and test restores run as background tasks so a
long pg_basebackup never stops WAL from being moved into storage. Status is written with the
resourceVersion it was read at (the backup reconcile writes the same object); a conflict is retried on
the next pass. Owns orchestration only: decisions are in domain/backups/pitr, mechanics in the
archiver, base_backup, pitr_restore and pitr_retention services.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tradesense_operator.api.v1alpha1.backup import BackupPolicyStatus
from tradesense_operator.api.v1alpha1.pitr import PointInTimeSpec, PointInTimeStatus
from tradesense_operator.clients.errors import ClientError, Conflict
from tradesense_operator.clients.kube import BACKUP_POLICIES
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.status_writer import patch_status
from tradesense_operator.domain.backups import pitr
from tradesense_operator.domain.backups.schedule import CronSchedule, decide_due
from tradesense_operator.domain.conditions import set_condition
from tradesense_operator.services.backups import pitr_restore
from tradesense_operator.services.backups.base_backup import take_base_backup
from tradesense_operator.services.backups.pitr_retention import apply_pitr_retention
from tradesense_operator.services.backups.policy import PolicyContext, PolicyInvalid, read_secret_key, resolve
from tradesense_operator.services.backups.reconcile import validate_spec
from tradesense_operator.services.backups.wal_archive import StorageFull
from tradesense_operator.services.backups.wal_archiver import ArchiverReport, WalArchiver
from tradesense_operator.services.runtime import Runtime

log = logging.getLogger(__name__)

CONDITION = "WALArchiving"


def staging_root() -> Path:
    """Where pg_receivewal writes before segments reach storage (lost on restart: the slot re-sends)."""
    return Path(os.environ.get("TRADESENSE_WAL_STAGING", Path(tempfile.gettempdir()) / "tradesense-wal"))


async def replication_target(runtime: Runtime, ctx: PolicyContext, spec: PointInTimeSpec) -> PgTarget:
    """The policy's server, logged in as the replication role (password from its Secret, if any)."""
    password = None
    if spec.replication_password_secret_ref is not None:
        ref = spec.replication_password_secret_ref
        password = await read_secret_key(runtime.kube, ctx.namespace, ref.name, ref.key,
                                         field="spec.pointInTime.replicationPasswordSecretRef")
    base = ctx.target
    return PgTarget(host=base.host, port=base.port, dbname=base.dbname, user=spec.replication_user,
                    password=password, sslmode=base.sslmode)


def status_of(report: ArchiverReport, previous: PointInTimeStatus | None, *, restarts: int) -> PointInTimeStatus:
    """status.pointInTime from an archiver pass (schedule bookkeeping carried over)."""
    carried = previous or PointInTimeStatus()
    window = report.window
    return carried.model_copy(update={
        "earliest_restorable_time": window.earliest if window else None,
        "latest_restorable_time": window.latest if window else None,
        "archived_lsn": str(report.archived_lsn) if report.archived_lsn else None,
        "server_lsn": str(report.server_lsn) if report.server_lsn else None,
        "lag_seconds": report.health.lag_seconds,
        "lag_bytes": report.health.lag_bytes,
        "segments": report.segments,
        "base_backups": report.base_backups[:100],
        "gaps": [g.describe() for g in report.gaps][:20],
        "archiver_restarts": restarts,
    })


@dataclass
class PitrSupervisor:
    """The per-policy owner of the archiver; `step()` is one pass, `close()` stops pg_receivewal."""

    runtime: Runtime
    ctx: PolicyContext
    spec: PointInTimeSpec
    archiver: WalArchiver
    time_zone: str = "UTC"
    run_as: str | None = None
    background: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    async def step(self, body: Mapping[str, Any]) -> ArchiverReport:
        report = await asyncio.to_thread(self.archiver.tick)
        status = _pit_status(body)
        now = self.runtime.clock.now()
        created = _created_at(body, now)
        if not report.base_backups and "base" not in self.background:
            self._start("base", self._base_backup())
        base = decide_due(CronSchedule(self.spec.base_backup_schedule, self.time_zone,
                                       field="spec.pointInTime.baseBackupSchedule"),
                          now=now, last_schedule_time=status.last_base_backup_schedule_time if status else None,
                          created_at=created, starting_deadline_seconds=None)
        verify = None
        if self.spec.verify_schedule:
            verify = decide_due(CronSchedule(self.spec.verify_schedule, self.time_zone,
                                             field="spec.pointInTime.verifySchedule"),
                                now=now, last_schedule_time=status.last_verify_schedule_time if status else None,
                                created_at=created, starting_deadline_seconds=None)
        pit = status_of(report, status, restarts=self.archiver.restarts)
        if base.consumed is not None:
            pit.last_base_backup_schedule_time = base.consumed
            if base.run_for is not None:
                self._start("base", self._base_backup())
        if verify is not None and verify.consumed is not None:
            pit.last_verify_schedule_time = verify.consumed
            if verify.run_for is not None:
                self._start("verify", self._verify())
        if "verified" in self.notes:
            pit.last_verification, pit.last_verification_result = self.notes.pop("verified")
        ok, reason, message = pitr.archiving_condition(report.health, warning_seconds=self.spec.lag_warning_seconds,
                                                       warning_bytes=self.spec.lag_warning_bytes,
                                                       limit_seconds=self.spec.lag_critical_seconds)
        self._export(ok, reason, pit)
        await self._write(body, pit, ok, reason, message)
        return report

    def _export(self, ok: bool, reason: str, pit: PointInTimeStatus) -> None:
        """Gauges the WAL-archiving alert rules read (one reason series at a time)."""
        metrics, ns, name = self.runtime.metrics, self.ctx.namespace, self.ctx.name
        previous = self.notes.get("reason")
        if previous is not None and previous != reason:
            metrics.wal_archiving.remove(ns, name, previous)
        self.notes["reason"] = reason
        metrics.wal_archiving.labels(ns, name, reason).set(1 if ok else 0)
        metrics.wal_max_lag_seconds.labels(ns, name).set(self.spec.lag_critical_seconds)
        if pit.lag_seconds is not None:
            metrics.wal_lag_seconds.labels(ns, name).set(pit.lag_seconds)
        if pit.lag_bytes is not None:
            metrics.wal_lag_bytes.labels(ns, name).set(pit.lag_bytes)

    def _start(self, name: str, work: Any) -> None:
        running = self.background.get(name)
        if running is not None and not running.done():
            work.close()  # one of each at a time; the schedule slot is still accounted for
            return
        self.background[name] = asyncio.get_running_loop().create_task(work)

    async def _base_backup(self) -> None:
        try:
            info = await asyncio.to_thread(take_base_backup, self.archiver.target, self.ctx.store, self.ctx.label,
                                           staging=self.archiver.staging.parent / "base", clock=self.runtime.clock)
            await asyncio.to_thread(apply_pitr_retention, self.ctx.store, self.ctx.label,
                                    keep_base_backups=self.spec.keep_base_backups)
            log.info("base backup %s of %s/%s stored", info.id, self.ctx.namespace, self.ctx.name)
        except (ClientError, OSError, StorageFull) as exc:
            log.warning("base backup of %s/%s failed: %s", self.ctx.namespace, self.ctx.name, exc)

    async def _verify(self) -> None:
        workdir = Path(tempfile.mkdtemp(prefix="pitr-verify-"))
        try:
            await asyncio.to_thread(self.archiver.check_archive)
            result = await asyncio.to_thread(
                pitr_restore.trial_restore_latest, self.ctx.store, self.ctx.label, now=self.runtime.clock.now(),
                workdir=workdir, dbname=self.ctx.target.dbname, run_as=self.run_as)
        finally:
            await asyncio.to_thread(_remove_tree, workdir)
        when = self.runtime.clock.now()
        self.notes["verified"] = (when if result.ok else None, ("ok: " if result.ok else "failed: ") + result.detail)

    async def _write(self, body: Mapping[str, Any], pit: PointInTimeStatus, ok: bool, reason: str,
                     message: str) -> None:
        meta = body["metadata"]
        current = BackupPolicyStatus.model_validate(
            {k: v for k, v in dict(body.get("status") or {}).items() if k == "conditions"})
        conditions = set_condition(current.conditions, type_=CONDITION, status=ok, reason=reason, message=message,
                                   now=self.runtime.clock.now(), observed_generation=meta.get("generation"))
        fields = {"pointInTime": pit.to_api(), "conditions": [c.to_api() for c in conditions]}
        try:
            await patch_status(self.runtime.kube, BACKUP_POLICIES, str(meta["namespace"]), str(meta["name"]), fields,
                               resource_version=meta.get("resourceVersion"))
        except Conflict:
            log.debug("status of %s changed meanwhile; next pass rewrites it", meta["name"])

    async def close(self) -> None:
        for task in self.background.values():
            task.cancel()
        await asyncio.to_thread(self.archiver.stop)
        self._forget_metrics()

    def _forget_metrics(self) -> None:
        """Drop this policy's series: a deleted or disabled policy must not keep a stale lag alert firing."""
        metrics, ns, name = self.runtime.metrics, self.ctx.namespace, self.ctx.name
        if (reason := self.notes.pop("reason", None)) is not None:
            metrics.wal_archiving.remove(ns, name, reason)
        for gauge in (metrics.wal_lag_seconds, metrics.wal_lag_bytes, metrics.wal_max_lag_seconds):
            gauge.remove(ns, name)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _pit_status(body: Mapping[str, Any]) -> PointInTimeStatus | None:
    raw = (body.get("status") or {}).get("pointInTime")
    try:
        return PointInTimeStatus.model_validate(raw) if raw else None
    except ValueError:
        return None


def _created_at(body: Mapping[str, Any], now: datetime) -> datetime:
    stamp = body["metadata"].get("creationTimestamp")
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else now


async def build_supervisor(runtime: Runtime, body: Mapping[str, Any]) -> PitrSupervisor:
    """Validate the policy, resolve its store and connections, and create (not start) the archiver."""
    meta = body["metadata"]
    valid = validate_spec(body.get("spec") or {})
    spec = valid.spec.point_in_time
    if not spec.enabled:
        raise PolicyInvalid("spec.pointInTime.enabled: false")
    ctx = await resolve(runtime.kube, str(meta["namespace"]), str(meta["name"]), valid.spec)
    target = await replication_target(runtime, ctx, spec)
    staging = staging_root() / f"{ctx.namespace}.{ctx.name}" / "wal"
    archiver = WalArchiver(target=target, store=ctx.store, label=ctx.label, staging=staging, slot=spec.slot_name,
                           clock=runtime.clock)
    return PitrSupervisor(runtime, ctx, spec, archiver, time_zone=valid.spec.time_zone or "UTC")
