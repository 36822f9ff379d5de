"""Restore actions: "Find clean backup" and "Restore" of the data-corruption runbook, through the
BackupPolicy's restore procedure (`services.backups.restore`).

The BackupPolicy named by the plan is read from the target namespace (it describes the application's
database, so it lives beside it). Both steps use one incident-wide stamp for the safety backup of the
current database, so the backup the first step takes is the one the restore step finds again and
references; nothing is dropped unless that safety backup exists.

The safety backup and the restore move data: they run as owned work (`services.backups.owned_work`), so a
timed-out or cancelled attempt returns only once its pg_dump/psql and their server sessions have stopped.

Point in time (`parameters.targetTime`/`targetLSN`): with the policy's `pointInTime.restore.mode` logical
(default) the first step replays into a scratch instance and dumps it, and the restore loads that dump like
any backup; with `physical` the first step only plans (refusing a target the archive cannot honour) and the
restore step, once approved, stops the database and restores its volume in a Job
(`services.backups.pitr_physical`, resumable from the step's checkpoint); the data directory it replaces is
the safety copy, kept on the volume.
"""

from __future__ import annotations

import asyncio

from tradesense_operator.api.v1alpha1.incident import StepAction
from tradesense_operator.api.v1alpha1.pitr import RestoreMode
from tradesense_operator.clients.errors import ClientError, NotFound
from tradesense_operator.domain.backups.manifest import BackupManifest
from tradesense_operator.services.backups import pitr_materialize
from tradesense_operator.services.backups.owned_work import run_owned
from tradesense_operator.services.backups.pitr_physical import PhysicalRestore, PhysicalRestoreFailed
from tradesense_operator.services.backups.policy import PolicyContext, PolicyInvalid, load_policy
from tradesense_operator.services.backups.restore import (
    RestoreRefused,
    find_clean_backup,
    restore_database_sync,
    take_safety_backup_sync,
)
from tradesense_operator.services.step_adapters.base import Outcome, StepContext, StepFailed, StepResult
from tradesense_operator.services.step_adapters.step_inputs import param_str, target_name


def safety_stamp(ctx: StepContext) -> str:
    """One safety backup per incident, whichever step takes it first."""
    return f"{ctx.incident.uid or ctx.incident.name}/safety-backup"


async def _policy(ctx: StepContext) -> PolicyContext:
    name = target_name(ctx.step, "backuppolicy")
    try:
        return await load_policy(ctx.runtime.kube, ctx.namespace, name)
    except NotFound as exc:
        raise StepFailed(f"backuppolicy/{name} not found in namespace {ctx.namespace}") from exc
    except PolicyInvalid as exc:
        raise StepFailed(str(exc)) from exc


async def _clean_backup(ctx: StepContext, policy: PolicyContext) -> BackupManifest:
    wanted = ctx.checkpoint.get("backupId") or param_str(ctx.step, "backupId")
    if not wanted and _point_in_time(ctx):
        return await _point_in_time_backup(ctx, policy)
    try:
        return await find_clean_backup(policy.store, label=policy.label, backup_id=wanted)
    except RestoreRefused as exc:
        raise StepFailed(f"backuppolicy/{policy.name}: {exc}") from exc


async def _chosen_and_safety(ctx: StepContext, policy: PolicyContext) -> tuple[BackupManifest, BackupManifest | None]:
    """The clean backup (checkpointed, so a resumed step restores the same one) and this incident's safety copy."""
    manifest = await _clean_backup(ctx, policy)
    if "backupId" not in ctx.checkpoint:
        await ctx.save_checkpoint({"backupId": manifest.id})
    stamp, clock = safety_stamp(ctx), ctx.runtime.clock
    safety = await run_owned(
        lambda target: take_safety_backup_sync(policy.store, target, stamp=stamp, label=policy.label, clock=clock),
        policy.target, tag=f"{ctx.stamp}/safety", what=f"safety backup of {policy.target.dbname} ({ctx.step.id})",
    )
    return manifest, safety


def _point_in_time(ctx: StepContext) -> tuple[str | None, str | None] | None:
    """(targetTime, targetLSN) when the incident asks for a point-in-time restore."""
    when, lsn = param_str(ctx.step, "targetTime"), param_str(ctx.step, "targetLSN")
    return (when, lsn) if when or lsn else None


async def _point_in_time_backup(ctx: StepContext, policy: PolicyContext) -> BackupManifest:
    """Replay the archive to the target in a scratch instance and dump it (once per incident, see pitr_materialize)."""
    target = _point_in_time(ctx)
    assert target is not None
    try:
        manifest, _ = await asyncio.to_thread(
            pitr_materialize.materialize_sync, policy.store, policy.label, policy.target,
            stamp=f"{safety_stamp(ctx)}/point-in-time", clock=ctx.runtime.clock, target_time=target[0],
            target_lsn=target[1])
    except (RestoreRefused, ClientError) as exc:
        raise StepFailed(f"backuppolicy/{policy.name}: point-in-time restore refused: {exc}") from exc
    return manifest


def _physical(ctx: StepContext, policy: PolicyContext) -> PhysicalRestore | None:
    """The in-place restore of this step when the incident asks for a point in time and the policy says physical."""
    target = _point_in_time(ctx)
    wanted = ctx.checkpoint.get("backupId") or param_str(ctx.step, "backupId")
    if target is None or wanted or policy.spec.point_in_time.restore.mode is not RestoreMode.PHYSICAL:
        return None
    return PhysicalRestore(ctx.runtime, policy, ctx.stamp, target[0], target[1])


