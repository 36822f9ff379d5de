"""The crash-safe step engine: one `advance` = read the incident, take one decision, checkpoint it.

Crash safety rests on three rules:
- status is the only memory: every iteration re-reads the object and decides from the stored status
  (`domain.incident.machine.next_decision`), so a restarted operator continues where the old one was;
- a step is checkpointed Running (attempts+1, attemptStartedAt) BEFORE its action is invoked and its
  result is checkpointed AFTER, so a crash in between re-invokes the same attempt, and the action's own
  idempotency (stamps, checkpoints) turns that into exactly one effect;
- nothing outside status is trusted across iterations except caches that only save API calls;
- the write that makes an incident terminal is the LAST thing an advance does: kopf stops (and soon
  cancels) the daemon as soon as it sees a terminal phase, so the lock release, the final Events and
  a failed incident's notification happen before it; a crash in between only repeats them.

Gates are checked in this order before a step starts: spec immutability, deadline (escalation never
blocks), cancel, dry run, freeze (namespace annotation), the per-namespace Lease, approval, the
restart-storm guard. Waiting states (Pending on the lock, AwaitingApproval, Blocked) are re-checked on
every poll and resume by themselves once the condition clears.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from tradesense_operator.api.v1alpha1.incident import (
    EscalationStatus,
    IncidentPhase,
    IncidentTarget,
    PlannedStep,
    StepAction,
    StepState,
    StepStatus,
    TradeSenseIncidentSpec,
    TradeSenseIncidentStatus,
)
from tradesense_operator.clients.errors import ClientError
from tradesense_operator.clients.kube import INCIDENTS, NAMESPACES, ObjectRef
from tradesense_operator.domain.conditions import set_condition
from tradesense_operator.domain.incident.alert_state import CONDITION as ALERT_CONDITION
from tradesense_operator.domain.incident.alert_state import alert_state
from tradesense_operator.domain.incident.deadlines import is_overdue, respond_by
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
    attempt_deadline_passed,
    initial_steps,
    is_terminal,
    next_decision,
    working_phase,
)
from tradesense_operator.domain.incident.phases import with_phase
from tradesense_operator.domain.incident.spec_errors import spec_problems
from tradesense_operator.domain.incident.storm import restarted_deployment
from tradesense_operator.domain.incident.transitions import (
    awaiting_approval,
    cancel_unfinished,
    clip,
    fail_attempt,
    finish,
    start_attempt,
    waiting,
    would_run,
)
from tradesense_operator.domain.runbooks.errors import PlanError
from tradesense_operator.observability.context import log_context
from tradesense_operator.services.incidents.escalation import escalation_event, send_notification
from tradesense_operator.services.incidents.events import IncidentEvents
from tradesense_operator.services.incidents.lock import NamespaceLock
from tradesense_operator.services.incidents.metrics import IncidentMetrics
from tradesense_operator.services.incidents.store import IncidentObject, IncidentStore, StatusUnreadable
from tradesense_operator.services.incidents.storm_guard import RestartGuard
from tradesense_operator.services.runtime import Runtime
from tradesense_operator.services.step_adapters.base import Action, Outcome, StepContext, StepFailed, StepResult

log = logging.getLogger(__name__)

Planner = Callable[[TradeSenseIncidentSpec], list[PlannedStep]]

WAIT_POLL_FACTOR = 5             # waiting on people (approval, freeze, lock) polls 5x less often than steps
BACKOFF_CAP_SECONDS = 300.0
NOTIFY_RETRY_SECONDS = 60.0      # a failing webhook is retried at most this often
NOTIFY_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Advance:
    """Result of one `advance`: whether the incident is finished (or gone) and when to advance again."""

    finished: bool
    delay: float = 0.0
    phase: IncidentPhase | None = None


@dataclass
class _Run:
    """One iteration's view of an incident: what was read, what is being written."""

    obj: IncidentObject
    status: TradeSenseIncidentStatus
    saved: TradeSenseIncidentStatus
    events: IncidentEvents

    @property
    def ref(self) -> ObjectRef:
        return self.obj.ref

    def set_step(self, index: int, step: StepStatus) -> None:
        steps = list(self.status.steps)
        steps[index] = step
        self.status = self.status.model_copy(update={"steps": steps})


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
        self._actions = actions
        self._planner = planner
        self._backoff_cap = backoff_cap
        self._store = IncidentStore(runtime.kube)
        self._metrics = IncidentMetrics(runtime.metrics)
        self._locks: dict[str, NamespaceLock] = {}
        self._seen_attempts: set[tuple[str, str, int]] = set()
        self._notify_tried: dict[str, datetime] = {}
        self._unreadable_reported: set[str] = set()

    # -- driving -------------------------------------------------------------------------------

    @property
    def poll_seconds(self) -> float:
        """Delay between polls of a waiting step (settings.step_poll_seconds)."""
        return self._runtime.settings.step_poll_seconds

    @property
    def idle_seconds(self) -> float:
        """Delay between checks while waiting on something outside the engine."""
        return self.poll_seconds * WAIT_POLL_FACTOR

    async def run(self, namespace: str, name: str, *, sleep: Callable[[float], Awaitable[bool]]) -> Advance:
        """Advance until the incident is finished; `sleep(delay)` returns True when the caller wants to stop."""
        while True:
            tick = await self.advance(namespace, name)
            if tick.finished or await sleep(tick.delay):
                return tick

    async def release_lock(self, body: Mapping[str, Any]) -> None:
        """Give back the namespace Lease of a deleted incident (a no-op unless this incident holds it)."""
        try:
            spec = TradeSenseIncidentSpec.model_validate(body.get("spec") or {})
        except ValidationError:
            return  # an invalid spec was never planned, so it never took the lock
        ref = ObjectRef.from_body(body)
        me = Holder(namespace=ref.namespace, name=ref.name, uid=ref.uid or "unknown")
        await self._lock_for(me, spec.target.namespace).release()

    async def record_alert_state(self, namespace: str, name: str) -> None:
        """Refresh AlertResolved on a FINISHED incident (a running one is refreshed by its own advance)."""
        obj = await self._store.load(namespace, name)
        if obj is None or not is_terminal(obj.status.phase):
            return
        run = _Run(obj=obj, status=obj.status, saved=obj.status,
                   events=IncidentEvents(self._runtime.kube, self._runtime.clock, obj.ref))
        await self._sync_alert_condition(run)

    async def advance(self, namespace: str, name: str) -> Advance:
        """Read the incident, take the next decision, persist it. Client errors of our own writes propagate."""
        with log_context(obj=f"{INCIDENTS.kind} {namespace}/{name}"):
            return await self._advance(namespace, name)

    async def _advance(self, namespace: str, name: str) -> Advance:
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
        run = _Run(obj=obj, status=obj.status, saved=obj.status,
                   events=IncidentEvents(self._runtime.kube, self._runtime.clock, obj.ref))
        self._metrics.seen(run.ref.uid or run.ref.name, str(obj.raw_spec.get("runbook", "")), obj.status.phase)
        await self._sync_alert_condition(run)
        try:
            spec = TradeSenseIncidentSpec.model_validate(obj.raw_spec)
        except ValidationError as exc:
            return await self._reject(run, *spec_problems(exc)[0])
        if obj.deleting:
            await self._lock(run, spec).release()
            return Advance(finished=True)
        if not run.status.plan:
            return await self._plan(run, spec)
        changed = changed_fields(run.status.spec_fingerprint, spec_fingerprint(obj.raw_spec))
        if changed:
            return await self._block(run, "SpecChanged", change_message(changed))
        await self._check_deadline(run, spec)
        if spec.cancel:
            return await self._cancel(run, spec)
        if spec.dry_run:
            return await self._dry_run(run, spec)
        return await self._execute(run, spec)

    # -- planning ------------------------------------------------------------------------------

    async def _plan(self, run: _Run, spec: TradeSenseIncidentSpec) -> Advance:
        now = self._now()
        deadline = respond_by(run.obj.created or now, spec.severity)
        run.status = run.status.model_copy(update={"respond_by": deadline})
        run.status = self._phase(run, IncidentPhase.PLANNING, "Planning", f"resolving runbook {spec.runbook.value}")
        await self._commit(run)
        try:
            plan = self._planner(spec)
        except PlanError as exc:
            return await self._reject(run, exc.field, exc.problem)
        if not plan:
            return await self._reject(run, "spec.runbook", f"runbook {spec.runbook.value} resolved to no steps")
        run.status = run.status.model_copy(update={
            "plan": plan,
            "steps": initial_steps(plan),
            "spec_fingerprint": spec_fingerprint(run.obj.raw_spec),
            "conditions": set_condition(run.status.conditions, type_="SpecValid", status=True, reason="Planned",
                                        message="spec resolved to a plan", now=now,
                                        observed_generation=run.obj.generation),
        })
        approvals = [p.id for p in plan if p.destructive]
        message = f"planned {len(plan)} steps of runbook {spec.runbook.value}" + (
            f"; approval needed for: {', '.join(approvals)}" if approvals else "")
        run.status = self._phase(run, IncidentPhase.PENDING, "Planned", message)
        await self._commit(run)
        await run.events.normal(
            "Planned",
            f"runbook {spec.runbook.value} ({spec.severity.value}, respond by {_fmt(deadline)}"
            f"{', dry run' if spec.dry_run else ''}): " + " → ".join(p.id for p in plan),
        )
        return Advance(finished=False, delay=0.0)

    async def _reject(self, run: _Run, field_path: str, problem: str) -> Advance:
        """An invalid spec: Failed, SpecValid=False naming the field, a Warning Event. Never retried."""
        message = clip(f"invalid spec: {field_path}: {problem}", 1024)
        run.status = run.status.model_copy(update={"conditions": set_condition(
            run.status.conditions, type_="SpecValid", status=False, reason="InvalidSpec", message=message,
            now=self._now(), observed_generation=run.obj.generation)})
        run.status = self._phase(run, IncidentPhase.FAILED, "InvalidSpec", message)
        await run.events.warning("InvalidSpec", message)
        await self._commit(run)  # the terminal write comes last (module docstring)
        return Advance(finished=True, phase=IncidentPhase.FAILED)

    # -- execution -----------------------------------------------------------------------------

    async def _execute(self, run: _Run, spec: TradeSenseIncidentSpec) -> Advance:
        now = self._now()
        try:
            decision = next_decision(run.status.plan, run.status.steps, approvals=spec.approvals, now=now)
        except InconsistentStatus as exc:
            return await self._fail(run, spec, str(exc), reason="InconsistentStatus")
        if isinstance(decision, Complete):
            return await self._succeed(run, spec)
        if isinstance(decision, StepHasFailed):
            step = run.status.steps[decision.index]
            return await self._fail(run, spec, f"step {step.id} failed: {step.message}", reason="StepFailed")
        if isinstance(decision, StartAttempt):
            blocked = await self._namespace_gate(run, spec)
            if blocked is not None:
                return blocked
        lock = await self._lock(run, spec).acquire()
        if not lock.acquired:
            holder = Holder.parse(lock.holder)
            who = holder.describe(run.ref.namespace) if holder else (lock.holder or "another holder")
            return await self._wait(run, IncidentPhase.PENDING, "WaitingForLock", f"waiting for lock held by {who}",
                                    warning=False)
        if isinstance(decision, AwaitApproval):
            return await self._await_approval(run, decision.index)
        if isinstance(decision, Backoff):
            remaining = (decision.until - now).total_seconds()
            return Advance(finished=False, delay=min(max(remaining, self.poll_seconds), self.idle_seconds))
        if isinstance(decision, StartAttempt):
            blocked = await self._storm_gate(run, spec, decision.index)
            if blocked is not None:
                return blocked
            return await self._attempt(run, spec, decision.index, new=True)
        if isinstance(decision, ContinueAttempt):
            return await self._attempt(run, spec, decision.index, new=False)
        raise AssertionError(f"unhandled decision {decision!r}")  # pragma: no cover  (the union is exhaustive)

    async def _namespace_gate(self, run: _Run, spec: TradeSenseIncidentSpec) -> Advance | None:
        """No new step starts in a missing or frozen namespace."""
        target = spec.target.namespace
        namespace = await self._runtime.kube.get_or_none(NAMESPACES, target)
        if namespace is None:
            return await self._block(run, "MissingNamespace", f"target namespace {target} does not exist")
        if is_frozen((namespace.get("metadata") or {}).get("annotations")):
            return await self._block(run, "Frozen", freeze_message(target))
        return None

    async def _storm_gate(self, run: _Run, spec: TradeSenseIncidentSpec, index: int) -> Advance | None:
        planned = run.status.plan[index]
        deployment = restarted_deployment(planned)
        if deployment is None:
            return None
        result = await self._guard(spec).check(deployment, self._stamp(run, planned))
        if result.verdict is None or result.verdict.allowed:
            return None
        message = result.verdict.message(deployment)
        if run.saved.message != message:
            self._metrics.storm_guard_blocked(spec.target.namespace, deployment)
        return await self._block(run, "RestartStormGuard", message)

    async def _await_approval(self, run: _Run, index: int) -> Advance:
        planned = run.status.plan[index]
        run.set_step(index, awaiting_approval(run.status.steps[index], planned))
        run.status = run.status.model_copy(update={"current_step": planned.id})
        what = planned.description or f"{planned.action.value} {planned.target}".strip()
        return await self._wait(
            run, IncidentPhase.AWAITING_APPROVAL, "AwaitingApproval",
            f"step {planned.id} is destructive ({what}); add {planned.id!r} to spec.approvals to run it",
            warning=False,
        )

    async def _attempt(self, run: _Run, spec: TradeSenseIncidentSpec, index: int, *, new: bool) -> Advance:
        with log_context(step=run.status.plan[index].id):
            return await self._run_attempt(run, spec, index, new=new)

    async def _run_attempt(self, run: _Run, spec: TradeSenseIncidentSpec, index: int, *, new: bool) -> Advance:
        planned = run.status.plan[index]
        position = f"[{index + 1}/{len(run.status.plan)}] {planned.id}"
        now = self._now()
        if new:
            step = start_attempt(run.status.steps[index], now=now)
            run.set_step(index, step)
            run.status = run.status.model_copy(update={
                "current_step": planned.id, "started_at": run.status.started_at or now})
            run.status = self._phase(run, working_phase(run.status.plan, index), "StepRunning",
                                     f"{position}: {planned.description or planned.action.value}")
            await self._commit(run)  # checkpoint BEFORE the action runs
            self._seen_attempts.add((run.ref.uid or "", planned.id, step.attempts))
            await run.events.normal(
                "StepStarted",
                f"{position} {planned.action.value} {planned.target} (attempt {step.attempts}/{planned.retries + 1})"
                f"{': ' + planned.description if planned.description else ''}",
            )
        else:
            step = run.status.steps[index]
            if step.attempt_started_at is None:  # Running without timing (older status): time from now
                step = step.model_copy(update={"attempt_started_at": now, "started_at": step.started_at or now})
                run.set_step(index, step)
            key = (run.ref.uid or "", planned.id, step.attempts)
            if key not in self._seen_attempts:
                self._seen_attempts.add(key)
                await run.events.normal("StepResumed", f"{position} resumed (attempt {step.attempts}): "
                                        "the operator restarted while it was running; the action checks "
                                        "what is already done before acting")
            if attempt_deadline_passed(planned, step, now):
                return await self._attempt_failed(
                    run, spec, index, f"no result within the step timeout of {planned.timeout_seconds}s"
                    + (f" (last: {step.message})" if step.message else ""))
        action = self._actions.get(planned.action)
        if action is None:
            run.set_step(index, finish(run.status.steps[index], state=StepState.FAILED, evidence={}, now=now,
                                       message=f"this operator has no implementation of action {planned.action.value}"))
            await self._commit(run)
            return await self._fail(run, spec, f"step {planned.id}: no implementation of {planned.action.value}",
                                    reason="StepFailed")
        deployment = restarted_deployment(planned)
        if deployment is not None:
            await self._guard(spec).record(deployment, self._stamp(run, planned))
        result_or_error = await self._invoke(run, spec, index, action)
        if isinstance(result_or_error, str):
            return await self._attempt_failed(run, spec, index, result_or_error)
        return await self._record_result(run, spec, index, result_or_error)

    async def _invoke(self, run: _Run, spec: TradeSenseIncidentSpec, index: int, action: Action) -> StepResult | str:
        """Run the action once; a failure comes back as its reason (a string)."""
        planned = run.status.plan[index]
        step = run.status.steps[index]

        async def save_checkpoint(values: Mapping[str, str]) -> None:
            current = run.status.steps[index]
            run.set_step(index, current.model_copy(update={"checkpoint": {**current.checkpoint, **values}}))
            await self._commit(run)

        ctx = StepContext(runtime=self._runtime, incident=run.ref, spec=spec, step=planned, attempt=step.attempts,
                          checkpoint=dict(step.checkpoint), save_checkpoint=save_checkpoint)
        elapsed = (self._now() - (step.attempt_started_at or self._now())).total_seconds()
        budget = max(planned.timeout_seconds - elapsed, 1.0)
        try:
            return await asyncio.wait_for(action.run(ctx), timeout=budget)
        except StepFailed as exc:
            return str(exc) or type(exc).__name__
        except TimeoutError:
            return f"the action did not return within {budget:.0f}s"
        except ClientError as exc:
            return f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # an action bug fails the attempt instead of wedging the daemon
            log.exception("action %s of step %s raised unexpectedly", planned.action.value, planned.id)
            return f"unexpected {type(exc).__name__} in action {planned.action.value}: {exc}"

    async def _record_result(self, run: _Run, spec: TradeSenseIncidentSpec, index: int, result: StepResult) -> Advance:
        planned = run.status.plan[index]
        position = f"[{index + 1}/{len(run.status.plan)}] {planned.id}"
        step = run.status.steps[index]
        now = self._now()
        if result.outcome is Outcome.WAITING:
            if attempt_deadline_passed(planned, step, now):
                return await self._attempt_failed(
                    run, spec, index, f"still waiting after {planned.timeout_seconds}s: {result.message}")
            run.set_step(index, waiting(step, message=result.message, evidence=result.evidence))
            await self._commit(run)
            delay = result.retry_after if result.retry_after is not None else self.poll_seconds
            return Advance(finished=False, delay=max(delay, 0.0))
        self._metrics.attempt_finished(planned, step, _OUTCOME_LABELS[result.outcome], now)
        if result.outcome is Outcome.SKIPPED:
            run.set_step(index, finish(step, state=StepState.SKIPPED, message=result.message,
                                       evidence=result.evidence, now=now))
            await self._commit(run)  # checkpoint AFTER the action
            await run.events.normal("StepSkipped", f"{position}: {result.message}")
            return Advance(finished=False, delay=0.0)
        run.set_step(index, finish(step, state=StepState.SUCCEEDED, message=result.message,
                                   evidence=result.evidence, now=now))
        await self._commit(run)  # checkpoint AFTER the action
        await run.events.normal("StepSucceeded", f"{position}: {result.message}")
        return Advance(finished=False, delay=0.0)

    async def _attempt_failed(self, run: _Run, spec: TradeSenseIncidentSpec, index: int, reason: str) -> Advance:
        planned = run.status.plan[index]
        position = f"[{index + 1}/{len(run.status.plan)}] {planned.id}"
        self._metrics.attempt_finished(planned, run.status.steps[index], "failed", self._now())
        step = fail_attempt(run.status.steps[index], planned, reason=clip(reason, 2048), now=self._now(),
                            backoff_base=self.poll_seconds, backoff_cap=self._backoff_cap)
        run.set_step(index, step)
        await self._commit(run)
        if step.state is StepState.FAILED:
            await run.events.warning("StepFailed", f"{position}: {step.message}")
            return await self._fail(run, spec, f"step {planned.id} failed: {step.message}", reason="StepFailed")
        await run.events.warning("AttemptFailed", f"{position}: {step.message}")
        return Advance(finished=False, delay=self.poll_seconds)

    # -- dry run -------------------------------------------------------------------------------

    async def _dry_run(self, run: _Run, spec: TradeSenseIncidentSpec) -> Advance:
        """Describe every step with the action's own words; change nothing; end Succeeded/DryRunComplete."""
        plan = run.status.plan
        for index, planned in enumerate(plan):
            if run.status.steps[index].state is StepState.WOULD_RUN:
                continue  # described before a restart
            description = await self._describe(run, spec, index)
            run.set_step(index, would_run(run.status.steps[index], description=description,
                                          destructive=planned.destructive, now=self._now()))
            run.status = run.status.model_copy(update={"current_step": planned.id})
            run.status = self._phase(run, IncidentPhase.RUNNING, "DryRun", f"dry run: describing {planned.id}")
            await self._commit(run)
            await run.events.normal("WouldChange", f"[{index + 1}/{len(plan)}] {planned.id}: "
                                    f"{run.status.steps[index].message}")
        gated = sum(1 for p in plan if p.destructive)
        message = (f"dry run: {len(plan)} steps would run"
                   f"{f' ({gated} need approval)' if gated else ''}; nothing was changed")
        run.status = run.status.model_copy(update={
            "current_step": None,
            "conditions": set_condition(run.status.conditions, type_="DryRun", status=True, reason="DryRunComplete",
                                        message=message, now=self._now(), observed_generation=run.obj.generation),
        })
        run.status = self._phase(run, IncidentPhase.SUCCEEDED, "DryRunComplete", message)
        await run.events.normal("DryRunComplete", message)
        await self._commit(run)  # the terminal write comes last (module docstring)
        return Advance(finished=True, phase=IncidentPhase.SUCCEEDED)

    async def _describe(self, run: _Run, spec: TradeSenseIncidentSpec, index: int) -> str:
        planned = run.status.plan[index]
        action = self._actions.get(planned.action)
        if action is None:
            return f"this operator has no implementation of action {planned.action.value}"

        async def refuse_checkpoint(_: Mapping[str, str]) -> None:
            raise RuntimeError("a dry run must not save checkpoints")

        ctx = StepContext(runtime=self._runtime, incident=run.ref, spec=spec, step=planned, attempt=0,
                          checkpoint={}, save_checkpoint=refuse_checkpoint)
        try:
            return await asyncio.wait_for(action.describe(ctx), timeout=planned.timeout_seconds)
        except (StepFailed, ClientError, TimeoutError) as exc:
            return f"cannot tell what would change: {exc or type(exc).__name__}"
        except Exception as exc:  # one broken describe() must not fail the whole dry run
            log.exception("describe() of action %s raised unexpectedly", planned.action.value)
            return f"cannot tell what would change: unexpected {type(exc).__name__}"

    # -- endings -------------------------------------------------------------------------------

    async def _succeed(self, run: _Run, spec: TradeSenseIncidentSpec) -> Advance:
        steps = run.status.steps
        skipped = sum(1 for s in steps if s.state is StepState.SKIPPED)
        started = run.status.started_at or self._now()
        took = _duration(self._now() - started)
        message = f"all {len(steps)} steps completed" + (f" ({skipped} skipped)" if skipped else "") + f" in {took}"
        run.status = run.status.model_copy(update={"current_step": None})
        run.status = self._phase(run, IncidentPhase.SUCCEEDED, "Succeeded", message)
        await self._lock(run, spec).release()
        await run.events.normal("IncidentSucceeded", message)
        await self._commit(run)  # the terminal write comes last (module docstring)
        return Advance(finished=True, phase=IncidentPhase.SUCCEEDED)

    async def _fail(self, run: _Run, spec: TradeSenseIncidentSpec, message: str, *, reason: str) -> Advance:
        failed = next((s.id for s in run.status.steps if s.state is StepState.FAILED), None)
        run.status = run.status.model_copy(update={"steps": cancel_unfinished(
            run.status.steps, message=f"not run: step {failed} failed" if failed else "not run: incident failed",
            now=self._now())})
        run.status = self._phase(run, IncidentPhase.FAILED, reason, message)
        await self._lock(run, spec).release()
        await run.events.warning("IncidentFailed", message)
        if run.status.escalation is None:
            await self._escalate(run, spec, "IncidentFailed", f"the incident failed: {message}", persist=False)
        await self._commit(run)  # the terminal write comes last (module docstring)
        return Advance(finished=True, phase=IncidentPhase.FAILED)

    async def _cancel(self, run: _Run, spec: TradeSenseIncidentSpec) -> Advance:
        done = sum(1 for s in run.status.steps if s.state in (StepState.SUCCEEDED, StepState.SKIPPED))
        steps = [
            finish(s, state=StepState.CANCELLED, evidence={}, now=self._now(),
                   message=f"cancelled while running; what it changed stays ({s.message})" if s.message
                   else "cancelled while running; what it changed stays")
            if s.state is StepState.RUNNING else s
            for s in run.status.steps
        ]
        steps = cancel_unfinished(steps, message="cancelled before it started (spec.cancel)", now=self._now())
        message = f"cancelled by spec.cancel after {done} of {len(steps)} steps"
        run.status = run.status.model_copy(update={"steps": steps, "current_step": None})
        run.status = self._phase(run, IncidentPhase.CANCELLED, "Cancelled", message)
        await self._lock(run, spec).release()
        await run.events.normal("IncidentCancelled", message)
        await self._commit(run)  # the terminal write comes last (module docstring)
        return Advance(finished=True, phase=IncidentPhase.CANCELLED)

    # -- waiting states ------------------------------------------------------------------------

    async def _block(self, run: _Run, reason: str, message: str) -> Advance:
        return await self._wait(run, IncidentPhase.BLOCKED, reason, message, warning=True)

    async def _wait(self, run: _Run, phase: IncidentPhase, reason: str, message: str, *, warning: bool) -> Advance:
        """Enter a waiting phase; the Event is posted only when the phase or its message changes."""
        changed = (run.saved.phase, run.saved.message) != (phase, message)
        run.status = self._phase(run, phase, reason, message)
        await self._commit(run)
        if changed:
            event_reason = "Blocked" if phase is IncidentPhase.BLOCKED else reason
            if warning:
                await run.events.warning(event_reason, message)
            else:
                await run.events.normal(event_reason, message)
        return Advance(finished=False, delay=self.idle_seconds)

    # -- escalation ----------------------------------------------------------------------------

    async def _check_deadline(self, run: _Run, spec: TradeSenseIncidentSpec) -> None:
        now = self._now()
        if run.status.escalation is None:
            if is_overdue(now, run.status.respond_by, run.status.phase):
                where = f", at step {run.status.current_step}" if run.status.current_step else ""
                await self._escalate(run, spec, "DeadlinePassed",
                                     f"respondBy {_fmt(run.status.respond_by)} passed while "
                                     f"{run.status.phase.value}{where}")
        elif run.status.escalation.notified_at is None and spec.notification is not None:
            await self._notify(run, spec)

    async def _escalate(
        self, run: _Run, spec: TradeSenseIncidentSpec, reason: str, message: str, *, persist: bool = True
    ) -> None:
        """Escalated condition + Warning Event once (recorded in status), then the webhook notification.

        With persist=False the caller writes the status afterwards (the terminal write must be last).
        """
        now = self._now()
        how = (f"notifying the {spec.notification.format} webhook" if spec.notification
               else "no spec.notification configured")
        run.status = run.status.model_copy(update={
            "escalation": EscalationStatus(reason=reason, escalated_at=now),
            "conditions": set_condition(run.status.conditions, type_="Escalated", status=True, reason=reason,
                                        message=clip(message, 1024), now=now,
                                        observed_generation=run.obj.generation),
        })
        if persist:
            await self._commit(run)
        self._metrics.escalated(spec.severity.value)
        await run.events.warning("Escalated", f"{message}; {how}")
        if spec.notification is not None:
            await self._notify(run, spec, persist=persist)

    async def _notify(self, run: _Run, spec: TradeSenseIncidentSpec, *, persist: bool = True) -> None:
        escalation = run.status.escalation
        if escalation is None or escalation.notified_at is not None:
            return
        now = self._now()
        key = run.ref.uid or f"{run.ref.namespace}/{run.ref.name}"
        last = self._notify_tried.get(key)
        if last is not None and (now - last).total_seconds() < NOTIFY_RETRY_SECONDS:
            return
        self._notify_tried[key] = now
        event = escalation_event(run.ref, spec, run.status, run.status.message)
        try:
            await send_notification(self._runtime.kube, run.ref, spec, event, timeout=NOTIFY_TIMEOUT_SECONDS)
        except ClientError as exc:
            error = clip(f"{type(exc).__name__}: {exc}", 1024)
            if error != escalation.notification_error:
                await run.events.warning("NotificationFailed", error)
            escalation = escalation.model_copy(update={"notification_error": error})
        else:
            escalation = escalation.model_copy(update={"notified_at": now, "notification_error": ""})
            await run.events.normal("EscalationNotified",
                                    f"sent the escalation to the {spec.notification.format} webhook"
                                    if spec.notification else "sent the escalation")
        run.status = run.status.model_copy(update={"escalation": escalation})
        if persist:
            await self._commit(run)

    async def _sync_alert_condition(self, run: _Run) -> None:
        """AlertResolved from the bridge's annotations (the bridge never writes status itself)."""
        state = alert_state((run.obj.body.get("metadata") or {}).get("annotations"))
        if state is None:
            return
        run.status = run.status.model_copy(update={"conditions": set_condition(
            run.status.conditions, type_=ALERT_CONDITION, status=state.resolved, reason=state.reason,
            message=state.message, now=self._now(), observed_generation=run.obj.generation)})
        await self._commit(run)

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

    # -- helpers -------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self._runtime.clock.now()

    def _phase(self, run: _Run, phase: IncidentPhase, reason: str, message: str) -> TradeSenseIncidentStatus:
        return with_phase(run.status, phase=phase, reason=reason, message=message, now=self._now(),
                          generation=run.obj.generation)

    async def _commit(self, run: _Run) -> None:
        """Persist the status when it changed (idle polls write nothing, so they make no watch events)."""
        if run.status != run.saved:
            await self._store.save(run.ref, run.status)
            self._metrics.committed(run.ref.uid or run.ref.name, str(run.obj.raw_spec.get("runbook", "")),
                                    before=run.saved, after=run.status,
                                    target_namespace=_target_namespace(run.obj.raw_spec))
            run.saved = run.status

    def _lock(self, run: _Run, spec: TradeSenseIncidentSpec) -> NamespaceLock:
        me = Holder(namespace=run.ref.namespace, name=run.ref.name, uid=run.ref.uid or "unknown")
        return self._lock_for(me, spec.target.namespace)

    def _lock_for(self, me: Holder, target_namespace: str) -> NamespaceLock:
        key = f"{me.identity}@{target_namespace}"
        lock = self._locks.get(key)
        if lock is None:
            lock = NamespaceLock(self._runtime.kube, self._runtime.clock, namespace=target_namespace, me=me,
                                 duration_seconds=self._runtime.settings.lock_lease_seconds)
            self._locks[key] = lock
        return lock

    def _guard(self, spec: TradeSenseIncidentSpec) -> RestartGuard:
        limit = spec.parameters.restart_limit_per_hour or self._runtime.settings.restart_limit_per_hour
        return RestartGuard(self._runtime.kube, self._runtime.clock, namespace=spec.target.namespace, limit=limit)

    @staticmethod
    def _stamp(run: _Run, planned: PlannedStep) -> str:
        """Same value as StepContext.stamp, for the storm guard's records."""
        return f"{run.ref.uid or run.ref.name}/{planned.id}"


_OUTCOME_LABELS = {Outcome.DONE: "done", Outcome.ALREADY_DONE: "already_done", Outcome.SKIPPED: "skipped",
                   Outcome.WAITING: "waiting"}


def _target_namespace(raw_spec: Mapping[str, Any]) -> str:
    target = raw_spec.get("target")
    namespace = target.get("namespace") if isinstance(target, Mapping) else None
    return str(namespace or IncidentTarget.model_fields["namespace"].default)


def _fmt(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "-"


def _duration(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"

