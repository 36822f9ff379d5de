"""What one incident costs the API server, counted by the emulator: a regression guard for issue 14.

The real kopf operator (the production start-up, kopf settings and incident handlers; the engine tests'
stamping actions, whose own requests are fixed: a GET and a PATCH of the Deployment per stamp) runs one
dry run and one two-step incident alone in a fresh namespace. Every request the emulator served from
the creation until the API is quiet after the incident finished is counted by verb and resource. The counts are the
design, not a timing: a status write per checkpoint (the plan rides with the first, a finished step's
result with the next step's Running checkpoint or the end, Event timeline entries with the next write), no
GET of the incident between checkpoints (nor of its namespace: a watch cache), one Event per transition a
person needs, the Lease read once, created once and released from our own write, no kopf PATCH (the daemon
has no finalizer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.integration.incidents.engine_harness import READY, EngineEnv, step
from tests.support.kube import OperatorFactory
from tradesense_operator.config import Settings
from tradesense_sandbox.kubeapi import EmulatedCluster

# kopf never PATCHes an incident (its daemon has no finalizer), so these are the floor's two requests for a dry run.
DRY_RUN = {
    "patch tradesenseincidents/status": 1,   # plan, every step's description and Succeeded in one write
    "create events": 1,                      # DryRunComplete (naming the runbook and what each step would change)
}
TWO_STEPS = {
    "patch tradesenseincidents/status": 3,   # plan + step 1 Running; its result + step 2 Running; its result + Succeeded
    "create events": 4,                      # Planned, StepSucceeded ×2 (each finishes in one go), IncidentSucceeded
    "get leases": 1,
    "create leases": 1,
    "update leases": 1,                      # the release, from the Lease as the create returned it
}
# The stamping actions' own requests (not the engine's): a read + write of the call log and of the effect per step,
# repeated when the emulated Deployment controller wrote the Deployment in between (a Conflict on the write).
ACTION_STAMPS = 4


@pytest.fixture
def env(kube_cluster: EmulatedCluster, test_namespace: str, kubeconfig_path: Path,
        operator_factory: OperatorFactory) -> EngineEnv:
    engine_env = EngineEnv(kube_cluster, test_namespace, kubeconfig_path, operator_factory)
    engine_env.create_deployment()
    return engine_env


async def _quiet(env: EngineEnv) -> dict[tuple[str, str], int]:
    """The request counts once the API has seen no request for 20 step polls in a row (the daemon has ended and
    kopf has nothing left to write: a request after the terminal write would be counted too)."""
    polls = 0
    counts = env.cluster.stats.snapshot()
    for _ in range(400):
        await asyncio.sleep(env.settings.step_poll_seconds)
        latest = env.cluster.stats.snapshot()
        polls = polls + 1 if latest == counts else 0
        counts = latest
        if polls == 20:
            return counts
    raise AssertionError(f"the API never went quiet after the incident finished: {counts}")


async def _requests_of(env: EngineEnv, name: str, spec: Mapping[str, object]) -> dict[str, int]:
    """Requests served from the incident's creation until the API is quiet after it finished."""
    before = env.cluster.stats.snapshot()
    env.create_incident(name, spec)
    await env.wait_phase(name, "Succeeded", "Failed")
    assert not env.incident(name)["metadata"].get("finalizers")
    after = await _quiet(env)
    counted = {f"{verb} {resource}": n - before.get((verb, resource), 0) for (verb, resource), n in after.items()}
    # Not per incident: kopf's API discovery and its watch streams (opened once, at start-up).
    return {key: n for key, n in counted.items() if n and not key.startswith(("watch ", "list ", "get discovery"))}


async def test_a_dry_run_costs_two_requests(env: EngineEnv) -> None:
    env.start_operator()
    spec = env.spec(step("env"), step("failover", "dr-failover", destructive=True), step("smoke", "smoke-test"),
                    dryRun=True)
    requests = await _requests_of(env, "dry", spec)
    assert requests == DRY_RUN
    assert env.status("dry")["phase"] == "Succeeded"
    assert [s["state"] for s in env.status("dry")["steps"]] == ["WouldRun"] * 3


async def test_a_two_step_incident_reads_the_incident_once_at_most_and_writes_once_per_checkpoint(
    env: EngineEnv,
) -> None:
    env.start_operator()
    requests = await _requests_of(env, "real", env.spec(step("one", "set-env"), step("two", "scale")))
    stamps = requests.pop("get deployments", 0), requests.pop("patch deployments", 0)
    assert requests == TWO_STEPS, f"{sum(requests.values())} requests: {requests}"
    assert stamps[0] == stamps[1] >= ACTION_STAMPS
    status = env.status("real")
    assert status["phase"] == "Succeeded"
    # Nothing of the story was dropped to save those requests: every Event is also in the timeline.
    assert [e["reason"] for e in status["timeline"]] == ["Planned", "StepSucceeded", "StepSucceeded", "IncidentSucceeded"]
    assert env.reasons("real") == [e["reason"] for e in status["timeline"]]


async def test_a_waiter_does_not_poll_the_lease_and_starts_when_the_holder_releases_it(
    kube_cluster: EmulatedCluster, test_namespace: str, kubeconfig_path: Path, operator_factory: OperatorFactory,
) -> None:
    # A Lease of an hour: a waiter's fallback re-check (a third of it) cannot be what starts it in this test.
    env = EngineEnv(kube_cluster, test_namespace, kubeconfig_path, operator_factory,
                    settings=Settings(step_poll_seconds=0.05, lock_lease_seconds=3600))
    env.create_deployment()
    incident_reads = env.cluster.stats.total("get", "tradesenseincidents")  # the cluster serves other tests too
    env.start_operator()
    env.create_incident("holder", env.spec(step("roll", "rollout-status")))
    await env.wait_for("the holder's first poll", lambda: env.step_message("holder", "roll") == "not ready yet")
    env.create_incident("waiter", env.spec(step("work")))
    await env.wait_for("the waiter to queue", lambda: "waiting for lock" in env.status("waiter").get("message", ""))
    reads = env.cluster.stats.total("get", "leases")
    polls = env.cluster.stats.total("get", "deployments")
    # The holder's rollout step reads the Deployment at every step poll: 20 of them pass, the waiter sleeps through.
    await env.wait_for("20 more rollout polls", lambda: env.cluster.stats.total("get", "deployments") >= polls + 20)
    assert env.cluster.stats.total("get", "leases") == reads
    env.cluster.patch("apps/v1", "Deployment", "web", {"metadata": {"annotations": {READY: "true"}}}, env.namespace)
    await env.wait_phase("holder", "Succeeded")
    await env.wait_phase("waiter", "Succeeded")
    # The holder's release starts from the waiter's queue write (this process saw it) and hands the Lease over in
    # the same write; the waiter, woken by that release, finds it its own: no Lease read at all.
    assert env.cluster.stats.total("get", "leases") - reads == 0
    # Neither incident was read again after a sleep: the watched body still had the version each last wrote.
    assert env.cluster.stats.total("get", "tradesenseincidents") == incident_reads