async def _describe_point_in_time(ctx: StepContext, policy: PolicyContext) -> str | None:
    """The plan text for a dry run: base backup, WAL range, expected loss (no data moves)."""
    target = _point_in_time(ctx)
    if target is None or ctx.checkpoint.get("backupId"):
        return None
    try:
        plan = await asyncio.to_thread(pitr_materialize.plan_sync, policy.store, policy.label,
                                       now=ctx.runtime.clock.now(), target_time=target[0], target_lsn=target[1])
    except RestoreRefused as exc:
        raise StepFailed(f"backuppolicy/{policy.name}: point-in-time restore refused: {exc}") from exc
    return f"point-in-time restore of {policy.target.dbname}: {plan.describe()}"


def _summary(manifest: BackupManifest) -> str:
    return f"backup {manifest.id} of {manifest.database} (finished {manifest.finished_at:%Y-%m-%dT%H:%M:%SZ}, verified)"


class BackupSafety:
    """Pick the clean backup (newest verified, checksum re-checked) and take a safety backup of the current data."""

    name = StepAction.BACKUP_SAFETY
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        policy = await _policy(ctx)
        if (pitr_text := await _describe_point_in_time(ctx, policy)) is not None:
            if _physical(ctx, policy) is not None:
                return f"would plan the {pitr_text}; the approved restore step restores the database's volume in place"
            return f"would replay to the target ({pitr_text}); first back up the current data as a safety copy"
        manifest = await _clean_backup(ctx, policy)
        return f"would restore {_summary(manifest)}; first back up the current {policy.target.dbname} as a safety copy"

    async def run(self, ctx: StepContext) -> StepResult:
        policy = await _policy(ctx)
        if (physical := _physical(ctx, policy)) is not None:
            plan = await _describe_point_in_time(ctx, policy)  # refuses a target the archive cannot honour
            evidence = {"plan": plan or "", "safetyCopy": "the data directory, kept aside by the restore Job"}
            return StepResult(Outcome.DONE, f"{plan}; restored in place by the approved restore step "
                                            f"({physical.describe()})", evidence)
        manifest, safety = await _chosen_and_safety(ctx, policy)
        evidence = {"backupId": manifest.id, "safetyBackupId": safety.id if safety else "none (database absent)"}
        await ctx.save_checkpoint(evidence)
        return StepResult(Outcome.DONE, f"clean backup: {_summary(manifest)}; safety backup "
                                        f"{evidence['safetyBackupId']}", evidence)


class BackupRestore:
    """`./scripts/restore-database.sh <backup>`: drop, recreate, restore, ANALYZE (destructive: needs approval)."""

    name = StepAction.BACKUP_RESTORE
    destructive = True

    async def describe(self, ctx: StepContext) -> str:
        policy = await _policy(ctx)
        if (pitr_text := await _describe_point_in_time(ctx, policy)) is not None:
            if (physical := _physical(ctx, policy)) is not None:
                return f"{physical.describe()}: the {pitr_text}"
            return f"DROP and recreate database {policy.target.dbname}, then load the {pitr_text}"
        manifest = await _clean_backup(ctx, policy)
        return (f"DROP and recreate database {policy.target.dbname}, then restore {_summary(manifest)} "
                "(after a safety backup of the current data)")

    async def run(self, ctx: StepContext) -> StepResult:
        policy = await _policy(ctx)
        if (physical := _physical(ctx, policy)) is not None:
            return await _run_physical(ctx, physical)
        manifest, safety = await _chosen_and_safety(ctx, policy)
        safety_id = safety.id if safety else None
        try:
            report = await run_owned(
                lambda target: restore_database_sync(policy.store, target, manifest, stamp=ctx.stamp,
                                                     safety_backup_id=safety_id),
                policy.target, tag=f"{ctx.stamp}/restore", what=f"restore of {policy.target.dbname} ({ctx.step.id})",
            )
        except RestoreRefused as exc:
            raise StepFailed(f"restore refused: {exc}") from exc
        evidence = {"backupId": report.backup_id, "database": report.database,
                    "safetyBackupId": safety.id if safety else "none"}
        evidence.update({f"rows.{table}": str(n) for table, n in sorted(report.table_counts.items())[:10]})
        if report.already_done:
            return StepResult(Outcome.ALREADY_DONE, f"database {report.database} already restored from "
                                                    f"{report.backup_id} by this step", evidence)
        return StepResult(Outcome.DONE, f"restored database {report.database} from {_summary(manifest)}", evidence)


async def _run_physical(ctx: StepContext, physical: PhysicalRestore) -> StepResult:
    """One move of the in-place restore; WAITING until the database is back and verified.

    Before anything is stopped the target is planned again: the archive may have changed since the plan was
    shown, and a refusal now leaves the database running and untouched.
    """
    if "dbReplicas" not in ctx.checkpoint:
        await _describe_point_in_time(ctx, physical.policy)
    try:
        progress = await physical.advance(ctx.checkpoint, ctx.save_checkpoint)
    except PhysicalRestoreFailed as exc:
        raise StepFailed(f"point-in-time restore: {exc}") from exc
    if not progress.done:
        return StepResult(Outcome.WAITING, progress.message, progress.evidence,
                          retry_after=ctx.runtime.settings.step_poll_seconds)
    return StepResult(Outcome.DONE, progress.message, progress.evidence)
