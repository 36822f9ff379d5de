"""After a sleep the engine decides from its own last write unless the caller's watch shows a newer version.

A watch that has not delivered the engine's own last write yet (kopf lags under load) shows no change by anyone
else either: the engine must not read the incident for that. A watched version newer than its write (a spec
change) is read and decided from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.integration.incidents.engine_harness import READY, EngineEnv, custom_planner, default_actions, step
from tradesense_operator.clients.kube import KubeClient
from tradesense_operator.services.incidents import IncidentEngine
from tradesense_operator.services.runtime import Runtime

POLLS = 5


async def _run(env: EngineEnv, name: str, latest: Callable[[], dict[str, Any]],
               on_poll: Callable[[int], None] = lambda _: None) -> tuple[int, str]:
    """Run the engine with `latest` as the caller's watch until the waiting step has polled POLLS times; then
    the Deployment turns ready and the incident finishes. Returns the incident GETs and the final phase."""
    runtime = Runtime(kube=await KubeClient.from_kubeconfig(str(env.kubeconfig)), settings=env.settings,
                      clock=env.clock)
    engine = IncidentEngine(runtime, actions=default_actions(), planner=custom_planner)
    polls = 0

    async def sleep(_: float) -> bool:
        nonlocal polls
        polls += 1
        on_poll(polls)
        if polls == POLLS:
            env.cluster.patch("apps/v1", "Deployment", "web", {"metadata": {"annotations": {READY: "true"}}},
                              env.namespace)
        return polls > 3 * POLLS  # a safety stop, never reached when the incident finishes

    before = env.cluster.stats.total("get", "tradesenseincidents")
    try:
        await engine.run(env.namespace, name, sleep=sleep, seed=env.incident(name), latest=latest)
    finally:
        await runtime.aclose()
    return env.cluster.stats.total("get", "tradesenseincidents") - before, env.status(name).get("phase", "")


async def test_a_watch_behind_the_engines_own_write_costs_no_read(env: EngineEnv) -> None:
    env.create_incident("lagging", env.spec(step("wait", "rollout-status")))
    created = env.incident("lagging")  # the watch never gets past the creation: every later version is ours
    reads, phase = await _run(env, "lagging", latest=lambda: created)
    assert phase == "Succeeded"
    assert reads == 0


async def test_a_watched_version_newer_than_the_engines_write_is_read(env: EngineEnv) -> None:
    env.create_incident("changed", env.spec(step("wait", "rollout-status")))
    watched: dict[str, Any] = {"body": env.incident("changed")}

    def someone_writes(poll: int) -> None:
        if poll == 2:  # a label added by someone else: the watch shows a version the engine did not write
            env.cluster.patch("ops.tradesense.io/v1alpha1", "TradeSenseIncident", "changed",
                              {"metadata": {"labels": {"team": "payments"}}}, env.namespace)
            watched["body"] = env.incident("changed")

    reads, phase = await _run(env, "changed", latest=lambda: watched["body"], on_poll=someone_writes)
    assert phase == "Succeeded"
    assert reads >= 1
