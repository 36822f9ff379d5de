"""Stop a real runbook action at a chosen point so a test can kill the operator exactly there.

Points (the engine checkpoints a step Running before invoking its action, and its result after):
- `before-effect`: the action was invoked (step Running) but has not touched anything yet;
- `after-checkpoint`: the action saved its own checkpoint (e.g. the pods it chose, the backup it will
  restore) and is about to act on it — the "between checkpoint and effect" window;
- `mid-wait`: a waiting step (rollout status, pods ready) reported WAITING at least once and the engine
  recorded it; the operator dies between two polls of the rollout;
- `after-effect`: the action finished its effect but the engine never heard of it;
- `after-return`: the engine recorded the result; the next step has not started (its first API call,
  the namespace freeze check, is stalled by an injected latency fault).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from typing import Any

from tradesense_operator.api.v1alpha1.incident import StepAction
from tradesense_operator.services.incidents.attempts import RESULT_MAY_WAIT
from tradesense_operator.services.step_adapters.base import Action, Outcome, StepContext, StepResult
from tradesense_operator.services.step_adapters.registry import ACTIONS
from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.kubeapi.faults import FaultRule

POINTS = ("before-effect", "after-checkpoint", "mid-wait", "after-effect", "after-return")
WAITING_ACTIONS = {StepAction.ROLLOUT_STATUS, StepAction.WAIT_PODS_READY}
CHECKPOINTING_ACTIONS = {StepAction.DELETE_PODS, StepAction.BACKUP_SAFETY, StepAction.BACKUP_RESTORE,
                         StepAction.ROLLOUT_UNDO}


class KillPoint:
    """Where to stop, and the signal that the operator got there."""

    def __init__(self, step_id: str, point: str, on_return: Callable[[], None]) -> None:
        if point not in POINTS:
            raise ValueError(f"unknown kill point {point}")
        self.step_id, self.point, self.on_return = step_id, point, on_return
        self.reached = threading.Event()
        self._waits = 0

    async def hang(self) -> None:
        self.reached.set()
        await asyncio.Event().wait()  # never returns: the test kills the operator here


class Stoppable:
    """The real action, stopped once at the kill point (only for the chosen step)."""

    def __init__(self, inner: Action, kill: KillPoint) -> None:
        self.inner, self.kill = inner, kill
        self.name, self.destructive = inner.name, inner.destructive

    async def describe(self, ctx: StepContext) -> str:
        return await self.inner.describe(ctx)

    async def run(self, ctx: StepContext) -> StepResult:
        kill = self.kill
        if ctx.step.id != kill.step_id or kill.reached.is_set():
            return await self.inner.run(ctx)
        if kill.point == "before-effect" or (kill.point == "mid-wait" and kill._waits > 0):
            await kill.hang()
        if kill.point == "after-checkpoint":
            ctx = _hang_after_checkpoint(ctx, kill)
        result = await self.inner.run(ctx)
        if kill.point == "mid-wait" and result.outcome is Outcome.WAITING:
            kill._waits += 1
        if kill.point == "after-effect" and result.outcome is not Outcome.WAITING:
            await kill.hang()
        if kill.point == "after-return" and result.outcome is not Outcome.WAITING:
            kill.reached.set()
            kill.on_return()
        return result


def _hang_after_checkpoint(ctx: StepContext, kill: KillPoint) -> StepContext:
    save = ctx.save_checkpoint

    async def save_then_hang(values: Mapping[str, str]) -> None:
        await save(values)
        await kill.hang()

    return StepContext(ctx.runtime, ctx.incident, ctx.spec, ctx.step, ctx.attempt, ctx.checkpoint, save_then_hang)


def stoppable_actions(kill: KillPoint) -> dict[StepAction, Action]:
    return {name: Stoppable(action, kill) for name, action in ACTIONS.items()}


def stall_after_return(cluster: EmulatedCluster, namespace: str, step_id: str, action: StepAction,
                       stalls: list[FaultRule]) -> Callable[[], None]:
    """`on_return` for `after-return`: the engine's next status write after the action returned hangs for 20 s.

    A result that rides with the next write (`attempts.RESULT_MAY_WAIT`) is then not stored yet; any other result
    is written at once, so the stall is armed by that write (a store listener) and holds the next step's Running
    checkpoint: either way the operator is killed before the next step starts.
    """
    path = f"^/apis/ops.tradesense.io/v1alpha1/namespaces/{namespace}/tradesenseincidents/victim/status$"

    def arm() -> None:
        stalls.append(cluster.inject_fault("PATCH", path, latency=20))

    def stall() -> None:
        if action in RESULT_MAY_WAIT:
            arm()
            return

        def on_result(rtype: Any, _event: str, obj: dict[str, Any], _old: Any) -> None:
            if stalls or rtype.kind != "TradeSenseIncident" or obj["metadata"]["name"] != "victim":
                return
            steps = {s["id"]: s.get("state") for s in (obj.get("status") or {}).get("steps") or []}
            if steps.get(step_id) in ("Succeeded", "Skipped"):
                arm()

        cluster.store.add_listener(on_result)

    return stall


def applicable(action: StepAction, point: str) -> bool:
    """Whether the point exists for this kind of step."""
    if point == "mid-wait":
        return action in WAITING_ACTIONS
    if point == "after-checkpoint":
        return action in CHECKPOINTING_ACTIONS
    return True


def listen_pods_and_secret_writes(cluster: EmulatedCluster, namespace: str) -> dict[str, Any]:
    """From now on (a store listener): pods created per app label, changes of tradesense-secrets' data, and per
    Deployment the writes that changed its pod template or its replicas (each such write is one step's effect)."""
    counts: dict[str, Any] = {"pods": {}, "secret_changes": 0, "template_changes": {}, "replica_changes": {},
                              "active": True}

    def listen(rtype: Any, event_type: str, obj: dict[str, Any], old: Any) -> None:
        meta = obj["metadata"]
        if not counts["active"] or meta.get("namespace") != namespace:
            return
        if rtype.kind == "Pod" and event_type == "ADDED":
            app = meta.get("labels", {}).get("app", "")
            counts["pods"][app] = counts["pods"].get(app, 0) + 1
        if rtype.kind == "Deployment" and event_type == "MODIFIED" and old is not None:
            for key, path in (("template_changes", "template"), ("replica_changes", "replicas")):
                if (old.get("spec") or {}).get(path) != (obj.get("spec") or {}).get(path):
                    counts[key][meta["name"]] = counts[key].get(meta["name"], 0) + 1
        if rtype.kind == "Secret" and meta["name"] == "tradesense-secrets" and event_type == "MODIFIED" and (
                (old or {}).get("data") != obj.get("data")):
            counts["secret_changes"] += 1

    cluster.store.add_listener(listen)
    return counts
