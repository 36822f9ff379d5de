"""The crash-safe step engine: one `advance` = read the incident, take one decision, checkpoint it.

Crash safety rests on three rules:
- status is the only memory: every iteration re-reads the object and decides from the stored status
  (`domain.incident.machine.next_decision`), so a restarted operator continues where the old one was;
- a step is checkpointed Running (attempts+1, attemptStartedAt) BEFORE its action is invoked and its
  result is checkpointed AFTER (`attempts.py`), so a crash in between re-invokes the same attempt, and
  the action's own idempotency (stamps, checkpoints) turns that into exactly one effect;
- nothing outside status is trusted across iterations except caches that only save API calls;
- the write that makes an incident terminal is the LAST thing an advance does: kopf stops (and soon
  cancels) the daemon as soon as it sees a terminal phase, so the lock release, the final Events and
  a failed incident's notification happen before it; a crash in between only repeats them.

Gates are checked in this order before a step starts: spec immutability, deadline (escalation never
blocks), cancel, dry run, approval and backoff (neither holds the namespace lock: waiting on people
or on time leaves the namespace to others), freeze (namespace annotation), the per-namespace Lease
(waiters are served by severity, then age), the restart-storm guard. Waiting states (AwaitingApproval,
Blocked) are re-checked on every idle poll and resume by themselves once the condition clears; Pending
on the lock is re-checked when a release in this process wakes it, else after a third of the Lease
duration (`lock.py`). An approval that does not come by its deadline (spec.approvalTimeoutSeconds, else
respondBy) escalates, and with spec.failOnApprovalTimeout ends the incident Failed (ApprovalTimedOut).

Writes: one status write per checkpoint, wait or end. An advance that continues at once hands its run to
the next advance, which decides from what was written (the write's answer) instead of reading again;
what it changed without a checkpoint (the plan, a dry run's descriptions, the alert condition, a finished
step's result) is staged and goes out with the next write, together with the timeline entries of the
Events posted meanwhile: a two-step run writes Running(1), Succeeded(1)+Running(2), Succeeded(2)+end.
An advance that fails on an API error first writes what it staged (best effort), so a finished step is
not run again only because the next step's gate could not be checked.

This module is the loop and its gates; step attempts (`attempts.py`), escalation (`escalation.py`),
dry runs (`dry_run.py`) and the alert condition (`alert_sync.py`) live in their own modules.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from tradesense_operator.api.v1alpha1.incident import (
    IncidentPhase,
    PlannedStep,
    StepAction,
    StepState,
    TradeSenseIncidentSpec,
    TradeSenseIncidentStatus,
)
from tradesense_operator.clients.errors import ClientError, NotFound
from tradesense_operator.clients.kube import INCIDENTS, NAMESPACES, ObjectRef
from tradesense_operator.clients.watch_cache import version_at_least
from tradesense_operator.domain.conditions import set_condition
from tradesense_operator.domain.incident.deadlines import approval_deadline, respond_by
from tradesense_operator.domain.incident.freeze import freeze_message, is_frozen
from tradesense_operator.domain.incident.immutability import change_message, changed_fields, spec_fingerprint
from tradesense_operator.domain.incident.lease import Holder
from tradesense_operator.domain.incident.machine import (
    AwaitApproval,
    Backoff,
    Complete,
    ContinueAttempt,
    InconsistentStatus,
    StartAttempt,
    StepHasFailed,
    initial_steps,
    is_terminal,
    next_decision,
)
from tradesense_operator.domain.incident.spec_errors import spec_problems
from tradesense_operator.domain.incident.storm import restarted_deployment
from tradesense_operator.domain.incident.transitions import awaiting_approval, cancel_unfinished, clip, finish
from tradesense_operator.domain.runbooks import resolve_plan
from tradesense_operator.domain.runbooks.errors import PlanError
from tradesense_operator.observability.context import log_context
from tradesense_operator.services.incidents.alert_sync import sync_alert_condition
from tradesense_operator.services.incidents.attempts import StepGaveUp, StepRunner
from tradesense_operator.services.incidents.dry_run import DryRunner
from tradesense_operator.services.incidents.escalation import Escalator, format_time, plan_headline
from tradesense_operator.services.incidents.events import IncidentEvents
from tradesense_operator.services.incidents.lock import LockResult, NamespaceLock, Releases
from tradesense_operator.services.incidents.metrics import IncidentMetrics
from tradesense_operator.services.incidents.run import Advance, IncidentRun, StaleStatus, StatusWriter
from tradesense_operator.services.incidents.stalls import StallReporter
from tradesense_operator.services.incidents.store import (
    IncidentStore,
    StatusUnreadable,
    incident_object,
    parse_status,
)
from tradesense_operator.services.runtime import Runtime
from tradesense_operator.services.step_adapters.base import Action
from tradesense_operator.services.step_adapters.registry import ACTIONS

log = logging.getLogger(__name__)

Planner = Callable[[TradeSenseIncidentSpec], list[PlannedStep]]

WAIT_POLL_FACTOR = 5             # waiting on people (approval, freeze, lock) polls 5x less often than steps
BACKOFF_CAP_SECONDS = 300.0

__all__ = ["BACKOFF_CAP_SECONDS", "WAIT_POLL_FACTOR", "Advance", "IncidentEngine", "Planner"]


class IncidentEngine:
    """Executes TradeSenseIncidents; one instance may drive any number of incidents."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        actions: Mapping[StepAction, Action],
        planner: Planner,
        backoff_cap: float = BACKOFF_CAP_SECONDS,
    ) -> None:
        self._runtime = runtime
        self._planner = planner
        self._store = IncidentStore(runtime.kube)
        self._metrics = IncidentMetrics(runtime.metrics)
        self._writer = StatusWriter(runtime, self._store, self._metrics)
        self._steps = StepRunner(runtime, actions=actions, writer=self._writer, metrics=self._metrics,
                                 backoff_cap=backoff_cap)
        self._dry_runs = DryRunner(runtime, actions, self._writer)
        self._escalator = Escalator(runtime, self._writer, self._metrics)
        self._stalls = StallReporter(self._store, self._writer)
        self._locks: dict[str, NamespaceLock] = {}
        self._releases = Releases()
        self._unreadable_reported: set[str] = set()
        # per incident: ((uid, generation), spec, fingerprint), see `_parsed`; dropped when its daemon ends
        self._specs: dict[str, tuple[tuple[str | None, int | None], TradeSenseIncidentSpec, dict[str, str]]] = {}

    @classmethod
    def standard(cls, runtime: Runtime) -> IncidentEngine:
        """The production engine: every runbook action, the catalogue planner."""
        return cls(runtime, actions=ACTIONS, planner=resolve_plan)

    # -- driving -------------------------------------------------------------------------------

    @property
    def poll_seconds(self) -> float:
        """Delay between polls of a waiting step (settings.step_poll_seconds)."""
        return self._runtime.settings.step_poll_seconds

    @property
    def idle_seconds(self) -> float:
        """Delay between checks while waiting on something outside the engine."""
        return self.poll_seconds * WAIT_POLL_FACTOR

    async def run(
        self, namespace: str, name: str, *, sleep: Callable[[float], Awaitable[bool]],
        seed: Mapping[str, Any] | None = None, latest: Callable[[], Mapping[str, Any]] | None = None,
    ) -> Advance:
        """Advance until the incident is finished; `sleep(delay)` returns True when the caller wants to stop.

        An advance that continues at once (delay 0) hands its run to the next one: that one decides from the
        status it wrote (the write's answer carries the current spec and resourceVersion) instead of a GET,
        and changes it staged without writing (the plan, a dry run's descriptions) go out with the next write.
        After a sleep the incident is read again. `seed`, the body the caller already has (kopf's, as of its
        latest watch event), replaces the first read: every write is guarded by its resourceVersion, so a seed
        that is out of date costs a Conflict and a read, never a decision applied to a newer status. `latest()`
        returns the newest body the caller's watch has seen: when it is still the version this engine last
        wrote, or an older one (the watch lags behind that write), the watch shows no change during the sleep
        and that write's answer is decided from instead of a GET (`_unchanged_since`). An API error never ends
        the loop: it is recorded on the incident and retried (`stalls.py`).
        """
        carried = self._seeded(seed) if seed is not None else None
        uid = carried.ref.uid if carried is not None else None
        tick = Advance(finished=False)
        try:
            while True:
                resting: IncidentRun | None = None  # written and clean: reusable after the sleep if unchanged
                try:
                    tick, run = await self.advance(namespace, name, carried)
                    uid = run.ref.uid if run is not None else uid
                except ClientError as exc:
                    carried = None
                    if not await self._stalls.stalled(namespace, name, exc):
                        return Advance(finished=True)  # the incident is gone
                    tick = Advance(finished=False, delay=self._stalls.retry_delay(exc, self.idle_seconds))
                else:
                    carried = run if not tick.finished and tick.delay <= 0 else None
                    resting = run if carried is None and not tick.finished else None
                    await self._stalls.recovered(namespace, name, run.status if run is not None else None)
                if tick.finished or await self._pause(sleep, tick):
                    return tick
                if resting is not None and latest is not None and _unchanged_since(resting, latest()):
                    carried = resting
        finally:
            self._stalls.forget(namespace, name)
            self._forget(namespace, name, uid, finished=tick.finished)

    async def _pause(self, sleep: Callable[[float], Awaitable[bool]], tick: Advance) -> bool:
        """`sleep(tick.delay)`, cut short by a release of the Lease the incident waits for (lock.Releases)."""
        released = tick.waits_for.listen() if tick.waits_for is not None and tick.delay > 0 else None
        if tick.waits_for is None or released is None:
            return await sleep(tick.delay)
        sleeping = asyncio.ensure_future(sleep(tick.delay))
        waking = asyncio.ensure_future(released.wait())
        try:
            await asyncio.wait({sleeping, waking}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            tick.waits_for.stop_listening(released)
            for task in (sleeping, waking):
                task.cancel()
            await asyncio.gather(sleeping, waking, return_exceptions=True)
        return bool(sleeping.done() and not sleeping.cancelled() and sleeping.result())

    async def release_lock(self, body: Mapping[str, Any]) -> None:
        """Give back the namespace Lease of a deleted incident (a no-op unless this incident holds it)."""
        try:
            spec = TradeSenseIncidentSpec.model_validate(body.get("spec") or {})
        except ValidationError:
            return  # an invalid spec was never planned, so it never took the lock
        ref = ObjectRef.from_body(body)
        me = Holder(namespace=ref.namespace, name=ref.name, uid=ref.uid or "unknown")
        await self._lock_for(me, spec, None).release()

    async def record_alert_state(self, namespace: str, name: str) -> None:
        """Refresh AlertResolved on a FINISHED incident (a running one is refreshed by its own advance)."""
        for _ in range(3):  # a concurrent status write: re-read and apply the annotations again
            obj = await self._store.load(namespace, name)
            if obj is None or not is_terminal(obj.status.phase):
                return
            run = self._writer.open(obj)
            sync_alert_condition(run, self._writer)
            try:
                await self._writer.commit(run)
            except StaleStatus:
                continue
            return

    async def advance(
        self, namespace: str, name: str, carried: IncidentRun | None = None
    ) -> tuple[Advance, IncidentRun | None]:
        """Take the next decision from `carried` (the previous advance's run) or a fresh read, and persist it
        unless the caller continues at once. Returns the run decided on (None when there was none to read).
        Client errors of our own writes propagate."""
        with log_context(obj=f"{INCIDENTS.kind} {namespace}/{name}"):
            try:
                run = carried if carried is not None else await self._open(namespace, name)
                if isinstance(run, Advance):
                    return run, None
                try:
                    tick = await self._advance(run)
                except ClientError:
                    await self._write_staged(run)
                    raise
                if tick.finished or tick.delay > 0:
                    await self._writer.commit(run)  # what was staged, before anything waits
                    await run.events.settle()  # and the Events posted in the background
            except StaleStatus as exc:
                log.info("not writing a decision made from an outdated status (%s): deciding again", exc)
                return Advance(finished=False, delay=0.0), None
            return tick, run

    async def _write_staged(self, run: IncidentRun) -> None:
        """Write what an advance that failed had staged (it is always a state the next write would carry),
        unless the failure was that write."""
        if run.write_failed:
            return
        try:
            await self._writer.commit(run)
        except (ClientError, StaleStatus) as exc:
            log.info("could not write the staged status after an API error (%s): deciding again from storage", exc)

    async def _open(self, namespace: str, name: str) -> IncidentRun | Advance:
        """A fresh read of the incident as a run, or what to do when there is nothing to act on."""
        try:
            obj = await self._store.load(namespace, name)
        except StatusUnreadable as exc:
            # Acting on a status we cannot read could repeat finished steps: stop and say so (once).
            await self._report_unreadable(namespace, name, str(exc))
            return Advance(finished=False, delay=self.idle_seconds)
        if obj is None:
            return Advance(finished=True)
        if is_terminal(obj.status.phase):
            return Advance(finished=True, phase=obj.status.phase)
        return self._writer.open(obj)

    def _seeded(self, body: Mapping[str, Any]) -> IncidentRun | None:
        """A run from a body the caller read (None when it is finished or its status does not parse)."""
        try:
            obj = incident_object(body, parse_status(body.get("status")))
        except StatusUnreadable:
            return None  # the first advance reads it and reports it
        return None if is_terminal(obj.status.phase) else self._writer.open(obj)

    def _forget(self, namespace: str, name: str, uid: str | None, *, finished: bool) -> None:
        """The incident's daemon ends: drop what this process kept about it (one engine serves all incidents,
        so nothing may grow with every incident ever seen). A finished incident also leaves the phase gauges'
        bookkeeping; an unfinished one keeps it for its restarted daemon."""
        prefix = f"{namespace}/{name}/"
        for key in [k for k in self._locks if k.startswith(prefix)]:
            self._locks.pop(key).forget()  # no longer alive here: its queue entry counts by its age again
        self._unreadable_reported.discard(f"{namespace}/{name}")
        self._specs.pop(f"{namespace}/{name}", None)
        if uid:
            self._steps.forget(uid)
            if finished:
                self._metrics.forget(uid)

    def _parsed(self, run: IncidentRun) -> tuple[TradeSenseIncidentSpec, dict[str, str]]:
        """The validated spec and its immutability fingerprint, computed once per generation of the incident
        (not once per advance: both validate the whole spec). ValidationError for an invalid spec."""
        key = f"{run.ref.namespace}/{run.ref.name}"
        version = (run.ref.uid, run.obj.generation)
        cached = self._specs.get(key)
        if cached is None or cached[0] != version or run.obj.generation is None:
            spec = TradeSenseIncidentSpec.model_validate(run.obj.raw_spec)
            cached = (version, spec, spec_fingerprint(run.obj.raw_spec))
            self._specs[key] = cached
        return cached[1], cached[2]

    def _spec(self, run: IncidentRun) -> TradeSenseIncidentSpec:
        return self._parsed(run)[0]

    async def _advance(self, run: IncidentRun) -> Advance:
        obj = run.obj
        self._metrics.seen(run.ref.uid or run.ref.name, str(obj.raw_spec.get("runbook", "")), obj.status.phase)
        sync_alert_condition(run, self._writer)
        try:
            spec = self._spec(run)
        except ValidationError as exc:
            return await self._reject(run, *spec_problems(exc)[0])
        if obj.deleting:
            await self._lock(run, spec).release()
            return Advance(finished=True)
        if not run.status.plan:
            return await self._plan(run, spec)
        changed = changed_fields(run.status.spec_fingerprint, self._parsed(run)[1])
        if changed:
            return await self._block(run, "SpecChanged", change_message(changed))
        await self._escalator.check_deadline(run, spec)
        if spec.cancel:
            return await self._cancel(run, spec)
        if spec.dry_run:
            await self._dry_runs.run(run, spec)
            return Advance(finished=True, phase=IncidentPhase.SUCCEEDED)
        return await self._execute(run, spec)

    # -- planning ------------------------------------------------------------------------------

    async def _plan(self, run: IncidentRun, spec: TradeSenseIncidentSpec) -> Advance:
        """Freeze the plan (staged: it is written with the first checkpoint, wait or end that follows)."""
        now = self._writer.now()
        deadline = respond_by(run.obj.created or now, spec.severity)
        run.status = run.status.model_copy(update={"respond_by": deadline})
        try:
            plan = self._planner(spec)
        except PlanError as exc:
            return await self._reject(run, exc.field, exc.problem)
        if not plan:
            return await self._reject(run, "spec.runbook", f"runbook {spec.runbook.value} resolved to no steps")
        run.status = run.status.model_copy(update={
            "plan": plan,
            "steps": initial_steps(plan),
            "spec_fingerprint": self._parsed(run)[1],
            "conditions": set_condition(run.status.conditions, type_="SpecValid", status=True, reason="Planned",
                                        message="spec resolved to a plan", now=now,
                                        observed_generation=run.obj.generation),
        })
        approvals = [p.id for p in plan if p.destructive]
        message = f"planned {len(plan)} steps of runbook {spec.runbook.value}" + (
            f"; approval needed for: {', '.join(approvals)}" if approvals else "")
        run.status = self._writer.phase(run, IncidentPhase.PENDING, "Planned", message)
        if not spec.dry_run:  # a dry run's one Event, DryRunComplete, names the runbook and every step
            await run.events.normal("Planned", f"{plan_headline(spec, deadline)}: " + " → ".join(p.id for p in plan))
        return Advance(finished=False, delay=0.0)

    async def _reject(self, run: IncidentRun, field_path: str, problem: str) -> Advance:
        """An invalid spec: Failed, SpecValid=False naming the field, a Warning Event. Never retried."""
        message = clip(f"invalid spec: {field_path}: {problem}", 1024)
        run.status = run.status.model_copy(update={"conditions": set_condition(
            run.status.conditions, type_="SpecValid", status=False, reason="InvalidSpec", message=message,
            now=self._writer.now(), observed_generation=run.obj.generation)})
        run.status = self._writer.phase(run, IncidentPhase.FAILED, "InvalidSpec", message)
        await run.events.warning("InvalidSpec", message)
        await self._writer.commit(run)  # the terminal write comes last (module docstring)
        return Advance(finished=True, phase=IncidentPhase.FAILED)

    # -- execution -----------------------------------------------------------------------------

    async def _execute(self, run: IncidentRun, spec: TradeSenseIncidentSpec) -> Advance:
        now = self._writer.now()
        try:
            decision = next_decision(run.status.plan, run.status.steps, approvals=spec.approvals, now=now)
        except InconsistentStatus as exc:
            return await self._fail(run, spec, str(exc), reason="InconsistentStatus")
        if isinstance(decision, Complete):
            return await self._succeed(run, spec)
        if isinstance(decision, StepHasFailed):
            step = run.status.steps[decision.index]
            return await self._fail(run, spec, f"step {step.id} failed: {step.message}", reason="StepFailed")
        if isinstance(decision, AwaitApproval):
            await self._lock(run, spec).step_aside()  # no lock while people decide
            return await self._await_approval(run, spec, decision.index)
        if isinstance(decision, Backoff):
            await self._lock(run, spec).step_aside()  # nor while backing off between attempts
            remaining = (decision.until - now).total_seconds()
            return Advance(finished=False, delay=min(max(remaining, self.poll_seconds), self.idle_seconds))
        if isinstance(decision, StartAttempt):
            blocked = await self._namespace_gate(run, spec)
            if blocked is not None:
                return blocked
        namespace_lock = self._lock(run, spec)
        lock = await namespace_lock.acquire()
        if not lock.acquired:
            waiting = await self._wait(run, IncidentPhase.PENDING, "WaitingForLock", self._lock_message(run, lock),
                                       warning=False)
            # No polling of the Lease: woken by a release in this process, else back when the queue entry
            # needs its refresh (a third of the Lease duration), which also notices other replicas' releases.
            return replace(waiting, delay=max(namespace_lock.duration_seconds / 3, self.poll_seconds),
                           waits_for=namespace_lock)
        if isinstance(decision, StartAttempt):
            blocked = await self._storm_gate(run, spec, decision.index)
            if blocked is not None:
                return blocked
            return await self._attempt(run, spec, decision.index, new=True)
        if isinstance(decision, ContinueAttempt):
            return await self._attempt(run, spec, decision.index, new=False)
        raise AssertionError(f"unhandled decision {decision!r}")  # pragma: no cover  (the union is exhaustive)

    async def _attempt(self, run: IncidentRun, spec: TradeSenseIncidentSpec, index: int, *, new: bool) -> Advance:
        outcome = await self._steps.attempt(run, spec, index, new=new, lock=self._lock(run, spec))
        if isinstance(outcome, StepGaveUp):
            return await self._fail(run, spec, outcome.message, reason="StepFailed")
        return outcome

    async def _namespace_gate(self, run: IncidentRun, spec: TradeSenseIncidentSpec) -> Advance | None:
        """No new step starts in a missing or frozen namespace.

        The namespace comes from the process's namespace watch cache (a direct GET where RBAC forbids
        list/watch): a freeze set a watch's latency before a step starts may let that one step start, as a
        GET racing the annotation always could. A blocked incident leaves the Lease's queue (or hands on a
        Lease handed to it meanwhile): it will not act until the block clears.
        """
        target = spec.target.namespace
        try:
            namespace: Mapping[str, Any] | None = await self._runtime.watch_cache(NAMESPACES).get("", target)
        except NotFound:
            namespace = None
        reason, message = ("", "")
        if namespace is None:
            reason, message = "MissingNamespace", f"target namespace {target} does not exist"
        elif is_frozen((namespace.get("metadata") or {}).get("annotations")):
            reason, message = "Frozen", freeze_message(target)
        if not reason:
            return None
        lock = self._lock(run, spec)
        if lock.engaged:
            await lock.step_aside()
        return await self._block(run, reason, message)

    async def _storm_gate(self, run: IncidentRun, spec: TradeSenseIncidentSpec, index: int) -> Advance | None:
        planned = run.status.plan[index]
        deployment = restarted_deployment(planned)
        if deployment is None:
            return None
        result = await self._steps.guard(spec).check(deployment, self._steps.stamp(run, planned))
        if result.verdict is None or result.verdict.allowed:
            return None
        message = result.verdict.message(deployment)
        if run.saved.message != message:
            self._metrics.storm_guard_blocked(spec.target.namespace, deployment)
        return await self._block(run, "RestartStormGuard", message)

    async def _await_approval(self, run: IncidentRun, spec: TradeSenseIncidentSpec, index: int) -> Advance:
        """Wait for the step's approval; past its approval deadline escalate once, and fail if so configured."""
        planned = run.status.plan[index]
        now = self._writer.now()
        step = awaiting_approval(run.status.steps[index], planned, now=now)
        run.set_step(index, step)
        run.status = run.status.model_copy(update={"current_step": planned.id})
        deadline = approval_deadline(step.awaiting_since, run.status.respond_by, spec.approval_timeout_seconds)
        if deadline is not None and now >= deadline:
            message = (f"step {planned.id} waited for its approval since {format_time(step.awaiting_since)}; "
                       f"none came by {format_time(deadline)}")
            if run.status.escalation is None:
                await self._escalator.escalate(run, spec, "ApprovalTimedOut", message,
                                               phase=IncidentPhase.FAILED if spec.fail_on_approval_timeout else None)
            if spec.fail_on_approval_timeout:
                return await self._fail(run, spec, message, reason="ApprovalTimedOut")
        what = planned.description or f"{planned.action.value} {planned.target}".strip()
        return await self._wait(
            run, IncidentPhase.AWAITING_APPROVAL, "AwaitingApproval",
            f"step {planned.id} is destructive ({what}); add {planned.id!r} to spec.approvals to run it",
            warning=False,
        )

    @staticmethod
    def _lock_message(run: IncidentRun, lock: LockResult) -> str:
        """Who has the namespace: the holder, or the waiter first in line for a free Lease."""
        identity = lock.holder or lock.ahead
        holder = Holder.parse(identity)
        who = holder.describe(run.ref.namespace) if holder else (identity or "another holder")
        if lock.holder or not lock.ahead:
            return f"waiting for lock held by {who}"
        return f"waiting for lock: {who} is ahead in the queue"

    # -- endings -------------------------------------------------------------------------------

    async def _succeed(self, run: IncidentRun, spec: TradeSenseIncidentSpec) -> Advance:
        steps = run.status.steps
        skipped = sum(1 for s in steps if s.state is StepState.SKIPPED)
        started = run.status.started_at or self._writer.now()
        took = _duration(self._writer.now() - started)
        message = f"all {len(steps)} steps completed" + (f" ({skipped} skipped)" if skipped else "") + f" in {took}"
        run.status = run.status.model_copy(update={"current_step": None})
        run.status = self._writer.phase(run, IncidentPhase.SUCCEEDED, "Succeeded", message)
        await self._lock(run, spec).release()
        await run.events.normal("IncidentSucceeded", message)
        await self._writer.commit(run)  # the terminal write comes last (module docstring)
        return Advance(finished=True, phase=IncidentPhase.SUCCEEDED)

    async def _fail(self, run: IncidentRun, spec: TradeSenseIncidentSpec, message: str, *, reason: str) -> Advance:
        if run.status.escalation is None:  # recorded (and sent) before the terminal write, which comes last
            await self._escalator.escalate(run, spec, "IncidentFailed", f"the incident failed: {message}",
                                           phase=IncidentPhase.FAILED)
        failed = next((s.id for s in run.status.steps if s.state is StepState.FAILED), None)
        run.status = run.status.model_copy(update={"steps": cancel_unfinished(
            run.status.steps, message=f"not run: step {failed} failed" if failed else "not run: incident failed",
            now=self._writer.now())})
        run.status = self._writer.phase(run, IncidentPhase.FAILED, reason, message)
        await self._lock(run, spec).release()
        await run.events.warning("IncidentFailed", message)
        await self._writer.commit(run)  # the terminal write comes last (module docstring)
        return Advance(finished=True, phase=IncidentPhase.FAILED)

    async def _cancel(self, run: IncidentRun, spec: TradeSenseIncidentSpec) -> Advance:
        now = self._writer.now()
        done = sum(1 for s in run.status.steps if s.state in (StepState.SUCCEEDED, StepState.SKIPPED))
        steps = [
            finish(s, state=StepState.CANCELLED, evidence={}, now=now,
                   message=f"cancelled while running; what it changed stays ({s.message})" if s.message
                   else "cancelled while running; what it changed stays")
            if s.state is StepState.RUNNING else s
            for s in run.status.steps
        ]
        steps = cancel_unfinished(steps, message="cancelled before it started (spec.cancel)", now=now)
        message = f"cancelled by spec.cancel after {done} of {len(steps)} steps"
        run.status = run.status.model_copy(update={"steps": steps, "current_step": None})
        run.status = self._writer.phase(run, IncidentPhase.CANCELLED, "Cancelled", message)
        await self._lock(run, spec).release()
        await run.events.normal("IncidentCancelled", message)
        await self._writer.commit(run)  # the terminal write comes last (module docstring)
        return Advance(finished=True, phase=IncidentPhase.CANCELLED)

    # -- waiting states ------------------------------------------------------------------------

    async def _block(self, run: IncidentRun, reason: str, message: str) -> Advance:
        return await self._wait(run, IncidentPhase.BLOCKED, reason, message, warning=True)

    async def _wait(
        self, run: IncidentRun, phase: IncidentPhase, reason: str, message: str, *, warning: bool
    ) -> Advance:
        """Enter a waiting phase; the Event is posted only when the phase or its message changes (before the
        write, which then carries its timeline entry), and for the lock only on entering the wait: that the
        holder ahead changed is in the status message, not a transition of this incident."""
        changed = (run.saved.phase, run.saved.message) != (phase, message)
        if reason == "WaitingForLock" and _progressing_reason(run.saved) == reason:
            changed = False
        run.status = self._writer.phase(run, phase, reason, message)
        if changed:
            event_reason = "Blocked" if phase is IncidentPhase.BLOCKED else reason
            if warning:
                await run.events.warning(event_reason, message)
            else:
                await run.events.normal(event_reason, message)
        await self._writer.commit(run)
        return Advance(finished=False, delay=self.idle_seconds)

    async def _report_unreadable(self, namespace: str, name: str, problem: str) -> None:
        key = f"{namespace}/{name}"
        if key in self._unreadable_reported:
            return
        self._unreadable_reported.add(key)
        log.warning("incident %s has an unreadable status, not acting on it: %s", key, problem)
        body = await self._runtime.kube.get_or_none(INCIDENTS, name, namespace)
        if body is not None:
            await IncidentEvents(self._runtime.kube, self._runtime.clock, ObjectRef.from_body(body)).warning(
                "StatusUnreadable", f"not acting on an unreadable status ({problem}); fix or delete the status")

    # -- the namespace lock --------------------------------------------------------------------

    def _lock(self, run: IncidentRun, spec: TradeSenseIncidentSpec) -> NamespaceLock:
        me = Holder(namespace=run.ref.namespace, name=run.ref.name, uid=run.ref.uid or "unknown")
        return self._lock_for(me, spec, run.obj.created)

    def _lock_for(self, me: Holder, spec: TradeSenseIncidentSpec, created: datetime | None) -> NamespaceLock:
        """One lock object per incident and target; it queues by the incident's severity and age."""
        key = f"{me.identity}@{spec.target.namespace}"
        lock = self._locks.get(key)
        if lock is None:
            lock = NamespaceLock(self._runtime.kube, self._runtime.clock, namespace=spec.target.namespace, me=me,
                                 duration_seconds=self._runtime.settings.lock_lease_seconds,
                                 severity=spec.severity.value, since=created, releases=self._releases)
            self._locks[key] = lock
        return lock


def _progressing_reason(status: TradeSenseIncidentStatus) -> str | None:
    return next((c.reason for c in status.conditions if c.type == "Progressing"), None)


def _unchanged_since(run: IncidentRun, body: Mapping[str, Any]) -> bool:
    """The watched body is the version `run` wrote (or read) or an older one, and `run` has nothing unwritten.

    Older: the watch has not delivered our own last write yet (kopf lags under load). That tells as much as
    seeing our write: a change after it may be on its way in both cases, and every write is guarded by
    `run.version`, so deciding from it costs at most a Conflict and a read, never a decision applied to a
    newer status. Only a watched version newer than ours (or one that cannot be compared) needs a GET.
    """
    if run.version is None or run.status != run.saved or run.events.pending:
        return False
    ours = {"metadata": {"resourceVersion": run.version}}
    return version_at_least(ours, body) is True


def _duration(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"
