"""The namespace Lease is handed to the first waiter in line by the holder's release, in the same write.

A waiter of this process is woken and finds the Lease already its own: no read of the Lease between the
holder's release and the waiter's step. A Lease handed to a waiter that never takes it (another replica's
incident, gone meanwhile) blocks the namespace no longer than the Lease's duration; one handed to an
incident of this process that cannot act (its namespace got frozen) is handed on at once.

Real kopf operator, emulated API, controllable clock (engine harness; Lease of 30 s).
"""

from __future__ import annotations

from datetime import timedelta

from tests.integration.incidents.engine_harness import EFFECTS, READY, EngineEnv, step
from tests.integration.incidents.test_engine_lock_queue import LEASE, queued, uid
from tradesense_operator.domain.incident.freeze import FREEZE_ANNOTATION
from tradesense_operator.domain.incident.lock_queue import WAITERS_ANNOTATION, Waiter, serialise_waiters

LEASE_SECONDS = 30  # EngineEnv's lock_lease_seconds


def _ready(env: EngineEnv) -> None:
    """Let the holder's parked rollout-status step finish."""
    env.cluster.patch("apps/v1", "Deployment", "web", {"metadata": {"annotations": {READY: "true"}}}, env.namespace)


async def _holder_running(env: EngineEnv) -> None:
    env.create_incident("holder", env.spec(step("roll", "rollout-status")))
    await env.wait_for("the holder's first poll", lambda: env.step_message("holder", "roll") == "not ready yet")


async def test_the_release_hands_the_lease_to_the_p1_before_the_p4_without_a_lease_read(env: EngineEnv) -> None:
    env.start_operator()
    await _holder_running(env)
    env.create_incident("low", env.spec(step("low-step"), severity="P4"))  # older, but a P4
    await env.wait_for("the P4 in the queue", lambda: queued(env) == ["low"])
    env.create_incident("urgent", env.spec(step("urgent-step"), severity="P1"))
    await env.wait_for("the P1 in the queue", lambda: queued(env) == ["urgent", "low"])
    reads = env.cluster.stats.total("get", "leases")
    writes = env.cluster.stats.total("update", "leases")

    _ready(env)
    for name in ("holder", "urgent", "low"):
        await env.wait_phase(name, "Succeeded")
    assert env.annotation_list(EFFECTS) == [f"{uid(env, n)}/{n}-step" for n in ("urgent", "low")]
    # holder → urgent (handed over), urgent → low (handed over), low releases: three writes, not one read.
    assert env.cluster.stats.total("get", "leases") - reads == 0
    assert env.cluster.stats.total("update", "leases") - writes == 3
    assert env.lease_holder() == ""
    assert queued(env) == []


async def test_a_lease_handed_to_a_waiter_that_is_gone_blocks_the_namespace_no_longer_than_its_duration(
    env: EngineEnv,
) -> None:
    env.start_operator()
    await _holder_running(env)
    # A P1 of another replica queued, then gone without leaving the line (its replica crashed).
    ghost = Waiter(identity=f"{env.namespace}/ghost/0000", severity="P1", since=env.clock.now() - timedelta(hours=1),
                   seen=env.clock.now())
    env.cluster.patch(*LEASE, {"metadata": {"annotations": {WAITERS_ANNOTATION: serialise_waiters([ghost])}}},
                      env.namespace)
    env.create_incident("late", env.spec(step("late-step")))
    await env.wait_for("the late incident behind the ghost", lambda: queued(env) == ["ghost", "late"])

    _ready(env)
    await env.wait_phase("holder", "Succeeded")
    assert env.lease_holder() == ghost.identity  # handed over in the release's write
    assert queued(env) == ["late"]

    env.clock.advance(timedelta(seconds=LEASE_SECONDS * 2 / 3))  # two re-checks due; the ghost's Lease is alive
    await env.wait_for("the late incident's re-check", lambda: "held by tsi/ghost" in env.status("late").get("message", ""))
    assert env.status("late")["phase"] == "Pending"
    assert env.lease_holder() == ghost.identity

    env.clock.advance(timedelta(seconds=LEASE_SECONDS / 3 + 1))  # past the ghost's Lease duration
    await env.wait_phase("late", "Succeeded")
    assert env.annotation_list(EFFECTS) == [f"{uid(env, 'late')}/late-step"]


async def test_a_lease_handed_to_an_incident_that_cannot_act_is_handed_on_at_once(env: EngineEnv) -> None:
    env.start_operator()
    await _holder_running(env)
    env.create_incident("first", env.spec(step("first-step"), severity="P1"))
    await env.wait_for("the P1 in the queue", lambda: queued(env) == ["first"])
    env.create_incident("second", env.spec(step("second-step"), severity="P2"))
    await env.wait_for("the P2 in the queue", lambda: queued(env) == ["first", "second"])
    env.cluster.patch("v1", "Namespace", env.namespace, {"metadata": {"annotations": {FREEZE_ANNOTATION: "true"}}})

    _ready(env)  # the holder's running step is not stopped by the freeze; its release hands the Lease to `first`
    await env.wait_phase("holder", "Succeeded")
    await env.wait_phase("first", "Blocked")
    await env.wait_phase("second", "Blocked")
    # Neither keeps the namespace while frozen: the Lease went on from `first` to `second` and was released.
    await env.wait_for("the Lease free", lambda: env.lease_holder() == "" and queued(env) == [])
    assert env.annotation_list(EFFECTS) == []

    env.cluster.patch("v1", "Namespace", env.namespace, {"metadata": {"annotations": {FREEZE_ANNOTATION: None}}})
    env.clock.advance(timedelta(seconds=1))  # the blocked incidents' next poll
    await env.wait_phase("first", "Succeeded")
    await env.wait_phase("second", "Succeeded")
    assert env.annotation_list(EFFECTS)[0] == f"{uid(env, 'first')}/first-step"

