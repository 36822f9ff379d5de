"""Harness for the engine tests: the real kopf operator (incident handlers only) on the emulated API,
with test-only actions whose effects are counted in the cluster.

The engine is what is under test here, not the runbook actions (the per-runbook tests cover those), so
the steps are `custom` steps run by small actions that leave countable traces on a Deployment:
- `StampingAction` adds its step's stamp to an annotation list once (idempotent, like every real
  action) and appends to a second list on EVERY call, so a test sees both "the effect happened exactly
  once" and "the action was invoked again after a crash";
- `WaitingAction` reports WAITING until a Deployment annotation says ready;
- `FlakyAction` fails its first N calls.
A `Gate` makes an action block at a chosen point so a test can kill the operator exactly there.

The operator is assembled in its own registry by the sandbox's `handlers_registry`: the Runtime is built inside the
operator's event loop (aiohttp sessions are loop-bound) with a ManualClock and small poll intervals, the
production kopf settings apply, and only the incident handlers are registered, their engine running these actions.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf

from tests.support.waiting import eventually
from tradesense_operator.api.v1alpha1.incident import (
    PlannedStep,
    StepAction,
    TradeSenseIncidentSpec,
)
from tradesense_operator.clients.errors import Conflict
from tradesense_operator.clients.kube import DEPLOYMENTS
from tradesense_operator.config import Settings
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.handlers import incident as incident_handlers
from tradesense_operator.observability.metrics import OperatorMetrics
from tradesense_operator.services.step_adapters.base import Action, Outcome, StepContext, StepFailed, StepResult
from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.runner import OperatorHandle, Planner, handlers_registry, incident_engine

API_VERSION = "ops.tradesense.io/v1alpha1"
KIND = "TradeSenseIncident"
EFFECTS = "test.tradesense.io/effects"
CALLS = "test.tradesense.io/calls"
READY = "test.tradesense.io/ready"
WAIT_TIMEOUT = 20.0

def custom_planner(spec: TradeSenseIncidentSpec) -> list[PlannedStep]:
    """Custom steps one to one, each aimed at deployment/<target> (the engine tests' own catalogue)."""
    return [
        PlannedStep(
            id=step.id, action=step.action, target=f"deployment/{step.target}" if step.target else "",
            params=step.params, destructive=bool(step.destructive), timeout_seconds=step.timeout_seconds,
            retries=step.retries, description=f"test step {step.id}",
        )
        for step in spec.steps
    ]


class Gate:
    """Stops one step of one operator at one point, so a test can kill the operator exactly there.

    `before-effect` and `after-effect` block the action (after the engine checkpointed the step
    Running, before/after its effect). `after-return` lets the action return and calls `on_return`
    instead, which a test uses to stall the engine's next API call (after the result checkpoint,
    before the next step's Running checkpoint).
    """

    def __init__(self, step_id: str, point: str, on_return: Callable[[], None] | None = None) -> None:
        self.step_id = step_id
        self.point = point
        self.on_return = on_return
        self.reached = threading.Event()

    async def check(self, step_id: str, point: str) -> None:
        if (step_id, point) != (self.step_id, self.point) or self.reached.is_set():
            return
        self.reached.set()
        if point == "after-return":
            if self.on_return:
                self.on_return()
            return
        await asyncio.Event().wait()  # forever: the test kills the operator here


def _deployment_name(ctx: StepContext) -> str:
    return ctx.step.target.removeprefix("deployment/")


async def _annotation_list(ctx: StepContext, key: str) -> tuple[list[str], str]:
    body = await ctx.runtime.kube.get(DEPLOYMENTS, _deployment_name(ctx), ctx.namespace)
    meta = body["metadata"]
    return json.loads((meta.get("annotations") or {}).get(key, "[]")), meta["resourceVersion"]


async def _append(ctx: StepContext, key: str, value: str, *, once: bool = False) -> bool:
    """Append under optimistic concurrency (the emulated controller writes the Deployment too).

    With once=True the value is added only when absent, checked and written at one resourceVersion
    (idempotent even when two engines run the same attempt at once); False when it was already there.
    """
    for _ in range(20):
        values, version = await _annotation_list(ctx, key)
        if once and value in values:
            return False
        try:
            await ctx.runtime.kube.patch(
                DEPLOYMENTS, _deployment_name(ctx),
                {"metadata": {"resourceVersion": version, "annotations": {key: json.dumps([*values, value])}}},
                ctx.namespace,
            )
        except Conflict:
            continue
        return True
    raise StepFailed(f"{key} kept changing")


@dataclass
class StampingAction:
    """Idempotent effect (stamp once) plus a non-idempotent call log, both on the target Deployment."""

    name: StepAction
    destructive: bool = False
    gate: Gate | None = None

    async def describe(self, ctx: StepContext) -> str:
        return f"deployment/{_deployment_name(ctx)} would get stamp {ctx.step.id}"

    async def run(self, ctx: StepContext) -> StepResult:
        await _append(ctx, CALLS, ctx.stamp)
        if self.gate:
            await self.gate.check(ctx.step.id, "before-effect")
        if not await _append(ctx, EFFECTS, ctx.stamp, once=True):
            return StepResult(Outcome.ALREADY_DONE, f"stamp {ctx.step.id} already present",
                              evidence={"attempt": str(ctx.attempt)})
        if self.gate:
            await self.gate.check(ctx.step.id, "after-effect")
            await self.gate.check(ctx.step.id, "after-return")
        return StepResult(Outcome.DONE, f"stamped {ctx.step.id}", evidence={"attempt": str(ctx.attempt)})


@dataclass
class WaitingAction:
    """WAITING until the Deployment carries test.tradesense.io/ready=true (a rollout stand-in)."""

    name: StepAction
    destructive: bool = False

    async def describe(self, ctx: StepContext) -> str:
        return f"would wait for deployment/{_deployment_name(ctx)} to be ready"

    async def run(self, ctx: StepContext) -> StepResult:
        body = await ctx.runtime.kube.get(DEPLOYMENTS, _deployment_name(ctx), ctx.namespace)
        if (body["metadata"].get("annotations") or {}).get(READY) == "true":
            return StepResult(Outcome.DONE, "ready")
        return StepResult(Outcome.WAITING, "not ready yet", evidence={"polled": "yes"})


@dataclass
class FlakyAction:
    """Fails its first `failures` calls (counted in the call log), then succeeds."""

    name: StepAction
    failures: int
    destructive: bool = False

    async def describe(self, ctx: StepContext) -> str:
        return "would try"

    async def run(self, ctx: StepContext) -> StepResult:
        await _append(ctx, CALLS, ctx.stamp)
        calls, _ = await _annotation_list(ctx, CALLS)
        if len([c for c in calls if c == ctx.stamp]) <= self.failures:
            raise StepFailed(f"simulated failure on attempt {ctx.attempt}")
        return StepResult(Outcome.DONE, f"worked on attempt {ctx.attempt}")


def default_actions(gate: Gate | None = None) -> dict[StepAction, Action]:
    """Stamping actions for change steps (one of them a restart, so the storm guard is involved)."""
    return {
        StepAction.SET_ENV: StampingAction(StepAction.SET_ENV, gate=gate),
        StepAction.SCALE: StampingAction(StepAction.SCALE, gate=gate),
        StepAction.ROLLOUT_RESTART: StampingAction(StepAction.ROLLOUT_RESTART, gate=gate),
        StepAction.DR_FAILOVER: StampingAction(StepAction.DR_FAILOVER, destructive=True, gate=gate),
        StepAction.SMOKE_TEST: StampingAction(StepAction.SMOKE_TEST, gate=gate),
        StepAction.REDIS_DELETE_PATTERN: StampingAction(StepAction.REDIS_DELETE_PATTERN, gate=gate),
        StepAction.ROLLOUT_STATUS: WaitingAction(StepAction.ROLLOUT_STATUS),
    }


def build_registry(
    kubeconfig: Path, *, clock: ManualClock, settings: Settings, actions: Mapping[StepAction, Action],
    planner: Planner, metrics: OperatorMetrics | None = None,
) -> kopf.OperatorRegistry:
    """The incident handlers with an engine running `actions`, on a Runtime with `clock`, `settings` and `metrics`."""
    return handlers_registry(kubeconfig, clock, incident_engine(actions, planner), incident_handlers.register,
                             settings=settings, metrics=metrics or OperatorMetrics())


@dataclass
class EngineEnv:
    """One namespace (incidents and target together) with a Deployment `web` to act on."""

    cluster: EmulatedCluster
    namespace: str
    kubeconfig: Path
    operator_factory: Callable[..., OperatorHandle]
    clock: ManualClock = field(default_factory=lambda: ManualClock(datetime.now(UTC).replace(microsecond=0)))
    settings: Settings = field(default_factory=lambda: Settings(step_poll_seconds=0.05, lock_lease_seconds=30))
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)

    def start_operator(
        self, actions: Mapping[StepAction, Action] | None = None, planner: Planner = custom_planner
    ) -> OperatorHandle:
        registry = build_registry(self.kubeconfig, clock=self.clock, settings=self.settings,
                                  actions=actions if actions is not None else default_actions(), planner=planner,
                                  metrics=self.metrics)
        return self.operator_factory(registry=registry, namespaces=[self.namespace], memo=kopf.Memo())

    # -- objects -------------------------------------------------------------------------------

    def create_deployment(self, name: str = "web", annotations: Mapping[str, str] | None = None) -> None:
        self.cluster.create({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": self.namespace, "annotations": dict(annotations or {})},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                             "spec": {"containers": [{"name": name, "image": "example/web:1"}]}},
            },
        })

    def spec(self, *steps: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
        """A custom-runbook spec aimed at this namespace (the engine tests' incidents)."""
        return {"runbook": "custom", "target": {"namespace": self.namespace}, "steps": [dict(s) for s in steps],
                **extra}

    def deployment(self, name: str = "web") -> dict[str, Any]:
        return self.cluster.get("apps/v1", "Deployment", name, self.namespace)

    def annotation_list(self, key: str, name: str = "web") -> list[str]:
        return json.loads((self.deployment(name)["metadata"].get("annotations") or {}).get(key, "[]"))

    def create_incident(self, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        return self.cluster.create({"apiVersion": API_VERSION, "kind": KIND,
                                    "metadata": {"name": name, "namespace": self.namespace}, "spec": dict(spec)})

    def incident(self, name: str) -> dict[str, Any]:
        return self.cluster.get(API_VERSION, KIND, name, self.namespace)

    def patch_spec(self, name: str, spec: Mapping[str, Any]) -> None:
        self.cluster.patch(API_VERSION, KIND, name, {"spec": dict(spec)}, self.namespace)

    def status(self, name: str) -> dict[str, Any]:
        return self.incident(name).get("status") or {}

    def steps(self, name: str) -> dict[str, dict[str, Any]]:
        return {s["id"]: s for s in self.status(name).get("steps", [])}

    def metric(self, name: str, **labels: str) -> float:
        """A sample of the engine's /metrics (0 when absent)."""
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    async def wait_metric(self, value: float, name: str, **labels: str) -> None:
        """Metrics are updated right after the status write they reflect: wait for them like for Events."""
        await self.wait_for(f"{name}{labels} == {value}", lambda: self.metric(name, **labels) == value)

    def step_message(self, name: str, step_id: str) -> str:
        return str(self.steps(name).get(step_id, {}).get("message", ""))

    def lease_holder(self) -> str:
        lease = self.cluster.find("coordination.k8s.io/v1", "Lease", "tradesense-remediation", self.namespace)
        return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")

    def events(self, name: str) -> list[tuple[str, str, str]]:
        return [(e["type"], e["reason"], e["message"]) for e in self.cluster.events(self.namespace, name)
                if e.get("source", {}).get("component") == "tradesense-operator"]

    def reasons(self, name: str) -> list[str]:
        return [reason for _, reason, _ in self.events(name)]

    async def wait_for(self, what: str, predicate: Callable[[], bool], timeout: float = WAIT_TIMEOUT) -> None:
        """Poll the cluster until `predicate` holds (the operator runs in another thread)."""
        await eventually(predicate, timeout, what=what, interval=0.02)

    async def wait_event(self, name: str, reason: str, timeout: float = WAIT_TIMEOUT) -> None:
        """Events are posted after the status write they describe: wait for them explicitly."""
        await self.wait_for(f"event {reason} on {name}", lambda: reason in self.reasons(name), timeout)

    async def wait_phase(self, name: str, *phases: str, timeout: float = WAIT_TIMEOUT) -> dict[str, Any]:
        await self.wait_for(f"{name} in phase {phases}", lambda: self.status(name).get("phase") in phases, timeout)
        return self.status(name)


def step(step_id: str, action: str = "set-env", target: str = "web", **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "action": action, "target": target, **extra}
