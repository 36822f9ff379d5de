"""One scheduler tick for one BackupPolicy: decide, run, verify, retain, maintain, report.

Everything is decided from the object (spec, status, annotations) and the injected clock, so a tick
is idempotent and a restarted operator resumes exactly: `lastScheduleTime` says which scheduled run
was last accounted for, `activeBackup` (+ its start) is the one-at-a-time lock, `lastRunNowToken` makes
the run-now annotation fire once. Runs that come due while a backup is still running are skipped and
reported (CronJob's concurrencyPolicy: Forbid).

Owns the tick's order and its status; must not compute schedules, names or the inventory bound itself
(domain.backups) nor stream the dump (dump_pipeline).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from tradesense_operator.api.v1alpha1.backup import BackupPolicySpec, BackupPolicyStatus, BackupRecord, Executor
from tradesense_operator.api.v1alpha1.common import ConditionStatus
from tradesense_operator.clients.errors import ClientError, Conflict, NotFound
from tradesense_operator.clients.kube import BACKUP_POLICIES, JOBS, ObjectRef
from tradesense_operator.clients.postgres import PgConnectionInfo, PostgresClient
from tradesense_operator.clients.status_writer import write_status
from tradesense_operator.domain.backups.durations import parse_duration
from tradesense_operator.domain.backups.inventory import LockState, bound_inventory, lock_state
from tradesense_operator.domain.backups.manifest import BackupManifest
from tradesense_operator.domain.backups.schedule import CronSchedule, DueDecision, ScheduleError, decide_due, is_stale
from tradesense_operator.domain.conditions import get_condition, set_condition
from tradesense_operator.services.backups import dump_pipeline, jobs
from tradesense_operator.services.backups.dump_pipeline import BackupFailed, BackupRequest
from tradesense_operator.services.backups.policy import PolicyContext, PolicyInvalid, resolve
from tradesense_operator.services.backups.restore import SAFETY_LABEL_SUFFIX
from tradesense_operator.services.backups.retention import apply_retention, sweep_leftovers
from tradesense_operator.services.runtime import Runtime

log = logging.getLogger(__name__)

RUN_NOW_ANNOTATION = "ops.tradesense.io/run-now"
INVENTORY_LIMIT = 50
MaintenanceTask = Literal["vacuum-analyze", "analyze", "reindex"]
MAINTENANCE_TASKS: tuple[tuple[str, str, MaintenanceTask], ...] = (
    ("vacuum_analyze", "vacuumAnalyze", "vacuum-analyze"),
    ("analyze", "analyze", "analyze"),
    ("reindex", "reindex", "reindex"),
)
EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class ValidPolicy:
    """A spec that passed every check the schema cannot express."""

    spec: BackupPolicySpec
    schedule: CronSchedule
    max_age: timedelta | None
    maintenance: dict[MaintenanceTask, CronSchedule]


def validate_spec(raw: Mapping[str, Any]) -> ValidPolicy:
    """Parse and check a spec; PolicyInvalid whose message starts with the offending field."""
    try:
        spec = BackupPolicySpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PolicyInvalid(f"spec.{where}: {first['msg']}") from exc
    try:
        schedule = CronSchedule(spec.schedule, spec.time_zone or "UTC")
        tz = spec.time_zone or "UTC"
        maintenance = {
            task: CronSchedule(expr, tz, field=f"spec.maintenance.{wire}")
            for attr, wire, task in MAINTENANCE_TASKS
            if (expr := getattr(spec.maintenance, attr)) is not None
        }
        max_age = parse_duration(spec.retention.max_age, field="spec.retention.maxAge") if spec.retention.max_age else None
    except (ScheduleError, ValueError) as exc:
        raise PolicyInvalid(str(exc)) from exc
    if (spec.storage.filesystem is None) == (spec.storage.s3 is None):
        raise PolicyInvalid("spec.storage: exactly one of filesystem or s3 is required")
    if spec.executor is Executor.JOB and not spec.job_image:
        raise PolicyInvalid("spec.jobImage: required when spec.executor is job")
    return ValidPolicy(spec, schedule, max_age, maintenance)


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


def record_of(manifest: BackupManifest, location: str) -> BackupRecord:
    """Inventory entry for status."""
    return BackupRecord(
        id=manifest.id, started_at=manifest.started_at, finished_at=manifest.finished_at, bytes=manifest.bytes,
        sha256=manifest.sha256, location=location, format=manifest.format, verified=manifest.verified,
        duration_seconds=manifest.duration_seconds,
    )


_WRITE_ATTEMPTS = 3  # status writes repeated when only metadata/spec moved in between (PolicyPass.write_status)


@dataclass
class PolicyPass:
    """State of one tick: the status being built and the Events to post."""

    runtime: Runtime
    body: Mapping[str, Any]
    status: BackupPolicyStatus
    holder: str = ""
    resource_version: str | None = None
    events: list[tuple[EventType, str, str]] = field(default_factory=list)
    written: Mapping[str, Any] | None = None
    """The policy as the API returned it after this pass's last status write."""

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def generation(self) -> int | None:
        value = self.body["metadata"].get("generation")
        return int(value) if value is not None else None

    @property
    def now(self) -> datetime:
        return self.runtime.clock.now()

    def event(self, type_: EventType, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def condition(self, type_: str, status: ConditionStatus | bool, reason: str, message: str) -> None:
        self.status.conditions = set_condition(self.status.conditions, type_=type_, status=status, reason=reason,
                                               message=message, now=self.now, observed_generation=self.generation)

    async def write_status(self) -> None:
        """Merge-patch the whole status (explicit nulls clear released fields such as the lock).

        The patch carries the resourceVersion the tick decided from, so a concurrent writer (another
        operator instance, a stale cached body) makes it fail with Conflict instead of being overwritten.
        A Conflict whose fresh object still has the status this pass decided from (only metadata or spec
        moved: kopf's finalizer, a label, an edit that the next pass observes) is not a decision lost: the
        write is repeated at the fresh version. Otherwise the finished backup of a long inline pass would be
        dropped with its result, leaving the lock held until it goes stale and the condition saying no backup
        ran.
        """
        decided_from = (self.written if self.written is not None else self.body).get("status") or {}
        for _ in range(_WRITE_ATTEMPTS):
            try:
                answer = await write_status(self.runtime.kube, BACKUP_POLICIES, self.namespace, self.name,
                                            self.status, resource_version=self.resource_version)
                break
            except Conflict:
                fresh = await self.runtime.kube.get_or_none(BACKUP_POLICIES, self.name, self.namespace)
                if fresh is None or (fresh.get("status") or {}) != decided_from:
                    raise
                self.resource_version = str(fresh["metadata"].get("resourceVersion") or "") or None
        else:
            raise Conflict(f"BackupPolicy {self.namespace}/{self.name} kept moving while its status was written")
        self.resource_version = str((answer.get("metadata") or {}).get("resourceVersion") or "") or None
        self.written = answer

    async def flush_events(self) -> None:
        ref = ObjectRef.from_body(self.body)
        for type_, reason, message in self.events:
            try:
                await self.runtime.kube.create_event(ref, type_=type_, reason=reason, message=message, now=self.now)
            except ClientError as exc:
                log.warning("could not post Event %s on %s/%s: %s", reason, self.namespace, self.name, exc)
        self.events.clear()


def _created_at(body: Mapping[str, Any], now: datetime) -> datetime:
    raw = body["metadata"].get("creationTimestamp")
    if not raw:
        return now
    created = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    return min(created, now)


def _load_status(body: Mapping[str, Any]) -> BackupPolicyStatus:
    raw = dict(body.get("status") or {})
    known = {info.alias or name for name, info in BackupPolicyStatus.model_fields.items()}
    try:
        return BackupPolicyStatus.model_validate({k: v for k, v in raw.items() if k in known})
    except ValidationError:
        log.warning("status of a BackupPolicy is unreadable; starting from an empty status")
        return BackupPolicyStatus()


@dataclass(frozen=True)
class PassResult:
    """What a pass wrote (the policy as its last status write returned it) and what to check again."""

    written: Mapping[str, Any] | None
    waiting_on_job: bool
    """A Job-executor backup still runs: its completion is not a watch event of the policy, so check again."""
    unresolved: bool
    """The spec is valid but the policy is not Ready (e.g. its Secrets are missing): they may appear later,
    so check again (spaced out: the Secret's appearance is not a watch event of the policy)."""


async def reconcile(runtime: Runtime, body: Mapping[str, Any], *, holder: str = "") -> PassResult:
    """One pass for one policy (its daemon calls this when `next_pass` says it is due).

    `holder` identifies this operator process; an inline backup lock taken by another holder belongs
    to a process that no longer runs (one active operator at a time) and is broken at once.
    """
    tick = PolicyPass(runtime, body, _load_status(body), holder=holder,
                resource_version=body["metadata"].get("resourceVersion"))
    spec_valid = await _reconcile(tick)
    ready = get_condition(tick.status.conditions, "Ready")
    unresolved = spec_valid and (ready is None or ready.status != ConditionStatus.TRUE)
    job = tick.status.active_backup is not None and (body.get("spec") or {}).get("executor") == Executor.JOB.value
    return PassResult(tick.written, waiting_on_job=job, unresolved=unresolved)


async def _reconcile(tick: PolicyPass) -> bool:
    """Returns whether the spec is valid."""
    runtime, body = tick.runtime, tick.body
    try:
        valid = validate_spec(body.get("spec") or {})
    except PolicyInvalid as exc:
        await _report_invalid(tick, str(exc))
        return False
    try:
        ctx = await resolve(runtime.kube, tick.namespace, tick.name, valid.spec)
    except PolicyInvalid as exc:
        await _report_invalid(tick, str(exc))
        return True
    tick.condition("Ready", True, "Valid", f"schedule {valid.spec.schedule} ({valid.spec.time_zone or 'UTC'})")
    changed = await _tick(tick, valid, ctx)
    if changed or tick.status.observed_generation != tick.generation or not tick.status.backups:
        await _refresh_inventory(tick, ctx)
    _update_derived(tick, valid)
    tick.status.observed_generation = tick.generation
    await tick.write_status()
    await tick.flush_events()
    return True


async def _report_invalid(tick: PolicyPass, message: str) -> None:
    previous = get_condition(tick.status.conditions, "Ready")
    tick.condition("Ready", False, "InvalidSpec", message)
    tick.status.observed_generation = tick.generation
    if previous is None or previous.message != message or previous.reason != "InvalidSpec":
        tick.event("Warning", "InvalidSpec", message)
    await tick.write_status()
    await tick.flush_events()


async def _tick(tick: PolicyPass, valid: ValidPolicy, ctx: PolicyContext) -> bool:
    """Returns whether storage changed (a run happened or a lock was resolved)."""
    spec = valid.spec
    now = tick.now
    status = tick.status
    changed = False
    state = lock_state(status.active_backup, status.active_backup_started_at, now=now,
                       stale_after=timedelta(seconds=spec.backup_timeout_seconds))
    orphaned = (state is LockState.HELD and spec.executor is Executor.INLINE and bool(tick.holder)
                and bool(status.active_backup_holder) and status.active_backup_holder != tick.holder)
    if orphaned:
        state = LockState.STALE
    if state is LockState.HELD and spec.executor is Executor.JOB:
        state, changed = await _harvest_job(tick, valid, ctx)
    elif state is LockState.STALE:
        why = "its operator instance restarted" if orphaned else "it never finished"
        tick.event("Warning", "StaleLockBroken",
                   f"backup {status.active_backup} started {status.active_backup_started_at}: {why}; "
                   "its lock is released and leftovers removed")
        status.last_failure = f"backup {status.active_backup} did not finish within {spec.backup_timeout_seconds}s"
        tick.condition("LastBackupSucceeded", False, "Abandoned", status.last_failure)
        if spec.executor is Executor.JOB and status.active_backup:
            with contextlib.suppress(NotFound):
                await tick.runtime.kube.delete(JOBS, status.active_backup, tick.namespace, propagation="Background")
        status.active_backup = None
        status.active_backup_started_at = None
        status.active_backup_holder = None
        await asyncio.to_thread(sweep_leftovers, ctx.store, ctx.label, older_than=time.time())
        state = LockState.FREE
        changed = True

    run_now = _pending_run_now(tick.body, status)
    decision = decide_due(valid.schedule, now=now, last_schedule_time=status.last_schedule_time,
                          created_at=_created_at(tick.body, now), starting_deadline_seconds=spec.starting_deadline_seconds)
    due = decision.run_for is not None and not spec.suspend
    if decision.consumed is not None:
        _report_decision(tick, decision, suspended=spec.suspend)
        status.last_schedule_time = decision.consumed
    if run_now is not None:
        status.last_run_now_token = run_now
    if due or run_now is not None:
        if state is LockState.HELD:
            tick.event("Warning", "BackupSkipped",
                       f"{'run-now request' if run_now is not None and not due else 'scheduled run'} skipped: "
                       f"backup {status.active_backup} is still running")
        else:
            await _start_backup(tick, valid, ctx, manual=run_now is not None and not due)
            changed = True
            if spec.executor is Executor.INLINE:
                _skip_overlapped(tick, valid)
    await _maintenance(tick, valid, ctx)
    return changed


def _pending_run_now(body: Mapping[str, Any], status: BackupPolicyStatus) -> str | None:
    token = (body["metadata"].get("annotations") or {}).get(RUN_NOW_ANNOTATION)
    if token and token != status.last_run_now_token:
        return str(token)
    return None


def _report_decision(tick: PolicyPass, decision: DueDecision, *, suspended: bool) -> None:
    if decision.missed:
        tick.event("Warning", "MissedSchedule", f"{decision.missed} scheduled run(s) were missed (operator down?); "
                   "only the newest is considered")
    if decision.too_late:
        tick.event("Warning", "MissedSchedule", f"run scheduled for {decision.consumed} skipped: more than "
                   "startingDeadlineSeconds late")
    elif suspended and decision.run_for is not None:
        tick.event("Normal", "Suspended", f"run scheduled for {decision.run_for} skipped: policy is suspended")


def _skip_overlapped(tick: PolicyPass, valid: ValidPolicy) -> None:
    """Runs that came due while the inline backup ran are consumed and reported, not made up."""
    now = tick.now
    newest = valid.schedule.at_or_before(now)
    last = tick.status.last_schedule_time
    if last is not None and newest > last:
        tick.status.last_schedule_time = newest
        tick.event("Warning", "BackupSkipped", f"run scheduled for {newest.isoformat()} skipped: it came due while "
                   "the previous backup was still running")


async def _start_backup(tick: PolicyPass, valid: ValidPolicy, ctx: PolicyContext, *, manual: bool) -> None:
    spec = valid.spec
    status = tick.status
    now = tick.now
    stamp = now.strftime("%Y%m%d-%H%M%S")
    if spec.executor is Executor.JOB:
        name = jobs.job_name(tick.name, stamp)
        try:
            job = jobs.build_job(policy=tick.name, namespace=tick.namespace, uid=tick.body["metadata"].get("uid"),
                                 spec=spec, name=name)
        except PolicyInvalid as exc:
            tick.condition("Ready", False, "InvalidSpec", str(exc))
            tick.event("Warning", "InvalidSpec", str(exc))
            return
        await tick.runtime.kube.create(JOBS, job, tick.namespace)
        status.active_backup = name
        status.active_backup_started_at = now
        tick.event("Normal", "BackupStarted", f"Job {name} started{' (run-now)' if manual else ''}")
        return
    status.active_backup = f"{tick.name}@{stamp}"
    status.active_backup_started_at = now
    status.active_backup_holder = tick.holder or None
    await tick.write_status()  # take the lock before the long part
    await _run_inline(tick, valid, ctx, manual=manual)
    status.active_backup = None
    status.active_backup_started_at = None
    status.active_backup_holder = None


async def _run_inline(tick: PolicyPass, valid: ValidPolicy, ctx: PolicyContext, *, manual: bool) -> None:
    spec = valid.spec
    metrics = tick.runtime.metrics
    request = BackupRequest(ctx.target, ctx.label, spec.format, spec.compression_level,
                            kind="manual" if manual else "scheduled", record_counts=spec.verify.test_restore)
    try:
        manifest = await asyncio.to_thread(
            dump_pipeline.run_verified_backup, ctx.store, request, clock=tick.runtime.clock,
            integrity=spec.verify.integrity, test_restore_source=ctx.target if spec.verify.test_restore else None,
        )
    except (BackupFailed, ClientError) as exc:
        _record_failure(tick, str(exc))
        return
    if manifest.verification is not None and not manifest.verified:
        _record_failure(tick, f"backup {manifest.id} failed verification: {manifest.verification.detail}",
                        reason="VerificationFailed")
        return
    metrics.backup_runs.labels(tick.namespace, tick.name, "succeeded").inc()
    metrics.backup_last_success.labels(tick.namespace, tick.name).set(manifest.finished_at.timestamp())
    metrics.backup_size.labels(tick.namespace, tick.name).set(manifest.bytes)
    metrics.backup_duration.labels(tick.namespace, tick.name).set(manifest.duration_seconds)
    tick.status.last_failure = None
    verified = " and verified" if manifest.verified else ""
    message = (f"backup {manifest.id} stored{verified}: {_human_size(manifest.bytes)} in "
               f"{manifest.duration_seconds:.1f}s at {ctx.store.location(manifest.file_name)}")
    tick.condition("LastBackupSucceeded", True, "Succeeded", message)
    tick.event("Normal", "BackupSucceeded", message)
    await _apply_retention(tick, valid, ctx)


def _record_failure(tick: PolicyPass, message: str, *, reason: str = "BackupFailed") -> None:
    tick.runtime.metrics.backup_runs.labels(tick.namespace, tick.name, "failed").inc()
    tick.status.last_failure = message[:2000]
    tick.condition("LastBackupSucceeded", False, reason, message[:2000])
    tick.event("Warning", reason, message)


async def _apply_retention(tick: PolicyPass, valid: ValidPolicy, ctx: PolicyContext) -> None:
    """The policy's rules apply to its backups and, separately, to the safety backups restores took."""
    retention = valid.spec.retention
    for label in (ctx.label, ctx.label + SAFETY_LABEL_SUFFIX):
        try:
            deleted = await asyncio.to_thread(apply_retention, ctx.store, label, now=tick.now,
                                              keep_last=retention.keep_last, max_age=valid.max_age)
        except ClientError as exc:
            tick.event("Warning", "RetentionFailed", f"retention could not run: {exc}")
            return
        for decision in deleted:
            tick.event("Normal", "BackupDeleted", f"retention deleted backup {decision.id}: {decision.reason}")


async def _harvest_job(tick: PolicyPass, valid: ValidPolicy, ctx: PolicyContext) -> tuple[LockState, bool]:
    """Check the running Job; on completion release the lock and report. Returns (lock state, changed)."""
    name = tick.status.active_backup or ""
    job = await tick.runtime.kube.get_or_none(JOBS, name, tick.namespace)
    outcome = "Failed" if job is None else jobs.job_outcome(job)
    if outcome is None:
        return LockState.HELD, False
    tick.status.active_backup = None
    tick.status.active_backup_started_at = None
    if outcome == "Failed":
        why = "it disappeared" if job is None else "see its pod logs"
        _record_failure(tick, f"backup Job {name} failed ({why})")
        return LockState.FREE, True
    backups = await asyncio.to_thread(dump_pipeline.list_backups, ctx.store, label=ctx.label)
    newest = backups[0] if backups else None
    if newest is None:
        _record_failure(tick, f"backup Job {name} succeeded but no backup of {ctx.label} is in storage")
        return LockState.FREE, True
    metrics = tick.runtime.metrics
    metrics.backup_runs.labels(tick.namespace, tick.name, "succeeded").inc()
    metrics.backup_last_success.labels(tick.namespace, tick.name).set(newest.finished_at.timestamp())
    metrics.backup_size.labels(tick.namespace, tick.name).set(newest.bytes)
    metrics.backup_duration.labels(tick.namespace, tick.name).set(newest.duration_seconds)
    tick.status.last_failure = None
    message = f"backup Job {name} stored {newest.id} ({_human_size(newest.bytes)})"
    tick.condition("LastBackupSucceeded", True, "Succeeded", message)
    tick.event("Normal", "BackupSucceeded", message)
    await _apply_retention(tick, valid, ctx)
    return LockState.FREE, True


async def _maintenance(tick: PolicyPass, valid: ValidPolicy, ctx: PolicyContext) -> None:
    if valid.spec.suspend:
        return
    for task, schedule in valid.maintenance.items():
        last = tick.status.last_maintenance.get(task)
        decision = decide_due(schedule, now=tick.now, last_schedule_time=last,
                              created_at=_created_at(tick.body, tick.now), starting_deadline_seconds=None)
        if decision.run_for is None:
            continue
        started = time.monotonic()
        try:
            await _run_maintenance(ctx, task)
        except ClientError as exc:
            tick.event("Warning", "MaintenanceFailed", f"{task} on {ctx.target.dbname} failed: {exc}")
        else:
            tick.event("Normal", "MaintenanceDone",
                       f"{task} on {ctx.target.dbname} finished in {time.monotonic() - started:.1f}s")
        tick.status.last_maintenance = {**tick.status.last_maintenance, task: decision.run_for}


async def _run_maintenance(ctx: PolicyContext, task: MaintenanceTask) -> None:
    """The runbook's VACUUM ANALYZE / ANALYZE / REINDEX DATABASE through the shared PostgreSQL client.

    REINDEX runs CONCURRENTLY: a scheduled job must not block the application's writes for the duration,
    which the runbook's plain `REINDEX DATABASE` (run by hand in a quiet window) would.
    """
    target = ctx.target
    client = PostgresClient(PgConnectionInfo(host=target.host, port=target.port, dbname=target.dbname,
                                             user=target.user, sslmode=target.sslmode), password=target.password)
    if task == "vacuum-analyze":
        await client.vacuum_analyze()
    elif task == "analyze":
        await client.analyze()
    else:
        await client.reindex_database(concurrently=True)


async def _refresh_inventory(tick: PolicyPass, ctx: PolicyContext) -> None:
    try:
        backups = await asyncio.to_thread(dump_pipeline.list_backups, ctx.store, label=ctx.label)
    except ClientError as exc:
        tick.event("Warning", "StorageUnavailable", f"cannot list backups: {exc}")
        return
    records = [record_of(m, ctx.store.location(m.file_name)) for m in backups]
    tick.status.backups = bound_inventory(records, INVENTORY_LIMIT)
    if backups:
        newest = backups[0]
        tick.status.last_successful_backup = newest.finished_at
        tick.status.last_backup_size = _human_size(newest.bytes)
    else:
        tick.status.last_successful_backup = None
        tick.status.last_backup_size = None


def _update_derived(tick: PolicyPass, valid: ValidPolicy) -> None:
    now = tick.now
    status = tick.status
    status.next_schedule_time = None if valid.spec.suspend else valid.schedule.next_after(now)
    stale = is_stale(valid.schedule, now=now, newest_success=status.last_successful_backup,
                     created_at=_created_at(tick.body, now))
    if stale:
        newest = status.last_successful_backup.isoformat() if status.last_successful_backup else "never"
        previous = get_condition(status.conditions, "BackupStale")
        tick.condition("BackupStale", True, "NoRecentBackup",
                       f"newest successful backup ({newest}) is older than two schedule intervals")
        if previous is None or previous.status != ConditionStatus.TRUE:
            tick.event("Warning", "BackupStale", f"newest successful backup ({newest}) is older than two intervals")
    else:
        tick.condition("BackupStale", False, "Recent", "a backup succeeded within the last two schedule intervals")
    if get_condition(status.conditions, "LastBackupSucceeded") is None:
        tick.condition("LastBackupSucceeded", ConditionStatus.UNKNOWN, "NoBackupYet", "no backup has run yet")


def next_pass(body: Mapping[str, Any], now: datetime, *, holder: str = "") -> datetime | None:
    """When the policy next needs a pass (a time <= now: at once; None: not until the policy is edited).

    The times a pass can change something are known from the object: an unobserved generation or run-now
    token, a lock to harvest or break, the next scheduled run (even suspended: it is consumed and reported),
    the next maintenance run, the moment the newest backup becomes stale. Between them nothing happens,
    so a suspended policy costs nothing until its next scheduled time or an edit.
    """
    status = _load_status(body)
    generation = body["metadata"].get("generation")
    if status.observed_generation is None or (generation is not None and status.observed_generation != generation):
        return now
    try:
        valid = validate_spec(body.get("spec") or {})
    except PolicyInvalid:
        return None  # the status says so already (observed generation); only an edit can change it
    ready = get_condition(status.conditions, "Ready")
    if ready is not None and ready.status != ConditionStatus.TRUE:
        return now  # valid spec, unresolved Secrets: the daemon spaces these passes out
    if _pending_run_now(body, status) is not None:
        return now
    spec = valid.spec
    created = _created_at(body, now)
    candidates: list[datetime] = []
    if status.active_backup is not None:
        if spec.executor is Executor.JOB:
            return now
        if holder and status.active_backup_holder != holder:
            return now  # taken by an operator instance that is gone: broken at once
        started = status.active_backup_started_at or now
        candidates.append(started + timedelta(seconds=spec.backup_timeout_seconds))
    candidates.append(valid.schedule.next_after(status.last_schedule_time or created))
    if not spec.suspend:
        for task, schedule in valid.maintenance.items():
            candidates.append(schedule.next_after(status.last_maintenance.get(task) or created))
    stale = get_condition(status.conditions, "BackupStale")
    if stale is None or stale.status != ConditionStatus.TRUE:
        if is_stale(valid.schedule, now=now, newest_success=status.last_successful_backup, created_at=created):
            return now
        reference = status.last_successful_backup or created
        becomes_stale = reference + 2 * valid.schedule.interval_at(now)
        if becomes_stale > now:
            candidates.append(becomes_stale + timedelta(seconds=1))
    return min(candidates)
