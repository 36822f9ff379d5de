"""What kopf keeps in memory per incident (handlers/kopf_memory.py): a finished incident keeps no body.

The real incident handlers with the production start-up run in kopf in this test's own event loop, with a
`ResourceMemories` the test can look into. A running incident's daemon must still see every change through
kopf's live body (here: the Deployment turns ready while its step waits, then the incident finishes); once
the incident is finished and no daemon runs for it, kopf must hold no body of it (it used to hold the whole last
body of every incident in the cluster until its deletion), yet still know the object.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import kopf
from kopf._cogs.structs.credentials import Vault  # as the sandbox's runner: a pre-filled vault replaces login
from kopf._core.reactor.inventory import ResourceMemories, ResourceMemory

from tests.integration.incidents.engine_harness import (
    READY,
    EngineEnv,
    build_registry,
    custom_planner,
    default_actions,
    step,
)
from tradesense_sandbox.runner import Endpoint, default_settings


@contextlib.asynccontextmanager
async def _operator(env: EngineEnv, memories: ResourceMemories) -> AsyncIterator[None]:
    registry = build_registry(env.kubeconfig, clock=env.clock, settings=env.settings, actions=default_actions(),
                              planner=custom_planner)
    endpoint = Endpoint.of(env.cluster)
    info = kopf.ConnectionInfo(server=endpoint.server, token=endpoint.token, scheme="Bearer",
                               default_namespace=endpoint.namespace)
    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(kopf.operator(
        registry=registry, settings=default_settings(), memo=kopf.Memo(), standalone=True,
        namespaces=[env.namespace], clusterwide=False, stop_flag=stop, ready_flag=ready,
        vault=Vault({"test": info}), memories=memories))
    try:
        await asyncio.wait_for(asyncio.shield(ready), timeout=30)
        yield
    finally:
        stop.set_result(None)
        await asyncio.wait_for(task, timeout=30)


def _memory(memories: ResourceMemories, body: kopf.RawBody) -> ResourceMemory:
    key = memories._build_key(body)
    assert key in memories._items, "kopf does not know the incident"
    return memories._items[key]


async def test_a_finished_incident_keeps_no_body_in_kopfs_memory_while_a_running_one_sees_changes(
    env: EngineEnv,
) -> None:
    memories = ResourceMemories()
    async with _operator(env, memories):
        env.create_incident("waits", env.spec(step("roll", "rollout-status")))
        await env.wait_for("the step to wait", lambda: env.step_message("waits", "roll") == "not ready yet")
        running = _memory(memories, env.incident("waits"))
        assert running.daemons_memory.running_daemons
        live = running.daemons_memory.live_fresh_body
        assert live is not None
        assert live["status"]["phase"] == "Running"

        env.cluster.patch("apps/v1", "Deployment", "web", {"metadata": {"annotations": {READY: "true"}}},
                          env.namespace)
        await env.wait_phase("waits", "Succeeded")
        finished = _memory(memories, env.incident("waits"))
        await env.wait_for("the daemon to end", lambda: not finished.daemons_memory.running_daemons)
        # Two more watch events, one after the other: kopf handles an object's events in order, and its on.event
        # handlers (which record the approvals they saw in the memo) run before its spawning step. When the second
        # is seen, the first went through the spawning step, which is what (re)sets kopf's body of the incident.
        for approvals in (["roll"], ["roll", "other"]):
            env.patch_spec("waits", {"approvals": approvals})
            await env.wait_for(f"kopf to see approvals {approvals}", lambda a=approvals: (  # type: ignore[misc]
                getattr(finished.memo, "field_watch_incident_wake", None) == (a, False)))
        assert finished.daemons_memory.live_fresh_body is None
        assert not finished.daemons_memory.running_daemons
        assert env.status("waits")["phase"] == "Succeeded"
