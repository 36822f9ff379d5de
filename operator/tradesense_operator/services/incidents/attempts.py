"""Step attempts: checkpoint Running, invoke the action, checkpoint its result.

Owns one step's attempt from its Running checkpoint to its recorded result (succeeded, skipped, still
waiting, or failed with its backoff). The Running checkpoint is written BEFORE the action is invoked
and the result AFTER, so a crash in between re-invokes the same attempt and the action's own
idempotency makes that one effect. The result of an action whose second run changes nothing (it reads, or
sets a value that is then already set: `RESULT_MAY_WAIT`) rides with the next write — the next step's
Running checkpoint or the incident's end — instead of a write of its own; any other result is written at
once, so a finished delete, rotation, notification or restore is never invoked again. A step that
finishes in one go has one Event (StepSucceeded, naming the attempt); StepStarted is posted only when the
attempt is still under way after ANNOUNCE_AFTER_SECONDS or reports that it waits. The action runs only
while the namespace Lease is held (`fencing.py`): when the Lease is lost the action is cancelled and the attempt recorded as
interrupted, still Running so that it resumes from its checkpoint once the Lease is back, never
continued blind. It must not decide which step runs next or end the incident:
a step whose retries are exhausted comes back as `StepGaveUp` and the engine fails the incident.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from tradesense_operator.api.v1alpha1.incident import (
    IncidentPhase,
    PlannedStep,
    StepAction,
    StepState,
    TradeSenseIncidentSpec,
)
from tradesense_operator.clients.errors import ClientError
from tradesense_operator.domain.incident.machine import attempt_deadline_passed, working_phase
from tradesense_operator.domain.incident.storm import restarted_deployment
from tradesense_operator.domain.incident.transitions import clip, fail_attempt, finish, start_attempt, waiting
from tradesense_operator.observability.context import log_context
from tradesense_operator.services.incidents.fencing import LockLost, hold_while
from tradesense_operator.services.incidents.lock import NamespaceLock
from tradesense_operator.services.incidents.metrics import IncidentMetrics
from tradesense_operator.services.incidents.run import Advance, IncidentRun, StaleStatus, StatusWriter
from tradesense_operator.services.incidents.storm_guard import RestartGuard
from tradesense_operator.services.runtime import Runtime
from tradesense_operator.services.step_adapters.base import Action, Outcome, StepContext, StepFailed, StepResult

log = logging.getLogger(__name__)

ANNOUNCE_AFTER_SECONDS = 2.0  # an attempt still under way after this long gets its StepStarted Event

# Actions whose second invocation changes nothing: they only read, or set a value (env, replicas, resources,
# a stamped restart, a selector) that the re-run finds already set. Only their results may wait for the next
# write; a second pattern delete would remove keys written since the first, a second rotation or restore
# would act again, a second notification would page again.
RESULT_MAY_WAIT = frozenset({
    StepAction.SET_ENV, StepAction.SET_RESOURCES, StepAction.SCALE, StepAction.ROLLOUT_RESTART,
    StepAction.ROLLOUT_STATUS, StepAction.WAIT_PODS_READY, StepAction.CHECK_NODES, StepAction.CHECK_PODS,
    StepAction.HTTP_PROBE, StepAction.SMOKE_TEST, StepAction.CERTIFICATE_CHECK, StepAction.SECRET_PRESENT,
    StepAction.PG_ISREADY, StepAction.PG_SLOW_QUERIES, StepAction.PG_SET_LOG_MIN_DURATION,
    StepAction.PG_MISSING_INDEXES, StepAction.PG_IDLE_IN_TRANSACTION, StepAction.PG_DAMAGE_ASSESSMENT,
    StepAction.PG_DISK_USAGE,
    StepAction.REDIS_SESSION_COUNT, StepAction.REDIS_BIGKEYS, StepAction.REDIS_INFO, StepAction.LOG_SCAN,
    StepAction.SWITCH_SERVICE_SELECTOR,
})

_OUTCOME_LABELS = {Outcome.DONE: "done", Outcome.ALREADY_DONE: "already_done", Outcome.SKIPPED: "skipped",
                   Outcome.WAITING: "waiting"}


@dataclass(frozen=True)
class StepGaveUp:
    """The step ended Failed (retries exhausted, or no implementation): the incident fails with `message`."""

    message: str


class StepRunner:
    """Runs attempts of steps for one engine; remembers which attempts this process has seen."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        actions: Mapping[StepAction, Action],
        writer: StatusWriter,
        metrics: IncidentMetrics,
        backoff_cap: float,
    ) -> None:
        self._runtime = runtime
        self._actions = actions
        self._writer = writer
        self._metrics = metrics
        self._backoff_cap = backoff_cap
        self._seen_attempts: set[tuple[str, str, int]] = set()

    @property
    def poll_seconds(self) -> float:
        return self._runtime.settings.step_poll_seconds

    def forget(self, uid: str) -> None:
        """The incident's daemon ended: a later daemon (a restart) reports its Running attempt as resumed."""
        self._seen_attempts = {seen for seen in self._seen_attempts if seen[0] != uid}

    def guard(self, spec: TradeSenseIncidentSpec) -> RestartGuard:
        """The restart-storm guard of the target namespace."""
        limit = spec.parameters.restart_limit_per_hour or self._runtime.settings.restart_limit_per_hour
        return RestartGuard(self._runtime.kube, self._runtime.clock, namespace=spec.target.namespace, limit=limit)

    @staticmethod
    def stamp(run: IncidentRun, planned: PlannedStep) -> str:
        """Same value as StepContext.stamp, for the storm guard's records."""
        return f"{run.ref.uid or run.ref.name}/{planned.id}"

    async def attempt(
        self, run: IncidentRun, spec: TradeSenseIncidentSpec, index: int, *, new: bool, lock: NamespaceLock
    ) -> Advance | StepGaveUp:
        """Start (new=True) or continue the step's attempt while holding `lock`, and record what it did."""
        with log_context(step=run.status.plan[index].id):
            return await self._run_attempt(run, spec, index, new=new, lock=lock)

    async def _run_attempt(
        self, run: IncidentRun, spec: TradeSenseIncidentSpec, index: int, *, new: bool, lock: NamespaceLock
    ) -> Advance | StepGaveUp:
        planned = run.status.plan[index]
        position = _position(run, index)
        now = self._writer.now()
        if new:
            step = start_attempt(run.status.steps[index], now=now)
            run.set_step(index, step)
            run.status = run.status.model_copy(update={
                "current_step": planned.id, "started_at": run.status.started_at or now})
            run.status = self._writer.phase(run, working_phase(run.status.plan, index), "StepRunning",
                                            f"{position}: {planned.description or planned.action.value}")
            # checkpoint BEFORE the action runs; the previous step's Event goes out while the action runs
            await self._writer.commit(run, events_in_background=True)
            self._seen_attempts.add((run.ref.uid or "", planned.id, step.attempts))
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
                    run, index, f"no result within the step timeout of {planned.timeout_seconds}s"
                    + (f" (last: {step.message})" if step.message else ""))
        action = self._actions.get(planned.action)
        if action is None:
            run.set_step(index, finish(run.status.steps[index], state=StepState.FAILED, evidence={}, now=now,
                                       message=f"this operator has no implementation of action {planned.action.value}"))
            await self._writer.commit(run)
            return StepGaveUp(f"step {planned.id}: no implementation of {planned.action.value}")
        deployment = restarted_deployment(planned)
        if deployment is not None:
            await self.guard(spec).record(deployment, self.stamp(run, planned))
        invoking = asyncio.ensure_future(self._invoke(run, spec, index, action, lock))
        announced = not new  # a continued attempt was announced when it started (or resumed)
        try:
            if new:
                await asyncio.wait({invoking}, timeout=ANNOUNCE_AFTER_SECONDS)
                if not invoking.done():  # it takes a while: say that it started (its Running is written)
                    announced = True
                    await run.events.normal("StepStarted", _started(run, index))
            result_or_error = await invoking
        except LockLost as exc:
            return await self._interrupted(run, index, str(exc))
        finally:
            if not invoking.done():  # we were cancelled: so is the action
                invoking.cancel()
                await asyncio.gather(invoking, return_exceptions=True)
        if isinstance(result_or_error, str):
            return await self._attempt_failed(run, index, result_or_error, announced=announced)
        return await self._record_result(run, index, result_or_error, announced=announced)

    async def _invoke(
        self, run: IncidentRun, spec: TradeSenseIncidentSpec, index: int, action: Action, lock: NamespaceLock
    ) -> StepResult | str:
        """Run the action once while holding `lock`; a failure comes back as its reason (a string).

        LockLost propagates: losing the lock is not a failure of the step.
        """
        planned = run.status.plan[index]
        step = run.status.steps[index]

        async def save_checkpoint(values: Mapping[str, str]) -> None:
            current = run.status.steps[index]
            run.set_step(index, current.model_copy(update={"checkpoint": {**current.checkpoint, **values}}))
            await self._writer.commit(run)

        ctx = StepContext(runtime=self._runtime, incident=run.ref, spec=spec, step=planned, attempt=step.attempts,
                          checkpoint=dict(step.checkpoint), save_checkpoint=save_checkpoint)
        elapsed = (self._writer.now() - (step.attempt_started_at or self._writer.now())).total_seconds()
        budget = max(planned.timeout_seconds - elapsed, 1.0)
        try:
            return await hold_while(lock, asyncio.wait_for(action.run(ctx), timeout=budget),
                                    interval=self.poll_seconds)
        except (LockLost, StaleStatus):
            raise  # not a failure of the step: the lock or the status moved on
        except StepFailed as exc:
            return str(exc) or type(exc).__name__
        except TimeoutError:
            return f"the action did not return within {budget:.0f}s"
        except ClientError as exc:
            return f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # an action bug fails the attempt instead of wedging the daemon
            log.exception("action %s of step %s raised unexpectedly", planned.action.value, planned.id)
            return f"unexpected {type(exc).__name__} in action {planned.action.value}: {exc}"

    async def _record_result(
        self, run: IncidentRun, index: int, result: StepResult, *, announced: bool
    ) -> Advance | StepGaveUp:
        """Record what the attempt did. A finished step of a `RESULT_MAY_WAIT` action is staged, not written: its
        result rides with the next write, which is the next step's Running checkpoint (still before that step's
        effect) or the incident's end; the engine writes it before anything waits or fails (`engine.advance`).
        Any other action's result is written here. Its Event follows the write that records it
        (`IncidentEvents.stage`) and names the attempt when no StepStarted did."""
        planned = run.status.plan[index]
        step = run.status.steps[index]
        now = self._writer.now()
        if result.outcome is Outcome.WAITING:
            if attempt_deadline_passed(planned, step, now):
                return await self._attempt_failed(
                    run, index, f"still waiting after {planned.timeout_seconds}s: {result.message}",
                    announced=announced)
            run.set_step(index, waiting(step, message=result.message, evidence=result.evidence))
            if not announced:  # it did not finish in one go: a person wants to know it is under way
                run.events.stage("Normal", "StepStarted", _started(run, index))
            await self._writer.commit(run)
            delay = result.retry_after if result.retry_after is not None else self.poll_seconds
            return Advance(finished=False, delay=max(delay, 0.0))
        self._metrics.attempt_finished(planned, step, _OUTCOME_LABELS[result.outcome], now)
        what = _ended(run, index, result.message, announced=announced)
        if result.outcome is Outcome.SKIPPED:
            run.set_step(index, finish(step, state=StepState.SKIPPED, message=result.message,
                                       evidence=result.evidence, now=now))
            run.events.stage("Normal", "StepSkipped", what)
        else:
            run.set_step(index, finish(step, state=StepState.SUCCEEDED, message=result.message,
                                       evidence=result.evidence, now=now))
            run.events.stage("Normal", "StepSucceeded", what)
        if planned.action not in RESULT_MAY_WAIT:
            await self._writer.commit(run)  # checkpoint AFTER the action: it must never run again
        return Advance(finished=False, delay=0.0)

    async def _interrupted(self, run: IncidentRun, index: int, reason: str) -> Advance:
        """The action was stopped because the lock was lost: the step stays Running and resumes later.

        attemptStartedAt is cleared so the resumed attempt's timeout counts from its resumption.
        """
        planned = run.status.plan[index]
        position = _position(run, index)
        step = run.status.steps[index]
        message = clip(f"interrupted: {reason}; resumes from its checkpoint once the lock is back", 2048)
        run.set_step(index, step.model_copy(update={"message": message, "attempt_started_at": None}))
        run.status = self._writer.phase(run, IncidentPhase.PENDING, "LockLost", f"{position} {message}")
        run.events.stage("Warning", "StepInterrupted", f"{position}: {message}")
        await self._writer.commit(run)  # the status says it before the Event does (`IncidentEvents.stage`)
        self._seen_attempts.discard((run.ref.uid or "", planned.id, step.attempts))
        return Advance(finished=False, delay=self.poll_seconds)

    async def _attempt_failed(
        self, run: IncidentRun, index: int, reason: str, *, announced: bool = True
    ) -> Advance | StepGaveUp:
        planned = run.status.plan[index]
        self._metrics.attempt_finished(planned, run.status.steps[index], "failed", self._writer.now())
        step = fail_attempt(run.status.steps[index], planned, reason=clip(reason, 2048), now=self._writer.now(),
                            backoff_base=self.poll_seconds, backoff_cap=self._backoff_cap)
        run.set_step(index, step)
        what = _ended(run, index, step.message, announced=announced)
        if step.state is StepState.FAILED:
            run.events.stage("Warning", "StepFailed", what)
            await self._writer.commit(run)  # the status says it before the Event does (`IncidentEvents.stage`)
            return StepGaveUp(f"step {planned.id} failed: {step.message}")
        run.events.stage("Warning", "AttemptFailed", what)
        await self._writer.commit(run)
        return Advance(finished=False, delay=self.poll_seconds)


def _position(run: IncidentRun, index: int) -> str:
    """`[2/5] step-id`, how every step Event starts."""
    return f"[{index + 1}/{len(run.status.plan)}] {run.status.plan[index].id}"


def _attempt(run: IncidentRun, index: int) -> str:
    """`set-env deployment/web, attempt 1/3`: what ran and which attempt it was."""
    planned = run.status.plan[index]
    return (f"{planned.action.value} {planned.target}".strip()
            + f", attempt {run.status.steps[index].attempts}/{planned.retries + 1}")


def _started(run: IncidentRun, index: int) -> str:
    """StepStarted's message: position, action, target, attempt and the step's description."""
    description = run.status.plan[index].description
    return f"{_position(run, index)} ({_attempt(run, index)}){': ' + description if description else ''}"


def _ended(run: IncidentRun, index: int, message: str, *, announced: bool) -> str:
    """The Event of an attempt's end; without a StepStarted before it, it also says what ran and which attempt."""
    return f"{_position(run, index)}: {message}" + ("" if announced else f" ({_attempt(run, index)})")
