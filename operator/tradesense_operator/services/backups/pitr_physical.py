"""The physical point-in-time restore of a runbook's restore step: stop the database, restore its volume in a
Job, start it, verify — one resumable state machine driven by the step's checkpoint.

Each call looks at the cluster and the checkpoint, does the next thing that is missing, and says whether the
restore is finished (the step engine calls again while it is not):
1. remember the database workload's replica count (checkpoint `dbReplicas`, saved before anything changes);
2. scale the workload to 0 and wait until none of its pods exists (the volume is free, nothing writes);
3. create the restore Job (`jobs.build_restore_job`, deterministic name) or adopt it: a restarted operator
   finds the Job it created, whatever the checkpoint says, so two Jobs never run; a vanished Job whose
   success was not recorded fails the step instead of being re-created over a database already started;
4. wait for the Job; Failed leaves the database stopped (its directory is half-restored) and fails the step;
5. scale the workload back, wait until PostgreSQL accepts connections and has left recovery (it replays the
   WAL to the target and promotes by itself), then read per-table row counts as evidence.
   When no commit after a time target was archived, PostgreSQL stops with "recovery ended before configured
   recovery target was reached" (seen in its pod's log): every commit before the target is in the fetched
   WAL, so steps 2-5 run once more with a second Job that drops the target (checkpoint `retarget`), exactly
   what the scratch restore does in-process (services/backups/pitr_restore.recover).
The application stays quiesced throughout: the runbook stops it before this step and restarts it after.
Owns the sequence; the Job's manifest is services/backups/jobs, the restore itself the CLI in the Job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from tradesense_operator.api.v1alpha1.pitr import PointInTimeRestoreSpec
from tradesense_operator.clients.errors import ClientError, Conflict, NotFound
from tradesense_operator.clients.kube import BACKUP_POLICIES, DEPLOYMENTS, JOBS, PODS, JsonDict, ResourceKind
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.services.backups import jobs, pitr_restore
from tradesense_operator.services.backups.policy import PolicyContext
from tradesense_operator.services.runtime import Runtime

STATEFULSETS = ResourceKind("apps/v1", "StatefulSet", "statefulsets")
_KINDS = {"Deployment": DEPLOYMENTS, "StatefulSet": STATEFULSETS}

Save = Callable[[Mapping[str, str]], Awaitable[None]]


class PhysicalRestoreFailed(Exception):
    """The restore cannot go on; the message says why and in what state the database was left."""


@dataclass(frozen=True)
class Progress:
    """Where the restore is: `done`, or a message saying what it waits for."""

    done: bool
    message: str
    evidence: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PhysicalRestore:
    """One physical restore: the policy, the incident step's stamp and the target."""

    runtime: Runtime
    policy: PolicyContext
    stamp: str
    target_time: str | None
    target_lsn: str | None

    @property
    def spec(self) -> PointInTimeRestoreSpec:
        return self.policy.spec.point_in_time.restore

    @property
    def job_name(self) -> str:
        return jobs.restore_job_name(self.policy.name, self.stamp)

    def _workload(self) -> tuple[ResourceKind, str]:
        workload = self.spec.workload
        if workload is None:
            raise PhysicalRestoreFailed("spec.pointInTime.restore.workload: required for mode physical")
        return _KINDS[workload.kind], workload.name

    def describe(self) -> str:
        kind, name = self._workload()
        return (f"stop {kind.kind.lower()}/{name}, run Job {self.job_name} restoring "
                f"{self.spec.pgdata} on PVC {self.spec.volume_claim_name} (the current directory is kept aside), "
                f"start {name} (PostgreSQL replays to the target and promotes), verify")

    async def advance(self, checkpoint: Mapping[str, str], save: Save) -> Progress:
        """Do the next missing thing; Progress(done=True) with the evidence once verified."""
        kube, ns = self.runtime.kube, self.policy.namespace
        kind, name = self._workload()
        try:
            workload = await kube.get(kind, name, ns)
        except NotFound as exc:
            raise PhysicalRestoreFailed(f"{kind.kind.lower()}/{name} not found in namespace {ns}") from exc
        evidence = {"job": self.job_name, "dataDirectory": self.spec.pgdata}
        if "dbReplicas" not in checkpoint:
            replicas = int((workload.get("spec") or {}).get("replicas", 1) or 0)
            checkpoint = {**checkpoint, "dbReplicas": str(max(replicas, 1))}
            await save({"dbReplicas": checkpoint["dbReplicas"]})
        evidence["dbReplicas"] = checkpoint["dbReplicas"]
        if checkpoint.get("jobSucceeded") != "true":
            return await self._restore_volume(kind, name, workload, _JobPhase(self.job_name, "job", False),
                                              checkpoint=checkpoint, save=save, evidence=evidence)
        if checkpoint.get("retarget") == "true" and checkpoint.get("retargetJobSucceeded") != "true":
            phase = _JobPhase(jobs.restore_job_name(self.policy.name, self.stamp + "/untargeted"), "retargetJob", True)
            evidence["retargetJob"] = phase.name
            return await self._restore_volume(kind, name, workload, phase, checkpoint=checkpoint, save=save,
                                              evidence=evidence)
        return await self._bring_back(kind, name, workload, checkpoint=checkpoint, save=save, evidence=evidence)

    async def _restore_volume(
        self, kind: ResourceKind, name: str, workload: JsonDict, phase: _JobPhase, *,
        checkpoint: Mapping[str, str], save: Save, evidence: dict[str, str],
    ) -> Progress:
        kube, ns = self.runtime.kube, self.policy.namespace
        job = await kube.get_or_none(JOBS, phase.name, ns)
        if job is None:
            if checkpoint.get(f"{phase.key}Created") == "true":
                raise PhysicalRestoreFailed(
                    f"restore Job {phase.name} vanished before its outcome was recorded; {name} stays stopped "
                    f"(check {self.spec.pgdata} by hand; the previous data directory is kept beside it)")
            if int((workload.get("spec") or {}).get("replicas", 1) or 0) != 0:
                await kube.patch(kind, name, {"spec": {"replicas": 0}}, ns, subresource="scale")
                return Progress(False, f"stopping {kind.kind.lower()}/{name} (replicas → 0)", evidence)
            running = await self._pods(workload)
            if running:
                return Progress(False, f"waiting for {len(running)} pod(s) of {name} to be gone before the "
                                       "volume is restored", evidence)
            job = await self._create_job(phase)
            await save({f"{phase.key}Created": "true"})
        outcome = jobs.job_outcome(job)
        if outcome is None:
            return Progress(False, f"restore Job {phase.name} running", evidence)
        if outcome == "Failed":
            raise PhysicalRestoreFailed(
                f"restore Job {phase.name} failed (see its pod's log); {name} stays stopped: {self.spec.pgdata} may "
                "be half-restored; the directory it replaced is kept beside it (.before-restore-…)")
        await save({f"{phase.key}Succeeded": "true"})
        return Progress(False, f"restore Job {phase.name} succeeded; starting {name}", evidence)

    async def _create_job(self, phase: _JobPhase) -> JsonDict:
        kube, ns = self.runtime.kube, self.policy.namespace
        body = await kube.get_or_none(BACKUP_POLICIES, self.policy.name, ns)
        uid = str(body["metadata"].get("uid") or "") if body else ""
        manifest = jobs.build_restore_job(policy=self.policy.name, namespace=ns, uid=uid or None,
                                          spec=self.policy.spec, name=phase.name, stamp=self.stamp,
                                          target_time=self.target_time, target_lsn=self.target_lsn,
                                          without_target=phase.without_target)
        try:
            return await kube.create(JOBS, manifest, ns)
        except Conflict:  # created by an earlier attempt whose answer was lost: adopt it
            return await kube.get(JOBS, phase.name, ns)

    @property
    def _time_target(self) -> bool:
        return bool(self.target_time) and self.target_time != "latest" and not self.target_lsn

    async def _target_not_reached(self, workload: JsonDict) -> bool:
        """Whether a database pod's log says recovery ran out of WAL before the target."""
        for pod in await self._pods(workload):
            try:
                text = await self.runtime.kube.pod_logs(self.policy.namespace, pod["metadata"]["name"], tail_lines=200)
            except ClientError:
                continue
            if pitr_restore.TARGET_NOT_REACHED in text:
                return True
        return False

    async def _pods(self, workload: JsonDict) -> list[JsonDict]:
        labels = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not labels:
            raise PhysicalRestoreFailed("the database workload has no spec.selector.matchLabels")
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        return await self.runtime.kube.list(PODS, self.policy.namespace, label_selector=selector)

    async def _bring_back(
        self, kind: ResourceKind, name: str, workload: JsonDict, *, checkpoint: Mapping[str, str], save: Save,
        evidence: dict[str, str],
    ) -> Progress:
        replicas = int(checkpoint["dbReplicas"])
        if int((workload.get("spec") or {}).get("replicas", 1) or 0) != replicas:
            await self.runtime.kube.patch(kind, name, {"spec": {"replicas": replicas}}, self.policy.namespace,
                                          subresource="scale")
            return Progress(False, f"starting {kind.kind.lower()}/{name} (replicas → {replicas})", evidence)
        try:
            in_recovery, counts = await asyncio.to_thread(check_database, self.policy.target)
        except ClientError as exc:
            if checkpoint.get("retarget") != "true" and self._time_target and await self._target_not_reached(workload):
                await save({"retarget": "true"})
                return Progress(False, "PostgreSQL found no archived commit after the target time; replaying all "
                                       "fetched WAL instead (every commit before the target is in it)", evidence)
            return Progress(False, f"waiting for PostgreSQL to accept connections after the restore ({exc})", evidence)
        if in_recovery:
            return Progress(False, "PostgreSQL is replaying WAL to the target", evidence)
        evidence.update({f"rows.{table}": str(n) for table, n in sorted(counts.items())[:10]})
        return Progress(True, f"{name} restored in place and promoted; {len(counts)} tables answer", evidence)


@dataclass(frozen=True)
class _JobPhase:
    """One of the two Jobs: its name, its checkpoint key prefix, and whether it drops the target."""

    name: str
    key: str
    without_target: bool


def check_database(target: PgTarget) -> tuple[bool, dict[str, int]]:
    """(still in recovery, per-table row counts) of the restored database; ClientError while it is not up."""
    with target.connect() as conn:
        row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        if row is None or row[0] is not False:
            return True, {}
        return False, pitr_restore.table_counts(conn)
