"""Mutual exclusion that holds for long actions, and fencing, against the emulated API with the real
kopf operator and a controllable clock.

An action parked far past the Lease duration keeps the namespace (the Lease is renewed in the
background while it runs), so a second incident for the same namespace starts nothing until the first
releases. When the Lease is found held by someone else, or cannot be renewed within its renew
deadline, the running action is cancelled and the step recorded as interrupted, then resumed (not
repeated) once the Lease is back.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from tests.integration.incidents.engine_harness import EFFECTS, EngineEnv, StampingAction, default_actions, step
from tradesense_operator.api.v1alpha1.incident import StepAction
from tradesense_operator.domain.incident.lease import Holder, format_micro_time
from tradesense_operator.services.step_adapters.base import Action, StepContext, StepResult

LEASE = ("coordination.k8s.io/v1", "Lease", "tradesense-remediation")
LEASE_SECONDS = 30  # EngineEnv's lock_lease_seconds


@dataclass
class ParkedAction:
    """Parks its first call until released (a long restore stand-in), then stamps like StampingAction.

    Records whether a parked call was cancelled, so a test sees the action really stopped.
    """

    name: StepAction
    parked: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)
    calls: int = 0
    _release: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def release(self) -> None:
        """Let the parked call go on (from the test's thread; the action runs in the operator's loop)."""
        assert self._loop is not None
        assert self._release is not None
        self._loop.call_soon_threadsafe(self._release.set)

    async def describe(self, ctx: StepContext) -> str:
        return "would park, then stamp"

    async def run(self, ctx: StepContext) -> StepResult:
        self.calls += 1
        if self.calls == 1:
            self._loop, self._release = asyncio.get_running_loop(), asyncio.Event()
            self.parked.set()
            try:
                await self._release.wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        return await StampingAction(self.name).run(ctx)


def actions_with(parked: ParkedAction) -> dict[StepAction, Action]:
    return {**default_actions(), parked.name: parked}


def lease_spec(env: EngineEnv) -> dict[str, object]:
    return dict(env.cluster.get(*LEASE, env.namespace)["spec"])


async def wait_parked(env: EngineEnv, parked: ParkedAction) -> None:
    await env.wait_for("the action to park", parked.parked.is_set)


def renewed_at(env: EngineEnv, moment: str) -> Callable[[], bool]:
    return lambda: lease_spec(env)["renewTime"] == moment


async def renew_past(env: EngineEnv, seconds: float) -> None:
    """Move the clock `seconds` forward in steps of 12 s (more than a third, less than the whole Lease),
    waiting each time for the background renewal, as a running holder would see time pass."""
    moved = 0.0
    while moved < seconds:
        env.clock.advance(timedelta(seconds=12))
        moved += 12
        await env.wait_for("a background renewal", renewed_at(env, format_micro_time(env.clock.now())))


async def test_an_action_longer_than_the_lease_keeps_the_namespace(env: EngineEnv) -> None:
    parked = ParkedAction(StepAction.SET_ENV)
    env.start_operator(actions_with(parked))
    env.create_incident("long", env.spec(step("restore", "set-env", timeout_seconds=3600)))
    await wait_parked(env, parked)
    env.create_incident("second", env.spec(step("other", "scale")))
    await env.wait_for("the second to wait", lambda: env.status("second").get("message")
                       == "waiting for lock held by tsi/long")

    await renew_past(env, 3 * LEASE_SECONDS)  # the action runs three Lease durations

    assert env.lease_holder().startswith(f"{env.namespace}/long/")
    assert env.status("second")["phase"] == "Pending"
    assert all(s["state"] == "Pending" and s["attempts"] == 0 for s in env.status("second")["steps"])
    assert env.annotation_list(EFFECTS) == []  # neither incident has acted yet
    parked.release()
    await env.wait_phase("long", "Succeeded")
    await env.wait_phase("second", "Succeeded")
    uid = {n: env.incident(n)["metadata"]["uid"] for n in ("long", "second")}
    assert env.annotation_list(EFFECTS) == [f"{uid['long']}/restore", f"{uid['second']}/other"]
    assert not parked.cancelled.is_set()


async def test_a_lease_taken_by_someone_else_stops_the_action_and_the_step_resumes_later(env: EngineEnv) -> None:
    parked = ParkedAction(StepAction.SET_ENV)
    env.start_operator(actions_with(parked))
    env.create_incident("fenced", env.spec(step("restore", "set-env", timeout_seconds=3600)))
    await wait_parked(env, parked)
    ghost = Holder(namespace="elsewhere", name="ghost", uid="g-1")
    env.cluster.patch(*LEASE, {"spec": {"holderIdentity": ghost.identity,
                                        "renewTime": format_micro_time(env.clock.now())}}, env.namespace)

    env.clock.advance(timedelta(seconds=11))  # the holder's next renewal finds the ghost
    await env.wait_event("fenced", "StepInterrupted")
    assert parked.cancelled.is_set()
    step_status = env.steps("fenced")["restore"]
    assert step_status["state"] == "Running"  # resumable, not failed
    assert step_status["message"].startswith("interrupted: the namespace lock is held by elsewhere/ghost/g-1")
    assert env.annotation_list(EFFECTS) == []
    await env.wait_for("the lock wait", lambda: env.status("fenced").get("message")
                       == "waiting for lock held by tsi/ghost in namespace elsewhere")

    env.cluster.patch(*LEASE, {"spec": {"holderIdentity": ""}}, env.namespace)  # the ghost releases
    status = await env.wait_phase("fenced", "Succeeded")
    uid = env.incident("fenced")["metadata"]["uid"]
    assert env.annotation_list(EFFECTS) == [f"{uid}/restore"]
    assert status["steps"][0]["attempts"] == 1  # resumed, not a new attempt
    assert "StepResumed" in env.reasons("fenced")


async def test_a_lease_that_cannot_be_renewed_within_the_deadline_stops_the_action(env: EngineEnv) -> None:
    parked = ParkedAction(StepAction.SET_ENV)
    env.start_operator(actions_with(parked))
    env.create_incident("cut-off", env.spec(step("restore", "set-env", timeout_seconds=3600)))
    await wait_parked(env, parked)
    env.cluster.inject_fault(None, f"/namespaces/{env.namespace}/leases/", status=500, times=None)

    env.clock.advance(timedelta(seconds=11))  # renewal due, but it fails: still inside the renew deadline
    await asyncio.sleep(0.3)
    assert not parked.cancelled.is_set()
    env.clock.advance(timedelta(seconds=10))  # 21 s >= two thirds of 30 s: stop before anyone may take over
    await env.wait_event("cut-off", "StepInterrupted")
    assert parked.cancelled.is_set()
    assert "within its renew deadline" in env.steps("cut-off")["restore"]["message"]
    assert env.annotation_list(EFFECTS) == []

    env.cluster.faults.clear()
    await env.wait_phase("cut-off", "Succeeded")
    uid = env.incident("cut-off")["metadata"]["uid"]
    assert env.annotation_list(EFFECTS) == [f"{uid}/restore"]
