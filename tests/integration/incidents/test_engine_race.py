"""Two engines racing on one incident (a stale ex-leader, a second `tradesense-operator run` on a laptop):
status writes carry the resourceVersion they were computed from, so the loser of a race re-reads and
decides again instead of rewinding step state. Every effect happens once and no step state is lost.

Both engines run in the test's event loop against the emulated API, interleaving at every API call;
every stored version of the incident's status is recorded from the API server's own write stream.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.integration.incidents.engine_harness import EFFECTS, EngineEnv, custom_planner, default_actions, step
from tradesense_operator.clients.kube import KubeClient
from tradesense_operator.services.incidents import IncidentEngine
from tradesense_operator.services.runtime import Runtime
from tradesense_sandbox.kubeapi import EmulatedCluster

STEPS = ("configure", "restart", "scale", "smoke")
ACTIONS = ("set-env", "rollout-restart", "scale", "smoke-test")
STATE_ORDER = {"Pending": 0, "AwaitingApproval": 1, "Running": 2, "Succeeded": 3, "Skipped": 3, "Failed": 3,
               "Cancelled": 3}


class StatusHistory:
    """Every status the API server stored for one incident, in write order."""

    def __init__(self, cluster: EmulatedCluster, namespace: str, name: str) -> None:
        self._lock = threading.Lock()
        self.versions: list[dict[str, Any]] = []

        def record(rtype: Any, event_type: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
            meta = obj.get("metadata") or {}
            if rtype.kind == "TradeSenseIncident" and (meta.get("namespace"), meta.get("name")) == (namespace, name):
                with self._lock:
                    self.versions.append(dict(obj.get("status") or {}))

        cluster.store.add_listener(record)

    def rewinds(self) -> list[str]:
        """Every write that moved a step backwards (state or attempts) relative to the write before it."""
        found = []
        with self._lock:
            versions = list(self.versions)
        for before, after in itertools.pairwise(versions):
            old = {s["id"]: s for s in before.get("steps", [])}
            for new in after.get("steps", []):
                prev = old.get(new["id"])
                if prev is None:
                    continue
                if (STATE_ORDER[new["state"]], new.get("attempts", 0)) < (STATE_ORDER[prev["state"]],
                                                                          prev.get("attempts", 0)):
                    found.append(f"{new['id']}: {prev['state']}/{prev.get('attempts')} -> "
                                 f"{new['state']}/{new.get('attempts')}")
        return found


async def engine(env: EngineEnv) -> tuple[IncidentEngine, Runtime]:
    runtime = Runtime(kube=await KubeClient.from_kubeconfig(str(env.kubeconfig)), settings=env.settings,
                      clock=env.clock)
    return IncidentEngine(runtime, actions=default_actions(), planner=custom_planner), runtime


def no_wait() -> Callable[[float], Awaitable[bool]]:
    async def sleep(_: float) -> bool:
        await asyncio.sleep(0)  # let the other engine in; never stop early
        return False
    return sleep


# Interleavings differ from run to run: three rounds in the default tier, twenty more in the slow one.
ROUNDS = [pytest.param(i, marks=pytest.mark.slow) if i >= 3 else i for i in range(23)]


@pytest.mark.parametrize("round_", ROUNDS)
async def test_two_engines_racing_on_one_incident_do_every_effect_once_and_lose_no_step_state(
    env: EngineEnv, round_: int
) -> None:
    name = f"contested-{round_}"
    history = StatusHistory(env.cluster, env.namespace, name)
    env.create_incident(name, env.spec(*(step(s, a) for s, a in zip(STEPS, ACTIONS, strict=True))))
    (first, first_rt), (second, second_rt) = await engine(env), await engine(env)
    try:
        results = await asyncio.wait_for(asyncio.gather(
            first.run(env.namespace, name, sleep=no_wait()), second.run(env.namespace, name, sleep=no_wait())),
            timeout=60)
    finally:
        await first_rt.aclose()
        await second_rt.aclose()

    assert [r.finished for r in results] == [True, True]
    status = env.status(name)
    assert status["phase"] == "Succeeded"
    uid = env.incident(name)["metadata"]["uid"]
    assert sorted(env.annotation_list(EFFECTS)) == sorted(f"{uid}/{s}" for s in STEPS)  # each effect once
    assert [s["attempts"] for s in status["steps"]] == [1, 1, 1, 1]  # no attempt started twice
    assert history.rewinds() == []
    # a step is started by whoever wins its Running checkpoint (one attempt each, above); the other engine may
    # resume that attempt before its result is written, like after a crash, so its Event may repeat: every
    # step has its StepSucceeded, and none has a StepFailed
    succeeded = {message.split(":")[0].split(" ")[1] for _, reason, message in env.events(name)
                 if reason == "StepSucceeded"}
    assert succeeded == set(STEPS)
    assert "StepFailed" not in env.reasons(name)
