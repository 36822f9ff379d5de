"""Diagnosis steps are evidence, never gates: a failed read is recorded as the finding and the procedure goes on.

A runbook's diagnosis steps (read logs, list pods, query pg_stat_statements, INFO of Redis …) come before its
remediation. The read fails exactly when remediation is most needed: after a bad deploy the containers are in
ImagePullBackOff and their logs answer 400, the operator may lack RBAC for nodes, the database may be down. Such a
failure is itself evidence; letting it fail the step would cancel the rollback or restart that follows.

`Diagnosis` wraps a read-only action: any client error (`ClientError`: 4xx/5xx answers, refused connections,
timeouts, a forbidden Secret) becomes a Done result whose evidence carries `readError`. Deliberate verdicts of an
action (StepFailed, e.g. `pg-isready` with `require: true`, a missing signing key) are not read failures and still
fail the step. The read is not retried: a container that cannot start has no logs on the next attempt either,
and remediation should not wait for evidence. This module must not wrap actions that change anything or that
verify a remediation (rollout status, pods ready, smoke test): those must keep failing.
"""

from __future__ import annotations

from tradesense_operator.api.v1alpha1.incident import StepAction
from tradesense_operator.clients.errors import ClientError
from tradesense_operator.domain.incident.transitions import clip
from tradesense_operator.services.step_adapters.base import Action, Outcome, StepContext, StepResult

READ_ERROR_CHARS = 512
"""An API server's error body can be long; the evidence keeps its start."""


def read_error(exc: ClientError) -> str:
    """`<ErrorKind>: <message>`, bounded, for status and Events."""
    return clip(f"{type(exc).__name__}: {exc}", READ_ERROR_CHARS)


class Diagnosis:
    """A read-only action whose failed read is recorded as its evidence (see the module docstring)."""

    def __init__(self, inner: Action) -> None:
        if inner.destructive:
            raise ValueError(f"action {inner.name.value} is destructive: it cannot be a diagnosis step")
        self._inner = inner
        self.name: StepAction = inner.name
        self.destructive: bool = False

    async def describe(self, ctx: StepContext) -> str:
        return await self._inner.describe(ctx)

    async def run(self, ctx: StepContext) -> StepResult:
        try:
            return await self._inner.run(ctx)
        except ClientError as exc:
            error = read_error(exc)
            return StepResult(
                Outcome.DONE,
                f"could not read the evidence ({error}); recorded as the finding, the procedure goes on",
                {"readError": error},
            )
