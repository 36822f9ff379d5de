"""`kubectl-tradesense` as an on-call engineer runs it, against the real operator on the emulated API:
the tree shows the step waiting for approval, approve/cancel are one patch each that the operator acts on,
refusals are one line with exit status 1, `--watch` redraws on watch events and exits when the incident ends."""

from __future__ import annotations

import asyncio
import json

import yaml

from tests.integration.console.conftest import PLUGIN, ConsoleEnv
from tradesense_sandbox.runner import OperatorHandle


async def test_get_approve_and_refusals_through_the_operator(console_env: ConsoleEnv,
                                                             console_operator: OperatorHandle) -> None:
    env = console_env
    await env.awaiting_approval("db-slow")

    tree = await env.cli("get", "db-slow")
    assert tree.code == 0, tree.err
    lines = tree.out.splitlines()
    assert lines[0].startswith("tsi/db-slow  runbook custom  severity P2  phase AwaitingApproval  respond by ")
    assert "left" in lines[0]
    assert any(line.startswith("├── ✔ check-pods") and "Succeeded" in line for line in lines), tree.out
    assert any(line.startswith("├── ⏸ scale-backend") and "AwaitingApproval" in line for line in lines), tree.out
    assert "waits for: approval: kubectl tradesense approve db-slow scale-backend" in tree.out
    assert "\x1b[" not in tree.out  # not a terminal: no colour

    overview = await env.run("get")
    assert overview.code == 0, overview.err
    assert any(line.split()[:4] == ["tsi/db-slow", "custom", "P2", "AwaitingApproval"]
               for line in overview.out.splitlines()), overview.out
    as_json = json.loads((await env.run("get", "db-slow", "-o", "json")).out)
    assert as_json["status"]["phase"] == "AwaitingApproval"
    as_yaml = yaml.safe_load((await env.run("get", "-o", "yaml")).out)
    assert [i["metadata"]["name"] for i in as_yaml["items"]] == ["db-slow"]

    unknown = await env.run("approve", "db-slow", "scale-frontend")
    assert (unknown.code, unknown.out) == (1, "")
    assert unknown.err == ("error: tsi/db-slow has no step 'scale-frontend' "
                           "(steps: check-pods, scale-backend, backend-rollout)\n")
    done = await env.run("approve", "db-slow", "check-pods")
    assert done.code == 1
    assert done.err == "error: step check-pods of tsi/db-slow is not waiting for approval: it needs no approval\n"
    missing = await env.run("approve", "nope", "x")
    assert missing.code == 1
    assert missing.err.count("\n") == 1
    assert "not found" in missing.err
    assert env.incident("db-slow")["spec"].get("approvals", []) == []

    approved = await env.cli("approve", "db-slow", "scale-backend")
    assert approved.code == 0, approved.err
    assert approved.out == "tsi/db-slow: approved scale-backend\n"
    finished = await env.wait_phase("db-slow", "Succeeded", "Failed")
    assert finished["status"]["phase"] == "Succeeded", finished["status"]
    assert finished["spec"]["approvals"] == ["scale-backend"]
    assert env.cluster.get("apps/v1", "Deployment", "backend", env.namespace)["spec"]["replicas"] == 5

    again = await env.run("approve", "db-slow", "scale-backend")
    assert again.code == 1
    assert again.err == "error: tsi/db-slow is Succeeded: a finished incident takes no more actions\n"
    cancel = await env.run("cancel", "db-slow")
    assert cancel.code == 1
    assert "finished incident" in cancel.err
    retry = await env.run("retry", "db-slow", "scale-backend")
    assert retry.code == 1
    assert "create a new incident" in retry.err

    final = await env.run("get", "db-slow")
    assert "phase Succeeded" in final.out
    assert "respond by met" in final.out
    assert "1/3 attempts" in final.out


async def test_cancel_stops_an_incident_waiting_for_approval(console_env: ConsoleEnv,
                                                             console_operator: OperatorHandle) -> None:
    env = console_env
    await env.awaiting_approval("stop-me")

    result = await env.run("cancel", "stop-me")

    assert (result.code, result.out) == (0, "tsi/stop-me: cancel requested\n"), result.err
    cancelled = await env.wait_phase("stop-me", "Cancelled", "Failed", "Succeeded")
    assert cancelled["status"]["phase"] == "Cancelled"
    states = {s["id"]: s["state"] for s in cancelled["status"]["steps"]}
    assert states["scale-backend"] == "Cancelled"
    assert states["backend-rollout"] == "Cancelled"
    assert env.cluster.get("apps/v1", "Deployment", "backend", env.namespace)["spec"]["replicas"] != 5


async def test_watch_redraws_on_events_and_exits_when_the_incident_succeeds(
    console_env: ConsoleEnv, console_operator: OperatorHandle
) -> None:
    env = console_env
    await env.awaiting_approval("watched")
    process = await asyncio.create_subprocess_exec(
        PLUGIN, "get", "watched", "--watch", env=env.env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    seen: list[str] = []
    async def read_until(text: str) -> None:
        assert process.stdout is not None
        while not any(text in line for line in seen):
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            assert line, f"watch ended before {text!r}: {''.join(seen)}"
            seen.append(line.decode())

    await read_until("phase AwaitingApproval")
    frames_before = sum(line.startswith("tsi/watched") for line in seen)
    assert (await env.run("approve", "watched", "scale-backend")).code == 0
    await read_until("phase Succeeded")
    code = await asyncio.wait_for(process.wait(), 30)

    assert code == 0
    frames = [line for line in seen if line.startswith("tsi/watched")]
    assert len(frames) > frames_before  # redrawn on the operator's status writes, not on a timer
    assert any("phase Running" in f for f in frames) or any("◌ scale-backend" in line for line in seen)
