"""Dry runs: every planned step described in its action's own words, nothing changed.

Owns `spec.dryRun: true` incidents from their plan to Succeeded/DryRunComplete. It must never run an
action (only `describe`), never save a checkpoint and never take the namespace lock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from tradesense_operator.api.v1alpha1.incident import (
    IncidentPhase,
    StepAction,
    StepState,
    TradeSenseIncidentSpec,
)
from tradesense_operator.clients.errors import ClientError
from tradesense_operator.clients.kube import EVENT_MESSAGE_LIMIT
from tradesense_operator.domain.conditions import set_condition
from tradesense_operator.domain.incident.transitions import clip, would_run
from tradesense_operator.services.incidents.escalation import plan_headline
from tradesense_operator.services.incidents.run import IncidentRun, StatusWriter
from tradesense_operator.services.runtime import Runtime
from tradesense_operator.services.step_adapters.base import Action, StepContext, StepFailed

log = logging.getLogger(__name__)


class DryRunner:
    """Describes a dry-run incident's plan step by step, resuming after a restart where it stopped."""

    def __init__(self, runtime: Runtime, actions: Mapping[StepAction, Action], writer: StatusWriter) -> None:
        self._runtime = runtime
        self._actions = actions
        self._writer = writer

    async def run(self, run: IncidentRun, spec: TradeSenseIncidentSpec) -> None:
        """Describe every step; change nothing; end Succeeded/DryRunComplete in one write, the last thing done.

        Describing changes nothing, so there is nothing to checkpoint between steps: each step's description
        is its WouldRun message in status (what `kubectl describe` shows), and one Event says the dry run is
        complete, which runbook it planned and what each step would change (bounded like every Event message):
        a dry run posts no other Event.
        """
        plan = run.status.plan
        for index, planned in enumerate(plan):
            if run.status.steps[index].state is StepState.WOULD_RUN:
                continue  # described before a restart
            description = await self._describe(run, spec, index)
            run.set_step(index, would_run(run.status.steps[index], description=description,
                                          destructive=planned.destructive, now=self._writer.now()))
        gated = sum(1 for p in plan if p.destructive)
        message = (f"dry run: {len(plan)} steps would run"
                   f"{f' ({gated} need approval)' if gated else ''}; nothing was changed")
        run.status = run.status.model_copy(update={
            "current_step": None,
            "conditions": set_condition(run.status.conditions, type_="DryRun", status=True, reason="DryRunComplete",
                                        message=message, now=self._writer.now(),
                                        observed_generation=run.obj.generation),
        })
        run.status = self._writer.phase(run, IncidentPhase.SUCCEEDED, "DryRunComplete", message)
        steps = "; ".join(f"[{i + 1}/{len(plan)}] {p.id}: {run.status.steps[i].message}" for i, p in enumerate(plan))
        headline = plan_headline(spec, run.status.respond_by)
        await run.events.normal("DryRunComplete", clip(f"{headline}: {message} — {steps}", EVENT_MESSAGE_LIMIT))
        await self._writer.commit(run)  # the terminal write comes last (engine docstring)

    async def _describe(self, run: IncidentRun, spec: TradeSenseIncidentSpec, index: int) -> str:
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
