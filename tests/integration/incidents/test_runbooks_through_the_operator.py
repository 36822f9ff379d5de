"""Runbooks end to end through the real operator (kopf, incident handlers, engine, actions) on the emulated
API with real PostgreSQL/Redis: status and Events read like the runbook, restarts happen in runbook order,
destructive steps wait in AwaitingApproval with their effect absent until approved, a dry run records the
would-be changes and touches nothing, secrets never reach status or Events, and a bad spec names its field."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

from tests.integration.incidents.conftest import TradesenseEnv, stat_statements_database
from tests.support.rbac import with_and_without_rbac
from tradesense_operator.domain.runbooks import resolve_plan
from tradesense_sandbox.runner import OperatorHandle
from tradesense_sandbox.servers import ThrowawayPostgres

DONE = ("Succeeded", "Skipped")


def step_states(obj: dict[str, object]) -> dict[str, str]:
    return {s["id"]: s["state"] for s in obj["status"]["steps"]}  # type: ignore[index]


@with_and_without_rbac
async def test_complete_failure_through_the_operator(tradesense: TradesenseEnv, operator: OperatorHandle) -> None:
    env = tradesense
    before = {app: {p["metadata"]["uid"] for p in env.pods(app)} for app in ("postgres", "redis", "backend", "frontend")}
    spec = env.spec("complete-failure", severity="P1")
    env.apply("outage", spec)

    obj = await env.wait_phase("outage", "Succeeded", "Failed", timeout=60)

    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    states = step_states(obj)
    assert list(states) == [s.id for s in resolve_plan(spec)]
    assert states["page-oncall"] == "Skipped"
    assert all(state == "Succeeded" for sid, state in states.items() if sid != "page-oncall")
    for app, old in before.items():
        assert {p["metadata"]["uid"] for p in env.pods(app)}.isdisjoint(old), app
    # the Events follow the runbook order: each tier's wait finished before the next tier was touched
    messages = [e["message"] for e in env.incident_events("outage")]
    order = ["wait-postgres-ready", "delete-redis-pods", "wait-redis-ready", "restart-backend", "backend-rollout",
             "restart-frontend", "frontend-rollout", "smoke-test"]
    firsts = [next(i for i, m in enumerate(messages) if sid in m) for sid in order]
    assert firsts == sorted(firsts), messages
    assert obj["status"]["resolvedAt"]


async def test_index_creation_waits_for_approval_through_the_operator(
    tradesense: TradesenseEnv, operator: OperatorHandle, throwaway_pg_factory: Callable[..., ThrowawayPostgres]
) -> None:
    env = tradesense
    server = throwaway_pg_factory(pg_stat_statements=True)
    database = stat_statements_database(server, users=20, trades=500)
    spec = env.spec("slow-queries", target={"database": database})
    env.apply("slow", spec)

    waiting = await env.wait_phase("slow", "AwaitingApproval", "Failed", timeout=30)
    assert waiting["status"]["phase"] == "AwaitingApproval", waiting["status"]
    assert step_states(waiting)["create-index"] == "AwaitingApproval"

    def index_exists() -> bool:
        with server.connect("tradesense") as conn:
            return conn.execute("SELECT to_regclass('public.idx_trades_user_date')").fetchone() != (None,)

    assert not index_exists()
    env.approve("slow", "create-index")
    done = await env.wait_phase("slow", "Succeeded", "Failed", timeout=30)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert index_exists()


@with_and_without_rbac
async def test_security_breach_through_the_operator_keeps_secrets_out_of_status_and_events(
    tradesense: TradesenseEnv, operator: OperatorHandle
) -> None:
    env = tradesense
    env.redis.set(env.key("session:1"), "t")
    spec = env.spec("security-breach", severity="P1")
    env.apply("breach", spec)
    obj = await env.wait_phase("breach", "Succeeded", "Failed", timeout=60)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]

    secret = env.cluster.get("v1", "Secret", "tradesense-secrets", env.namespace)
    new_key = base64.b64decode(secret["data"]["jwt-secret-key"]).decode()
    assert new_key != env.signing_key
    assert env.redis.exists(env.key("session:1")) == 0
    assert env.env_of("backend")["SECURITY_AUDIT"] == "true"
    visible = json.dumps(obj) + json.dumps(env.incident_events("breach"))
    for value in (new_key, env.signing_key, secret["data"]["jwt-secret-key"]):
        assert value not in visible


async def test_dry_run_through_the_operator_records_changes_and_touches_nothing(
    tradesense: TradesenseEnv, operator: OperatorHandle
) -> None:
    env = tradesense
    generation = env.deployment("backend")["metadata"]["generation"]
    env.apply("rehearsal", env.spec("high-cpu", dryRun=True))
    obj = await env.wait_phase("rehearsal", "Succeeded", "Failed", timeout=30)
    messages = {s["id"]: s["message"] for s in obj["status"]["steps"]}
    assert set(step_states(obj).values()) == {"WouldRun"}
    assert messages["scale-backend"] == "backend replicas 3 → 8; held as a floor for 1800s"
    assert messages["set-workers"] == "set WORKERS=2 on deployment/backend container backend (currently '4')"
    assert env.deployment("backend")["metadata"]["generation"] == generation
    assert env.deployment("backend")["spec"]["replicas"] == 3


async def test_restore_runbook_without_a_policy_fails_naming_the_field(
    tradesense: TradesenseEnv, operator: OperatorHandle
) -> None:
    env = tradesense
    env.apply("corrupt", env.spec("data-corruption"))
    obj = await env.wait_phase("corrupt", "Failed", "Succeeded", timeout=30)
    assert obj["status"]["phase"] == "Failed"
    assert "spec.parameters.backupPolicy" in obj["status"]["message"]
    assert env.env_of("backend").get("READ_ONLY") is None  # nothing ran
