"""The contract between the step engine and the actions it runs.

An action is a small adapter around one runbook command. The engine guarantees at-least-once
invocation (a crash mid-step re-invokes it after restart); each action turns that into exactly-once
EFFECT by checking, before acting, whether its effect is already there — usually by a stamp
(`ctx.stamp`, "<incident uid>/<step id>") it writes together with the change, or by evidence it
saved through `ctx.save_checkpoint` before a destructive sub-action.

Owns the types of that contract only; must not run an action or know any particular one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from tradesense_operator.api.v1alpha1.incident import PlannedStep, StepAction, TradeSenseIncidentSpec
from tradesense_operator.clients.kube import ObjectRef
from tradesense_operator.services.runtime import Runtime

STAMP_ANNOTATION = "ops.tradesense.io/applied-by"


class Outcome(StrEnum):
    """How one invocation of an action ended."""

    DONE = "Done"                  # the action changed something just now
    ALREADY_DONE = "AlreadyDone"   # its effect was already present (resumed after a crash, or nothing to do)
    WAITING = "Waiting"            # not finished yet (rollout in progress); call again after retry_after
    SKIPPED = "Skipped"            # not applicable here, with the reason in the message


@dataclass(frozen=True)
class StepResult:
    """What an invocation reports; message and evidence go to status and Events (never secrets)."""

    outcome: Outcome
    message: str
    evidence: Mapping[str, str] = field(default_factory=dict)
    retry_after: float | None = None


class StepFailed(Exception):
    """The attempt failed definitively (retrying the same attempt immediately will not help)."""


@dataclass(frozen=True)
class StepContext:
    """Everything an action may use; built by the engine for each invocation."""

    runtime: Runtime
    incident: ObjectRef
    spec: TradeSenseIncidentSpec
    step: PlannedStep
    attempt: int
    checkpoint: Mapping[str, str]
    save_checkpoint: Callable[[Mapping[str, str]], Awaitable[None]]

    @property
    def stamp(self) -> str:
        """Idempotency stamp unique to this incident and step."""
        return f"{self.incident.uid or self.incident.name}/{self.step.id}"

    @property
    def namespace(self) -> str:
        """The application namespace the runbook acts on."""
        return self.spec.target.namespace


class Action(Protocol):
    """One step type. Implementations are stateless; state lives in the cluster and the checkpoint."""

    name: StepAction
    destructive: bool

    async def describe(self, ctx: StepContext) -> str:
        """Dry run: read current state and say what `run` would change (e.g. "backend replicas 3 → 5")."""
        ...

    async def run(self, ctx: StepContext) -> StepResult:
        """Idempotent execution: check for the effect first, act only when it is missing."""
        ...
